"""Training examples: the default states along the oracle's trajectory, a task's own hook, and
journals (which must verify, and need no oracle)."""

import json
import random

import pytest

import maker
from maker.errors import ConfigError
from maker.task import trajectory_sample
from maker.training.examples import Example, journal_examples, mined, oracle_examples
from tests.toy import Countdown


class NoOracleCountdown(Countdown):
    """The toy task without its oracle: what a journal-trained task looks like."""

    oracle = maker.Task.oracle


def test_default_training_states_are_distinct_states_of_the_trajectory():
    task = Countdown(start=50)
    states = task.training_states(random.Random(0), 20)
    assert len(states) == len(set(states)) == 20 and all(1 <= s <= 50 for s in states)
    # shorter than asked: every state appears, some twice
    assert set(trajectory_sample(Countdown(start=5), random.Random(0), 12)) == {1, 2, 3, 4, 5}


def test_oracle_examples_pair_each_prompt_with_the_oracles_formatted_reply():
    examples = oracle_examples(Countdown(start=9), random.Random(1), 5)
    assert all(e.reply == str(int(e.prompt.split()[2]) - 1) for e in examples)


def test_a_task_hook_chooses_the_states():
    class Hooked(Countdown):
        def training_states(self, rng, count):
            return [1000 + i for i in range(count)]

    assert [e.prompt for e in oracle_examples(Hooked(), random.Random(0), 2)] == ["What is 1000 minus one?",
                                                                                   "What is 1001 minus one?"]


def test_without_an_oracle_the_default_states_ask_for_journals():
    with pytest.raises(ConfigError, match="--from-journal"):
        NoOracleCountdown(start=3).training_states(random.Random(0), 2)


def test_journal_examples_need_no_oracle(tmp_path, monkeypatch):
    journal = tmp_path / "run.jsonl"
    task = Countdown(start=6)
    assert maker.run(task, maker.SimulatedBackend(task, error_rate=0.0), k=1, journal=journal).solved
    monkeypatch.setattr(Countdown, "oracle", NoOracleCountdown.oracle)  # from here on, no task has an oracle
    examples = journal_examples("tests.toy:Countdown", [journal])
    assert examples == [Example(f"What is {n} minus one?", str(n - 1)) for n in range(6, 0, -1)]


def test_a_journal_that_does_not_verify_is_refused(tmp_path):
    journal = tmp_path / "run.jsonl"
    task = Countdown(start=4)
    maker.run(task, maker.SimulatedBackend(task, error_rate=0.0), k=1, journal=journal)
    lines = journal.read_text().splitlines()
    record = json.loads(lines[2])
    record["candidate"] = 7  # counts up: breaks the task's check
    journal.write_text("\n".join([*lines[:2], json.dumps(record), *lines[3:]]) + "\n")
    with pytest.raises(ConfigError, match="does not verify"):
        journal_examples("tests.toy:Countdown", [journal])


def test_journal_examples_keep_each_step_s_kind_and_whether_the_run_found_it_hard(tmp_path):
    journal = tmp_path / "run.jsonl"
    task = maker.load_task("hanoi", disks=8)
    assert maker.run(task, maker.SimulatedBackend(task, error_rate=0.1, seed=2), k=3, journal=journal).solved
    records = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    examples = journal_examples("hanoi", [journal])
    assert [e.kind for e in examples] == [r["kind"] for r in records]
    hard = [len(r["votes"]) > 1 or r["rounds"] > 1 for r in records]
    assert [e.hard for e in examples] == hard and 0 < sum(hard) < len(hard)


def test_mining_repeats_hard_steps_and_rare_kinds():
    common = [Example(f"c{i}", "1", "common") for i in range(100)]
    rare = [Example("r0", "1", "rare"), Example("r1", "1", "rare", hard=True)]
    out = mined(common + rare, hard_repeat=3)
    counts = {p: sum(e.prompt == p for e in out) for p in ("c0", "r0", "r1")}
    assert counts == {"c0": 1, "r0": 7, "r1": 21}  # sqrt(100 / 2) ~ 7 for the rare kind, times 3 when hard
    assert len(mined(common + rare, hard_repeat=1, balance_kinds=False)) == 102
    assert sum(e.prompt == "r0" for e in mined([*common, *common, *common, *common, rare[0]])) == 8  # capped
