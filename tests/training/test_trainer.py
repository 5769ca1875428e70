"""The training loop: it learns, saves what it should for each method, replays its mistakes and
resumes where it stopped."""

import pytest

from maker.errors import ConfigError
from maker.training.examples import Example
from maker.training.trainer import CHECKPOINT, Trainer, TrainSettings, pool_source

# A step any model can learn in seconds: the reply is the prompt's last word.
POOL = [Example(f"echo {w}\n", w) for w in ("alpha", "beta", "gamma", "delta", "omega", "sigma")]


def _settings(**changes) -> TrainSettings:
    return TrainSettings(**{"budget_min": 5, "max_steps": 10, "batch_size": 16, "lr": 1e-2, "warmup_steps": 5,
                            "eval_every_s": 1e9, "checkpoint_every_s": 1e9, **changes})


@pytest.mark.parametrize("method", ["lora", "full", "scratch"])
def test_each_method_learns_and_saves_its_kind_of_folder(tiny_base, tmp_path, method):
    out = tmp_path / method
    trainer = Trainer(tiny_base, out, pool_source(POOL), POOL, _settings(method=method, max_steps=160), log=lambda _: None)
    before = trainer.errors(POOL)
    summary = trainer.train(progress=False)
    assert before > 0 and summary["held_out_errors"] == 0, summary["history"]
    if method == "lora":
        assert (out / "adapter_config.json").is_file() and not (out / "config.json").exists()
    else:
        assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()


def test_wrong_examples_are_replayed(tiny_base, tmp_path):
    trainer = Trainer(tiny_base, tmp_path, pool_source(POOL), POOL, _settings(), log=lambda _: None)
    trainer.replay = [POOL[0]] * 10
    batch = trainer._batch()
    assert batch[:4] == [POOL[0]] * 4 and len(batch) == 16  # a quarter of the batch, then fresh examples
    assert len(trainer.replay) == 6


def test_a_second_run_resumes_the_checkpoint(tiny_base, tmp_path):
    first = Trainer(tiny_base, tmp_path, pool_source(POOL), POOL, _settings(max_steps=5), log=lambda _: None)
    done = first.train(progress=False)
    assert (tmp_path / CHECKPOINT).is_file()
    said = []
    second = Trainer(tiny_base, tmp_path, pool_source(POOL), POOL, _settings(max_steps=9), log=said.append)
    again = second.train(progress=False)
    assert said and "resuming" in said[0] and done["steps"] == 5
    assert again["steps"] == 9 and again["examples_seen"] == 9 * 16 and again["minutes"] >= done["minutes"]
    assert second.history[: len(first.history)] == first.history


def test_resuming_with_other_settings_is_refused(tiny_base, tmp_path):
    Trainer(tiny_base, tmp_path, pool_source(POOL), POOL, _settings(max_steps=2), log=lambda _: None).train(progress=False)
    other = Trainer(tiny_base, tmp_path, pool_source(POOL), POOL, _settings(lora_rank=4), log=lambda _: None)
    with pytest.raises(ConfigError, match="lora_rank"):
        other.train(progress=False)


def test_examples_longer_than_the_model_are_refused(tiny_base, tmp_path):
    long = [Example("x " * 200, "y")]
    trainer = Trainer(tiny_base, tmp_path, pool_source(long), long, _settings(), log=lambda _: None)
    with pytest.raises(ConfigError, match="positions"):
        trainer.encode(long)


def test_labels_cover_only_the_reply_and_eos(tiny_base, tmp_path):
    trainer = Trainer(tiny_base, tmp_path, pool_source(POOL), POOL, _settings(), log=lambda _: None)
    ids, mask, labels = trainer.encode([Example("echo beta\n", "beta")])
    tok = trainer.tokenizer
    prompt = tok("echo beta\n")["input_ids"]
    reply = tok("beta", add_special_tokens=False)["input_ids"]
    assert labels[0].tolist() == [-100] * len(prompt) + reply + [tok.eos_token_id]
    assert mask[0].tolist() == [1] * (len(prompt) + len(reply) + 1)
    assert ids[0].tolist() == prompt + reply + [tok.eos_token_id]


@pytest.mark.parametrize("method", ["lora", "scratch"])
def test_fresh_weights_come_from_the_seed_not_from_what_ran_before(tiny_base, tmp_path, method):
    import torch

    made = []
    for noise in (1, 2):
        torch.manual_seed(noise)  # whatever ran before left the global generator somewhere else
        trainer = Trainer(tiny_base, tmp_path / str(noise), pool_source(POOL), POOL, _settings(method=method),
                          log=lambda _: None)
        made.append([p.detach().clone() for p in trainer.trainable])
    assert all(torch.equal(a, b) for a, b in zip(*made, strict=True))


def test_held_out_scoring_is_spaced_to_a_sixth_of_the_clock(tiny_base, tmp_path, monkeypatch):
    # Scoring that takes 0.1 s, asked for after every step: it may run at most once per 5 x 0.1 s of
    # training, so that a large base (SmolLM2: 40 s a scoring) does not spend its budget measuring.
    import time

    trainer = Trainer(tiny_base, tmp_path, pool_source(POOL), POOL,
                      _settings(budget_min=0.05, max_steps=None, eval_every_s=1e-3), log=lambda _: None)
    score = trainer.score

    def slow_score(examples, batch=256):
        time.sleep(0.1)
        return score(examples, batch)

    monkeypatch.setattr(trainer, "score", slow_score)
    trainer.train(progress=False)
    assert 2 <= len(trainer.history) <= 3 / 0.5 + 2  # 3 s of clock, one scoring per >= 0.5 s, and the final one
