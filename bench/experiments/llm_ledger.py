"""Our own task family with a real LLM: SmolLM2-135M with a LoRA adapter from ``maker train --base
smollm2`` posts 10,000 ledger steps of books it never saw, alone and voting.

    .venv/bin/python bench/experiments/llm_ledger.py [--books 1] [--ledgers 40] [--postings 250] [--k 0]

1. The adapter is base_curves.py's ``ledger`` / ``smollm2`` folder (trained there, 20 minutes, on
   random balances and postings of the task's ``training_states``; made here if missing).
2. ``maker estimate`` measures it with every sample at ``--temperature`` on states of this run's books (``--books``,
   never trained on: the training states' ledgers are negative numbers), and k is the paper's k_min
   for the whole run at target 0.95 (``--k`` overrides it).
3. The books (``--ledgers`` chains of ``--postings`` dependent steps, at depth 1 so the chains share
   batches) are posted three ways through the in-process backend, each with a journal that
   ``maker verify`` replays: alone greedy, alone at the temperature, and voting (every sample at the
   temperature unless ``--first-temperature`` says otherwise). Errors are counted by the oracle
   after the fact.
Results: bench/results/llm_ledger_smollm2.json (model, prompt and temperature named in it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
sys.path.insert(0, str(Path(__file__).resolve().parent))
from base_curves import TASKS, WORK, summary, train, trained_folder  # noqa: E402
from common import write_result  # noqa: E402
from llm_voting import RUN_SETTINGS, compare_runs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--books", type=int, default=1)
    parser.add_argument("--ledgers", type=int, default=40)
    parser.add_argument("--postings", type=int, default=250)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--first-temperature", type=float, default=None, help="default: --temperature")
    parser.add_argument("--k", type=int, default=0, help="0: k_min from the estimate")
    parser.add_argument("--estimate-samples", type=int, default=400)
    parser.add_argument("--base", default="smollm2", help="which base_curves.py adapter: smollm2 or tiny")
    parser.add_argument("--adapter", type=str, default=None, help="another adapter folder on that base, trained "
                                                                    "by maker train on this task (not base_curves.py's)")
    parser.add_argument("--tag", default="", help="names the journals and the results file")
    parser.add_argument("--runs", type=lambda text: text.split(","), default=list(RUN_SETTINGS))
    args = parser.parse_args()
    adapter = Path(args.adapter) if args.adapter else trained_folder("ledger", args.base)
    record = json.loads((adapter / "training.json").read_text()) if args.adapter else train("ledger", args.base)
    spec = TASKS["ledger"]["spec"]
    instance = ["--books", str(args.books), "--ledgers", str(args.ledgers), "--postings", str(args.postings)]
    cli = [sys.executable, "-m", "maker.cli"]
    first = args.temperature if args.first_temperature is None else args.first_temperature
    estimate = json.loads(subprocess.run(
        [*cli, "estimate", spec, *instance, "--backend", "hf", "--model", str(adapter), "--samples",
         str(args.estimate_samples), "--per-state", "4", "--temperature", str(args.temperature), "--json"],
        stdout=subprocess.PIPE, text=True, check=True).stdout)
    print("estimate", json.dumps({key: estimate.get(key) for key in ("p", "p_low", "v", "k_min", "k_min_cautious")}),
          flush=True)
    k = args.k or estimate["k_min_cautious"] or estimate["k_min"]
    tag = f"{args.base}{'-' + args.tag if args.tag else ''}"
    runs = compare_runs([spec, *instance], adapter, k, args.temperature, args.runs, WORK, f"ledger-{tag}",
                        options=("--depth", "1"), first_temperature=first)
    made_by = f"{args.adapter}" if args.adapter else f"base_curves.py: ledger / {args.base}"
    numbers = {"model": f"{record['base']} + LoRA adapter trained by maker train ({made_by})",
               "prompt": "docs/examples/ledger.py's prompt ('rent 430, food 16, fuel 940\\nwithdraw 7 from fuel. New fuel "
                         "balance?\\n'), no few-shot",
               "training": summary(record),
               "estimate": {key: estimate.get(key) for key in ("p", "p_low", "p_high", "v", "red_flags", "collisions",
                                                               "expected_collisions", "all_wrong_states",
                                                               "same_wrong_states", "k_min", "k_min_cautious",
                                                               "temperature", "first_temperature", "states")},
               "k": k, "runs": runs}
    path = write_result(f"llm_ledger_{tag}", {**vars(args), "task": "docs/examples/ledger.py Ledger", "depth": 1,
                                              "steps": args.ledgers * args.postings}, numbers)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
