"""The scaling math of MAKER: how large k must be, what a run costs, and how to check both.

Notation: ``p`` is the chance that one valid (red-flag-free) sample of one agent call is right,
``k`` the voting margin, ``s`` the number of steps, ``m`` the steps per agent call (MAKER: 1),
``t`` the target success of the whole task, ``v`` the share of samples that pass the red flags.
For ``m > 1`` pass as ``p`` the success of one call doing ``m`` steps (``p_step ** m`` if step
errors are independent); this is where the cost that is exponential in ``m`` comes from.

Worst case, one wrong alternative: a first-to-ahead-by-k race is a gambler's ruin walk from 0
with barriers at +k and -k, stepping +1 with probability p. With ``r = (1-p)/p``::

    p_sub  = 1 / (1 + r^k)                                   P(the step is decided right)
    p_full = p_sub^(s/m)                                     P(the whole task is right)
    k_min  = ceil( ln(t^(-m/s) - 1) / ln r ),  at least 1     smallest k with p_full >= t
    E[N]   = (2 k p_sub - k) / (2p - 1) = k tanh(k a) / tanh(a),  a = artanh(2p - 1)
           ~ k / (2p - 1) for large k;  exactly k^2 at p = 1/2
    E[samples per step] = E[N] / v                           (Wald: each sample is a vote w.p. v)

``E[N]`` is the exact expected duration of the walk, so MAKER.md's expression is exact for two
candidates, not an approximation; the tanh form is the same number without the 0/0 at p = 1/2.
``k_min`` grows as ``(ln s - ln(-ln t)) / ln(p/(1-p))``, so the expected cost of a run,
``s E[N] / v`` samples, is Theta(s ln s). Numerics: ``t^(-m/s) - 1`` is computed as
``expm1(-(m/s) ln t)`` and ``ln p_sub`` as ``-log1p(r^k)``, so s up to 1e15 and beyond is fine.

Checks: ``monte_carlo`` runs the real ``VoteRace`` against these formulas; ``estimate_p`` turns a
count of correct single steps into p with a Wilson interval; ``collision_test`` asks whether the
first two votes of a step are both wrong more often than independence allows.

>>> k_min(1 - 0.0022, 2**20 - 1, 0.95)
3
>>> round(p_full(1 - 0.0022, 3, 2**20 - 1), 4)
0.9888
"""

from __future__ import annotations

import math
import random
import sys
from dataclasses import dataclass
from statistics import NormalDist, fmean, stdev
from typing import NamedTuple

from maker.errors import ConfigError
from maker.voting import Rule, VoteRace

__all__ = [
    "BudgetFit", "CollisionTest", "MonteCarlo", "PEstimate", "Projection", "collision_test", "estimate_p",
    "expected_collisions", "expected_cost", "expected_samples", "expected_votes", "first_to_k_expected_votes",
    "first_to_k_p_sub", "k_for_budget", "k_min", "monte_carlo", "p_full", "p_sub", "simulate_race",
]


# --- validation: ConfigError is a ValueError whose message names the argument ----------------


