"""Measure the shared base on fresh draws of each source of its mixture (greedy, teacher forced).

    .venv/bin/python models/base/evaluate.py [--per-source 1000]   # writes models/base/eval.json

The draws are new random states (seed 31337), not the training stream's; for multiplication's
1,100 possible digit steps every state was also trained on (the card says so).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import mixture  # noqa: E402

from maker.training.examples import oracle_examples  # noqa: E402
from maker.training.trainer import Trainer, TrainSettings, pool_source  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-source", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = random.Random(31337)
    sources = {"hanoi (1-20 disks)": oracle_examples(mixture._HANOI, rng, args.per_source),
               "multiply digit steps": oracle_examples(mixture._MULTIPLY, rng, args.per_source)}
    for skill in mixture.SKILLS:
        sources[f"skill: {skill.__name__}"] = [skill(rng) for _ in range(args.per_source // 4)]
    some = next(iter(sources.values()))
    # The training loop's own scoring (teacher forcing = what greedy decoding writes), on the saved model.
    scorer = Trainer(HERE / "model", HERE / "eval-scratch", pool_source(some), some, TrainSettings(method="full"),
                     log=lambda _: None)
    results = {}
    for name, examples in sources.items():
        wrong = scorer.errors(examples)
        results[name] = {"examples": len(examples), "greedy_wrong": wrong, "greedy_accuracy": round(1 - wrong / len(examples), 4)}
        print(f"{name:<28} {results[name]['greedy_accuracy']:.4f} ({wrong} wrong of {len(examples)})", flush=True)
    (HERE / "eval.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
