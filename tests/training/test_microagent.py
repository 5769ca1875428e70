"""`maker train` end to end on a tiny base: the folder it writes serves as it is, its card says
what it measured (and when the held-out states were not unseen), and journals train without the
oracle."""

import json

import pytest

import maker
from maker.agents import AgentCatalog
from maker.backends.hf import HFBackend
from maker.cli import main
from maker.errors import ConfigError
from maker.training.microagent import locked_in_because, train_microagent, unusable_because
from maker.training.trainer import TrainSettings
from tests.toy import Countdown

FAST = {"budget_min": 5, "max_steps": 40, "batch_size": 16, "lr": 1e-2, "warmup_steps": 5, "eval_every_s": 1e9,
        "checkpoint_every_s": 1e9}


def test_the_folder_serves_as_it_is_and_its_card_tells_the_truth(tiny_base, tmp_path):
    out = tmp_path / "countdown-agent"
    record = train_microagent(Countdown(start=30), out, settings=TrainSettings(**FAST), base=tiny_base, examples=300,
                              held_out=20, temperature=0.7, eval_states=8, progress=False, log=lambda _: None)
    manifest = json.loads((out / "maker.json").read_text())
    assert (out / manifest["base"]).resolve() == tiny_base.resolve()
    assert manifest["defaults"] == {"temperature": 0.7} and manifest["agent"] is None
    assert json.loads((out / "training.json").read_text())["training"]["steps"] == 40
    # 30 states in all: every held-out state was trained on, and the record and card say so
    assert record["data"]["held_out_unseen"] is False
    assert "not unseen" in (out / "README.md").read_text()
    ev = record["evaluation"]
    assert ev["states_from"] == "this instance's trajectory" and ev["unseen"] is False  # 30 states, all trained on
    assert ev["states"] == 8 and ev["samples"] == 16 and ev["temperature"] == 0.7 and ev["first_temperature"] == 0.0
    assert ev["wrong_samples"] == ev["samples"] - ev["correct"]
    assert AgentCatalog({None: out}).defaults("any") == {"temperature": 0.7}
    assert HFBackend(out).describe()["decoder"] == "llama"


def test_unseen_held_out_states_when_the_task_has_enough(tiny_base, tmp_path):
    class Many(Countdown):
        def training_states(self, rng, count):
            return [rng.randrange(1, 10**6) for _ in range(count)]

    record = train_microagent(Many(start=5), tmp_path, settings=TrainSettings(**{**FAST, "max_steps": 2}),
                              base=tiny_base, examples=200, held_out=20, eval_states=2, progress=False, log=lambda _: None)
    assert record["data"]["held_out_unseen"] is True and record["data"]["held_out"] >= 10


def test_the_command_trains_from_journals_without_the_oracle(tiny_base, tmp_path, monkeypatch, capsys):
    journal = tmp_path / "run.jsonl"
    task = Countdown(start=40)
    assert maker.run(task, maker.SimulatedBackend(task, error_rate=0.0), k=1, journal=journal).solved

    def no_oracle(self, state):
        raise AssertionError("training from journals called the oracle")

    out = tmp_path / "from-journal"
    original = Countdown.oracle
    monkeypatch.setattr(Countdown, "oracle", no_oracle)
    # verifying the journal may consult the oracle (after the fact), training data may not; the
    # measurement after training would, so it is switched off here (--eval-states 0)
    monkeypatch.setattr("maker.verify.oracle_disagrees", lambda task, state, candidate: original(task, state) != candidate)
    code = main(["train", "tests/toy.py:Countdown", "--start", "40", "--out", str(out), "--base", str(tiny_base),
                 "--from-journal", str(journal), "--budget-min", "0.03", "--eval-states", "0", "--no-progress", "--json"])
    record = json.loads(capsys.readouterr().out)
    assert code == (1 if record["unusable"] else 0)  # a few seconds of training: usable or not, it says which
    assert record["data"]["from"] == "journals" and record["data"]["oracle_used"] is False
    assert record["data"]["examples"] + record["data"]["held_out"] == 40 and record["evaluation"] is None
    assert (out / "adapter_config.json").is_file()


def test_clear_errors(tiny_base, tmp_path, capsys):
    assert main(["train", "tests/toy.py:Countdown", "--base", str(tiny_base)]) == 2
    assert "needs --out DIR" in capsys.readouterr().err

    class Blind(Countdown):
        oracle = maker.Task.oracle

    with pytest.raises(ConfigError, match="--from-journal"):
        train_microagent(Blind(), tmp_path, base=tiny_base, progress=False)
    with pytest.raises(ConfigError, match="holds no tokenizer"):
        train_microagent(Countdown(), tmp_path, base=tmp_path, progress=False)


def test_an_adapter_that_cannot_serve_a_run_fails_the_command_with_advice(tiny_base, tmp_path, capsys):
    out = tmp_path / "hopeless"
    code = main(["train", "tests/toy.py:Countdown", "--start", "400", "--out", str(out), "--base", str(tiny_base),
                 "--budget-min", "0.02", "--examples", "200", "--held-out", "20", "--eval-states", "6", "--no-progress"])
    captured = capsys.readouterr()
    record = json.loads((out / "training.json").read_text())
    assert record["evaluation"]["p"] is None or record["evaluation"]["p"] <= 0.5 or record["evaluation"]["v"] < 0.5
    assert code == 1 and record["unusable"]
    assert "NOT usable" in captured.err and "smaller steps" in captured.err and "--base smollm2" in captured.err
    card = (out / "README.md").read_text()
    assert "## Not usable" in card and "## Use" not in card and "maker run" not in card


def test_errors_locked_in_on_states_are_called_out():
    # SmolLM2's 20-minute ledger adapter: 9 of 300 states wrong alike, 1.6 expected of independent errors
    measured = {"states": 300, "collisions": 9, "expected_collisions": 1.61, "collision_p_value": 4.5e-05}
    said = locked_in_because({"evaluation": measured})
    assert said and "9 of 300 states" in said and "1.6 expected" in said and "3.0%" in said and "--mix" in said
    assert locked_in_because({"evaluation": {**measured, "collisions": 2, "collision_p_value": 0.48}}) is None
    assert locked_in_because({"evaluation": {**measured, "collisions": 0, "collision_p_value": None}}) is None
    assert locked_in_because({"training": {}}) is None  # nothing measured through the backend


def test_an_adapter_right_only_when_greedy_is_unusable():
    # The first multiplication decomposer (reply "split = M"): 300 of 300 greedy replies right, and every one
    # of the 300 replies sampled at T = 1.0 after them malformed; its valid share v was exactly one half.
    measured = {"states": 300, "samples": 600, "valid": 300, "v": 0.5, "p": 1.0, "v_after_first": 0.0,
                "first_temperature": 0.0, "temperature": 1.0}
    said = unusable_because({"evaluation": measured})
    assert said and "0.0% of its samples at T = 1.0" in said and "garbage" in said
    assert unusable_because({"evaluation": {**measured, "v_after_first": 0.99}}) is None
