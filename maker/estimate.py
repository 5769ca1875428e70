"""Estimation before spending: measure p on random steps, choose k, project a run's cost.

``estimate`` draws random states from the oracle's trajectory, samples each of them at least
twice, red-flags every reply with the engine's own judge (``RedFlagJudge``) and compares the
survivors with the oracle (allowed here: this is measurement, not voting). It reports p-hat with a
Wilson interval, the valid share v, red flags by reason, collisions (states whose first two valid
samples are both wrong) against the i.i.d. expectation, k_min for a target success, and the
projected samples, tokens, wall time and cost of the whole run (``maker.scaling``). With a
``mix`` of agents, each state's samples are drawn as a mixed run draws them, and the report adds
each agent's p-hat, collisions within and across agents and a recommended mix
(``maker.estimate_agents``).

``choose_k`` is the one-line answer for ``maker run --target-success t``.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from maker.agents import AgentCatalog, chain_agents, task_catalog
from maker.backends.base import Backend, check_backend, draw
from maker.config import resolve_config
from maker.engine import draft_hook, step_seed
from maker.errors import ConfigError, TaskError
from maker.estimate_agents import AgentsReport, across_agents
from maker.estimate_kinds import KindsReport, across_kinds, kinded_states
from maker.events import ChainInfo
from maker.mixing import AgentMix
from maker.prompting import prompter, stop_for
from maker.redflag import Flagged, RedFlagJudge
from maker.scaling import _count, collision_test, estimate_p, expected_collisions, expected_samples, k_min, p_full
from maker.task import OracleWalk, Task, WalkError, oracle_disagrees

__all__ = ["EstimateReport", "choose_k", "estimate", "estimate_async"]

COLLISION_ALPHA = 0.01  # collision p-value below which errors are reported as correlated
_CHARS_PER_TOKEN = 4  # rough prompt-token count: backends report only output tokens


@dataclass(frozen=True, slots=True)
class EstimateReport:
    """What an estimate measured and what it projects for the whole task.

    ``p`` is the share of valid (red-flag-free) samples that are correct; ``v`` the share of all
    samples that are valid. Fields that cannot be computed (no valid sample, p <= 0.5) are None.
    """

    task: str
    backend: str
    simulated: bool
    steps: int  # s: steps of the whole task
    target: float  # t: target success of the whole task
    states: int
    distinct_states: int
    per_state: int
    samples: int
    valid: int
    correct: int
    red_flags: dict[str, int]  # reason -> count
    p: float | None
    p_low: float | None
    p_high: float | None
    confidence: float
    v: float
    mean_output_tokens: float
    mean_prompt_tokens: float  # estimated at 4 characters a token
    pairs: int  # states whose first two samples were both valid
    collisions: int  # ... and both wrong
    collisions_same: int  # ... and wrong in the same way (the errors voting can lock in)
    expected_collisions: float | None
    collision_p_value: float | None
    all_wrong_states: int  # states with >= 2 valid samples, every one wrong
    same_wrong_states: int  # states where two valid samples give the same wrong answer (a vote could lock it in)
    k_min: int | None  # at p-hat
    k_min_cautious: int | None  # at the interval's lower end
    p_full: float | None  # P(whole task right) at k_min
    expected_samples_per_step: float | None
    projected_samples: float | None
    projected_output_tokens: float | None
    projected_prompt_tokens: float | None
    projected_seconds: float | None
    projected_cost: float | None
    prices: tuple[float, float] | None  # per million (prompt, output) tokens
    seconds: float  # wall time of the sampling
    samples_per_second: float
    concurrency: int
    temperature: float
    first_temperature: float | None
    max_tokens: int
    checks: bool
    warnings: tuple[str, ...]
    agents: AgentsReport | None = None  # with a mix: per agent, across agents, the recommended mix
    few_shot: int | None = None  # the prompt: the task's own (None) or with this many solved examples (maker.prompting)
    stop: tuple[str, ...] = ()  # the strings that ended replies
    kinds: KindsReport | None = None  # by kind of step: each kind's p-hat, one k against a k per kind
    v_after_first: float | None = None  # the valid share of each state's samples after its first (with a greedy
    # first sample, the share of the sampled votes a run gets: a model can be right greedily and write garbage at T)

    @property
    def warning(self) -> str | None:
        """All warnings as one text, or None when there are none."""
        return "\n".join(self.warnings) or None

    def to_json(self) -> dict[str, Any]:
        prices = None if self.prices is None else list(self.prices)
        kinds = None if self.kinds is None else self.kinds.to_json()
        return {**asdict(self), "warnings": list(self.warnings), "prices": prices, "warning": self.warning, "kinds": kinds}

    def to_table(self) -> str:
        """A readable report; says SIMULATED first when the backend made its replies up."""
        lines: list[str] = []
        if self.simulated:
            lines.append(f"SIMULATED: backend {self.backend!r} makes replies up from the task's oracle; this measures nothing real.")
        lines.append(f"estimate of {self.task} on backend {self.backend!r}: {self.states:,} random steps "
                     f"({self.distinct_states:,} distinct) x {self.per_state} samples = {self.samples:,} samples")
        temps = f"temperature {self.temperature:g}" + (
            "" if self.first_temperature is None else f" (first sample {self.first_temperature:g})")
        lines.append(f"  {temps}, red-flag limit {self.max_tokens} tokens, checks {'on' if self.checks else 'off'}")
        asked = "the task's own" if not self.few_shot else f"{self.few_shot}-shot completion (maker.prompting)"
        lines.append(f"  prompt {asked}" + (f", replies end at {', '.join(map(repr, self.stop))}" if self.stop else ""))
        if self.p is None:
            lines.append("  p-hat                    n/a (no sample passed the red flags)")
        else:
            lines.append(f"  p-hat (valid correct)    {self.p:.6f}  [{self.p_low:.6f}, {self.p_high:.6f}] "
                         f"{self.confidence:.0%} Wilson; error rate {1 - self.p:.4%}  ({self.correct:,}/{self.valid:,})")
        lines.append(f"  v (pass red flags)       {self.v:.4f}  ({self.valid:,}/{self.samples:,})")
        flags = ", ".join(f"{reason} {n:,}" for reason, n in sorted(self.red_flags.items())) or "none"
        lines.append(f"  red flags                {flags}")
        lines.append(f"  tokens per sample        {self.mean_output_tokens:.1f} output, ~{self.mean_prompt_tokens:.0f} prompt (est.)")
        if self.expected_collisions is not None:
            lines.append(f"  collisions               {self.collisions:,} of {self.pairs:,} valid first pairs both wrong "
                         f"({self.collisions_same:,} alike); i.i.d. expectation {self.expected_collisions:.2f}, "
                         f"p-value {self.collision_p_value:.3g}")
        lines.append(f"  all samples wrong        {self.all_wrong_states:,} states")
        lines.append(f"  same wrong answer twice  {self.same_wrong_states:,} states")
        lines.append(f"  throughput               {self.samples_per_second:,.1f} samples/s "
                     f"({self.seconds:.2f} s, concurrency {self.concurrency})")
        lines.append(f"plan for s = {self.steps:,} steps, target success t = {self.target:g}:")
        if self.k_min is None:
            lines.append("  k_min                    n/a")
        else:
            cautious = "n/a (interval reaches 0.5)" if self.k_min_cautious is None else str(self.k_min_cautious)
            lines.append(f"  k_min                    {self.k_min} (at the interval's lower end: {cautious}); "
                         f"P(task right) {self.p_full:.4f}")
            lines.append(f"  samples per step         {self.expected_samples_per_step:.3f} expected")
            lines.append(f"  projected samples        {self.projected_samples:,.0f}")
            lines.append(f"  projected tokens         {self.projected_output_tokens:,.0f} output, "
                         f"~{self.projected_prompt_tokens:,.0f} prompt (est.)")
            lines.append(f"  projected wall time      {_duration(self.projected_seconds)} at this run's throughput "
                         "(a single chain is slower: its steps run one after another)")
            if self.projected_cost is not None:
                lines.append(f"  projected cost           {self.projected_cost:,.2f} at {self.prices[0]:g} prompt / "  # type: ignore[index]
                             f"{self.prices[1]:g} output per million tokens")
        if self.agents is not None:
            lines.extend(self.agents.lines())
        if self.kinds is not None:
            lines.extend(self.kinds.lines())
        lines.extend(f"WARNING: {w}" for w in self.warnings)
        return "\n".join(lines)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    for limit, size, unit in ((120, 1, "s"), (7200, 60, "min"), (172800, 3600, "h")):
        if seconds < limit:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds / 86400:.1f} days"


def choose_k(p: float, steps: int, target: float, m: int = 1) -> tuple[int, str]:
    """The k for ``maker run --target-success t`` and a sentence saying why.

    >>> choose_k(0.9978, 2**20 - 1, 0.95)[1]
    'k = 3: k_min for p = 0.9978, s = 1,048,575, t = 0.95 (P(task right) = 0.9888)'
    """
    if isinstance(p, int | float) and not isinstance(p, bool) and p <= 0.5:
        raise ConfigError(_no_voting(p))
    k = k_min(p, steps, target, m)
    per = "" if m == 1 else f", m = {m}"
    return k, f"k = {k}: k_min for p = {p:.6g}, s = {steps:,}, t = {target:g}{per} (P(task right) = {p_full(p, k, steps, m):.4f})"


def _no_voting(p: float) -> str:
    return (f"p = {p:.4g} <= 0.5: voting cannot help (it amplifies the majority answer, here a wrong one); "
            "MAKER needs p > 0.5: use a stronger model, a smaller step or better red flags")


def _prices(prices: object) -> tuple[float, float] | None:
    """None, one price for every token, or (prompt, output) prices per million tokens."""
    if prices is None:
        return None
    pair = (prices, prices) if isinstance(prices, int | float) else tuple(prices)  # type: ignore[arg-type]
    if len(pair) != 2 or not all(isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x < math.inf for x in pair):
        raise ConfigError(f"prices must be a price per million tokens or a (prompt, output) pair of them, got {prices!r}")
    return float(pair[0]), float(pair[1])


def states_at(task: Task, indices: Sequence[int]) -> list[Any]:
    """The states before steps ``indices`` (sorted, repeats allowed) on the oracle's trajectory.

    Walks the task once (``OracleWalk``) and keeps only the wanted states, so a million-step task costs
    a few seconds and no memory beyond them.
    """
    wanted = sorted(indices)
    if not wanted:
        return []
    out: list[Any] = []
    walk = OracleWalk(task, limit=wanted[-1] + 1)
    try:
        for step, state, _ in walk:
            while len(out) < len(wanted) and wanted[len(out)] == step:
                out.append(state)
    except WalkError as exc:
        raise TaskError(f"{exc}, before reaching step {wanted[len(out)]}; is --steps larger than the task?") from exc
    if len(out) < len(wanted):
        raise TaskError(f"the task is already done at step {walk.steps}, before step {wanted[len(out)]}: --steps is "
                        "larger than the task's trajectory")
    return out


async def estimate_async(
    task: Task, backend: Backend, *, samples: int, per_state: int = 2, temperature: float | None = None,
    first_temperature: float | None = None, max_tokens: int | None = None, checks: bool | None = None,
    target: float = 0.95, concurrency: int = 64, seed: int = 0, prices: float | tuple[float, float] | None = None,
    states: Sequence[Any] | None = None, steps: int | None = None, agent: str | None = None,
    mix: AgentMix | str | None = None, agents: AgentCatalog | Mapping[str | None, str] | Sequence[str] | str | None = None,
    few_shot: int | None = None, stop: Sequence[str] | None = None, by_kind: bool = False, min_per_kind: int = 200,
    kind_target: float | None = None, k: int | None = None,
) -> EstimateReport:
    """Measure p on ``samples`` random steps, ``per_state`` samples each, and plan a run.

    ``temperature``, ``max_tokens`` (the red-flag limit) and ``checks`` default to what a run of this task
    on this backend would use (``maker.config.resolve_config``, with the agent catalog ``agents``). States come from the oracle's
    trajectory (or are drawn from ``states`` when given); ``steps`` (s) defaults to ``task.total_steps()``.
    ``first_temperature``, when given, is used for each state's first sample (the engine's greedy first
    vote). ``prices`` is one price per million tokens, or a (prompt, output) pair; prompt tokens are
    estimated. ``concurrency`` bounds the states in flight; each state is one ``sample_many`` call.
    ``agent`` or ``mix`` (``"A,B"``) replace the task's own agents (``maker.agents.chain_agents``); with a
    mix, each state's samples come from the mix's agents as in a mixed run's first
    round (``maker.mixing``), and the report compares the agents (``maker.estimate_agents``).
    ``few_shot`` and ``stop`` ask as a run with those settings would (``maker.prompting``).
    ``by_kind`` (a task with ``Task.kind``) measures each kind of step, with at least ``min_per_kind`` states of
    each, and compares one k for every step (``k``, default the run's) with a k per kind that reaches the same
    bound on P(task right), or ``kind_target`` when given (``maker.estimate_kinds``, ``maker.kinds``).
    """
    samples = _count(samples, "samples (the number of random steps)")
    per_state = _count(per_state, "per_state (at least two samples a state, to see collisions)", low=2)
    concurrency = _count(concurrency, "concurrency")
    check_backend(backend)
    chain = ChainInfo(None, "estimate", task, chain_agents(task, agent=agent, mix=mix))
    catalog = task_catalog(task, agents)
    config = resolve_config(task, agent=chain.agent, catalog=catalog, simulated=backend.simulated,
                            temperature=temperature, max_tokens=max_tokens, checks=checks, few_shot=few_shot,
                            stop=None if stop is None else tuple(stop))
    # Without first_temperature every sample is drawn at the run's temperature: no greedy first vote.
    config = config.model_copy(update={"first_temperature": config.temperature if first_temperature is None
                                       else first_temperature})
    temperature, max_tokens, checks = config.temperature, config.max_tokens, config.checks
    if not 0.0 < target < 1.0:
        raise ConfigError(f"target must be in (0, 1), got {target!r}")
    price_pair = _prices(prices)
    if not task.has_oracle:
        raise ConfigError(f"estimation needs the task's oracle (the correct answer of each step); {task.name!r} has none")
    s = steps if steps is not None else task.total_steps()
    if s is None:
        raise ConfigError(f"task {task.name!r} does not know how many steps it has: give the run's length with --steps")
    s = _count(s, "steps")

    ask = prompter(task, config.few_shot, config.seed)
    stops = stop_for(ask, config.stop)
    rng = random.Random(seed)

    def pick(n: int) -> list[int]:  # distinct where there are enough, otherwise some are drawn twice
        return rng.sample(range(n), samples) if samples <= n else [rng.randrange(n) for _ in range(samples)]

    counts: dict[str, int] = {}
    if by_kind:
        if not task.has_kinds:
            raise ConfigError(f"task {task.name!r} has one kind of step (no Task.kind): --by-kind needs several")
        if states is not None:
            raise ConfigError("by_kind draws its own states from the trajectory: give states or by_kind, not both")
        chosen, counts = kinded_states(task, s, samples, _count(min_per_kind, "min_per_kind", low=0), rng)
    elif states is not None:
        pool = list(states)
        if not pool:
            raise ConfigError("states is empty")
        chosen = [(i, pool[i]) for i in pick(len(pool))]
    else:
        indices = sorted(pick(s))
        chosen = list(zip(indices, states_at(task, indices), strict=True))
    distinct = len({i for i, _ in chosen})

    semaphore = asyncio.Semaphore(concurrency)
    tally = [0, 0]  # output tokens, prompt characters, over all samples
    judge = RedFlagJudge(task, max_tokens=max_tokens, checks=checks)
    watcher = backend.observer()

    async def one(index: int, state: Any, n: int) -> list[tuple[str | None, Any]]:
        """This state's samples in order: who drew each, and its verdict ((correct?, candidate) or a RedFlagReason)."""
        prompt = ask(state)
        if watcher is not None:
            watcher.step_started(chain, index, state, prompt)
        # The engine's own requests, as for a step's first round (+ n: a state drawn twice differs).
        first_seed, hook = step_seed(seed, index) + n, draft_hook(task, state)
        requests = chain.agents.round_requests(config, prompt, first_seed, per_state, drawn=0, rounds=0, draft=hook,
                                               stop=stops)
        async with semaphore:
            samples = await draw(backend, requests, step=index)
        drawers = [r.agent for r in requests for _ in range(r.n)]
        out: list[tuple[str | None, Any]] = []
        for drawer, sample in zip(drawers, samples, strict=True):
            tally[0] += sample.tokens
            tally[1] += len(prompt)
            verdict = judge.judge(state, sample, step=index)
            if isinstance(verdict, Flagged):
                out.append((drawer, verdict.reason))
            else:  # measurement, not voting: the oracle may judge here
                out.append((drawer, (not oracle_disagrees(task, state, verdict), verdict)))
        return out

    began = time.perf_counter()
    tagged = await asyncio.gather(*(one(i, st, n) for n, (i, st) in enumerate(chosen)))
    seconds = time.perf_counter() - began
    results = [[verdict for _, verdict in state] for state in tagged]
    report = _report(task, backend, results, distinct, s, target, per_state, seconds, tally, price_pair,
                     concurrency, temperature, first_temperature, max_tokens, judge.checks)
    report = replace(report, few_shot=config.few_shot, stop=stops)
    if by_kind:
        kinds = across_kinds([task.kind(state) for _, state in chosen], results, counts, k or config.k, kind_target)
        report = replace(report, kinds=kinds)
    if not chain.agents.mixed:
        return report
    return replace(report, agents=across_agents(tagged, chain.agents, s, target))  # type: ignore[arg-type]


def _report(task: Task, backend: Backend, results: list[list[Any]], distinct: int, s: int, target: float,
            per_state: int, seconds: float, tokens: list[int], prices: tuple[float, float] | None, concurrency: int,
            temperature: float, first_temperature: float | None, max_tokens: int, checks: bool) -> EstimateReport:
    """Turn per-state verdicts into the report's counts, tests and projections."""
    flags: Counter[str] = Counter()
    drawn = valid = correct = pairs = collisions = same = all_wrong = same_wrong = later_valid = 0
    for verdicts in results:
        drawn += len(verdicts)
        good = [v for v in verdicts if isinstance(v, tuple)]
        later_valid += sum(isinstance(v, tuple) for v in verdicts[1:])
        flags.update(v.value for v in verdicts if not isinstance(v, tuple))
        valid += len(good)
        correct += sum(ok for ok, _ in good)
        first, second = verdicts[0], verdicts[1]
        if isinstance(first, tuple) and isinstance(second, tuple):
            pairs += 1
            if not first[0] and not second[0]:
                collisions += 1
                same += first[1] == second[1]
        all_wrong += len(good) >= 2 and not any(ok for ok, _ in good)
        wrong = [candidate for ok, candidate in good if not ok]
        same_wrong += len(wrong) > len(set(wrong))
    if drawn == 0:
        raise ConfigError(f"backend {backend.name!r} returned no samples")
    v = valid / drawn
    out_tokens, prompt_tokens = tokens[0] / drawn, tokens[1] / drawn / _CHARS_PER_TOKEN
    warnings: list[str] = []
    p = low = high = expected = p_value = None
    confidence = 0.95
    kmin = k_low = full = per_step = proj = proj_out = proj_prompt = proj_sec = cost = None
    if valid == 0:
        warnings.append("no sample passed the red flags: p cannot be estimated (check the prompt, parser and max_tokens)")
    else:
        est = estimate_p(correct, valid, confidence)
        p, low, high = est.p, est.low, est.high
        if pairs:
            expected = expected_collisions(pairs, p)
            p_value = collision_test(collisions, pairs, p).p_value
            if p_value < COLLISION_ALPHA and collisions > expected:
                warnings.append(
                    f"collisions are well above the i.i.d. expectation ({collisions} observed, {expected:.2f} expected, "
                    f"p-value {p_value:.2g}): errors look correlated, so the formulas underestimate k and voting alone "
                    "may lock some errors in; look at the colliding states, add red flags or decorrelate the samples")
        if p <= 0.5:
            warnings.append(_no_voting(p))
        else:
            kmin = k_min(p, s, target)
            k_low = k_min(low, s, target) if low > 0.5 else None
            full = p_full(p, kmin, s)
            per_step = expected_samples(p, kmin, v)
            proj = s * per_step
            proj_out, proj_prompt, proj_sec = proj * out_tokens, proj * prompt_tokens, proj * seconds / drawn
            if prices is not None:
                cost = (proj_prompt * prices[0] + proj_out * prices[1]) / 1e6
    return EstimateReport(
        task=task.name, backend=backend.name, simulated=bool(backend.simulated), steps=s, target=target,
        states=len(results), distinct_states=distinct, per_state=per_state, samples=drawn, valid=valid,
        correct=correct, red_flags=dict(flags), p=p, p_low=low, p_high=high, confidence=confidence, v=v,
        mean_output_tokens=out_tokens, mean_prompt_tokens=prompt_tokens, pairs=pairs, collisions=collisions,
        collisions_same=same, expected_collisions=expected, collision_p_value=p_value, all_wrong_states=all_wrong,
        v_after_first=later_valid / (drawn - len(results)) if drawn > len(results) else None,
        same_wrong_states=same_wrong,
        k_min=kmin, k_min_cautious=k_low, p_full=full, expected_samples_per_step=per_step, projected_samples=proj,
        projected_output_tokens=proj_out, projected_prompt_tokens=proj_prompt, projected_seconds=proj_sec,
        projected_cost=cost, prices=prices, seconds=seconds, samples_per_second=drawn / max(seconds, 1e-9),
        concurrency=concurrency, temperature=temperature, first_temperature=first_temperature, max_tokens=max_tokens,
        checks=checks, warnings=tuple(warnings),
    )


def estimate(task: Task, backend: Backend, **settings: Any) -> EstimateReport:
    """Synchronous ``estimate_async``; the keyword settings are the same.

    >>> from maker import load_task, SimulatedBackend
    >>> task = load_task("hanoi", disks=6)
    >>> report = estimate(task, SimulatedBackend(task, error_rate=0.0), samples=50)
    >>> report.p, report.k_min, report.simulated
    (1.0, 1, True)
    """
    return asyncio.run(estimate_async(task, backend, **settings))
