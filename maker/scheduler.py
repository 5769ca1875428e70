"""Running a plan: subtasks whose dependencies are done run concurrently, each a voted chain.

All chains share one backend, so a batching backend serves their requests together. Each chain's
agents are resolved once (``maker.agents.chain_agents``) and its settings from them and the agent
catalog (``maker.config.resolve_config``). A chain whose end state fails its declared check is redone once with a larger k; if it
fails again the run stops with a clear error. The run's observers (statistics, journal, progress,
the user's own) hear every event; a rerun with the same journal resumes each chain where its
records end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maker.agents import AgentCatalog, chain_agents, task_catalog
from maker.backends.base import Backend, check_backend
from maker.config import RunConfig, resolve_config
from maker.engine import Engine, ProgressCallback, RunResult
from maker.errors import ConfigError, MakerError, StepError
from maker.events import ChainInfo, Emitter, Observer, StepDecision, emitter
from maker.journal import JournalReader, open_journal
from maker.loading import class_identity
from maker.mixing import AgentMix
from maker.planner import Plan, Subtask, plan_for, start_of
from maker.replay import PlanReplay
from maker.statistics import PROGRESS_EVERY, ProgressReporter, StatisticsRecorder
from maker.task import Task, json_data

RERUN_K_FACTOR = 2  # a chain that fails its end check is redone with k times this
# Steps a chain may take when neither the task (total_steps) nor the run (max_steps) bounds it, so that an
# is_done that never comes true stops with a clear reason instead of running forever.
DEFAULT_STEP_CAP = 10_000_000


def journal_header(task: Task, backend: Backend, config: RunConfig, depth: int) -> dict[str, Any]:
    # Unset optional settings stay out, so journals written before they existed still resume.
    header = {**task.describe(), "class": class_identity(type(task)),
              "config": config.model_dump(mode="json", exclude_none=True), "backend": backend.describe()}
    if depth:
        header["config"]["depth"] = depth  # part of "config": a journal resumes only the same plan
    return header


@dataclass
class _PlanRun:
    """What the chains of one run share."""

    main: Task  # the run's task: the task of every chain whose subtask names none
    plan: Plan
    backend: Backend
    config: RunConfig
    settings: dict[str, Any] | None  # the user's overrides; None: a finished config was given
    catalog: AgentCatalog
    agent: str | None  # the run's agent for every chain, overriding each task's own
    mix: AgentMix | None  # the run's mix for every chain, overriding each task's own
    emit: Emitter
    resets: frozenset[int | None]  # chains the journal says are being redone
    max_steps: int | None
    limiter: asyncio.Semaphore
    stop: Callable[[], int]  # non-zero once the run's task is being cancelled (Ctrl-C)
    configs: dict[tuple[int, str | None], RunConfig] = field(default_factory=dict)
    chains: dict[tuple[str, int], ChainInfo] = field(default_factory=dict)  # by name and attempt
    begun: set[ChainInfo] = field(default_factory=set)  # chain_started was emitted
    replayed: dict[str, tuple[Any, int]] = field(default_factory=dict)  # from the journal: state, steps
    results: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    resumed: int = 0
    capped: list[str] = field(default_factory=list)  # chains stopped by DEFAULT_STEP_CAP

    def config_for(self, task: Task, agent: str | None) -> RunConfig:
        """The chain's settings: the run's own config if one was given, else resolved for the
        chain's task and agent from the user's overrides (once per task and agent)."""
        if self.settings is None:
            return self.config
        key = (id(task), agent)
        if key not in self.configs:
            self.configs[key] = resolve_config(task, agent=agent, catalog=self.catalog, simulated=self.backend.simulated,
                                               **self.settings)
        return self.configs[key]

    def chain_info(self, name: str, attempt: int) -> ChainInfo:
        """The one ChainInfo of a chain's attempt (observers key on it), made on first use."""
        if (name, attempt) not in self.chains:
            order = self.plan.order()  # only on a chain's first event: it sorts the graph
            task = self.plan.subtask(name).task or self.main
            index = None if len(order) == 1 else order.index(name)
            self.chains[name, attempt] = ChainInfo(index, name, task, chain_agents(task, agent=self.agent, mix=self.mix), attempt)
        return self.chains[name, attempt]

    def start_chain(self, chain: ChainInfo, state: Any) -> None:
        if chain not in self.begun:
            self.begun.add(chain)
            for hook in self.emit.chain_started:
                hook(chain, state)

    def resume(self, journal: JournalReader) -> None:
        """Rebuild every chain's state and statistics from the journal's records, streamed once."""
        replay = PlanReplay(self.main, self.plan)

        def replayed(sub: Subtask, task: Task, record: dict[str, Any], state: Any, candidate: Any) -> None:
            chain = self.chain_info(sub.name, int(record.get("chain") in self.resets))
            self.start_chain(chain, state)
            decision = StepDecision(candidate, list(record.get("votes", ())), record.get("samples", 0), record.get("rounds", 1),
                                    replayed=True, kind=record.get("kind"), escalated=record.get("escalated"))
            for hook in self.emit.step_decided:
                hook(chain, record["step"], state, decision)

        for record in journal.records():
            replay.apply(record, replayed)
        self.replayed = {name: (replay.states[name], steps) for name, steps in replay.steps.items() if steps}
        self.resumed = sum(replay.steps.values())

    async def run_node(self, name: str, finished: dict[str, asyncio.Event]) -> None:
        sub = self.plan.subtask(name)
        for dep in sub.after:
            await finished[dep].wait()
        chain = self.chain_info(name, 0)
        start = start_of(sub, self.results)
        began = time.perf_counter()
        async with self.limiter:
            # A chain runs with its first agent's settings (the greedy first vote is that agent's).
            state, reruns = await self.run_chain(sub, chain, start, self.config_for(chain.task, chain.agents.first))
        self.results[name] = state
        self.nodes[name] = {"name": name, "steps": sub.steps, "seconds": round(time.perf_counter() - began, 3), "reruns": reruns}
        finished[name].set()

    async def run_chain(self, sub: Subtask, chain: ChainInfo, start: Any, config: RunConfig) -> tuple[Any, int]:
        """Resume the chain from its journalled records and run it to its end. If its end state
        fails the plan's check, void it and redo it once with a larger k (a journal that says so
        resumes the redo, at that k). Returns the end state and the number of redos."""
        state, done = self.replayed.get(sub.name, (start, 0))
        attempt = int(chain.index in self.resets)
        while True:
            chain = self.chain_info(sub.name, attempt)
            settings = config.scaled_k(RERUN_K_FACTOR) if attempt else config
            self.start_chain(chain, start)
            bounded = self.max_steps is not None
            limit = self.max_steps if bounded else sub.steps if sub.steps is not None else DEFAULT_STEP_CAP
            remaining = max(0, limit - done)
            state, taken = await Engine(chain, self.backend, settings, self.emit, self.stop).run_chain(state, first_step=done, max_steps=remaining)
            if not bounded and sub.steps is None and done + taken >= DEFAULT_STEP_CAP and not chain.task.is_done(state):
                if len(self.plan.graph) > 1:  # its unfinished state must not feed the chains after it
                    raise StepError(f"subtask {sub.name!r} reached the default cap of {DEFAULT_STEP_CAP:,} steps without "
                                    "is_done: give it its step count (Subtask(steps=...))", step=DEFAULT_STEP_CAP - 1, state=state)
                self.capped.append(sub.name)
            if sub.expect is None or sub.expect(state) or bounded:
                break
            if attempt:
                raise StepError(f"subtask {sub.name!r} ended in a state that fails its check, twice (k = {config.k}, "
                                f"then {settings.k})", step=(sub.steps or 1) - 1, state=state)
            # The chain ended somewhere the decomposition says it cannot: redo it with a larger k.
            for hook in self.emit.chain_reset:
                hook(chain, "end state failed its check")
            attempt, state, done = 1, start, 0
        for hook in self.emit.chain_finished:
            hook(chain, state)
        return state, attempt


