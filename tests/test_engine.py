"""The engine: voting corrects errors, red flags cast no vote, the cap fails clearly, temperatures
and rounds follow the paper, and misbehaving task code is reported with its step."""

import itertools
import json

import pytest

import maker
from maker import RedFlag, ScriptedBackend, SimulatedBackend, StepError, StepFailed, load_task
from maker.scaling import k_min
from tests.toy import Countdown


def test_simulated_errors_are_corrected_by_voting():
    task = load_task("hanoi", disks=8)
    result = maker.run(task, SimulatedBackend(task, error_rate=0.2, seed=3), k=4)
    stats = result.statistics
    assert result.solved and result.errors == 0 and stats.steps == 255
    assert stats.samples > 4 * 255  # the errors cost extra samples...
    assert stats.samples == stats.valid_votes + stats.red_flag_total
    assert sum(stats.votes_per_step.values()) == 255
    assert stats.max_votes == max(stats.votes_per_step)
    assert result.simulated and result.summary()["simulated"] is True


def test_k1_commits_errors_that_the_paper_k_corrects():
    """MAKER's claim in miniature: 10 disks at a 30 % error rate."""
    task = load_task("hanoi", disks=10)
    try:
        weak = maker.run(task, SimulatedBackend(task, error_rate=0.3, seed=1), k=1)
        assert weak.errors > 0 and not weak.solved
    except StepFailed as failure:  # a wrong step led to a state the microagent cannot handle
        assert failure.statistics.errors > 0
    k = k_min(0.7, 1023, 0.99)
    assert k == 14
    strong = maker.run(task, SimulatedBackend(task, error_rate=0.3, seed=1), k=k)
    assert strong.solved and strong.errors == 0 and strong.steps == 1023


def test_red_flags_count_toward_the_cap_but_cast_no_vote():
    toggle = itertools.cycle([False, True])

    def reply(request):  # every other sample is malformed; the others are right
        state = int(request.prompt.split()[2])
        return "junk" if next(toggle) else str(state - 1)

    result = maker.run(Countdown(start=3), ScriptedBackend(reply_for=reply), k=2, first_temperature=0.1)
    stats = result.statistics
    assert result.solved and stats.valid_votes == 2 * 3  # only the right answers voted
    assert stats.red_flags["malformed"] == stats.samples - 6 >= 3


def test_cap_reached_is_a_clear_error_naming_step_and_counts():
    answers = iter(["2", "1"] * 100)
    backend = ScriptedBackend(reply_for=lambda r: next(answers))
    with pytest.raises(StepFailed) as info:
        maker.run(Countdown(start=3), backend, k=2, max_samples_per_step=10)
    err = info.value
    assert err.step == 0 and err.samples == 10
    assert err.counts == {2: 5, 1: 5}
    assert "step 0" in str(err) and "10 samples" in str(err)


def test_red_flagged_samples_alone_hit_the_cap():
    backend = ScriptedBackend(reply_for=lambda r: "no idea")
    with pytest.raises(StepFailed) as info:
        maker.run(Countdown(start=2), backend, k=2, max_samples_per_step=7)
    assert info.value.samples == 7 and info.value.red_flags == 7 and info.value.counts == {}


def test_long_and_truncated_replies_are_red_flags():
    task = load_task("hanoi", disks=4)
    backend = SimulatedBackend(task, error_rate=0.0, too_long_rate=0.3, seed=2)
    result = maker.run(task, backend, k=2, max_tokens=200)
    assert result.solved
    assert result.statistics.red_flags["too_long"] > 0  # cut at the cap, past the limit: too long, as the paper counts it


def test_first_sample_greedy_then_rounds_of_exactly_the_needed_votes():
    backend = ScriptedBackend(["2", "2", "3", "2", "2"])
    result = maker.run(Countdown(start=3), backend, k=3, temperature=0.7, max_steps=1, checks=False)
    temps = [(r.n, r.temperature) for r in backend.requests]
    # round 1: one greedy + two at the run temperature; race 2-1 (margin 1) needs 2 more.
    assert temps == [(1, 0.0), (2, 0.7), (2, 0.7)]
    assert result.steps == 1 and result.statistics.samples == 5


