"""One k for every step against a k per kind of step, side by side in one run on one machine.

    .venv/bin/python bench/regression/k_by_kind_side_by_side.py [--plan bench/results/estimate_by_kind_d20.json] \\
        [--disks 16] [--depth 8] [--repeat 3]

Alternates ``maker run hanoi --disks D --depth 8 --max-batch 512`` at ``--k 3`` and at ``--k-by-kind`` (a plan
made here for this size, ``maker.kinds.allocate``, at the bound on P(task right) that k = 3 gives, from the
per-kind measurements of ``--plan``, a ``maker estimate --by-kind --json`` file; measured on the 20-disk
trajectory's states, so at another size they are an assumption), ``--repeat`` times each, with our model
(models/hanoi/model, in process, its manifest's T = 1.0, checks on). Records each run's wall time (start-up
included), engine seconds, samples per step and errors, the medians and their ratio, and both bounds.
Results: bench/results/k_by_kind_side_by_side_d<disks>.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

import maker  # noqa: E402
from maker.kinds import KindMeasure, allocate, p_full_by_kind, samples_per_step  # noqa: E402
from maker.task import OracleWalk  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent


def run_once(args: list[str]) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "maker.cli", *args, "--json", "--no-progress"], capture_output=True,
                          text=True, cwd=tempfile.gettempdir(), env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"run failed ({proc.returncode}):\n{proc.stderr}")
    summary = json.loads(proc.stdout)
    return {"wall_s": round(wall, 2), "engine_s": summary["seconds"], "solved": summary["solved"],
            "errors": summary["errors"], "samples_per_step": summary["samples_per_step"], "red_flags": summary["red_flags"]}


def plan_for(estimate_file: Path, disks: int) -> dict:
    """The k per kind for this size at the bound k = 3 gives, from the estimate's per-kind measurements and this
    instance's step counts (``maker.kinds.allocate``), and both bounds."""
    task = maker.load_task("hanoi", disks=disks)
    counts = Counter(task.kind(state) for _, state, _ in OracleWalk(task))
    rows = {row["kind"]: row for row in json.loads(estimate_file.read_text())["kinds"]["rows"]}
    measures = {kind: KindMeasure(n, rows[kind]["p"], rows[kind]["p_low"]) for kind, n in counts.items()}
    uniform = dict.fromkeys(measures, 3)
    bound = p_full_by_kind(measures, uniform)
    plan = allocate(measures, bound)
    return {"steps_by_kind": dict(counts), "k3": {"p_full": bound, "expected_samples_per_step": samples_per_step(measures, uniform)},
            "k_by_kind": {"k": plan.k_by_kind, "p_full": plan.p_full, "expected_samples_per_step": plan.samples_per_step,
                          "option": plan.option()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plan", type=Path, default=ROOT / "bench/results/estimate_by_kind_d20.json")
    parser.add_argument("--disks", type=int, default=16)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    common = ["run", "hanoi", "--disks", str(args.disks), "--depth", str(args.depth), "--max-batch", "512"]
    planned = plan_for(args.plan, args.disks)
    configs = {"k3": [*common, "--k", "3"], "k_by_kind": [*common, "--k-by-kind", planned["k_by_kind"]["option"]]}
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    for i in range(args.repeat):
        for name, cli in configs.items():
            runs[name].append(run_once(cli))
            print(f"{name} #{i + 1}: {runs[name][-1]}", flush=True)
    medians = {name: {key: statistics.median(r[key] for r in rs) for key in ("wall_s", "engine_s", "samples_per_step")}
               for name, rs in runs.items()}
    ratio = {key: round(medians["k_by_kind"][key] / medians["k3"][key], 3) for key in ("wall_s", "engine_s", "samples_per_step")}
    numbers = {"runs": runs, "medians": medians, "k_by_kind_over_k3": ratio, "plan": planned}
    print(json.dumps({"medians": medians, "ratio": ratio}, indent=1))
    path = write_result(f"k_by_kind_side_by_side_d{args.disks}", {**vars(args), "plan": str(args.plan),
                                                                    "commands": {n: " ".join(["maker", *c]) for n, c in configs.items()}},
                        numbers)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
