"""The escalation ladder (maker.escalation): each rung, the order a step climbs them, the failure after the last,
hard kinds that start on the agent rung, the counts and the journal."""

import json

import pytest

import maker
from maker import ScriptedBackend
from maker.escalation import Escalation
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


@pytest.mark.parametrize("ladder,message", [
    ({"ladder": ["agent"]}, "needs the agent it calls on"),
    ({"ladder": ["k", "k"]}, "appears twice"),
    ({"ladder": ["paraphrase"], "agent": "helper"}, "has none"),
    ({"ladder": ["paraphrase"], "hard_kinds": ["odd"]}, "hard_kinds start on the 'agent' rung"),
    ({"ladder": ["up"]}, "Input should be 'paraphrase', 'agent' or 'k'"),
    ({"ladder": ["agent"], "agent": "helper", "hard_kinds": ["od"]}, "did you mean 'odd'"),
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