def _real(value: object, name: str, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{name} must be a real number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be {what}, got {value!r}")
    return float(value)


def _probability(value: object, name: str = "p") -> float:
    return _real(value, name, "a probability in [0, 1]", 0.0, 1.0)


def _non_negative(value: object, name: str) -> float:
    return _real(value, name, "a finite number >= 0", 0.0, sys.float_info.max)


def _above_half(value: object, name: str = "p") -> float:
    x = _probability(value, name)
    if x <= 0.5:
        raise ConfigError(f"{name} must be > 0.5: voting only amplifies a right majority, got {value!r}")
    return x


def _count(value: object, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _share(value: object, name: str = "v") -> float:
    x = _probability(value, name)
    if x == 0.0:
        raise ConfigError(f"{name} must be in (0, 1]: no sample would ever pass, got {value!r}")
    return x


# --- one step and the whole task ---------------------------------------------------------------


def _log_p_sub(p: float, k: int) -> float:
    if p == 0.0:
        return -math.inf
    if p >= 0.5:
        return -math.log1p(((1.0 - p) / p) ** k)
    x = (p / (1.0 - p)) ** k  # the mirror image, so that r^k cannot overflow
    return math.log(x) - math.log1p(x) if x > 0.0 else -math.inf


def p_sub(p: float, k: int) -> float:
    """P(a step is decided right) under first-to-ahead-by-k, against one wrong alternative.

    Below p = 1/2 voting amplifies the wrong answer: ``p_sub(p, k) == 1 - p_sub(1 - p, k)``.

    >>> round(p_sub(0.7, 3), 4)
    0.927
    >>> p_sub(0.5, 10), p_sub(1, 1)
    (0.5, 1.0)
    """
    p, k = _probability(p), _count(k, "k")
    return math.exp(_log_p_sub(p, k))


def p_full(p: float, k: int, steps: int, m: int = 1) -> float:
    """P(every one of ``steps / m`` agent calls is decided right): ``p_sub(p, k) ** (steps / m)``.

    >>> round(p_full(1 - 0.0022, 3, 2**20 - 1), 4)
    0.9888
    """
    p, k = _probability(p), _count(k, "k")
    steps, m = _count(steps, "steps"), _count(m, "m")
    return math.exp(steps / m * _log_p_sub(p, k))


def k_min(p: float, steps: int, target: float, m: int = 1) -> int:
    """The smallest k (at least 1) whose ``p_full(p, k, steps, m)`` reaches ``target``.

    >>> k_min(1 - 0.0022, 2**20 - 1, 0.95), k_min(1 - 0.3571, 2**20 - 1, 0.95)
    (3, 29)
    >>> k_min(0.99, 10**15, 0.95)  # still exact where t ** (-1 / s) == 1.0 in floating point
    9
    """
    p, steps, m = _above_half(p), _count(steps, "steps"), _count(m, "m")
    target = _probability(target, "target")
    if target == 0.0:
        raise ConfigError("target must be in (0, 1), got 0: any k reaches it")
    if p == 1.0:
        return 1
    if target == 1.0:
        raise ConfigError("target must be in (0, 1): a success of exactly 1 needs p = 1")
    gap = math.expm1(-m / steps * math.log(target))  # t^(-m/s) - 1, without cancellation
    k = max(1, math.ceil(math.log(gap) / math.log((1.0 - p) / p)))
    # The closed form can land one off an integer through rounding; settle it on p_full itself.
    while k > 1 and p_full(p, k - 1, steps, m) >= target:
        k -= 1
    while p_full(p, k, steps, m) < target:
        k += 1
    return k


# --- cost --------------------------------------------------------------------------------------


def expected_votes(p: float, k: int) -> float:
    """Exact expected valid votes of a two-candidate ahead-by-k race (E[N], tanh form of the module docstring).

    >>> round(expected_votes(0.7, 3), 4), expected_votes(0.5, 3), expected_votes(1, 3)
    (6.4054, 9.0, 3.0)
    """
    p, k = _probability(p), _count(k, "k")
    if p in (0.0, 1.0):
        return float(k)
    if p == 0.5:
        return float(k * k)
    return k * math.tanh(k * math.atanh(2.0 * p - 1.0)) / (2.0 * p - 1.0)


def expected_samples(p: float, k: int, v: float = 1.0) -> float:
    """Expected samples drawn for one step when only a share ``v`` passes the red flags.

    >>> round(expected_samples(0.7, 3, 0.8), 2)
    8.01
    """
    return expected_votes(p, k) / _share(v)


@dataclass(frozen=True, slots=True)
class Projection:
    """Expected totals of a whole run; a field is None where its inputs were not given.

    >>> run = expected_cost(0.9978, 3, 2**20 - 1, tokens_per_sample=1000, price_per_million_tokens=1.0)
    >>> round(run.samples), round(run.cost), run.seconds
    (3159627, 3160, None)
    """

    samples: float  # samples drawn, red-flagged ones included
    p_full: float  # P(the whole task comes out right) at this k
    tokens: float | None = None
    cost: float | None = None  # in the currency of price_per_million_tokens
    seconds: float | None = None


def expected_cost(
    p: float, k: int, steps: int, v: float = 1.0, *, m: int = 1, tokens_per_sample: float | None = None,
    price_per_million_tokens: float | None = None, seconds_per_sample: float | None = None,
) -> Projection:
    """Project a run of ``steps`` steps at margin ``k``: ``steps / m * expected_samples`` samples.

    ``tokens_per_sample`` counts prompt and reply tokens of one sample (or one blended figure);
    ``seconds_per_sample`` is the wall time one sample adds to the run: a call's latency when
    samples are drawn one at a time, latency / n with n calls in flight.

    >>> round(expected_cost(0.7, 3, 100, seconds_per_sample=0.5).seconds, 1)
    320.3
    """
    k, steps, m = _count(k, "k"), _count(steps, "steps"), _count(m, "m")
    samples = steps / m * expected_samples(p, k, v)
    tokens = cost = seconds = None
    if tokens_per_sample is not None:
        tokens = samples * _non_negative(tokens_per_sample, "tokens_per_sample")
        if price_per_million_tokens is not None:
            cost = tokens / 1e6 * _non_negative(price_per_million_tokens, "price_per_million_tokens")
    elif price_per_million_tokens is not None:
        raise ConfigError("tokens_per_sample must be given with price_per_million_tokens to project a cost")
    if seconds_per_sample is not None:
        seconds = samples * _non_negative(seconds_per_sample, "seconds_per_sample")
    return Projection(samples, p_full(p, k, steps, m), tokens, cost, seconds)


class BudgetFit(NamedTuple):
    k: int
    p_full: float


def k_for_budget(p: float, steps: int, v: float, max_samples: float, m: int = 1) -> BudgetFit:
    """The largest k whose expected samples over the whole run fit ``max_samples``, and its p_full.

    >>> fit = k_for_budget(0.9978, 2**20 - 1, 0.95, 5_000_000)
    >>> fit.k, round(fit.p_full, 6)
    (4, 0.999975)
    """
    p, steps, m, v = _above_half(p), _count(steps, "steps"), _count(m, "m"), _share(v)
    budget = _non_negative(max_samples, "max_samples")
    calls = steps / m

    def need(k: int) -> float:
        return calls * expected_samples(p, k, v)

    if need(1) > budget:
        raise ConfigError(f"max_samples {max_samples!r} is below the {need(1):.6g} expected even at k = 1")
    # E[N] >= k, so no k above budget * v / calls can fit; E[N] rises with k, so bisect.
    low, high = 1, max(1, math.floor(budget * v / calls))
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if need(mid) <= budget else (low, mid - 1)
    return BudgetFit(low, p_full(p, low, steps, m))


# --- the weaker first-to-k rule, for comparison -------------------------------------------------


def _first_to_k_terms(p: float, k: int) -> list[tuple[int, float, float]]:
    # The race ends at vote k + j when one side gets its k-th vote while the other has j < k.
    q = 1.0 - p
    return [(k + j, math.comb(k - 1 + j, j) * p**k * q**j, math.comb(k - 1 + j, j) * q**k * p**j) for j in range(k)]


def first_to_k_p_sub(p: float, k: int) -> float:
    """P(a step is decided right) under first-to-k, against one wrong alternative.

    >>> round(first_to_k_p_sub(0.7, 3), 4)
    0.8369
    """
    p, k = _probability(p), _count(k, "k")
    return math.fsum(right for _, right, _ in _first_to_k_terms(p, k))


def first_to_k_expected_votes(p: float, k: int) -> float:
    """Expected valid votes of a two-candidate first-to-k race (between k and 2k - 1).

    >>> round(first_to_k_expected_votes(0.7, 3), 4)
    3.8946
    """
    p, k = _probability(p), _count(k, "k")
    return math.fsum(n * (right + wrong) for n, right, wrong in _first_to_k_terms(p, k))


# --- checking the math against the real voting code -------------------------------------------


def simulate_race(p: float, k: int, rng: random.Random, rule: Rule = "ahead-by-k") -> tuple[bool, int]:
    """Run one ``VoteRace`` between "right" (probability p) and "wrong"; return (right won, votes).

    >>> simulate_race(1.0, 3, random.Random(0))
    (True, 3)
    """
    p = _probability(p)
    race = VoteRace(_count(k, "k"), rule)
    winner = None
    while winner is None:
        winner = race.add("right" if rng.random() < p else "wrong")
    return winner == "right", race.votes


class MonteCarlo(NamedTuple):
    p_correct: float
    p_correct_se: float  # standard error of p_correct
    mean_votes: float
    mean_votes_se: float  # standard error of mean_votes


def monte_carlo(p: float, k: int, trials: int, seed: int = 0, rule: Rule = "ahead-by-k") -> MonteCarlo:
    """Estimate P(correct) and E[votes] of a race from ``trials`` seeded simulated races.

    >>> est = monte_carlo(0.7, 3, 4000, seed=1)
    >>> abs(est.p_correct - p_sub(0.7, 3)) < 3 * est.p_correct_se
    True
    """
    trials = _count(trials, "trials", low=2)
    rng = random.Random(seed)
    races = [simulate_race(p, k, rng, rule) for _ in range(trials)]
    share = sum(right for right, _ in races) / trials
    votes = [n for _, n in races]
    return MonteCarlo(share, math.sqrt(share * (1 - share) / trials), fmean(votes), stdev(votes) / math.sqrt(trials))


# --- estimating p and checking independence ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class PEstimate:
    """p-hat = correct / total with a Wilson score interval [low, high].

    >>> est = estimate_p(9978, 10000)
    >>> est.p, round(est.low, 4), round(est.high, 4)
    (0.9978, 0.9967, 0.9985)
    """

    p: float
    low: float
    high: float
    correct: int
    total: int
    confidence: float


def estimate_p(correct: int, total: int, confidence: float = 0.95) -> PEstimate:
    """Estimate a per-sample success rate from ``correct`` right answers in ``total`` tries.

    The Wilson interval stays inside [0, 1] and is honest at 0 or ``total`` successes, where the
    normal interval collapses to a point: feed ``low`` to ``k_min`` for a cautious margin.

    >>> round(estimate_p(100, 100).low, 4)
    0.963
    """
    total = _count(total, "total")
    correct = _count(correct, "correct", low=0)
    if correct > total:
        raise ConfigError(f"correct must be <= total ({total}), got {correct}")
    confidence = _probability(confidence, "confidence")
    if confidence in (0.0, 1.0):
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    share, n = correct / total, total
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return PEstimate(share, max(0.0, centre - half), min(1.0, centre + half), correct, total, confidence)


def expected_collisions(states: int, p: float) -> float:
    """Expected steps, out of ``states``, whose first two votes are both wrong if errors are i.i.d.

    >>> round(expected_collisions(10000, 0.99), 6)
    1.0
    """
    return _count(states, "states", low=0) * (1.0 - _probability(p)) ** 2


@dataclass(frozen=True, slots=True)
class CollisionTest:
    """Observed collisions against the i.i.d. expectation; a small ``p_value`` means correlated errors.

    >>> result = collision_test(5, 10000, 0.99)
    >>> round(result.expected, 6), round(result.p_value, 4)
    (1.0, 0.0037)
    """

    observed: int
    states: int
    expected: float
    p_value: float  # P(at least `observed` collisions | errors independent with rate 1 - p)


def collision_test(observed: int, states: int, p: float) -> CollisionTest:
    """One-sided exact test: ``p_value`` is the Binomial(states, (1 - p)^2) upper tail at ``observed``.

    ``p`` should come from the same samples (all 2 * states of them); the test treats it as known.
    """
    states = _count(states, "states")
    observed = _count(observed, "observed", low=0)
    if observed > states:
        raise ConfigError(f"observed must be <= states ({states}), got {observed}")
    rate = (1.0 - _probability(p)) ** 2
    return CollisionTest(observed, states, states * rate, _binomial_upper_tail(observed, states, rate))


def _binomial_upper_tail(x: int, n: int, q: float) -> float:
    """P(X >= x) for X ~ Binomial(n, q), summed in log space from the side away from the mode."""
    if x == 0 or q == 1.0:
        return 1.0
    if q == 0.0:
        return 0.0

    def pmf(i: int) -> float:
        log = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
        return math.exp(log + i * math.log(q) + (n - i) * math.log1p(-q))

    # Terms shrink away from the mode, so stop once they no longer change the sum.
    complement = x <= n * q
    span = range(x - 1, -1, -1) if complement else range(x, n + 1)
    total = 0.0
    for i in span:
        term = pmf(i)
        total += term
        if term <= 1e-17 * total:
            break
    return max(0.0, 1.0 - total) if complement else min(1.0, total)
