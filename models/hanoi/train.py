"""Train the Hanoi microagent: a small GPT-2 from scratch on the library's loop (maker.training). Resumable.

    .venv/bin/python models/hanoi/train.py                       # train to models/hanoi/checkpoints/model, or resume
    mkdir -p models/hanoi/checkpoints && nohup .venv/bin/python models/hanoi/train.py > models/hanoi/checkpoints/train.log 2>&1 &
    .venv/bin/python models/hanoi/train.py --budget-min 90       # a longer budget (resumes too)
    .venv/bin/python models/hanoi/train.py --out /tmp/hanoi --budget-min 0.3 --val-size 200   # a smoke run
    # fine-tune a model folder on another data mix (like the shipped weights' last phase, README.md):
    .venv/bin/python models/hanoi/train.py --continue-from DIR --out DIR2 --budget-min 25 --val-big 2000 --set data.boundary_share=0.5 data.boundary_top_share=0.7

The data is this folder's: Hanoi states drawn from the oracle (prepare.py), rendered as the
engine's prompt and reply, tokenized by tokenizer.py. The model is GPT-2 (4 layers, width 128,
4 heads, 256 positions, no dropout), which the engine's fast decoder serves as it is. The loop is
``maker.training.trainer.Trainer``, the one behind ``maker train``: loss on the reply tokens,
hard-example replay, a cosine over the wall-clock budget, held-out scoring by teacher forcing (on
random steps of the engine's own 10..20-disk runs, seed 1234; evaluate.py uses another seed), a
save each time the held-out loss drops, and a checkpoint in ``--out`` that the same command
resumes. ``--continue-from DIR`` trains every weight of DIR further (``full``) from a cosine at
5e-4, with a fresh optimizer. The default ``--out`` is git-ignored: the committed ``model/`` is
replaced only by copying a trained folder over it. Its weights (and ``train.log``) came from the
earlier hand-written loop, this file at commit be56076; they were not retrained on this one.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import shutil
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import prepare  # noqa: E402
import tokenizer as htok  # noqa: E402

from maker.training.examples import Example  # noqa: E402
from maker.training.trainer import Trainer, TrainSettings, write_json  # noqa: E402

SHIPPED = HERE / "model"
GPT2 = {"n_layer": 4, "n_embd": 128, "n_head": 4, "n_positions": 256}  # a 20-disk step is ~60 tokens, 64 disks ~150
VAL_SEED = 1234


def make_model(tokenizer):
    """The shipped architecture, fresh weights: GPT-2 from a config, no dropout, EOS = pad = BOS."""
    from transformers import GPT2Config, GPT2LMHeadModel

    eos = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer),
        **GPT2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config)


def example(state) -> Example:
    return Example(*prepare.answer(state))


def source(data: prepare.DataConfig):
    """Fresh examples, ``n`` at a time, all of one disk count (weighted by ``disk_weights``): a batch's
    fresh part is of one length, so little of it is padding (replayed examples may be of others)."""
    weights = prepare.disk_weights(data)
    counts, shares = list(weights), list(weights.values())

    def draw(rng: random.Random, n: int) -> list[Example]:
        disks = rng.choices(counts, shares)[0]
        return [example(prepare.sample_state(rng, disks, data)) for _ in range(n)]

    return draw


def validation(size: int, big: int) -> list[Example]:
    """``size`` random steps of the engine's 10..20-disk runs and ``big`` top-half big-disk moves of 16..20-disk runs."""
    states = prepare.eval_states(size, VAL_SEED) + prepare.big_move_eval_states(big, VAL_SEED + 1)
    return [example(s) for s in states]


def settings_for(args: argparse.Namespace, overrides: dict[str, str]) -> TrainSettings:
    fresh = args.continue_from is None
    return TrainSettings(
        **{
            "method": "scratch" if fresh else "full",
            "budget_min": args.budget_min,
            "max_steps": args.max_steps,
            "batch_size": 128,
            "lr": 2e-3 if fresh else 5e-4,
            "warmup_steps": 300 if fresh else 50,
            "min_lr_ratio": 0.03,
            "replay_share": 0.125,
            "replay_capacity": 4000,
            "eval_every_s": 240,
            "checkpoint_every_s": 180,
            "seed": args.seed,
            **overrides,
        }
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "checkpoints" / "model", help="the model folder")
    parser.add_argument("--budget-min", type=float, default=70.0, help="wall-clock minutes of training")
    parser.add_argument("--max-steps", type=int, default=None, help="also stop after this many steps")
    parser.add_argument("--continue-from", type=Path, default=None, help="a model folder to train further")
    parser.add_argument("--val-size", type=int, default=6000, help="held-out random steps (10..20 disks)")
    parser.add_argument("--val-big", type=int, default=0, help="held-out top-half big-disk moves (16..20 disks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="data.NAME: a prepare.DataConfig field; NAME: a TrainSettings field",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data, overrides = prepare.DataConfig(), {}
    for item in args.set:
        name, _, value = item.partition("=")
        if name.startswith("data."):
            field = name.removeprefix("data.")
            setattr(data, field, type(getattr(data, field))(value))
        else:
            overrides[name] = value  # TrainSettings validates and converts
    settings = settings_for(args, overrides)
    out = args.out.resolve()
    start = out if args.continue_from is None else args.continue_from.resolve()
    if start == out and args.continue_from is not None:
        sys.exit("--continue-from needs another --out: the folder it continues must stay as it is")
    if not (start / "tokenizer.json").is_file():
        htok.save_tokenizer(out)

    def record(summary: dict) -> None:
        # The saved tokenizer names the class older transformers (vLLM's) know; the manifest is the
        # shipped model's, so that ``maker run hanoi --model OUT`` runs it with the same defaults.
        htok.save_tokenizer(out)
        if not (out / "maker.json").exists():
            shutil.copy2(SHIPPED / "maker.json", out / "maker.json")
        write_json(
            out / "training.json",
            {
                "settings": settings.model_dump(mode="json", exclude={"architecture"}),
                "gpt2": GPT2,
                "data": dataclasses.asdict(data),
                "threads": args.threads,
                "continued_from": None if args.continue_from is None else str(start),
                "validation": {"size": args.val_size, "big": args.val_big, "seed": VAL_SEED},
                **summary,
            },
        )
        print(
            f"saved {out}: step {summary['steps']}, {summary['minutes']} min, held-out errors "
            f"{summary['held_out_errors']}/{summary['held_out']}, loss {summary['held_out_loss']}",
            flush=True,
        )

    trainer = Trainer(
        start,
        out,
        source(data),
        validation(args.val_size, args.val_big),
        settings,
        on_save=record,
        make_model=make_model if args.continue_from is None else None,
    )
    print(f"hanoi: {settings.method}, {sum(p.numel() for p in trainer.model.parameters()):,} parameters", flush=True)
    summary = trainer.train(progress=not args.no_progress)
    print({k: v for k, v in summary.items() if k != "history"}, flush=True)
    return summary


if __name__ == "__main__":
    main()
