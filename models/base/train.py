"""Train the shared base from scratch on the mixture (models/base/mixture.py). Resumable.

    .venv/bin/python models/base/train.py                      # build the tokenizer if missing, train, resume
    nohup .venv/bin/python models/base/train.py > models/base/train.log 2>&1 &
    .venv/bin/python models/base/train.py --budget-min 60       # a longer budget (resumes too)
    .venv/bin/python models/base/train.py --seed 1 --out models/base/sibling   # a sibling base (issue 14's transfer row)
    .venv/bin/python models/base/train.py --continue-from models/base/model --budget-min 10 --out models/base/longer

The model is a Llama-style decoder (maker.training.trainer.Architecture's defaults: 4 layers,
width 128, 4 heads, SwiGLU 384, tied embeddings), so that transformers and vLLM both serve it
with LoRA adapters. It trains on one thread (the machine keeps a core for other work), with the
loop of ``maker train --method scratch``. The folder it writes, models/base/model, is what
adapters name as their base; ``training.json`` there records the run. A sibling base (same
recipe and architecture, another seed: other initial weights and another stream of examples)
goes to a folder of its own, with the tokenizer copied from the base so that token ids agree.
``--continue-from DIR`` trains a copy of DIR's weights further on the same mixture (a longer-trained
base: every weight goes on training, at a quarter of the peak learning rate, with a fresh optimizer).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent  # the repository: recorded paths are relative to it
sys.path.insert(0, str(HERE))

import mixture  # noqa: E402
import tokenizer  # noqa: E402

from maker.training.trainer import Trainer, TrainSettings, write_json  # noqa: E402

BASE = HERE / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget-min", type=float, default=35.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="initial weights and example stream (0: the shipped base)")
    parser.add_argument("--out", type=Path, default=BASE, help="the model folder (default: models/base/model)")
    parser.add_argument("--continue-from", type=Path, default=None, help="a base folder to train further (not from scratch)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out.resolve()
    if not (BASE / "tokenizer.json").is_file():
        tokenizer.main()
    if out != BASE and not (out / "tokenizer.json").is_file():
        # A sibling shares the base's tokenizer: an adapter moved between them must see the same ids.
        out.mkdir(parents=True, exist_ok=True)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy2(BASE / name, out / name)
    start = out if args.continue_from is None else args.continue_from.resolve()
    if start == out and args.continue_from is not None:
        sys.exit("--continue-from needs another --out: the folder it continues must stay as it is")
    settings = TrainSettings(method="scratch" if args.continue_from is None else "full", budget_min=args.budget_min,
                             batch_size=128, lr=2e-3 if args.continue_from is None else 5e-4,
                             warmup_steps=300 if args.continue_from is None else 50,
                             eval_every_s=180, checkpoint_every_s=180, seed=args.seed)
    validation = mixture.draw(random.Random(999), 2000)

    def record(summary: dict) -> None:
        write_json(out / "training.json", {"settings": settings.model_dump(mode="json"), "threads": args.threads,
                                           "continued_from": None if args.continue_from is None else os.path.relpath(start, ROOT),
                                           "mixture": mixture.SHARES, **summary})

    trainer = Trainer(start, out, mixture.draw, validation, settings, on_save=record)
    print(f"base: {sum(p.numel() for p in trainer.model.parameters()):,} parameters, vocabulary {len(trainer.tokenizer)}",
          flush=True)
    summary = trainer.train(progress=not args.no_progress)
    print({k: v for k, v in summary.items() if k != "history"}, flush=True)


if __name__ == "__main__":
    main()
