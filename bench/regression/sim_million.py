"""The million-step benchmark: 20-disk Hanoi (1,048,575 steps) with the simulated backend.

Runs exactly the README's main command in a child process, journal included, and records wall
time, steps/s and the child's peak memory; then replays the journal to check the solution.
SIMULATED: replies come from the task's oracle with injected errors; this measures the engine.

    .venv/bin/python bench/regression/sim_million.py [--disks 20] [--error-rate 0.01] [--k 4]
Target (issue 2): <= 60 s wall and <= 500 MB peak on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import run_cli, write_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=20)
    parser.add_argument("--error-rate", type=float, default=0.01)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-journal", action="store_true")
    args = parser.parse_args()

    cli_args = ["run", "hanoi", "--disks", str(args.disks), "--backend", "sim", "--error-rate", str(args.error_rate),
             "--k", str(args.k), "--seed", str(args.seed), "--no-progress"]
    with tempfile.TemporaryDirectory() as tmp:
        journal = None if args.no_journal else Path(tmp) / "run.jsonl"
        summary = run_cli(cli_args, journal=journal)
        journal_mb = None if journal is None else journal.stat().st_size / 1e6
    wall, verified = summary["wall_seconds"], summary["verified"]

    numbers = {
        "simulated": True,
        "steps": summary["steps"],
        "solved": summary["solved"],
        "errors": summary["errors"],
        "samples": summary["samples"],
        "samples_per_step": summary["samples_per_step"],
        "max_votes_in_one_step": summary["max_votes_in_one_step"],
        "wall_seconds_incl_startup": round(wall, 2),
        "engine_seconds": summary["seconds"],
        "steps_per_second": round(summary["steps"] / wall, 1),
        "peak_rss_mb": round(summary["peak_rss_mb"], 1),
        "journal_mb": None if journal_mb is None else round(journal_mb, 1),
        "journal_verified": None if verified is None else verified["valid"],
        "journal_rule_violations": None if verified is None else verified["rule_violations"],
    }
    command = " ".join(["maker", *cli_args, "--json"] + ([] if args.no_journal else ["--journal", "JOURNAL"]))
    settings = {"command": command, **vars(args)}
    path = write_result(f"sim_million_d{args.disks}", settings, numbers)
    print(json.dumps(numbers, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