def test_checks_turn_rule_breaking_replies_into_red_flags():
    backend = ScriptedBackend(reply_for=lambda r: "5" if "3" in r.prompt else str(int(r.prompt.split()[2]) - 1))
    with pytest.raises(StepFailed):
        maker.run(Countdown(start=3), backend, k=1, checks=True, max_samples_per_step=5)
    # without checks the rule-breaking answer wins the vote and is counted as a violation
    result = maker.run(Countdown(start=3), backend, k=1, max_steps=2, checks=False)
    assert result.statistics.rule_violations == 1 and result.statistics.errors == 1


class BadParse(Countdown):
    def parse(self, state, reply):
        raise KeyError("oops")


class Unhashable(Countdown):
    def parse(self, state, reply):
        return [int(reply)]


class BadApply(Countdown):
    def apply(self, state, candidate):
        raise ValueError("cannot apply")


@pytest.mark.parametrize(
    "task,message",
    [(BadParse(), "task code raised KeyError"), (Unhashable(), "unhashable"), (BadApply(), "task.apply raised ValueError")],
)
def test_misbehaving_task_code_names_the_step(task, message):
    backend = ScriptedBackend(reply_for=lambda r: "2")
    with pytest.raises(StepError) as info:
        maker.run(task, backend, k=1)
    assert message in str(info.value) and "step 0" in str(info.value) and "state: 3" in str(info.value)


def test_parse_may_not_swallow_red_flags_into_votes():
    class Flagging(Countdown):
        def parse(self, state, reply):
            raise RedFlag("always")

    with pytest.raises(StepFailed):
        maker.run(Flagging(), ScriptedBackend(reply_for=lambda r: "2"), k=1, max_samples_per_step=3)


def test_task_without_oracle_reports_unknown_errors():
    class NoOracle(Countdown):
        oracle = maker.Task.oracle

    result = maker.run(NoOracle(start=2), ScriptedBackend(["1", "0"]), k=1)
    assert result.solved and result.errors is None and result.summary()["errors"] is None


def test_first_to_k_rule():
    task = load_task("hanoi", disks=6)
    result = maker.run(task, SimulatedBackend(task, error_rate=0.1, seed=5), k=3, rule="first-to-k")
    assert result.solved and result.errors == 0


def test_bad_settings_are_config_errors():
    with pytest.raises(maker.ConfigError, match="k"):
        maker.run(Countdown(), ScriptedBackend(["1"]), k=0)
    with pytest.raises(maker.ConfigError, match="max_samples_per_step"):
        maker.run(Countdown(), ScriptedBackend(["1"]), k=5, max_samples_per_step=3)


def test_progress_callback_sees_the_final_statistics():
    seen = []
    task = load_task("hanoi", disks=5)
    maker.run(task, SimulatedBackend(task, error_rate=0.0), k=1, progress=seen.append)
    assert seen[-1].steps == 31


def test_simulated_runs_are_reproducible():
    task = load_task("hanoi", disks=7)
    a = maker.run(task, SimulatedBackend(task, error_rate=0.2, seed=9), k=3).statistics
    b = maker.run(task, SimulatedBackend(task, error_rate=0.2, seed=9), k=3).statistics
    assert (a.samples, dict(a.votes_per_step)) == (b.samples, dict(b.votes_per_step))


# --- a task author's first hour (issue 11) --------------------------------------------------------
class FrozensetCountdown(Countdown):
    def parse(self, state, reply):
        return frozenset({super().parse(state, reply)})

    def apply(self, state, candidate):
        return next(iter(candidate))

    def oracle(self, state):
        return frozenset({state - 1})

    def check(self, state, candidate):
        pass

    def format_reply(self, state, candidate):
        return str(next(iter(candidate)))


