"""Hanoi per-step error: the adapter on the shared base against the specialist, on the same states.

    .venv/bin/python bench/experiments/adapter_vs_specialist.py [--disks 15] [--samples 2000] [--temperature 1.0]

Runs `maker estimate hanoi --backend hf` once per model in this one process's run, with the same
seed, so both sample the same random states of the same trajectory, at the same temperature (the
run's: both manifests ask for 1.0; every sample at it), checks off (what the model writes, before any
rule). Results: bench/results/adapter_vs_specialist_d<disks>.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
MODELS = {"specialist": ROOT / "models" / "hanoi" / "model", "adapter": ROOT / "models" / "adapters" / "hanoi"}
KEEP = ("p", "p_low", "p_high", "v", "samples", "valid", "correct", "red_flags", "collisions", "collisions_same",
        "expected_collisions", "all_wrong_states", "k_min", "samples_per_second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=15)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    numbers = {}
    for name, model in MODELS.items():
        done = subprocess.run([sys.executable, "-m", "maker.cli", "estimate", "hanoi", "--disks", str(args.disks),
                               "--backend", "hf", "--model", str(model), "--samples", str(args.samples),
                               "--temperature", str(args.temperature), "--seed", str(args.seed), "--no-checks", "--json"],
                              capture_output=True, text=True, check=True)
        report = json.loads(done.stdout)
        numbers[name] = {key: report[key] for key in KEEP}
        numbers[name]["error_per_sample"] = None if report["p"] is None else round(1 - report["p"], 6)
        print(f"{name:<11} p-hat {report['p']:.5f} [{report['p_low']:.5f}, {report['p_high']:.5f}]  valid {report['v']:.4f}  "
              f"red flags {report['red_flags']}", flush=True)
    path = write_result(f"adapter_vs_specialist_d{args.disks}", vars(args), numbers)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
