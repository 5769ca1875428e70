"""k per role for ``maker solve``, each from its own p-hat (``maker solve --target-success``).

``oracle_steps`` walks the tree the family's oracle would choose for a problem (the decomposer's step at each
node it would ask, then the solver's or composer's chain, as ``maker.solving`` runs them, depth limit included)
and yields every step as (role, task, state). ``estimate_roles`` counts each role's steps over a problem set,
draws up to ``samples`` of each role's states uniformly, samples them through the run's backend and agents
exactly as ``maker estimate`` does (``maker.estimate.estimate_async``: the run's prompts and settings, the
greedy first vote), and judges each sample by the oracle: a measurement, never a vote. Each role's p-hat gets
a Wilson interval (Bonferroni-adjusted across the roles), and ``maker.kinds.allocate`` picks the k of each
role that reaches the target on P(every step of every problem right) for the fewest expected samples, the
paper's k_min math with roles as kinds, under the assumptions ``maker.kinds.ASSUMPTIONS`` states.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from maker.agents import chain_agents, task_catalog
from maker.backends.base import Backend
from maker.config import resolve_config
from maker.errors import ConfigError, TaskError
from maker.estimate import EstimateReport, estimate_async
from maker.estimate_kinds import KindRow
from maker.kinds import ASSUMPTIONS, KindMeasure, KindPlan, allocate
from maker.problems import ATOMIC, ROLES, DecomposerTask, Decomposing, ProblemFamily
from maker.scaling import estimate_p
from maker.solving import Question
from maker.task import OracleWalk, Task

__all__ = ["RolesEstimate", "estimate_roles", "oracle_steps"]


def oracle_steps(family: ProblemFamily, problem: Any, max_depth: int = 16,
                 decomposer: DecomposerTask | None = None) -> Iterator[tuple[str, Task, Any]]:
    """Every step of ``problem``'s oracle tree, in order, as (role, task, state); the tree's result is the
    generator's return value."""
    decomposer = decomposer or DecomposerTask(family)

    def node(problem: Any, depth: int) -> Iterator[tuple[str, Task, Any]]:
        split = ATOMIC
        if family.splittable(problem) and depth < max_depth:
            state = Decomposing(problem, depth)
            yield "decompose", decomposer, state
            split = decomposer.oracle(state)
        if split == ATOMIC:
            return (yield from chain("solve", family.solver(problem)))
        first, second = family.parts(problem, split)
        left = yield from node(first, depth + 1)
        right = yield from node(second, depth + 1)
        return (yield from chain("compose", family.composer(problem, split, left, right)))

    def chain(role: str, work: tuple[Task, Any]) -> Iterator[tuple[str, Task, Any]]:
        task, start = work
        walk = OracleWalk(task, start=start)
        for _, state, _ in walk:
            yield role, task, state
        return family.result(task, walk.state)

    return (yield from node(problem, 0))


@dataclass(frozen=True, slots=True)
class RolesEstimate:
    """Each role's row (a ``KindRow`` whose kind is the role) and the k per role for the target (``plan``; None with
    ``problem`` saying why)."""

    family: str
    backend: str
    simulated: bool
    problems: int
    rows: tuple[KindRow, ...]
    confidence: float
    target: float
    plan: KindPlan | None
    problem: str | None
    temperature: float
    first_temperature: float | None

    @property
    def k_by_role(self) -> dict[str, int]:
        return {} if self.plan is None else dict(self.plan.k_by_kind)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows"] = [asdict(row) for row in self.rows]
        out["assumptions"] = ASSUMPTIONS
        return out

    def lines(self) -> list[str]:
        label = " [SIMULATED]" if self.simulated else ""
        out = [f"k per role for {self.family}{label} ({self.backend}), {self.problems} problems' oracle trees; "
               f"T = {self.temperature}, first sample at T = {self.first_temperature}"]
        for row in self.rows:
            p = "no valid sample" if row.p is None else (f"p-hat {row.p:.5f} [{row.p_low:.5f}, {row.p_high:.5f}]")
            flags = ", ".join(f"{reason} {count}" for reason, count in row.red_flags.items()) or "none"
            out.append(f"  {row.kind:<9} {row.steps:>10,} steps  {row.states:>5} states x {row.samples // max(1, row.states)}"
                       f"  {p}  red flags: {flags}  pairs both wrong: {row.collisions} of {row.pairs}")
        if self.plan is not None:
            out.append(f"  k per role: {self.plan.option()}: P(every step right) >= {self.plan.p_full:.6f} "
                       f"(target {self.target}), {self.plan.samples_per_step:.4f} samples per step expected")
        else:
            out.append(f"  no plan: {self.problem}")
        out.append(f"  assumptions: {ASSUMPTIONS}")
        return out


