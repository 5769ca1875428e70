"""Running a plan: subtasks whose dependencies are done run concurrently, each a voted chain.

All chains share one backend, so a batching backend serves their requests together, and one
statistics counter. A chain whose end state fails its declared check is redone once with a larger
k; if it fails again the run stops with a clear error. Every decided step goes to the journal
(tagged with its chain in multi-chain plans), and a rerun with the same journal resumes each
chain where its records end.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from maker.backends.base import Backend
from maker.config import RunConfig, make_config
from maker.engine import Engine, ProgressCallback, RunResult
from maker.errors import ConfigError, MakerError, StepError
from maker.journal import JournalWriter, check_compatible, read_journal, records_by_chain
from maker.planner import Plan, plan_for
from maker.statistics import StatsCounter
from maker.task import Task

RERUN_K_FACTOR = 2  # a chain that fails its end check is redone with k times this


def journal_header(task: Task, backend: Backend, config: RunConfig, depth: int) -> dict[str, Any]:
    header = {**task.describe(), "config": config.model_dump(mode="json"), "backend": backend.describe()}
    if depth:
        header["config"]["depth"] = depth  # part of "config": a journal resumes only the same plan
    return header


async def run_async(
    task: Task,
    backend: Backend,
    *,
    journal: str | Path | None = None,
    progress: ProgressCallback | None = None,
    max_steps: int | None = None,
    depth: int = 0,
    max_concurrency: int = 256,
    plan: Plan | None = None,
    config: RunConfig | None = None,
    **settings: Any,
) -> RunResult:
    """Carry out ``task`` with ``backend``; see ``maker.run``."""
    config = config or make_config(**settings)
    if max_concurrency < 1:
        raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
    plan = plan or plan_for(task, depth)
    order = plan.order()
    single = len(order) == 1
    if max_steps is not None and not single:
        raise ConfigError("max_steps applies to single-chain runs (depth 0) only")

    header = journal_header(task, backend, config, depth)
    contents = None
    if journal is not None and Path(journal).exists() and Path(journal).stat().st_size > 0:
        contents = read_journal(journal)
        check_compatible(contents.header, header, journal)
    journalled = records_by_chain(contents) if contents is not None else {}
    writer = JournalWriter(journal, header, resume_from=contents) if journal is not None else None

    stats = StatsCounter(has_oracle=task.has_oracle and config.verify, has_check=task.has_check)
    results: dict[str, Any] = {}
    finished = {name: asyncio.Event() for name in order}
    nodes: dict[str, dict[str, Any]] = {}
    resumed = 0
    limiter = asyncio.Semaphore(max_concurrency)

    async def run_node(index: int, name: str) -> None:
        nonlocal resumed
        sub = plan.subtask(name)
        for dep in sub.after:
            await finished[dep].wait()
        node_task = sub.task or task
        chain = None if single else index
        try:
            start = sub.start if sub.start_from is None else sub.start_from({d: results[d] for d in sub.after})
        except Exception as exc:
            raise StepError(f"subtask {name!r}: building its start state raised {type(exc).__name__}: {exc}", step=0) from exc
        engine = Engine(node_task, backend, config, journal=writer, progress=progress, stats=stats)
        records = journalled.get(chain, [])
        state = engine.replay(start, records)
        resumed += len(records)
        limit = max_steps if single and max_steps is not None else sub.steps
        began, samples_before, reruns = time.perf_counter(), stats.samples, 0
        async with limiter:
            remaining = None if limit is None else max(0, limit - len(records))
            state, _ = await engine.run_chain(state, first_step=len(records), max_steps=remaining, chain=chain)
            if sub.expect is not None and not sub.expect(state) and not (single and max_steps is not None):
                # The chain ended somewhere the decomposition says it cannot: redo it with a larger k.
                reruns = 1
                engine.void()
                if writer is not None:
                    writer.reset(chain, "end state failed its check")
                strict = config.model_copy(update={"k": config.k * RERUN_K_FACTOR})
                engine = Engine(node_task, backend, strict, journal=writer, progress=progress, stats=stats)
                state, _ = await engine.run_chain(start, first_step=0, max_steps=sub.steps, chain=chain)
                if not sub.expect(state):
                    raise StepError(
                        f"subtask {name!r} ended in a state that fails its check, twice (k = {config.k}, then {strict.k})",
                        step=(sub.steps or 1) - 1, state=state,
                    )
        results[name] = state
        nodes[name] = {"name": name, "steps": sub.steps, "samples": stats.samples - samples_before,
                       "seconds": round(time.perf_counter() - began, 3), "reruns": reruns}
        finished[name].set()

    stats.started = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as group:
            for index, name in enumerate(order):
                group.create_task(run_node(index, name))
    except BaseExceptionGroup as failure:
        error = failure.exceptions[0]
        if isinstance(error, MakerError):
            error.statistics = stats.snapshot()
        raise error from None
    finally:
        if writer is not None:
            writer.close()

    final_state = plan.finish(results) if plan.finish is not None else results[order[-1]]
    stats.backend_retries = getattr(backend, "retries", 0)
    snapshot = stats.snapshot()
    done = task.is_done(final_state)
    if progress is not None:
        progress(snapshot)
    return RunResult(
        task=task.name,
        params=task.describe()["params"],
        backend=backend.name,
        simulated=backend.simulated,
        config=config,
        solved=done and not snapshot.rule_violations,
        final_state=final_state,
        statistics=snapshot,
        resumed_steps=resumed,
        journal=None if journal is None else str(journal),
        stopped_reason=None if done else f"stopped after {snapshot.steps} steps without finishing",
        depth=depth,
        nodes=[nodes[n] for n in order],
    )


def run(task: Task, backend: Backend, **settings: Any) -> RunResult:
    """Carry out ``task`` with ``backend``, voting on every step.

    Settings are those of ``RunConfig`` (k, rule, temperature, first_temperature, max_tokens,
    max_samples_per_step, checks, verify, seed) plus ``journal`` (a path to write and resume
    from), ``progress`` (called with statistics about ten times a second), ``max_steps``,
    ``depth`` (how deep the task's planner splits it; 0 = one chain, as the paper) and
    ``max_concurrency`` (chains in flight at once).

    >>> from maker import load_task, SimulatedBackend
    >>> task = load_task("hanoi", disks=5)
    >>> run(task, SimulatedBackend(task, error_rate=0.05), k=3).solved
    True
    """
    return asyncio.run(run_async(task, backend, **settings))
