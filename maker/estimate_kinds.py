"""Estimation per kind of step (``maker estimate --by-kind``): which states to sample, and what each kind measured.

``kinded_states`` walks the oracle's trajectory once: it counts the steps of each kind (``Task.kind``;
the S_c of ``maker.kinds``), keeps the uniformly drawn states an estimate samples, and tops up every
kind that drew fewer than ``min_per_kind`` of them, so that rare kinds are measured too. ``across_kinds``
turns each state's verdicts into a row per kind (p-hat with a Bonferroni-adjusted Wilson interval, red
flags, collisions) and two plans for the whole task at the same bound (``maker.kinds``): one k for every
step, and a k per kind that reaches what the one k guarantees (or a given target) for fewer samples.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from maker.errors import ConfigError, TaskError
from maker.estimate_agents import group_estimate
from maker.kinds import ASSUMPTIONS, KindMeasure, KindPlan, allocate, p_full_by_kind, samples_per_step
from maker.task import OracleWalk, Task, WalkError

__all__ = ["KindRow", "KindsReport", "across_kinds", "kinded_states"]


def kinded_states(task: Task, steps: int, samples: int, min_per_kind: int,
                  rng: random.Random) -> tuple[list[tuple[int, Any]], dict[str, int]]:
    """States to sample, as (step index, state): ``samples`` drawn uniformly from the first ``steps`` steps
    of the oracle's trajectory, plus, for each kind that drew fewer than ``min_per_kind``, others of that
    kind drawn uniformly from its steps; and the number of steps of each kind."""
    uniform = set(rng.sample(range(steps), samples) if samples <= steps else range(steps))
    chosen: list[tuple[int, Any]] = []
    counts: Counter[str] = Counter()
    reservoirs: dict[str, list[tuple[int, Any]]] = {}
    try:
        for index, state, _ in OracleWalk(task, limit=steps):
            kind = task.kind(state)
            if kind is None:
                raise ConfigError(f"task {task.name!r}: kind() returned None at step {index}; a task with kinds names "
                                  "every step's kind")
            counts[kind] += 1
            if index in uniform:
                chosen.append((index, state))
                continue
            # Algorithm R, one reservoir per kind, over the steps not drawn uniformly.
            pool, seen = reservoirs.setdefault(kind, []), counts[kind]
            if len(pool) < min_per_kind:
                pool.append((index, state))
            elif (j := rng.randrange(seen)) < min_per_kind:
                pool[j] = (index, state)
    except WalkError as exc:
        raise TaskError(f"{exc}, while walking the trajectory to find each step's kind") from exc
    drawn = Counter(task.kind(state) for _, state in chosen)
    for kind, pool in reservoirs.items():
        chosen.extend(pool[: max(0, min_per_kind - drawn[kind])])
    return sorted(chosen, key=lambda pair: pair[0]), dict(counts)


@dataclass(frozen=True, slots=True)
class KindRow:
    """What one kind of step measured."""

    kind: str
    steps: int  # of the whole task
    states: int
    samples: int
    valid: int
    correct: int
    p: float | None
    p_low: float | None
    p_high: float | None
    red_flags: dict[str, int]
    pairs: int
    collisions: int
    expected_collisions: float | None
    collision_p_value: float | None
    all_wrong_states: int


@dataclass(frozen=True, slots=True)
class KindsReport:
    """Per kind: the measurement; for the whole task: one k against a k per kind, at the same bound."""

    rows: tuple[KindRow, ...]
    confidence: float  # the joint confidence of every kind's interval
    k: int  # the one k compared against
    uniform: KindPlan | None  # every kind at k (None: some kind cannot be bounded)
    target: float | None  # the bound the per-kind plan reaches: given, else the uniform plan's
    plan: KindPlan | None  # k per kind (None: see problem)
    problem: str | None  # why a plan could not be made
    assumptions: str = ASSUMPTIONS

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rows": [asdict(row) for row in self.rows],
                "k_by_kind": None if self.plan is None else self.plan.k_by_kind}

    def lines(self) -> list[str]:
        out = [f"per kind of step (intervals: Wilson, {self.confidence:.0%} for all kinds together):"]
        out.append(f"  {'kind':<12} {'steps':>9} {'states':>7} {'samples':>8} {'p-hat':>9} {'low end':>9} "
                   f"{'red flags':>9} {'collisions':>10}  {'k':>3}")
        plan = {} if self.plan is None else self.plan.k_by_kind
        for row in self.rows:
            p = "n/a" if row.p is None else f"{row.p:.6f}"
            low = "n/a" if row.p_low is None else f"{row.p_low:.6f}"
            collided = f"{row.collisions}/{row.expected_collisions:.2f}" if row.expected_collisions is not None else "n/a"
            out.append(f"  {row.kind:<12} {row.steps:>9,} {row.states:>7,} {row.samples:>8,} {p:>9} {low:>9} "
                       f"{sum(row.red_flags.values()):>9,} {collided:>10}  {plan.get(row.kind, '-'):>3}")
        if self.uniform is not None:
            out.append(f"  k = {self.k} for every step:  P(task right) >= {self.uniform.p_full:.6f}, "
                       f"{self.uniform.samples_per_step:.4f} samples per step expected")
        if self.plan is not None:
            out.append(f"  k per kind:           P(task right) >= {self.plan.p_full:.6f} (target {self.target:.6f}), "
                       f"{self.plan.samples_per_step:.4f} samples per step expected")
            out.append(f"  run it with: --k-by-kind {self.plan.option()}")
        if self.problem:
            out.append(f"  no plan: {self.problem}")
        out.append(f"  assumptions: {self.assumptions}")
        return out


def across_kinds(kinds: Sequence[str], results: Sequence[Sequence[Any]], counts: dict[str, int], k: int,
                 target: float | None, confidence: float = 0.95) -> KindsReport:
    """Rows and plans from each state's kind and verdicts (``(correct, candidate)`` or a red-flag reason, in order)."""
    per_kind = 1.0 - (1.0 - confidence) / max(1, len(counts))  # Bonferroni: every interval holds at once
    grouped: dict[str, list[Sequence[Any]]] = {kind: [] for kind in counts}  # in the order the task first asks them
    for kind, verdicts in zip(kinds, results, strict=True):
        grouped[kind].append(verdicts)
    rows, measures = [], {}
    for kind, states in grouped.items():
        est = group_estimate(kind, [list(verdicts) for verdicts in states], per_kind)
        flags = Counter(v.value for verdicts in states for v in verdicts if not isinstance(v, tuple))
        all_wrong = sum(len(good) >= 2 and not any(ok for ok, _ in good)
                        for good in ([v for v in verdicts if isinstance(v, tuple)] for verdicts in states))
        if est.p is not None:
            measures[kind] = KindMeasure(counts[kind], est.p, est.p_low, est.v)  # type: ignore[arg-type]
        rows.append(KindRow(kind, counts[kind], len(states), est.samples, est.valid, est.correct, est.p, est.p_low,
                            est.p_high, dict(flags), est.pairs, est.collisions, est.expected_collisions,
                            est.collision_p_value, all_wrong))
    unmeasured = [row.kind for row in rows if row.p is None]
    uniform = plan = None
    problem = None
    if unmeasured:
        problem = f"no valid sample of kind {', '.join(unmeasured)}: sample more states of it (--min-per-kind)"
    else:
        try:
            if all(m.p_low > 0.5 for m in measures.values()):
                ks = dict.fromkeys(measures, k)
                uniform = KindPlan(ks, p_full_by_kind(measures, ks), samples_per_step(measures, ks))
            wanted = target if target is not None else None if uniform is None else uniform.p_full
            if wanted is None:
                raise ConfigError("some kind's interval reaches 0.5, so one k bounds nothing; give a target")
            target = wanted
            plan = allocate(measures, wanted)
        except ConfigError as exc:
            problem = str(exc)
    return KindsReport(tuple(rows), confidence, k, uniform, target, plan, problem)
