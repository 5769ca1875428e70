"""Two microagents voting together against each alone, checks off: one 16-disk run each.

    .venv/bin/python bench/experiments/mix_vs_single.py [--disks 16] [--depth 8] [--seed 0]

With checks off only the format red flags and the vote stand between a wrong reply and the
journal (the paper's own setting). Runs `maker run hanoi` three times in this process's run, one
after another, with the same settings and seed: --mix specialist,adapter (models/hanoi/model,
models/adapters/hanoi), then the specialist alone, then the adapter alone; each journal is
verified. One run each: a wrong step is a rare event, so this shows what happened, not a rate
(bench/experiments/mixed_hard_states.py measures rates on the hardest states).
Results: bench/results/mix_vs_single_d<disks>.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import run_cli, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
SPECIALIST, ADAPTER = str(ROOT / "models" / "hanoi" / "model"), str(ROOT / "models" / "adapters" / "hanoi")
KEEP = ("solved", "errors", "steps", "samples", "samples_per_step", "red_flags_by_reason", "seconds", "rule_violations",
        "by_agent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=16)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    common = ["run", "hanoi", "--disks", str(args.disks), "--depth", str(args.depth), "--max-batch", "512", "--no-checks",
              "--seed", str(args.seed)]
    runs = {"mix": ["--mix", f"{SPECIALIST},{ADAPTER}"], "specialist": ["--model", SPECIALIST], "adapter": ["--model", ADAPTER]}
    numbers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, choice in runs.items():
            summary = run_cli([*common, *choice], journal=Path(tmp) / f"{name}.jsonl")
            verified = summary["verified"]
            numbers[name] = {**{key: summary.get(key) for key in KEEP}, "journal_valid": verified.get("valid"),
                             "journal_errors": verified.get("errors")}
            print(f"{name:>10}: solved {summary['solved']}, errors {summary['errors']}, "
                  f"{summary['samples_per_step']:.4f} samples per step, {summary['seconds']:.1f} s, "
                  f"journal valid {verified.get('valid')}", flush=True)
    print(f"wrote {write_result(f'mix_vs_single_d{args.disks}', vars(args), numbers)}")


if __name__ == "__main__":
    main()
