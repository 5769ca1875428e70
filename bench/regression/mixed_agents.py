"""One in-process backend, two microagents: Hanoi and multiplication chains served side by side.

    .venv/bin/python bench/regression/mixed_agents.py [--disks 12] [--hanoi-depth 4] [--digits 30]

Measured in one process, one after another, each on a fresh backend:
1. Hanoi alone through its adapter on the shared base;
2. multiplication alone through its adapter;
3. both runs at once on ONE backend whose table serves each agent by its adapter (batches hold one
   model's requests; the two runs' steps interleave);
4. the same Hanoi run on the specialist (models/hanoi/model, the GPT-2 fast path).
tok/s counts generated tokens (EOS excluded) over the wall time of the runs.
Results: bench/results/mixed_agents.json
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402
from maker_tasks.multiply import product_of  # noqa: E402

import maker  # noqa: E402
from maker.backends.hf import HFBackend  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
ADAPTERS = ROOT / "models" / "adapters"
TABLE = {"hanoi": ADAPTERS / "hanoi", "multiply": ADAPTERS / "multiply", "multiply-product": ADAPTERS / "multiply",
         "multiply-sum": ADAPTERS / "multiply"}


def _outcome(result: maker.RunResult, task: maker.Task) -> dict:
    out = {"task": task.name, "solved": result.solved, "steps": result.steps, "errors": result.errors}
    if task.name == "multiply":  # checked against Python's integers, after the fact
        factors = task.answer(result.final_state)
        out["product_right"] = result.solved and product_of(result.final_state) == int(factors["a"]) * int(factors["b"])
    return out


async def phase(name: str, backend: HFBackend, runs: list[tuple[maker.Task, int]]) -> dict:
    async with backend:
        began = time.perf_counter()
        results = await asyncio.gather(*(maker.run_async(task, backend, depth=depth) for task, depth in runs))
        seconds = time.perf_counter() - began
        stats = backend.statistics()
        decoder = backend.describe()["decoder"]
    steps = sum(r.steps for r in results)
    row = {"phase": name, "decoder": decoder, "seconds": round(seconds, 2), "steps": steps,
           "steps_per_second": round(steps / seconds, 1), "tokens": stats["tokens"],
           "tokens_per_second": round(stats["tokens"] / seconds, 1), "batches": stats["batches"],
           "mean_batch_sequences": round(stats["sequences"] / max(1, stats["batches"]), 1),
           "runs": [_outcome(r, task) for r, (task, _) in zip(results, runs, strict=True)]}
    print(f"{name:<28} {row['tokens_per_second']:>9,.0f} tok/s {row['steps_per_second']:>8,.0f} steps/s  "
          f"{[(o['task'], o['solved'], o['errors']) for o in row['runs']]}", flush=True)
    return row


async def main_async(args: argparse.Namespace) -> list[dict]:
    def hanoi() -> tuple[maker.Task, int]:
        return maker.load_task("hanoi", disks=args.disks), args.hanoi_depth

    def multiply() -> tuple[maker.Task, int]:
        return maker.load_task("multiply", digits=args.digits, draw_seed=7), 1

    def backend(path: object) -> HFBackend:
        return HFBackend(path, max_batch=args.max_batch)

    return [
        await phase("hanoi adapter alone", backend(TABLE["hanoi"]), [hanoi()]),
        await phase("multiply adapter alone", backend(TABLE["multiply"]), [multiply()]),
        await phase("both at once, one backend", backend(TABLE), [hanoi(), multiply()]),
        await phase("hanoi specialist alone", backend(ROOT / "models" / "hanoi" / "model"), [hanoi()]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=12)
    parser.add_argument("--hanoi-depth", type=int, default=4)
    parser.add_argument("--digits", type=int, default=30)
    parser.add_argument("--max-batch", type=int, default=512)
    args = parser.parse_args()
    rows = asyncio.run(main_async(args))
    by = {row["phase"]: row for row in rows}
    alone = by["hanoi adapter alone"]["tokens"] + by["multiply adapter alone"]["tokens"]
    alone_s = by["hanoi adapter alone"]["seconds"] + by["multiply adapter alone"]["seconds"]
    numbers = {"phases": rows,
               "mixed_vs_alone_tokens_per_second": round(by["both at once, one backend"]["tokens_per_second"]
                                                         / (alone / alone_s), 3),
               "adapter_vs_specialist_tokens_per_second": round(by["hanoi adapter alone"]["tokens_per_second"]
                                                                / by["hanoi specialist alone"]["tokens_per_second"], 3)}
    path = write_result("mixed_agents", vars(args), numbers)
    print(f"mixed / alone (tok/s): {numbers['mixed_vs_alone_tokens_per_second']}; adapter / specialist (tok/s): "
          f"{numbers['adapter_vs_specialist_tokens_per_second']} -> {path}")


if __name__ == "__main__":
    main()
