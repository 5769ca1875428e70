"""How the shipped Hanoi model does on the first step of each chain of a plan: the big-disk moves
right after a tall sub-tower is complete, which uniform training steps almost never contain.

    .venv/bin/python bench/experiments/hanoi_boundaries.py [--disks 15] [--depth 6] [--samples 50] [--temperature 1.0]
Results: bench/results/hanoi_boundaries_d<disks>.json (per chain start: right answers out of samples).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

import maker  # noqa: E402
from maker.backends.base import SampleRequest  # noqa: E402
from maker.backends.hf import HFBackend  # noqa: E402
from maker.config import resolve_config  # noqa: E402
from maker.planner import plan_for  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=15)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    task = maker.load_task("hanoi", disks=args.disks)
    plan = plan_for(task, args.depth)
    starts = [plan.subtask(name).start for name in plan.order()]
    backend = HFBackend(args.model or str(task.default_model), max_batch=1024)

    cap = resolve_config(task).cap  # the generation cap a run of this task would send

    async def sample_all() -> list:
        replies = await asyncio.gather(*(
            backend.sample(SampleRequest(task.prompt(s), args.samples, args.temperature, cap, i))
            for i, s in enumerate(starts)
        ))
        await backend.aclose()
        return replies

    right = []
    for state, samples in zip(starts, asyncio.run(sample_all()), strict=True):
        truth, good = task.oracle(state), 0
        for sample in samples:
            try:
                good += task.parse(state, sample.text) == truth
            except maker.RedFlag:
                pass
        right.append(good)
    weak = {i: r for i, r in enumerate(right) if r < args.samples // 2}
    numbers = {"chains": len(starts), "right_per_chain_start": right, "weak_chain_starts": weak,
               "chain_starts_never_right": sum(r == 0 for r in right)}
    path = write_result(f"hanoi_boundaries_d{args.disks}", vars(args), numbers)
    print(f"{len(starts)} chain starts; {len(weak)} right in under half of {args.samples} samples; "
          f"{numbers['chain_starts_never_right']} never right; written to {path}")


if __name__ == "__main__":
    main()
