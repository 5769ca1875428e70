"""Training methods at equal data and equal compute: plain LoRA, SAE-tuned LoRA and full fine-tuning.

    .venv/bin/python bench/experiments/adapter_methods.py [--budgets 0.5,1,2] [--methods lora,sae-lora,full] [--out runs/methods]
    .venv/bin/python bench/experiments/adapter_methods.py --methods sae-lora-sft --name adapter_methods_sft

Methods are ``maker train``'s, plus ``sae-lora-sft``: sae-lora with ``--sae-objective sft`` (the
labels through the SAE, instead of the default ``kl`` to the base's adapter-free distribution).

For each task (Hanoi, multiplication), method and budget, one `maker train` from the shared base
(models/base/model): the same examples (--examples, --seed), the same wall-clock budget (the
SAE's fitting is inside it), one after another in this process's run. sae-lora's source is the
task's shipped adapter (models/adapters/<task>): the microagent that has the skill. So sae-lora
also draws on what that adapter learned, and on the tokens of 2,000 further examples, to fit its SAE. Each model is
then measured by `maker train`'s own evaluation through the in-process backend at the run's
temperature (1.0; the first sample greedy), checks on: the share of samples that are not right
(red-flagged or wrong: what the model writes before any red flag), the share of valid ones that
are wrong (1 - p), the red-flag catch rate (the share of those not right that the red flags threw
away) and collisions. A finished
configuration is skipped when the bench runs again (its folder holds the evaluation).
Results: bench/results/adapter_methods.json, and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
TASKS = {"hanoi": ["--disks", "20"], "multiply": ["--digits", "20"]}
METHODS = {"lora": ["--method", "lora"], "full": ["--method", "full"], "sae-lora": ["--method", "sae-lora"],
           "sae-lora-sft": ["--method", "sae-lora", "--sae-objective", "sft"]}


def train(task: str, method: str, budget: float, args: argparse.Namespace) -> dict:
    out = Path(args.out) / f"{task}-{method}-{budget:g}"
    record_path = out / "training.json"
    if record_path.is_file() and json.loads(record_path.read_text()).get("evaluation"):
        return json.loads(record_path.read_text())  # done in an earlier run of the bench
    command = [sys.executable, "-m", "maker.cli", "train", task, *TASKS[task], "--out", str(out), *METHODS[method],
               "--budget-min", str(budget), "--examples", str(args.examples), "--held-out", "300",
               "--eval-states", str(args.eval_states), "--seed", str(args.seed), "--no-progress", "--json"]
    if method.startswith("sae-lora"):
        command += ["--sae-source", str(ROOT / "models" / "adapters" / task), "--sae-layer", str(args.sae_layer)]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    record = json.loads(done.stdout)
    record["bench_wall_s"] = round(time.perf_counter() - began, 1)
    return record


def row(task: str, method: str, budget: float, record: dict) -> dict:
    ev, tr = record.get("evaluation") or {}, record["training"]
    p = ev.get("p")
    return {"task": task, "method": method, "budget_min": budget, "trained_min": tr["minutes"], "steps": tr["steps"],
            "held_out_errors": tr["held_out_errors"], "held_out": tr["held_out"],
            "error_per_sample": None if p is None else round(1 - p, 6), "p_low": ev.get("p_low"), "v": ev.get("v"),
            # Every sample that is not right, red-flagged or wrong: what the model writes before any red flag.
            "raw_error": None if not ev.get("samples") else round(ev["wrong_samples"] / ev["samples"], 5),
            "samples": ev.get("samples"), "wrong_samples": ev.get("wrong_samples"),
            "red_flag_catch_rate": ev.get("red_flag_catch_rate"), "collisions": ev.get("collisions"),
            "collisions_same": ev.get("collisions_same"), "sae": tr.get("sae")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", default="0.5,1,2", help="training minutes, comma-separated")
    parser.add_argument("--methods", default="lora,sae-lora,full")
    parser.add_argument("--tasks", default="hanoi,multiply")
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--eval-states", type=int, default=500)
    parser.add_argument("--sae-layer", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="runs/methods")
    parser.add_argument("--name", default="adapter_methods", help="result file: bench/results/NAME.json")
    args = parser.parse_args()
    unknown = [m for m in args.methods.split(",") if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}: choose from {', '.join(METHODS)}")
    rows = []
    for task in args.tasks.split(","):
        for method in args.methods.split(","):
            for budget in (float(b) for b in args.budgets.split(",")):
                rows.append(row(task, method, budget, train(task, method, budget, args)))
                r = rows[-1]
                print(f"{task:>8} {method:>8} {budget:>4g} min: error/sample {r['error_per_sample']}, v {r['v']}, "
                      f"catch rate {r['red_flag_catch_rate']}, held-out {r['held_out_errors']}/{r['held_out']}", flush=True)
    print("\n| task | method | budget (min) | samples not right (red-flagged or wrong) | wrong among valid (1 - p) | "
          "red-flag catch rate | collisions (alike) | held-out greedy errors |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['task']} | {r['method']} | {r['budget_min']:g} | {r['raw_error']} ({r['wrong_samples']} of "
              f"{r['samples']}) | {r['error_per_sample']} | {r['red_flag_catch_rate']} | {r['collisions']} "
              f"({r['collisions_same']}) | {r['held_out_errors']} of {r['held_out']} |")
    path = write_result(args.name, vars(args), {"rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
