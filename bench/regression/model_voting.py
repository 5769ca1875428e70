"""Voting corrects a real model: the shipped Hanoi model alone (k = 1, a high temperature, no
answer-free checks) against the voted run (k, checks on), on the same instance, recorded side by side.

    .venv/bin/python bench/regression/model_voting.py [--disks 10] [--temperature 1.0] [--k 3]
Results: bench/results/model_voting_d<disks>.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

import maker  # noqa: E402
from maker.backends.hf import HFBackend  # noqa: E402


def one_run(task: maker.Task, model: str, *, k: int, temperature: float, first_temperature: float, checks: bool,
            depth: int) -> dict:
    backend = HFBackend(model, max_batch=1024)
    start = time.perf_counter()
    try:
        result = maker.run(task, backend, k=k, temperature=temperature, first_temperature=first_temperature,
                           checks=checks, depth=depth, max_samples_per_step=200)
        stats, solved, failure = result.statistics, result.solved, None
    except maker.MakerError as exc:  # e.g. a wrong step led somewhere the model cannot go on from
        stats, solved, failure = exc.statistics, False, str(exc)
    wall = time.perf_counter() - start
    return {"k": k, "temperature": temperature, "first_temperature": first_temperature, "checks": checks,
            "depth": depth, "solved": solved, "steps": stats.steps if stats else None,
            "errors": stats.errors if stats else None, "caught_errors": stats.caught_errors if stats else None, "samples": stats.samples if stats else None,
            "red_flags": dict(stats.red_flags) if stats else None, "seconds": round(wall, 2), "failure": failure}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=10)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--depth", type=int, default=0, help="of the voted run (the model alone always runs one chain, "
                        "so that no end check redoes a wrong chain with a larger k)")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    task = maker.load_task("hanoi", disks=args.disks)
    model = args.model or str(task.default_model)
    alone = one_run(task, model, k=1, temperature=args.temperature, first_temperature=args.temperature, checks=False,
                    depth=0)
    print("alone:", json.dumps(alone))
    voted = one_run(task, model, k=args.k, temperature=args.temperature, first_temperature=0.0, checks=True,
                    depth=args.depth)
    print("voted:", json.dumps(voted))
    path = write_result(f"model_voting_d{args.disks}", {**vars(args), "model": model}, {"alone": alone, "voted": voted})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