def test_a_candidate_json_cannot_hold_fails_at_step_0_with_a_hint_journal_or_not(tmp_path):
    task = FrozensetCountdown(start=3)
    for journal in (None, tmp_path / "run.jsonl"):
        with pytest.raises(StepError, match="step 0: .*does not survive the journal.*candidate_to_json"):
            maker.run(task, SimulatedBackend(task, error_rate=0.0), k=1, journal=journal)


def test_a_named_tuple_candidate_fails_at_step_0_instead_of_breaking_verify_later():
    from typing import NamedTuple

    class Move(NamedTuple):
        value: int

    class NamedCountdown(Countdown):
        def parse(self, state, reply):
            return Move(super().parse(state, reply))

        def apply(self, state, candidate):
            return candidate.value  # a plain tuple from the journal has no .value

        def oracle(self, state):
            return Move(state - 1)

        def check(self, state, candidate):
            pass

        def format_reply(self, state, candidate):
            return str(candidate.value)

    task = NamedCountdown(start=3)
    with pytest.raises(StepError, match="comes back as \\(2,\\) \\(tuple\\), not Move\\(value=2\\)"):
        maker.run(task, SimulatedBackend(task, error_rate=0.0), k=1)


class _ReturnsText(maker.Backend):
    name = "texter"

    async def sample(self, request):
        return "2"  # a str, not a list of Samples


class _ReturnsNone(maker.Backend):
    name = "nothing"

    async def sample_many(self, requests):
        return None


class _Raises(maker.Backend):
    name = "buggy"

    async def sample(self, request):
        return [maker.Sample(request.prompt.upper(1), 1)]  # a bug: str.upper takes no argument


class _NotAsync(maker.Backend):
    name = "blocking"

    def sample(self, request):
        return [maker.Sample("2", 1)]


@pytest.mark.parametrize("backend, error, message", [
    (_ReturnsText(), maker.BackendCodeError,
     "step 0: backend 'texter' \\(_ReturnsText\\) returned a str \\('2'\\) from sample, not a list of maker.Sample"),
    (_ReturnsNone(), maker.BackendCodeError,
     "step 0: backend 'nothing' \\(_ReturnsNone\\) returned a NoneType from sample_many, not a list of 1 lists"),
    (_Raises(), maker.BackendCodeError, "step 0: backend 'buggy' \\(_Raises\\) raised TypeError: "),
    (_NotAsync(), maker.ConfigError, "backend _NotAsync.sample must be a coroutine"),
    (object(), maker.ConfigError, "object is not a maker backend: subclass maker.Backend"),
])
def test_a_backend_of_the_wrong_shape_is_a_clear_error_naming_it(backend, error, message):
    with pytest.raises(error, match=message):
        maker.run(Countdown(start=3), backend, k=1)
    from maker.estimate import estimate

    with pytest.raises(error, match=message.replace("step 0", "step \\d+")):  # estimation calls it the same way
        estimate(Countdown(start=3), backend, samples=2)


def test_a_failing_step_shows_red_flag_reasons_with_example_replies(caplog):
    replies = itertools.cycle(["Next: 2", "next: two", "2.0"])  # a format_reply / parse mismatch
    backend = ScriptedBackend(reply_for=lambda request: next(replies))
    with pytest.raises(StepFailed) as info:
        maker.run(Countdown(start=3), backend, k=2, max_samples_per_step=9)
    text = str(info.value)
    assert "9 red-flagged (malformed 9)" in text
    assert "malformed: not a number: 'Next: 2'; reply: 'Next: 2'" in text and "reply: '2.0'" in text
    assert info.value.flag_reasons == {"malformed": 9} and len(info.value.examples) == 3
    with caplog.at_level("DEBUG", logger="maker"):  # --verbose: every discarded reply
        with pytest.raises(StepFailed):
            maker.run(Countdown(start=3), ScriptedBackend(reply_for=lambda request: "x"), k=2, max_samples_per_step=4)
    assert sum("red flag malformed" in message for message in caplog.messages) == 4


