"""Estimation: p recovered within its interval, correlated errors caught, red flags by reason,
k_min and projections consistent with maker.scaling, and bad arguments refused clearly."""

import asyncio
import json

import pytest

from maker import Backend, ConfigError, Sample, ScriptedBackend, SimulatedBackend, load_task
from maker.errors import TaskError
from maker.estimate import choose_k, estimate, estimate_async, states_at
from maker.scaling import expected_samples, k_min
from tests.toy import Countdown


@pytest.fixture(scope="module")
def hanoi12():
    return load_task("hanoi", disks=12)


def test_recovers_p_within_its_interval_and_reports_no_correlation(hanoi12):
    report = estimate(hanoi12, SimulatedBackend(hanoi12, error_rate=0.02, seed=5), samples=3000)
    assert report.states == report.distinct_states == 3000 and report.samples == 6000
    assert report.p_low <= 0.98 <= report.p_high
    assert report.p_high - report.p_low < 0.01
    assert report.v == 1.0 and report.red_flags == {}
    assert report.pairs == 3000 and report.collisions <= 5  # about 1.2 expected
    assert report.collision_p_value > 0.01 and report.warning is None and report.warnings == ()
    assert report.steps == 4095
    assert report.k_min == k_min(report.p, 4095, 0.95)
    assert report.k_min_cautious == k_min(report.p_low, 4095, 0.95)
    assert report.expected_samples_per_step == pytest.approx(expected_samples(report.p, report.k_min, 1.0))
    assert report.projected_samples == pytest.approx(4095 * report.expected_samples_per_step)
    assert report.projected_seconds > 0 and report.projected_cost is None
    assert report.simulated and report.backend == "sim"
    assert report.to_table().startswith("SIMULATED")
    data = json.loads(json.dumps(report.to_json()))
    assert data["simulated"] is True and data["k_min"] == report.k_min and data["warning"] is None


def test_correlated_errors_show_as_collisions_and_warn(hanoi12):
    backend = SimulatedBackend(hanoi12, error_rate=0.02, hard_fraction=0.05, hard_error_rate=0.9, seed=5)
    report = estimate(hanoi12, backend, samples=3000)
    assert report.collisions > 5 * report.expected_collisions
    assert report.collisions_same > 0.9 * report.collisions  # the hard prompts' shared mistake
    assert report.all_wrong_states >= report.collisions  # two samples a state: the same states
    assert report.collision_p_value < 1e-6
    assert "correlated" in report.warning and "WARNING" in report.to_table()


def test_red_flags_are_counted_by_reason(hanoi12):
    backend = SimulatedBackend(hanoi12, error_rate=0.0, malformed_rate=0.1, too_long_rate=0.05, seed=2)
    report = estimate(hanoi12, backend, samples=1000, per_state=3)
    flags = report.red_flags
    assert set(flags) == {"malformed", "too_long"}  # rambling replies run past the red-flag limit
    assert report.samples == 3000 and report.valid == 3000 - sum(flags.values())
    assert flags["malformed"] == pytest.approx(300, rel=0.2) and flags["too_long"] == pytest.approx(150, rel=0.25)
    assert report.v == pytest.approx(0.85, abs=0.02) and report.p == 1.0
    assert report.mean_output_tokens > 0.05 * 60  # rambling replies count every token up to the generation cap


def test_a_long_reply_that_was_not_cut_off_is_too_long():
    task = Countdown(start=50)
    long_reply = " ".join(["9"] * 20)  # the scripted backend counts words as tokens
    backend = ScriptedBackend(reply_for=lambda r: long_reply if r.seed % 2 else str(_number_in(r.prompt) - 1))
    backend.sample = _no_cutoff(backend.sample)
    report = estimate(task, backend, samples=40, max_tokens=10)
    assert report.red_flags.get("too_long", 0) > 0 and set(report.red_flags) == {"too_long"}


def _number_in(prompt):
    """Countdown's state, read back from its prompt "What is N minus one?" as a model would."""
    return int(prompt.split()[2])


def _no_cutoff(sample):
    async def wrapped(request):
        return [Sample(s.text, s.tokens, "stop") for s in await sample(request)]
    return wrapped