async def estimate_roles(family: ProblemFamily, questions: Sequence[Question], backend: Backend, *,
                         target: float = 0.95, samples: int = 200, per_state: int = 2, max_depth: int = 16,
                         agents: Any = None, confidence: float = 0.95, seed: int = 0,
                         **settings: Any) -> RolesEstimate:
    """Measure each role's p on ``samples`` of its steps (``per_state`` samples each) and choose its k.

    ``settings`` are ``maker.estimate.estimate_async``'s sampling settings (temperature, first_temperature,
    max_tokens, checks, few_shot, stop), as the run will use them."""
    if not 0.0 < target < 1.0:
        raise ConfigError(f"target success must be in (0, 1), got {target!r}")
    if samples < 1:
        raise ConfigError(f"samples must be at least 1 state per role, got {samples}")
    rng, decomposer = random.Random(seed), DecomposerTask(family)
    if not decomposer.has_oracle:
        raise ConfigError(f"family {family.name!r} has no oracle_split: a k per role needs its oracle tree to count "
                          "and judge each role's steps")
    counts: Counter[str] = Counter()
    pools: dict[str, list[tuple[Task, Any]]] = {role: [] for role in ROLES}
    for question in questions:
        try:
            problem = family.parse(question.question)
        except TaskError as exc:
            raise TaskError(f"problem {question.id!r}: {exc}") from None
        for role, task, state in oracle_steps(family, problem, max_depth, decomposer):
            counts[role] += 1
            pool = pools[role]  # Algorithm R: a uniform draw of each role's steps over the whole set
            if len(pool) < samples:
                pool.append((task, state))
            elif (j := rng.randrange(counts[role])) < samples:
                pool[j] = (task, state)
    asked = [role for role in ROLES if counts[role]]
    per_role = 1.0 - (1.0 - confidence) / max(1, len(asked))  # Bonferroni: every interval holds at once
    reports = await asyncio.gather(*(_measure(pools[role], counts[role], backend, per_state, agents, seed, settings)
                                     for role in asked))
    rows, measures = [], {}
    for role, parts in zip(asked, reports, strict=True):
        valid, correct = sum(r.valid for r in parts), sum(r.correct for r in parts)
        drawn = sum(r.samples for r in parts)
        flags: Counter[str] = Counter()
        for report in parts:
            flags.update(report.red_flags)
        est = estimate_p(correct, valid, per_role) if valid else None
        expected = [r.expected_collisions for r in parts]
        rows.append(KindRow(role, counts[role], len(pools[role]), drawn, valid, correct, est and est.p, est and est.low,
                            est and est.high, dict(flags), sum(r.pairs for r in parts), sum(r.collisions for r in parts),
                            None if None in expected else sum(expected), None, sum(r.all_wrong_states for r in parts)))
        if est is not None:
            measures[role] = KindMeasure(counts[role], est.p, est.low, valid / drawn)
    plan, problem = None, None
    try:
        if len(measures) < len(asked):
            raise ConfigError("no valid sample of role " + ", ".join(r.kind for r in rows if r.p is None))
        plan = allocate(measures, target)
    except ConfigError as exc:
        problem = str(exc)
    first = reports[0][0] if reports and reports[0] else None
    return RolesEstimate(family.name, backend.name, backend.simulated, len(questions), tuple(rows), confidence, target,
                         plan, problem, first.temperature if first else 0.0, first.first_temperature if first else None)


async def _measure(pool: list[tuple[Task, Any]], steps: int, backend: Backend, per_state: int, agents: Any,
                   seed: int, settings: dict[str, Any]) -> list[EstimateReport]:
    """One role's drawn states, sampled as ``maker estimate`` samples them: one estimate per task instance (a
    family may give each node a task of its own), all at once so that a batching backend serves them together."""
    by_task: dict[int, tuple[Task, list[Any]]] = {}
    for task, state in pool:
        by_task.setdefault(id(task), (task, []))[1].append(state)

    def first_temperature(task: Task) -> float:  # the run's: its greedy first vote unless the user or task says else
        if settings.get("first_temperature") is not None:
            return settings["first_temperature"]
        return resolve_config(task, agent=chain_agents(task).first, catalog=task_catalog(task, agents),
                              simulated=backend.simulated, **settings).first_temperature

    return list(await asyncio.gather(*(
        estimate_async(task, backend, samples=len(states), states=states, per_state=per_state, steps=steps,
                       agents=agents, seed=seed, **{**settings, "first_temperature": first_temperature(task)})
        for task, states in by_task.values())))
