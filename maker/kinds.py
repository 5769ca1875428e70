"""k per kind of step: the paper's k_min math, per kind, with the guarantee it gives and what it rests on.

A task whose steps differ in difficulty (``Task.kind``) need not vote every step at the k its hardest
kind needs. Kind ``c`` has ``S_c`` steps in the whole task and a measured chance ``p_c`` that a valid
sample is right; the task is right if every step is, so (the paper's model, per kind)::

    P(task right) = prod_c p_sub(p_c, k_c) ^ S_c

``allocate`` picks the ``k_c`` that reach a target for the fewest expected samples. It starts from two
plans that reach it: a greedy one (from k = 1 everywhere, raise one at a time the k that buys the most
log-success per expected sample) and the smallest single k; from each it takes local moves (lower one
k, or lower one and raise another) while they keep the target and cost less, and keeps the cheaper.

The guarantee is stated at each kind's *low* end of its confidence interval (``KindMeasure.p_low``),
so a kind measured on few samples is voted harder. The assumptions are those of the paper, per kind,
and every report states them (``ASSUMPTIONS``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from maker.errors import ConfigError
from maker.scaling import _log_p_sub, expected_samples

__all__ = ["ASSUMPTIONS", "KindMeasure", "KindPlan", "allocate", "p_full_by_kind", "parse_k_by_kind", "samples_per_step"]

K_LIMIT = 64  # no kind is voted at a larger k: past it the measurement, not k, is what needs fixing

ASSUMPTIONS = ("each kind's valid samples are right independently, with chance at least the low end of its interval "
               "(the intervals are Wilson intervals, Bonferroni-adjusted so that all hold together at the stated "
               "confidence); a step's wrong votes behave as one wrong alternative (the paper's worst case); the kinds' "
               "step counts are the task's own, from the oracle's trajectory")


@dataclass(frozen=True, slots=True)
class KindMeasure:
    """What an estimate measured for one kind of step, and how many steps of it the task has."""

    steps: int  # S_c: steps of this kind in the whole task
    p: float  # point estimate of P(a valid sample is right): prices the samples
    p_low: float  # the low end of its interval: what the guarantee rests on
    v: float = 1.0  # share of samples that pass the red flags


@dataclass(frozen=True, slots=True)
class KindPlan:
    """A k for each kind, the guarantee it gives and the expected samples it costs."""

    k_by_kind: dict[str, int]
    p_full: float  # P(task right) >= this, under ASSUMPTIONS
    samples_per_step: float  # expected, at each kind's point estimate

    def option(self) -> str:
        """The plan as ``maker run --k-by-kind``'s value."""
        return ",".join(f"{kind}={k}" for kind, k in self.k_by_kind.items())


def _log_success(measure: KindMeasure, k: int) -> float:
    return measure.steps * _log_p_sub(measure.p_low, k)


def p_full_by_kind(measures: Mapping[str, KindMeasure], k_by_kind: Mapping[str, int]) -> float:
    """The lower bound on P(task right) with kind c voted at ``k_by_kind[c]``.

    >>> kinds = {"easy": KindMeasure(1000, 0.999, 0.999), "hard": KindMeasure(10, 0.9, 0.9)}
    >>> round(p_full_by_kind(kinds, {"easy": 2, "hard": 3}), 4)
    0.9854
    """
    return math.exp(sum(_log_success(m, k_by_kind[kind]) for kind, m in measures.items()))


def samples_per_step(measures: Mapping[str, KindMeasure], k_by_kind: Mapping[str, int]) -> float:
    """Expected samples per step of the whole task, each kind at its point estimate."""
    total = sum(m.steps for m in measures.values())
    return sum(m.steps * expected_samples(m.p, k_by_kind[kind], m.v) for kind, m in measures.items()) / total