class _Guessing(Countdown):
    """Countdown with a draft hook: it guesses the reply is the number below the state."""

    def draft(self, state, reply):
        guess = str(state - 1)
        return guess[len(reply):] if guess.startswith(reply) and len(guess) > len(reply) else None


class _Recording(maker.Backend):
    """Answers every Countdown prompt correctly and keeps the requests it was sent."""

    name = "recording"

    def __init__(self):
        self.requests = []

    async def sample(self, request):
        self.requests.append(request)
        state = int(request.prompt.split()[2])
        return [maker.Sample(str(state - 1), 1)] * request.n


def test_requests_carry_the_task_draft_hook_bound_to_the_step_state_and_none_without_one():
    plain, guessing = _Recording(), _Recording()
    maker.run(Countdown(start=3), plain, k=2)
    maker.run(_Guessing(start=12), guessing, k=2)
    assert plain.requests and all(r.draft is None for r in plain.requests)
    assert not Countdown(start=3).has_draft and _Guessing(start=3).has_draft
    first = guessing.requests[0]
    assert first.prompt == "What is 12 minus one?"
    assert first.draft("") == "11" and first.draft("1") == "1" and first.draft("2") is None
    # The hook is no part of what a request is: two requests that differ only in it are equal.
    assert first == maker.SampleRequest(first.prompt, first.n, first.temperature, first.max_tokens, first.seed, first.agent)


def test_each_kind_of_step_is_voted_at_its_own_k_and_recorded_by_kind(tmp_path):
    """Hanoi's kinds are the disk moved (Task.kind, from the rules): with no errors a step draws exactly its
    kind's k; the journal records each step's kind, and a resumed run counts the same by kind."""
    task = maker.load_task("hanoi", disks=9)
    journal = tmp_path / "run.jsonl"
    ks = {"disk1": 1, "disk2": 2, "disks5-8": 5}
    first = maker.run(task, maker.SimulatedBackend(task, error_rate=0.0), k=3, k_by_kind=ks, journal=journal,
                      max_steps=300)
    result = maker.run(task, maker.SimulatedBackend(task, error_rate=0.0), k=3, k_by_kind=ks, journal=journal)
    assert first.steps == 300 and result.solved and result.resumed_steps == 300
    by_kind = result.statistics.by_kind
    assert {kind: c["steps"] for kind, c in by_kind.items()} == {"disk1": 256, "disk2": 128, "disk3": 64, "disk4": 32,
                                                                "disks5-8": 30, "disks9-12": 1}
    for kind, counts in by_kind.items():
        assert counts["samples"] == counts["steps"] * ks.get(kind, 3) and counts["errors"] == 0, kind
    records = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    assert [r["kind"] for r in records[:4]] == ["disk1", "disk2", "disk1", "disk3"]
    assert all(r["samples"] == ks.get(r["kind"], 3) for r in records)


@pytest.mark.parametrize("settings,message", [
    ({"k_by_kind": {"disk 1": 2}}, "does not have .*did you mean 'disk1'"),
    ({"k_by_kind": {"disk1": 0}}, "k_by_kind.disk1"),
    ({"k_by_kind": {"disk1": 200}}, r"max_samples_per_step \(100\) must be >= k \(200\)"),
])
def test_bad_k_by_kind_is_refused_by_name(settings, message):
    task = maker.load_task("hanoi", disks=3)
    with pytest.raises(maker.ConfigError, match=message):
        maker.run(task, maker.SimulatedBackend(task), **settings)


def test_k_by_kind_needs_a_task_with_kinds():
    with pytest.raises(maker.ConfigError, match="one kind of step"):
        maker.run(Countdown(start=3), maker.SimulatedBackend(Countdown(start=3)), k_by_kind={"a": 2})


def test_a_redone_chain_doubles_every_kind_s_k():
    config = maker.RunConfig(k=3, k_by_kind={"disk1": 2})
    assert config.scaled_k(2).k == 6 and config.scaled_k(2).k_by_kind == {"disk1": 4}
