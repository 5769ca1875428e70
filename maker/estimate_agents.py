"""Estimation across agents (``maker estimate --mix A,B``): how each agent does, and whether their errors coincide.

Voting loses when two valid votes of a step agree on the same wrong answer: then the wrong answer
can lead. With one agent, such pairs come from its errors being tied to states. With a mix, a
pair of votes may come from two agents, and what matters is whether *they* fail together.
``across_agents`` takes each state's verdicts with the agent that drew each sample and reports:

- per agent: p-hat (Wilson), the valid share, and within-agent collisions (the agent's first two
  valid samples of a state both wrong; how many wrong in the same way) against the i.i.d.
  expectation;
- per pair of agents: the first valid sample of each, both wrong (and the same wrong answer),
  against the expectation if the two failed independently;
- states on which every valid sample, whichever agent drew it, is wrong;
- a recommended cycle and k. The candidates are each agent alone and the mix as given. For a
  candidate, the first four samples of its cycle make six pairs of votes; the *lock-in rate* is the
  mean, over those pairs, of the measured same-answer collision rate of the two agents that draw
  them. The candidate with the lowest lock-in rate wins (ties: higher p); its k is ``k_min`` at
  its p (the cycle's share-weighted p), and its samples per step ``expected_samples``.

The oracle judged every verdict before this point (``maker.estimate``): this is measurement,
never voting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from maker.mixing import AgentMix
from maker.scaling import collision_test, estimate_p, expected_collisions, expected_samples, k_min

_PAIR_SAMPLES = 4  # a candidate's lock-in rate looks at the pairs among its cycle's first four samples

Verdict = Any  # (correct?, candidate) for a valid sample, else its RedFlagReason


@dataclass(frozen=True)
class AgentEstimate:
    agent: str
    samples: int
    valid: int
    correct: int
    p: float | None
    p_low: float | None
    p_high: float | None
    v: float
    pairs: int  # states with two valid samples of this agent
    collisions: int  # ... the first two both wrong
    collisions_same: int  # ... wrong in the same way
    expected_collisions: float | None
    collision_p_value: float | None


@dataclass(frozen=True)
class CrossEstimate:
    agents: tuple[str, str]
    pairs: int  # states with a valid sample of each
    collisions: int  # ... the first valid sample of each both wrong
    collisions_same: int  # ... wrong in the same way
    expected_collisions: float | None  # if the two failed independently
    collision_p_value: float | None


@dataclass(frozen=True)
class AgentsReport:
    agents: tuple[AgentEstimate, ...]
    crosses: tuple[CrossEstimate, ...]
    all_wrong_states: int  # states with >= 2 valid samples, every one wrong
    recommended: str | None  # the cycle, as --mix takes it
    recommended_k: int | None
    recommended_samples_per_step: float | None
    lock_in_rates: dict[str, float | None]  # candidate cycle -> its lock-in rate (None: not measurable)
    why: str

    def lines(self) -> list[str]:
        out = ["by agent:"]
        for a in self.agents:
            p = "n/a" if a.p is None else f"{a.p:.6f} [{a.p_low:.6f}, {a.p_high:.6f}]"
            expected = "" if a.expected_collisions is None else (
                f"; i.i.d. expectation {a.expected_collisions:.2f}, p-value {a.collision_p_value:.3g}")
            out.append(f"  {a.agent}: p-hat {p}, v {a.v:.4f} ({a.valid:,}/{a.samples:,}); collisions {a.collisions:,} "
                       f"of {a.pairs:,} pairs ({a.collisions_same:,} alike){expected}")
        for c in self.crosses:
            expected = "" if c.expected_collisions is None else (
                f"; independence expectation {c.expected_collisions:.2f}, p-value {c.collision_p_value:.3g}")
            out.append(f"  {c.agents[0]} x {c.agents[1]}: both wrong {c.collisions:,} of {c.pairs:,} states "
                       f"({c.collisions_same:,} alike){expected}")
        out.append(f"  all valid samples wrong  {self.all_wrong_states:,} states")
        rates = ", ".join(f"{cycle}: {'n/a' if r is None else f'{r:.2e}'}" for cycle, r in self.lock_in_rates.items())
        out.append(f"  lock-in rate per pair    {rates}")
        if self.recommended is None:
            out.append(f"  recommended mix          n/a ({self.why})")
        else:
            out.append(f"  recommended mix          --mix {self.recommended} --k {self.recommended_k} "
                       f"({self.recommended_samples_per_step:.3f} samples per step expected; {self.why})")
        return out


def across_agents(results: list[list[tuple[str, Verdict]]], mix: AgentMix, steps: int, target: float) -> AgentsReport:
    """The report for per-state verdicts tagged with their agents (``(agent, verdict)``, in draw order)."""
    agents = mix.agents
    per_agent = {a: group_estimate(a, [[v for who, v in state if who == a] for state in results]) for a in agents}
    crosses = [_cross(a, b, results, per_agent[a].p, per_agent[b].p) for a, b in combinations(agents, 2)]
    # By the two agents that draw a pair of valid votes: the share of such pairs wrong in the same way.
    same_rate = {(a, a): e.collisions_same / e.pairs if e.pairs else None for a, e in per_agent.items()}
    for c in crosses:
        same_rate[c.agents] = same_rate[c.agents[::-1]] = c.collisions_same / c.pairs if c.pairs else None
    valid = [[v for _, v in state if isinstance(v, tuple)] for state in results]
    all_wrong = sum(len(good) >= 2 and not any(ok for ok, _ in good) for good in valid)
    candidates = [AgentMix(cycle=(a,)) for a in agents]
    if len(agents) > 1:
        candidates.append(mix)
    rates = {str(c): _lock_in(c, same_rate) for c in candidates}
    ps = {str(c): _share(c, per_agent, "p") or 0.0 for c in candidates}
    scored = [(rates[str(c)], -ps[str(c)], i, c) for i, c in enumerate(candidates)
              if rates[str(c)] is not None and ps[str(c)] > 0.5]
    if not scored:
        why = ("no candidate has p > 0.5" if any(r is not None for r in rates.values()) else
               "each agent needs two valid samples of a state to measure its collisions: give per_state >= "
               f"{_per_state_for_pairs(mix)}")
        return AgentsReport(tuple(per_agent.values()), tuple(crosses), all_wrong, None, None, None, rates, why)
    rate, _, _, best = min(scored)
    p = ps[str(best)]
    v = _share(best, per_agent, "v")
    k = k_min(p, steps, target)  # type: ignore[arg-type]
    why = (f"lowest lock-in rate ({rate:.2e}), at p {p:.6f}" if len(scored) > 1 else "the only candidate with p > 0.5")
    return AgentsReport(tuple(per_agent.values()), tuple(crosses), all_wrong, str(best), k,
                        expected_samples(p, k, v), rates, why)  # type: ignore[arg-type]


def group_estimate(agent: str, states: list[list[Verdict]], confidence: float = 0.95) -> AgentEstimate:
    """p-hat (a Wilson interval at ``confidence``), v and first-pair collisions of one group of samples (an agent's,
    a kind of step's): ``states`` holds each state's verdicts, in draw order."""
    samples = sum(map(len, states))
    good = [[v for v in s if isinstance(v, tuple)] for s in states]
    valid = sum(map(len, good))
    correct = sum(ok for s in good for ok, _ in s)
    pairs = [s[:2] for s in good if len(s) >= 2]
    both = [(x, y) for x, y in pairs if not x[0] and not y[0]]
    same = sum(x[1] == y[1] for x, y in both)
    p = low = high = expected = p_value = None
    if valid:
        est = estimate_p(correct, valid, confidence)
        p, low, high = est.p, est.low, est.high
        if pairs:
            expected = expected_collisions(len(pairs), p)
            p_value = collision_test(len(both), len(pairs), p).p_value
    return AgentEstimate(agent, samples, valid, correct, p, low, high, valid / samples if samples else 0.0,
                         len(pairs), len(both), same, expected, p_value)


def _cross(a: str, b: str, results: list[list[tuple[str, Verdict]]], pa: float | None, pb: float | None) -> CrossEstimate:
    pairs = []  # of the states with a valid sample of each: the first valid sample of a and of b
    for state in results:
        first = [next((v for who, v in state if who == x and isinstance(v, tuple)), None) for x in (a, b)]
        if None not in first:
            pairs.append(first)
    both = [(x, y) for x, y in pairs if not x[0] and not y[0]]
    same = sum(x[1] == y[1] for x, y in both)
    expected = p_value = None
    if pairs and pa is not None and pb is not None:
        miss = (1 - pa) * (1 - pb)
        expected = len(pairs) * miss
        # The test takes one p: the one whose square miss equals the two agents' joint miss.
        p_value = collision_test(len(both), len(pairs), 1 - math.sqrt(miss)).p_value
    return CrossEstimate((a, b), len(pairs), len(both), same, expected, p_value)


def _per_state_for_pairs(mix: AgentMix) -> int:
    """The fewest samples of a state in which every agent of ``mix`` draws twice."""
    n, seen = 0, dict.fromkeys(mix.agents, 0)
    while min(seen.values()) < 2:
        seen[mix.agent_for(n)] += 1
        n += 1
    return n


def _lock_in(candidate: AgentMix, same_rate: dict[tuple[str, str], float | None]) -> float | None:
    drawers = [candidate.agent_for(i) for i in range(_PAIR_SAMPLES)]
    rates = [same_rate.get((x, y)) for x, y in combinations(drawers, 2)]
    return None if any(r is None for r in rates) else sum(rates) / len(rates)  # type: ignore[arg-type, misc]


def _share(candidate: AgentMix, per_agent: dict[str, AgentEstimate], field: str) -> float | None:
    """The agents' ``field``, each weighted by its share of the candidate's cycle; None if one is unknown."""
    values = [getattr(per_agent[a], field) for a in candidate.cycle]
    return None if None in values else sum(values) / len(values)
