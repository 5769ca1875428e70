"""The escalation ladder (maker.escalation): each rung, the order a step climbs them, the failure after the last,
hard kinds that start on the agent rung, the counts and the journal."""

import json

import pytest

import maker
from maker import ScriptedBackend
from maker.escalation import Escalation
from maker.verify import verify_journal
from tests.toy import Countdown


class Hard(Countdown):
    """Countdown with kinds (the state's parity) and one rewording of its prompt."""

    name = "hard-countdown"
    kind_names = ("even", "odd")

    def kind(self, state):
        return "even" if state % 2 == 0 else "odd"

    def paraphrase(self, state, variant):
        return f"Take one from {state}." if variant == 1 else None


def _replies(rule):
    """A backend that answers each sample by ``rule(prompt, agent, n)``, n counting the samples of that prompt."""
    counters = {}

    def reply_for(request):
        key = (request.prompt, request.agent)
        n = counters[key] = counters.get(key, -1) + 1
        return str(rule(request.prompt, request.agent, n))

    return ScriptedBackend(reply_for=reply_for)


def _state(prompt):
    return int(prompt.split()[2].rstrip(".")) if prompt.startswith("What") else int(prompt.split()[3].rstrip("."))


def _split_on_the_prompt(prompt, agent, n):
    """Right and wrong in turn on the task's own wording (a contest that never ends); right when reworded."""
    state = _state(prompt)
    return state - 1 if prompt.startswith("Take") or n % 2 == 0 else state - 2


def test_the_paraphrase_rung_decides_a_step_its_own_wording_cannot(tmp_path):
    task, journal = Hard(start=4), tmp_path / "run.jsonl"
    result = maker.run(task, _replies(_split_on_the_prompt), k=2, journal=journal,
                       escalation={"ladder": ["paraphrase"], "after": 4})
    assert result.solved and result.errors == 0
    assert result.statistics.escalations["paraphrase"]["steps"] == 4
    records = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    assert all(r["escalated"]["paraphrase"] >= 2 for r in records)
    with pytest.raises(maker.StepFailed):  # without the ladder the same step never ends
        maker.run(task, _replies(_split_on_the_prompt), k=2, max_samples_per_step=40)


def test_the_agent_rung_calls_on_the_other_agent_and_needs_its_agreement():
    # The chain's agent splits between right and wrong; the helper is always right.
    def rule(prompt, agent, n):
        state = _state(prompt)
        return state - 1 if agent == "helper" or n % 2 == 0 else state - 2

    backend = _replies(rule)
    result = maker.run(Hard(start=3), backend, k=2, agent="main",
                       escalation={"ladder": ["agent"], "after": 4, "agent": "helper"})
    assert result.solved and result.errors == 0
    assert result.statistics.escalations["agent"]["steps"] == 3
    assert {r.agent for r in backend.requests} == {"main", "helper"}
    assert result.statistics.by_agent["helper"]["winning_votes"] >= 3


def test_the_k_rung_asks_a_larger_margin():
    # Right, wrong, right, wrong, then right only: at k = 2 the contest outlasts the rung's 4 samples.
    def rule(prompt, agent, n):
        state = _state(prompt)
        return state - 1 if n % 2 == 0 or n >= 4 else state - 2

    result = maker.run(Hard(start=2), _replies(rule), k=2, escalation={"ladder": ["k"], "after": 4, "k_factor": 3})
    assert result.solved and result.statistics.escalations["k"]["steps"] == 2
    assert result.statistics.votes_per_step == {4 + 6: 2}  # 2 - 2 after four votes, then six more to lead by 6


def test_after_the_last_rung_the_step_fails_naming_it_and_the_rungs():
    never_twice = lambda prompt, agent, n: _state(prompt) - 1 - n - (100 if agent == "helper" else 0)  # noqa: E731
    with pytest.raises(maker.StepFailed, match="step 0: no decision after 30 samples.*climbed the escalation "
                                               "ladder: paraphrase, agent, k") as failed:
        maker.run(Hard(start=3), _replies(never_twice), k=2, agent="main", max_samples_per_step=30,
                  escalation={"ladder": ["paraphrase", "agent", "k"], "after": 4, "agent": "helper"})
    assert failed.value.escalated == ["paraphrase", "agent", "k"]