async def run_async(task: Task, backend: Backend | None = None, *, journal: str | Path | None = None,
                    progress: ProgressCallback | None = None, progress_every: float = PROGRESS_EVERY,
                    max_steps: int | None = None, depth: int = 0,
                    max_concurrency: int = 256, plan: Plan | None = None, config: RunConfig | None = None,
                    agents: AgentCatalog | Mapping[str | None, str] | Sequence[str] | str | Path | None = None,
                    agent: str | None = None, mix: AgentMix | str | Sequence[str] | None = None,
                    observers: Iterable[Observer] = (), **settings: Any) -> RunResult:
    """Carry out ``task`` with ``backend``; see ``maker.run``."""
    if config is not None and settings:
        raise ConfigError(f"give either config or settings ({', '.join(sorted(settings))}), not both")
    catalog = task_catalog(task, agents)
    if backend is None:  # the catalog's folders, in process, for this run alone
        from maker.backends.hf import HFBackend  # here: it imports torch

        async with HFBackend(catalog.folders()) as own:
            return await run_async(task, own, journal=journal, progress=progress, progress_every=progress_every,
                                   max_steps=max_steps, depth=depth,
                                   max_concurrency=max_concurrency, plan=plan, config=config, agents=catalog,
                                   agent=agent, mix=mix, observers=observers, **settings)
    check_backend(backend)
    fixed = config is not None
    chain_agents(task)  # a task's own mix fails here, before the journal opens
    if mix is not None:
        mix = AgentMix.coerce(mix)
        if agent is not None and agent != mix.first:
            raise ConfigError(f"give agent {agent!r} or mix {str(mix)!r}, not both: a mix names every agent")
    first = chain_agents(task, agent=agent, mix=mix).first
    config = config or resolve_config(task, agent=first, catalog=catalog, simulated=backend.simulated, **settings)
    if config.escalation is not None and config.escalation.agent is not None and first is None:
        raise ConfigError(f"the escalation's agent rung adds {config.escalation.agent!r} beside the chain's own agent, "
                          "which must then have a name: give the run's agent (agent=..., --agent NAME)")
    if max_concurrency < 1:
        raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
    plan = plan or plan_for(task, depth)
    order = plan.order()
    if max_steps is not None and len(order) > 1:
        raise ConfigError("max_steps applies to single-chain runs (depth 0) only")
    owner = asyncio.current_task()  # the run's task: Ctrl-C cancels it, and every chain checks for that
    stop = owner.cancelling if owner is not None else (lambda: 0)
    writer, contents = open_journal(journal, journal_header(task, backend, config, depth), stop)
    recorder = StatisticsRecorder(oracle=task.has_oracle, check=task.has_check, verify=config.verify, checks=config.checks)
    watchers: list[Observer] = [o for o in (writer, recorder, backend.observer()) if o is not None]
    if progress is not None:
        watchers.append(ProgressReporter(progress, recorder.snapshot, progress_every))
    run = _PlanRun(task, plan, backend, config, None if fixed else settings, catalog, agent, mix, emitter(watchers, guarded=observers),
                   contents.resets if contents else frozenset(), max_steps, asyncio.Semaphore(max_concurrency), stop)
    finished = {name: asyncio.Event() for name in order}
    for hook in run.emit.run_started:
        hook(task, backend, config)
    ended: BaseException | None = None
    try:
        if contents is not None:
            run.resume(contents)
        async with asyncio.TaskGroup() as group:
            for name in order:
                group.create_task(run.run_node(name, finished))
    except BaseExceptionGroup as failure:
        ended = failure.exceptions[0]
        if isinstance(ended, MakerError):
            ended.statistics = _final_statistics(recorder, backend)
        raise ended from None
    except BaseException as stopped:  # Ctrl-C while replaying: a CancelledError
        ended = stopped
        raise
    finally:
        if writer is not None:
            writer.close()
        if ended is not None:
            for hook in run.emit.run_finished:
                hook(None, ended)
    result = _result(task, backend, config, run, recorder, journal, depth, progress)
    for hook in run.emit.run_finished:
        hook(result, None)
    return result


