"""Statistics come from observing the engine's events; records of separate runs merge."""

import maker
from maker import SimulatedBackend, load_task
from maker.events import Observer


def test_records_of_two_runs_merge_into_their_sum():
    task = load_task("hanoi", disks=5)
    first = maker.run(task, SimulatedBackend(task, error_rate=0.2, malformed_rate=0.1, seed=1), k=2).statistics
    second = maker.run(task, SimulatedBackend(task, error_rate=0.2, malformed_rate=0.1, seed=2), k=3).statistics
    both = first.merge(second)
    assert both.steps == 62 and both.samples == first.samples + second.samples and both.tokens == first.tokens + second.tokens
    assert both.red_flags["malformed"] == first.red_flags["malformed"] + second.red_flags["malformed"]
    assert sum(both.votes_per_step.values()) == 62 and both.max_votes == max(first.max_votes, second.max_votes)
    assert both.errors == first.errors + second.errors and both.seconds == max(first.seconds, second.seconds)


def test_a_users_observer_hears_every_event_in_order():
    class Log(Observer):
        def __init__(self):
            self.events = []

        def chain_started(self, chain, state):
            self.events.append("chain")

        def step_started(self, chain, step, state, prompt):
            self.events.append(f"start {step}")

        def step_decided(self, chain, step, state, decision):
            self.events.append(f"decided {step}")

        def chain_finished(self, chain, state):
            self.events.append("end")

    task, log = load_task("hanoi", disks=2), Log()
    maker.run(task, SimulatedBackend(task, error_rate=0.0), k=1, observers=[log])
    assert log.events == ["chain", "start 0", "decided 0", "start 1", "decided 1", "start 2", "decided 2", "end"]



def test_an_oracle_that_breaks_the_check_is_reported_once_not_counted_as_model_errors(caplog):
    from tests.toy import Countdown

    class WrongOracle(Countdown):
        def oracle(self, state):
            return state + 1 if state % 2 == 0 else state - 1  # at even states, an answer its own check refuses

    correct = maker.ScriptedBackend(reply_for=lambda request: str(int(request.prompt.split()[2]) - 1))
    with caplog.at_level("WARNING", logger="maker"):
        result = maker.run(WrongOracle(start=6), correct, k=1)
    assert result.solved and result.errors == 0 and result.statistics.oracle_faults == 3
    warnings = [m for m in caplog.messages if "oracle" in m]
    assert len(warnings) == 1 and "at step 0 the oracle's answer 7 breaks the check: did not count down" in warnings[0]


def test_running_tallies_summed_then_frozen_equal_their_records_merged():
    """A snapshot sums the running chains' tallies and freezes once (cheap at hundreds of chains); the numbers are
    those of merging each chain's own record."""
    import random

    from maker.statistics import _Tally

    rng, tallies = random.Random(5), []
    for _ in range(30):
        tally = _Tally()
        tally.steps, tally.samples, tally.valid_votes = rng.randrange(50), rng.randrange(200), rng.randrange(150)
        tally.tokens, tally.errors, tally.violations, tally.oracle_faults = (rng.randrange(9) for _ in range(4))
        tally.max_votes, tally.max_votes_step = rng.randrange(12), rng.randrange(1000)
        tally.red_flags.update({rng.choice(["invalid", "malformed"]): rng.randrange(4)})
        tally.votes_per_step.update({rng.randrange(2, 6): rng.randrange(5)})
        tally.rounds_per_step.update({rng.randrange(1, 4): rng.randrange(5)})
        tally.by_agent[rng.choice("ab")].update({"samples": rng.randrange(9)})
        tally.by_kind[rng.choice(["disk 1", "disk 2"])].update({"steps": rng.randrange(9), "errors": rng.randrange(2)})
        tally.escalations[rng.choice(["paraphrase", "k"])].update({"steps": 1, "samples": rng.randrange(9)})
        tallies.append(tally)
    summed = _Tally()
    merged = _Tally().freeze(True, True)
    for tally in tallies:
        summed.absorb(tally)
        merged = merged.merge(tally.freeze(True, True))
    assert summed.freeze(True, True) == merged


def test_progress_comes_as_often_as_the_run_asks():
    task = load_task("hanoi", disks=6)
    calls = {0.0: [], 3600.0: []}
    for every, seen in calls.items():
        maker.run(task, SimulatedBackend(task, seed=1), k=2, progress=seen.append, progress_every=every)
    assert len(calls[0.0]) == 63 + 1  # after every step, and the final numbers
    assert len(calls[3600.0]) == 2  # after the first step, and the final numbers
    assert calls[3600.0][-1].steps == calls[0.0][-1].steps == 63