def test_a_hard_kind_starts_on_the_agent_rung_and_the_others_never_call_it():
    backend = _replies(lambda prompt, agent, n: _state(prompt) - 1)
    result = maker.run(Hard(start=6), backend, k=2, agent="main",
                       escalation={"ladder": ["paraphrase", "agent"], "agent": "helper", "hard_kinds": ["odd"]})
    helped = {_state(r.prompt) for r in backend.requests if r.agent == "helper"}
    assert result.solved and helped == {5, 3, 1}
    assert result.statistics.escalations["agent"]["steps"] == 3 and "paraphrase" not in result.statistics.escalations


def test_a_task_without_rewordings_skips_the_paraphrase_rung_at_once():
    def rule(prompt, agent, n):
        state = _state(prompt)
        return state - 1 if n % 2 == 0 or n >= 4 else state - 2

    result = maker.run(Countdown(start=2), _replies(rule), k=2,
                       escalation={"ladder": ["paraphrase", "k"], "after": 4})
    assert result.solved and set(result.statistics.escalations) == {"k"}


def _wrong_on_odd(prompt, agent, n):
    """The chain's agent is wrong on odd states above 2 in three samples of four, its first two always (never contested
    at k = 2); the helper is always right."""
    state = _state(prompt)
    return state - 3 if agent == "main" and state % 2 and state > 2 and n % 4 != 3 else state - 1


def test_the_witness_sends_a_step_it_contradicts_to_the_agent_rung(tmp_path):
    ladder = {"ladder": ["paraphrase", "agent"], "after": 100, "agent": "helper"}
    unwitnessed = maker.run(Hard(start=6), _replies(_wrong_on_odd), k=2, agent="main", escalation=ladder)
    assert unwitnessed.errors == 1 and "agent" not in unwitnessed.statistics.escalations  # never contested: never climbs
    backend, journal = _replies(_wrong_on_odd), tmp_path / "run.jsonl"
    result = maker.run(Hard(start=6), backend, k=2, agent="main", journal=journal, escalation={**ladder, "witness": True})
    stats = result.statistics
    assert result.solved and result.errors == 0
    assert stats.escalations["witness"] == {"steps": 6, "samples": 6, "agreed": 4, "disagreed": 2}
    assert stats.escalations["agent"]["steps"] == 2 and "paraphrase" not in stats.escalations  # straight to the agent
    first_round_helpers = [r for r in backend.requests if r.agent == "helper" and r.temperature == 0.0 and r.n == 1]
    assert {_state(r.prompt) for r in first_round_helpers} == {6, 5, 4, 3, 2, 1}  # one witness a step
    records = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    assert {r["step"] for r in records if r.get("escalated")} == {1, 3}  # states 5 and 3
    assert verify_journal(journal, "tests/test_escalation.py:Hard")["valid"]


def test_a_witness_that_agrees_is_one_more_vote_and_costs_one_sample_a_step():
    result = maker.run(Hard(start=4), _replies(lambda prompt, agent, n: _state(prompt) - 1), k=2, agent="main",
                       escalation={"ladder": ["agent"], "agent": "helper", "witness": True})
    stats = result.statistics
    assert result.solved and stats.samples == 4 * 3 and stats.votes_per_step == {3: 4}  # k = 2 samples, and the witness
    assert stats.escalations == {"witness": {"steps": 4, "samples": 4, "agreed": 4}}
    assert stats.by_agent["helper"] == {"samples": 4, "red_flags": 0, "valid_votes": 4, "winning_votes": 4, "wrong_votes": 0}
    assert stats.by_agent["main"]["samples"] == 8 and stats.by_agent["main"]["winning_votes"] == 8


def test_a_red_flagged_witness_has_no_say_and_a_contest_still_climbs_with_the_witness_vote_in_the_race():
    # The helper's first reply to each state is not a number; the main agent is right.
    helper_late = lambda prompt, agent, n: _state(prompt) - 1 if agent == "main" or n >= 1 else "no idea"  # noqa: E731
    result = maker.run(Hard(start=2), _replies(helper_late), k=2, agent="main",
                       escalation={"ladder": ["agent"], "agent": "helper", "witness": True})
    stats = result.statistics
    assert result.solved and stats.escalations == {"witness": {"steps": 2, "samples": 2, "red-flagged": 2}}
    assert stats.by_agent["helper"] == {"samples": 2, "red_flags": 2, "valid_votes": 0, "winning_votes": 0, "wrong_votes": 0}
    assert stats.samples == 2 * 3 and stats.votes_per_step == {2: 2}
    # A step contested past the rung's 4 samples climbs anyway; the witness's vote then counts in the agreeing race.
    split = lambda prompt, agent, n: _state(prompt) - 1 if agent == "helper" or n % 2 == 0 else _state(prompt) - 3  # noqa: E731
    result = maker.run(Hard(start=1), _replies(split), k=2, agent="main",
                       escalation={"ladder": ["agent"], "after": 4, "agent": "helper", "witness": True})
    assert result.errors == 0 and result.statistics.escalations["witness"] == {"steps": 1, "samples": 1, "joined": 1}


