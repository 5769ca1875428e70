"""Planner speed-up: the same Hanoi instance solved as one chain (depth 0) and split into 2^d
concurrent chains, side by side in one run, with the same backend.

    .venv/bin/python bench/regression/depth_speedup.py --disks 12 --depths 0 6 [--backend hf] [--k 2]

With the in-process model, concurrent chains share forward batches, so wall time falls while the
work (samples, tokens) stays the same. Results go to bench/results/depth_speedup_<backend>.json.
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
from maker.verify import verify_journal  # noqa: E402


def make_backend(name: str, task: maker.Task, model: str | None) -> maker.Backend:
    if name == "sim":
        return maker.SimulatedBackend(task, error_rate=0.01)
    from maker.backends.hf import HFBackend

    return HFBackend(model or str(task.default_model), max_batch=1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=12)
    parser.add_argument("--depths", type=int, nargs="+", default=[0, 6])
    parser.add_argument("--backend", choices=["hf", "sim"], default="hf")
    parser.add_argument("--model", default=None)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--checks", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()

    task = maker.load_task("hanoi", disks=args.disks)
    runs = []
    for depth in args.depths:
        backend = make_backend(args.backend, task, args.model)
        journal = args.out_dir / f"depth_speedup_d{args.disks}_depth{depth}.jsonl"
        journal.unlink(missing_ok=True)
        start = time.perf_counter()
        result = maker.run(task, backend, k=args.k, temperature=args.temperature, checks=args.checks,
                           depth=depth, journal=journal)
        wall = time.perf_counter() - start
        report = verify_journal(journal)
        runs.append({
            "depth": depth, "chains": len(result.nodes), "wall_seconds": round(wall, 2),
            "steps_per_second": round(result.steps / wall, 1), "solved": result.solved, "errors": result.errors,
            "samples": result.statistics.samples, "tokens": result.statistics.tokens,
            "red_flags": dict(result.statistics.red_flags), "verified": report["valid"],
            "solution_sha256": report["solution_sha256"],
        })
        print(json.dumps(runs[-1]))
    base = runs[0]["wall_seconds"]
    for run in runs:
        run["speedup_vs_first"] = round(base / run["wall_seconds"], 2)
    same = len({r["solution_sha256"] for r in runs}) == 1
    numbers = {"simulated": args.backend == "sim", "runs": runs, "same_solution": same}
    path = write_result(f"depth_speedup_{args.backend}_d{args.disks}", vars(args) | {"out_dir": str(args.out_dir)}, numbers)
    print(f"speed-up {[r['speedup_vs_first'] for r in runs]}, same solution: {same}; written to {path}")


if __name__ == "__main__":
    main()