def _final_statistics(recorder: StatisticsRecorder, backend: Backend) -> Any:
    counters = backend.statistics()
    return recorder.snapshot(backend=counters, backend_retries=int(counters.get("retries", 0)))


def _result(task: Task, backend: Backend, config: RunConfig, run: _PlanRun, recorder: StatisticsRecorder,
            journal: str | Path | None, depth: int, progress: ProgressCallback | None) -> RunResult:
    order = run.plan.order()
    final_state = run.plan.finish(run.results) if run.plan.finish is not None else run.results[order[-1]]
    snapshot = _final_statistics(recorder, backend)
    if progress is not None:
        progress(snapshot)
    stopped, unsolved = _unsolved(task, final_state, snapshot, run)
    return RunResult(task=task.name, params=task.describe()["params"], backend=backend.name, simulated=backend.simulated,
                     config=config, solved=unsolved is None, final_state=final_state, statistics=snapshot,
                     resumed_steps=run.resumed, journal=None if journal is None else str(journal), stopped_reason=stopped,
                     unsolved_reason=unsolved, answer=_answer(task, final_state), has_check=task.has_check, depth=depth,
                     nodes=[run.nodes[n] for n in order])


def _answer(task: Task, final_state: Any) -> Any:
    """``task.answer(final_state)`` as JSON data; None, with a warning, if it raises (e.g. on an unfinished state)."""
    try:
        return json_data(task.answer(final_state))
    except Exception as exc:
        logging.getLogger("maker").warning("task %r: answer() raised %s: %s; the summary shows none", task.name,
                                           type(exc).__name__, exc)
        return None