def test_the_witness_decides_on_the_agent_rung_when_its_reply_is_one_the_agent_also_gave():
    # The main agent says wrong, right, wrong, wrong: wrong wins by two. The witness said right, as the main agent did
    # once: replayed on the agent rung, right is the only reply both gave, and it has its two votes.
    def rule(prompt, agent, n):
        state = _state(prompt)
        return state - 1 if agent == "helper" or n == 1 else state - 3

    result = maker.run(Hard(start=3), _replies(rule), k=2, agent="main",
                       escalation={"ladder": ["agent"], "agent": "helper", "witness": True})
    stats = result.statistics
    assert result.solved and result.errors == 0
    assert stats.escalations["agent"] == {"steps": 3, "samples": 0}  # each step decided by the replay alone
    assert stats.votes_per_step == {5: 3} and stats.samples == 3 * 5


@pytest.mark.parametrize("ladder,message", [
    ({"ladder": ["agent"]}, "needs the agent it calls on"),
    ({"ladder": ["k", "k"]}, "appears twice"),
    ({"ladder": ["paraphrase"], "agent": "helper"}, "has none"),
    ({"ladder": ["paraphrase"], "hard_kinds": ["odd"]}, "hard_kinds start on the 'agent' rung"),
    ({"ladder": ["up"]}, "Input should be 'paraphrase', 'agent' or 'k'"),
    ({"ladder": ["agent"], "agent": "helper", "hard_kinds": ["od"]}, "did you mean 'odd'"),
    ({"ladder": ["k"], "witness": True}, "the ladder has no 'agent' rung"),
])
def test_bad_ladders_are_refused_by_name(ladder, message):
    with pytest.raises(maker.ConfigError, match=message):
        maker.run(Hard(start=2), _replies(lambda prompt, agent, n: _state(prompt) - 1), agent="main", escalation=ladder)


def test_the_climbing_rule():
    ladder = Escalation(after=5)
    assert [ladder.climbs(n) for n in (0, 4, 5, 9)] == [False, False, True, True]
    assert Escalation(ladder=("paraphrase", "agent", "k"), agent="b", hard_kinds=("x",)).first_rung("x") == 1
    assert Escalation().ladder == ("paraphrase", "k")  # the agent rung needs its agent named


def test_the_command_line_ladder_and_its_summary(capsys):
    from tests.test_cli import run_cli

    code, out, _ = run_cli(capsys, "run", "hanoi", "--disks", "8", "--backend", "sim", "--error-rate", "0.1",
                           "--escalate", "paraphrase,k", "--escalate-after", "3", "--no-progress")
    assert code == 0 and "ladder: paraphrase > k after 3 undecided samples a rung" in out
    assert "escalated: paraphrase:" in out
    code, _, err = run_cli(capsys, "run", "hanoi", "--disks", "8", "--backend", "sim", "--hard-kinds", "disk1",
                           "--no-progress")
    assert code == 2 and "--hard-kinds is used only with --escalate" in err
    code, out, _ = run_cli(capsys, "run", "hanoi", "--disks", "6", "--backend", "sim", "--error-rate", "0.1", "--escalate",
                           "agent", "--escalate-agent", "helper", "--witness", "--no-progress")
    assert code == 0 and "ladder: agent after 8 undecided samples a rung, a witness on every step" in out
    assert "witness: 63 steps, 63 samples: " in out
    code, _, err = run_cli(capsys, "run", "hanoi", "--disks", "8", "--backend", "sim", "--witness", "--no-progress")
    assert code == 2 and "--witness is used only with --escalate" in err
    code, _, err = run_cli(capsys, "run", "hanoi", "--disks", "8", "--backend", "sim", "--escalate", "k", "--witness",
                           "--no-progress")
    assert code == 2 and "the ladder has no 'agent' rung" in err
