"""The tutorial task (docs/tasks.md's BubbleSort) learnt from journals alone, then run on lists it never saw.

1. Journals: simulated runs (SIMULATED: their decided steps are the oracle's answers after voting) of
   many lists: 40 of 150 numbers below 1000, 15 of 120 below 100, 10 of 100 below 32. Only those that
   ``maker verify`` passes are kept, as ``maker train --from-journal`` requires.
2. ``maker train sort.py:BubbleSort --from-journal KEPT... --budget-min 25`` (hard steps repeated, kinds of
   step balanced: the defaults). The oracle is never called by training.
3. ``maker run`` with the trained adapter on lists whose seeds no journal used (150 numbers: 11,175
   voted steps each), each journal verified after the fact.

Every stage keeps its output in ``--work`` and is skipped when that output exists, so a rerun resumes.

    .venv/bin/python bench/experiments/tutorial_from_journals.py [--work runs/tutorial_from_journals] [--budget-min 25]
Target (issue 28): 0 errors on a >= 10,000-step instance never seen in training.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))  # the repository, for maker
from maker.loading import load_task  # noqa: E402
from maker.task import OracleWalk  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
MAKER = [sys.executable, "-m", "maker"]
# (items, high, seeds): the lists whose journals teach
JOURNALLED = [(150, 1000, range(100, 140)), (120, 100, range(200, 215)), (100, 32, range(300, 310))]
# (items, high, seed): lists never journalled
UNSEEN = [(150, 1000, 1), (150, 1000, 2), (150, 1000, 3), (150, 100, 4)]


def tutorial_task(work: Path) -> Path:
    """docs/tasks.md's BubbleSort, saved as the tutorial says."""
    text = (ROOT / "docs" / "tasks.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "class BubbleSort" in b)
    path = work / "sort.py"
    path.write_text(block)
    return path


def maker(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MAKER, *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def compared(work: Path, items: int, seed: int, high: int) -> set[str]:
    """The distinct prompts (a step's prompt names its pair and nothing else) along a list's run, walked by the
    task's own oracle: how much of an unseen run the journals had shown training."""
    task = load_task(f"{work / 'sort.py'}:BubbleSort", items=items, shuffle=seed, high=high)
    return {task.prompt(state) for _, state, _ in OracleWalk(task)}


def journals(work: Path) -> dict[str, list[str]]:
    kept, dropped = [], []
    (work / "journals").mkdir(exist_ok=True)
    (work / "dropped").mkdir(exist_ok=True)
    for items, high, seeds in JOURNALLED:
        for seed in seeds:
            name = f"h{high}_{seed}.jsonl"
            path, bad = work / "journals" / name, work / "dropped" / name
            if not path.exists() and not bad.exists():
                maker("run", "sort.py:BubbleSort", "--items", str(items), "--shuffle", str(seed), "--high", str(high),
                      "--backend", "sim", "--journal", str(path), "--no-progress", "--json", cwd=work)
                if maker("verify", str(path), cwd=work).returncode != 0:  # a wrong step the sim's votes let through
                    path.rename(bad)
            (kept if path.exists() else dropped).append(name)
    return {"kept": kept, "dropped": dropped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "tutorial_from_journals")
    parser.add_argument("--budget-min", type=float, default=25.0)
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    tutorial_task(work)
    data = journals(work)
    model = work / "sorter-journals"
    if not (model / "training.json").exists() or not (model / "README.md").exists():
        trained = maker("train", "sort.py:BubbleSort", "--from-journal", *[f"journals/{n}" for n in data["kept"]],
                        "--out", str(model), "--budget-min", str(args.budget_min), "--no-progress", "--json", cwd=work)
        if trained.returncode != 0:
            sys.exit(f"maker train failed: {trained.stderr[-2000:]}")
    training = json.loads((model / "training.json").read_text())
    taught = set().union(*(compared(work, items, seed, high) for items, high, seeds in JOURNALLED for seed in seeds
                           if f"h{high}_{seed}.jsonl" in data["kept"]))
    runs = []
    for items, high, seed in UNSEEN:
        name = f"unseen_h{high}_{seed}"
        summary_path = work / f"{name}.json"
        if not summary_path.exists():
            ran = maker("run", "sort.py:BubbleSort", "--items", str(items), "--shuffle", str(seed), "--high", str(high),
                        "--backend", "hf", "--model", str(model), "--journal", f"{name}.jsonl", "--no-progress", "--json",
                        cwd=work)
            summary_path.write_text(ran.stdout.strip().splitlines()[-1] if ran.stdout.strip() else "{}")
        summary = json.loads(summary_path.read_text())
        verified = maker("verify", f"{name}.jsonl", "--json", cwd=work)
        report = json.loads(verified.stdout) if verified.stdout.strip().startswith("{") else {"valid": False}
        runs.append({"items": items, "high": high, "shuffle": seed, "steps": summary.get("steps"),
                     "solved": summary.get("solved"), "errors": summary.get("errors"),
                     "samples_per_step": summary.get("samples_per_step"), "seconds": summary.get("seconds"),
                     "red_flags": summary.get("red_flags"), "by_kind": summary.get("by_kind"),
                     "journal_valid": report.get("valid"), "wrong_steps": report.get("wrong_steps"),
                     "distinct_comparisons": len(pairs := compared(work, items, seed, high)),
                     "comparisons_also_in_journals": len(pairs & taught)})
        print(json.dumps(runs[-1]), flush=True)
    numbers = {"simulated_journals": True, "journals_kept": len(data["kept"]), "journals_dropped": data["dropped"],
               "data": {key: value for key, value in training["data"].items() if key != "journals"},
               "training": {key: value for key, value in training["training"].items() if key != "history"},
               "evaluation": training.get("evaluation"),
               "model_card": str(model / "README.md"), "unseen_runs": runs,
               "errors_total": sum(r["errors"] or 0 for r in runs)}
    settings = {"task": "docs/tasks.md BubbleSort (with its kinds of step)", "journalled_lists": [
        {"items": i, "high": h, "shuffles": f"{s.start}..{s.stop - 1}"} for i, h, s in JOURNALLED],
        "unseen_lists": [{"items": i, "high": h, "shuffle": s} for i, h, s in UNSEEN], "budget_min": args.budget_min,
        "model": "LoRA adapter on models/base (maker train defaults: hard steps x4, kinds balanced)",
        "run": "maker run --backend hf --model ADAPTER: k = 3, first sample greedy, then T = 1.0 (the adapter's manifest)"}
    path = write_result("tutorial_from_journals", settings, numbers)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