def _unsolved(task: Task, final_state: Any, statistics: Any, run: _PlanRun) -> tuple[str | None, str | None]:
    """Why the run stopped early (or None), and why it is not solved (or None: it is)."""
    steps, declared = statistics.steps, task.total_steps()
    stopped = None
    if not task.is_done(final_state):
        stopped = f"stopped after {steps:,} steps without finishing"
        if run.capped:
            stopped += (f": chain {run.capped[0]!r} reached the default cap of {DEFAULT_STEP_CAP:,} steps (the task "
                        "declares no total_steps()); give max_steps (--max-steps) to allow more")
        elif declared is not None and run.max_steps is None and steps >= declared:
            stopped += f": the task declares total_steps() = {declared:,}, and is_done is still false"
    reasons = [stopped] if stopped else []
    if stopped is None and declared is not None and steps != declared:
        reasons.append(f"is_done after {steps:,} steps, but the task declares total_steps() = {declared:,}")
    if statistics.rule_violations:
        reasons.append(f"{statistics.rule_violations:,} committed steps break the task's check (rule_violations)")
    return stopped, "; ".join(reasons) or None


def run(task: Task, backend: Backend | None = None, **settings: Any) -> RunResult:
    """Carry out ``task`` with ``backend``, voting on every step.

    Settings are those of ``RunConfig`` (k, rule, temperature, first_temperature, max_tokens,
    generation_cap, max_samples_per_step, checks, verify, seed), resolved with the microagent's
    and the task's defaults by ``maker.config.resolve_config``, plus ``agents`` (the agent catalog,
    ``maker.agents``: ``{name: folder or served model}``, the task's shipped model serving any other
    name; its folders' manifests give their settings, and without ``backend`` its folders run in
    process), ``journal`` (a path to write
    and resume from), ``progress`` (called with statistics every ``progress_every`` seconds at most, 0.1 by default),
    ``observers`` (``maker.events.Observer`` instances that hear every event), ``agent`` (the
    microagent for every chain, instead of each task's own), ``mix`` (several microagents that draw
    each step's samples in turn, for every chain: ``"A,B"``; ``maker.mixing``), ``max_steps``, ``depth`` (how deep
    the task's planner splits it; 0 = one chain, as the paper) and ``max_concurrency`` (chains in
    flight at once). Inside a running event loop, ``await maker.run_async(...)`` instead.

    >>> from maker import load_task, SimulatedBackend
    >>> task = load_task("hanoi", disks=5)
    >>> run(task, SimulatedBackend(task, error_rate=0.05), k=3).solved
    True
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_async(task, backend, **settings))
    raise ConfigError("maker.run was called inside a running event loop (a notebook or an async framework): "
                      "use `await maker.run_async(task, backend, ...)` there")
