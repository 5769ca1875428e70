"""Multiplication with real microagents: random products through the multiply adapter, every one
checked against Python's integers (after the fact).

    .venv/bin/python bench/regression/multiply_products.py [--count 100] [--digits 20] [--model models/adapters/multiply]

Each product is its own run at the defaults (maker.run: k, temperature from the adapter's
maker.json, checks on, depth 0); the runs go at once, so one in-process backend batches their
steps together. Results: bench/results/multiply_products_<count>x<digits>.json
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402
from maker_tasks.multiply import MultiplyTask, product_of  # noqa: E402

import maker  # noqa: E402
from maker.backends.hf import HFBackend  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent


async def one(backend: maker.Backend, a: int, b: int) -> dict:
    task = MultiplyTask(a=str(a), b=str(b))
    try:
        result = await maker.run_async(task, backend)
        product, stats = product_of(result.final_state) if result.solved else None, result.statistics
    except maker.MakerError as exc:
        product, stats = None, exc.statistics
    return {"a": str(a), "b": str(b), "product": None if product is None else str(product), "right": product == a * b,
            "steps": stats.steps if stats else None, "errors": stats.errors if stats else None,
            "samples": stats.samples if stats else None}


async def main_async(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    low, high = 10 ** (args.digits - 1), 10**args.digits - 1
    pairs = [(rng.randint(low, high), rng.randint(low, high)) for _ in range(args.count)]
    async with HFBackend(args.model, max_batch=1024) as backend:
        began = time.perf_counter()
        runs = await asyncio.gather(*(one(backend, a, b) for a, b in pairs))
        seconds = time.perf_counter() - began
        stats = backend.statistics()
    steps = sum(r["steps"] or 0 for r in runs)
    return {"products": len(runs), "wrong": sum(not r["right"] for r in runs),
            "step_errors": sum(r["errors"] or 0 for r in runs), "steps": steps,
            "samples": sum(r["samples"] or 0 for r in runs), "seconds": round(seconds, 1),
            "steps_per_second": round(steps / seconds, 1), "tokens_per_second": round(stats["tokens"] / seconds, 1),
            "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--digits", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--model", default=str(ROOT / "models" / "adapters" / "multiply"))
    args = parser.parse_args()
    numbers = asyncio.run(main_async(args))
    path = write_result(f"multiply_products_{args.count}x{args.digits}", vars(args), numbers)
    print(f"{numbers['products']} products of {args.digits}-digit numbers: {numbers['wrong']} wrong, "
          f"{numbers['step_errors']} step errors, {numbers['steps']:,} steps in {numbers['seconds']} s -> {path}")


if __name__ == "__main__":
    main()