def allocate(measures: Mapping[str, KindMeasure], target: float) -> KindPlan:
    """The k of each kind that reaches ``target`` (a lower bound on P(task right)) for the fewest expected samples.

    >>> kinds = {"easy": KindMeasure(1_000_000, 1.0, 0.99999), "hard": KindMeasure(500, 0.99, 0.97)}
    >>> plan = allocate(kinds, 0.99)
    >>> plan.k_by_kind, round(plan.p_full, 4), round(plan.samples_per_step, 3)
    ({'easy': 2, 'hard': 4}, 0.9994, 2.001)
    """
    if not 0.0 < target < 1.0:
        raise ConfigError(f"target must be in (0, 1), got {target!r}")
    if not measures:
        raise ConfigError("no kind of step was measured")
    for kind, m in measures.items():
        if m.p_low <= 0.5:
            raise ConfigError(f"kind {kind!r}: the low end of p's interval is {m.p_low:.4g} <= 0.5, so no k can be "
                              "guaranteed for it; measure it on more samples, or improve the model on this kind of step")
    log_target = math.log(target) - 1e-12  # a plan's own p_full, given back as the target, reaches it

    def cost(ks: Mapping[str, int]) -> float:
        return sum(m.steps * expected_samples(m.p, ks[kind], m.v) for kind, m in measures.items())

    def log_success(ks: Mapping[str, int]) -> float:
        return sum(_log_success(m, ks[kind]) for kind, m in measures.items())

    uniform = next((k for k in range(1, K_LIMIT + 1) if log_success(dict.fromkeys(measures, k)) >= log_target), None)
    if uniform is None:
        raise ConfigError(f"no k up to {K_LIMIT} reaches P(task right) >= {target:g}: the measured kinds cannot carry "
                          "this guarantee (measure on more samples, or lower the target)")
    best = min((_improved(measures, start, log_target, cost, log_success)
                for start in (_greedy(measures, log_target), dict.fromkeys(measures, uniform))), key=cost)
    return KindPlan(best, math.exp(log_success(best)), samples_per_step(measures, best))


def _greedy(measures: Mapping[str, KindMeasure], log_target: float) -> dict[str, int]:
    """From k = 1 everywhere, raise the k that buys the most log-success per expected sample, until the target holds."""
    ks = dict.fromkeys(measures, 1)
    log_now = sum(_log_success(m, 1) for m in measures.values())
    while log_now < log_target:
        best, best_ratio = None, -1.0
        for kind, m in measures.items():
            if ks[kind] >= K_LIMIT:
                continue
            gain = _log_success(m, ks[kind] + 1) - _log_success(m, ks[kind])
            extra = m.steps * (expected_samples(m.p, ks[kind] + 1, m.v) - expected_samples(m.p, ks[kind], m.v))
            if (ratio := gain / max(extra, 1e-12)) > best_ratio:
                best, best_ratio = kind, ratio
        if best is None:
            break
        log_now += _log_success(measures[best], ks[best] + 1) - _log_success(measures[best], ks[best])
        ks[best] += 1
    return ks


def _improved(measures: Mapping[str, KindMeasure], ks: dict[str, int], log_target: float,
              cost: Callable[[Mapping[str, int]], float], log_success: Callable[[Mapping[str, int]], float]) -> dict[str, int]:
    """``ks`` after local moves that keep the target and cost less: lower one k; or lower one and raise another."""
    ks = dict(ks)
    while True:
        moves = [{**ks, a: ks[a] - 1} for a in ks if ks[a] > 1]
        moves += [{**ks, a: ks[a] - 1, b: ks[b] + 1} for a in ks for b in ks if a != b and ks[a] > 1 and ks[b] < K_LIMIT]
        better = [m for m in moves if log_success(m) >= log_target and cost(m) < cost(ks) - 1e-9]
        if not better:
            return ks
        ks = min(better, key=cost)


def parse_k_by_kind(text: str, option: str = "--k-by-kind", what: str = "KIND") -> dict[str, int]:
    """``"disk1=2,disks13+=4"`` as ``{"disk1": 2, "disks13+": 4}``, refusing anything else by name (errors name
    ``option``: the setting that gave the text).

    >>> parse_k_by_kind("disk1=2, disk2=3")
    {'disk1': 2, 'disk2': 3}
    """
    out: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        kind, sep, value = part.partition("=")
        kind = kind.strip()
        if not sep or not kind:
            raise ConfigError(f"{option} wants {what}=K pairs separated by commas, got {part!r} in {text!r}")
        try:
            k = int(value)
        except ValueError:
            raise ConfigError(f"{option}: k of {kind!r} must be a whole number >= 1, got {value.strip()!r}") from None
        if k < 1:
            raise ConfigError(f"{option}: k of {kind!r} must be >= 1, got {k}")
        if kind in out:
            raise ConfigError(f"{option} names {kind!r} twice")
        out[kind] = k
    return out