def test_checks_turn_inconsistent_mistakes_into_invalid_red_flags(hanoi12):
    plain = estimate(hanoi12, SimulatedBackend(hanoi12, error_rate=0.2, seed=1), samples=500)
    checked = estimate(hanoi12, SimulatedBackend(hanoi12, error_rate=0.2, seed=1), samples=500, checks=True)
    assert "invalid" in checked.red_flags and "invalid" not in plain.red_flags
    assert checked.p > plain.p and checked.v < 1.0 and checked.checks


def test_p_at_most_half_says_voting_cannot_help(hanoi12):
    report = estimate(hanoi12, SimulatedBackend(hanoi12, error_rate=0.7, seed=1), samples=300)
    assert report.p < 0.5 and report.k_min is None and report.projected_samples is None
    assert "voting cannot help" in report.warning and "p > 0.5" in report.warning
    assert "k_min                    n/a" in report.to_table()


def test_choose_k_explains_itself():
    k, why = choose_k(0.9978, 2**20 - 1, 0.95)
    assert k == 3 == k_min(0.9978, 2**20 - 1, 0.95)
    assert why.startswith("k = 3: k_min for p = 0.9978, s = 1,048,575, t = 0.95")
    assert choose_k(1 - 0.3571, 2**20 - 1, 0.95)[0] == 29
    with pytest.raises(ConfigError, match="voting cannot help"):
        choose_k(0.5, 100, 0.95)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"samples": 0}, "samples"),
        ({"samples": 10, "per_state": 1}, "per_state"),
        ({"samples": 10, "target": 1.0}, "target"),
        ({"samples": 10, "concurrency": 0}, "concurrency"),
        ({"samples": 10, "prices": (1.0,)}, "prices"),
    ],
)
def test_bad_arguments_are_refused_clearly(settings, message):
    task = load_task("hanoi", disks=4)
    with pytest.raises(ConfigError, match=message):
        estimate(task, SimulatedBackend(task), **settings)


def test_steps_are_required_when_the_task_does_not_know_them():
    class Endless(Countdown):
        def total_steps(self):
            return None

    task = Endless(start=20)
    with pytest.raises(ConfigError, match="--steps"):
        estimate(task, SimulatedBackend(task), samples=5)
    report = estimate(task, SimulatedBackend(task, error_rate=0.0), samples=5, steps=20)
    assert report.steps == 20 and report.p == 1.0
    with pytest.raises(TaskError, match="--steps"):
        estimate(task, SimulatedBackend(task), samples=30, steps=30)


def test_states_at_keeps_only_the_wanted_states():
    task = load_task("hanoi", disks=6)
    walk, state = [], task.initial_state()
    while not task.is_done(state):
        walk.append(state)
        state = task.apply(state, task.oracle(state))
    assert states_at(task, [40, 0, 62, 40]) == [walk[0], walk[40], walk[40], walk[62]]


def test_given_states_prices_and_a_greedy_first_sample():
    task = load_task("hanoi", disks=8)
    states = states_at(task, [0, 1, 2])
    report = estimate(task, SimulatedBackend(task, error_rate=0.0), samples=5, states=states,
                      first_temperature=0.0, prices=(0.4, 1.6))
    assert report.states == 5 and report.distinct_states == 3  # more draws than states: repeats
    expected = (report.projected_prompt_tokens * 0.4 + report.projected_output_tokens * 1.6) / 1e6
    assert report.projected_cost == pytest.approx(expected) and "projected cost" in report.to_table()


def test_requests_are_concurrent_but_bounded():
    class Slow(Backend):
        name = "slow"

        def __init__(self):
            self.now = self.most = 0

        async def sample(self, request):
            self.now += 1
            self.most = max(self.most, self.now)
            await asyncio.sleep(0.001)
            self.now -= 1
            return [Sample(f"{_number_in(request.prompt) - 1}", 1)] * request.n

    backend = Slow()
    report = asyncio.run(estimate_async(Countdown(start=200), backend, samples=100, concurrency=8))
    assert backend.most == 8 and report.p == 1.0 and not report.simulated
    assert "SIMULATED" not in report.to_table()
    assert report.checks  # checks default as a run's: on for a real backend (the simulator: off, as the paper)
    assert not estimate(Countdown(start=9), SimulatedBackend(Countdown(start=9)), samples=5).checks
