"""The paper's claim with a real pretrained LLM: SmolLM2 with a LoRA adapter sorts a list, one
comparison a step, wrong in many steps alone and without an error once its samples vote.

    .venv/bin/python bench/experiments/llm_voting.py [--items 50] [--shuffle 3] [--budget-min 8] [--k 0]

1. The training tutorial's task (docs/tasks.md, BubbleSort) is saved as a user saves it.
2. ``maker train sort.py:BubbleSort --base smollm2`` gives it an adapter on the real model (skipped
   when the folder is already trained; the same command resumes a stopped training). Its own states
   are random pairs (the tutorial's ``training_states``), never this run's list.
3. ``maker estimate`` measures the adapter at the run temperature on states of this list's run, and k
   is the paper's k_min for the whole list at target 0.95 (``--k`` overrides it).
4. The list (``--items`` numbers: n(n-1)/2 voted steps) is sorted three ways through the in-process
   backend, each with a journal that ``maker verify`` replays: the model alone, greedy (k = 1, every
   sample at T = 0); the model alone at the run temperature (k = 1, T = ``--temperature``); and voting
   (k from step 3, first sample at ``--first-temperature``, greedy by default as in the paper, then T).
   Errors are counted by the oracle after the fact.
Results: bench/results/llm_voting_smollm2.json (model, prompt and temperature named in it).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import run_cli, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
WORK = ROOT / "runs" / "llm_voting"  # git-ignored: the task file, the adapter, the journals


def tutorial_file() -> Path:
    text = (ROOT / "docs" / "tasks.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "class BubbleSort" in b)
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "sort.py"
    path.write_text(block)
    return path


RUN_SETTINGS = ("alone_greedy", "alone_sampled", "voting")


def compare_runs(task: list[str], adapter: Path, k: int, temperature: float, names: list[str], work: Path, tag: str,
                 options: tuple[str, ...] = (), first_temperature: float = 0.0) -> dict[str, dict]:
    """The model alone greedy (k = 1, T = 0), alone at ``temperature`` (k = 1) and voting (``k``, first
    sample at ``first_temperature``, then ``temperature``): each run of ``task`` (a spec and its
    parameters) through the in-process backend with a journal in ``work`` that ``maker verify`` replays."""
    settings = {"alone_greedy": ["--k", "1", "--temperature", "0", "--first-temperature", "0"],
                "alone_sampled": ["--k", "1", "--temperature", str(temperature), "--first-temperature", str(temperature)],
                "voting": ["--k", str(k), "--temperature", str(temperature), "--first-temperature", str(first_temperature)]}
    runs = {}
    for name in (name for name in RUN_SETTINGS if name in names):
        journal = work / f"{name}{'-' + tag if tag else ''}.jsonl"
        journal.unlink(missing_ok=True)
        summary = run_cli(["run", *task, "--backend", "hf", "--model", str(adapter), *settings[name], *options,
                           "--no-progress"], journal=journal)
        runs[name] = {key: summary.get(key) for key in ("solved", "steps", "errors", "samples", "samples_per_step",
                                                        "red_flags", "seconds", "wall_seconds", "k", "config")}
        runs[name]["verified"] = {key: (summary["verified"] or {}).get(key) for key in ("valid", "steps", "errors")}
        print(name, json.dumps(runs[name]), flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--shuffle", type=int, default=3)
    parser.add_argument("--budget-min", type=float, default=8.0)
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--k", type=int, default=0, help="0: k_min from the estimate")
    parser.add_argument("--first-temperature", type=float, default=0.0,
                        help="the voted run's first sample of each step (0: greedy, as the paper)")
    parser.add_argument("--estimate-samples", type=int, default=300)
    parser.add_argument("--adapter-tag", default="", help="names the adapter folder, e.g. 'short' for an adapter "
                                                         "trained a shorter budget")
    parser.add_argument("--tag", default="", help="names the journals and the results file")
    parser.add_argument("--runs", type=lambda text: text.split(","), default=list(RUN_SETTINGS),
                        help="which of the three runs to make")
    args = parser.parse_args()
    spec = f"{tutorial_file()}:BubbleSort"
    instance = ["--items", str(args.items), "--shuffle", str(args.shuffle)]
    adapter = WORK / f"sorter-smollm2{'-' + args.adapter_tag if args.adapter_tag else ''}"
    cli = [sys.executable, "-m", "maker.cli"]
    if not (adapter / "training.json").is_file() or "evaluation" not in json.loads((adapter / "training.json").read_text()):
        trained = subprocess.run([*cli, "train", spec, "--base", "smollm2", "--out", str(adapter), "--budget-min",
                                  str(args.budget_min), "--lora-rank", str(args.lora_rank), "--batch-size",
                                  str(args.batch_size), "--temperature", str(args.temperature), "--no-progress", "--json",
                                  *instance], stdout=subprocess.PIPE, text=True)
        if trained.returncode not in (0, 1):
            sys.exit(f"maker train failed ({trained.returncode})")
    training = json.loads((adapter / "training.json").read_text())
    estimate = json.loads(subprocess.run(
        [*cli, "estimate", spec, *instance, "--backend", "hf", "--model", str(adapter), "--samples",
         str(args.estimate_samples), "--per-state", "4", "--temperature", str(args.temperature), "--json"],
        stdout=subprocess.PIPE, text=True, check=True).stdout)
    k = args.k or estimate["k_min_cautious"] or estimate["k_min"]
    runs = compare_runs([spec, *instance], adapter, k, args.temperature, args.runs, WORK, args.tag,
                        first_temperature=args.first_temperature)
    numbers = {"model": "SmolLM2-135M-Instruct (maker install smollm2) + LoRA adapter trained by maker train",
               "prompt": "the tutorial's compact prompt ('Which is larger, a or b? Reply with exactly: larger = <the number>')",
               "training": {key: training.get(key) for key in ("method", "base", "settings", "training", "evaluation",
                                                               "total_minutes", "unusable")},
               "estimate": {key: estimate.get(key) for key in ("p", "p_low", "p_high", "v", "red_flags", "collisions",
                                                               "expected_collisions", "all_wrong_states",
                                                               "same_wrong_states", "k_min", "k_min_cautious",
                                                               "temperature", "states")},
               "k": k, "runs": runs}
    path = write_result(f"llm_voting_smollm2{'_' + args.tag if args.tag else ''}", {**vars(args), "task": "docs/tasks.md BubbleSort", "steps":
                                              args.items * (args.items - 1) // 2}, numbers)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
