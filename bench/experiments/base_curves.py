"""Our tiny shared base against SmolLM2-135M as ``maker train``'s base: held-out accuracy against
minutes of training, on two tasks, the same settings for both bases within a task.

    .venv/bin/python bench/experiments/base_curves.py [--tasks ledger,tutorial]

- ``ledger``: docs/examples/ledger.py, our own family (three-account books, one posting a step,
  the reply is the new balance), built for neither base. 20 minutes, LoRA r = 16, batch 32.
- ``tutorial``: the training tutorial's BubbleSort (docs/tasks.md, one comparison a step).
  8 minutes, LoRA r = 8, batch 32: the settings of the SmolLM2 adapter that llm_voting.py measured.

Each pair is one ``maker train TASK --base BASE`` (skipped when its folder is already trained; the
same command resumes a stopped one). The curve is the trainer's own: every minute, greedy exact match
on the held-out states (random states of the task's ``training_states``, none trained on). After
training, ``maker train`` samples held-out states of the run's instance at T = 1.0 through the
in-process backend: its p-hat is recorded too. The machine's other work slows training, so the
minutes are wall minutes on this 2-core CPU, with nothing else running on purpose.
Results: bench/results/base_curves.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

from maker.training.microagent import locked_in_because  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
WORK = ROOT / "runs" / "llm_ledger"  # git-ignored: the task files and the trained folders
BASES = {"smollm2": "smollm2", "tiny": str(ROOT / "models" / "base" / "model")}
TASKS = {
    "ledger": {"spec": str(ROOT / "docs" / "examples" / "ledger.py") + ":Ledger", "budget_min": 20,
               "settings": ["--lora-rank", "16", "--batch-size", "32"]},
    "tutorial": {"spec": None, "budget_min": 8, "settings": ["--lora-rank", "8", "--batch-size", "32"]},
}


def tutorial_spec() -> str:
    """The tutorial's task saved as a user saves it (llm_voting.py's copy)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from llm_voting import tutorial_file

    return f"{tutorial_file()}:BubbleSort"


def trained_folder(task: str, base: str) -> Path:
    return WORK / f"{task}-{base}"


def train(task: str, base: str) -> dict:
    """Train (or resume) one pair; its training.json."""
    folder = trained_folder(task, base)
    record = folder / "training.json"
    if not (record.is_file() and "evaluation" in json.loads(record.read_text())):
        setup = TASKS[task]
        spec = setup["spec"] or tutorial_spec()
        command = [sys.executable, "-m", "maker.cli", "train", spec, "--base", BASES[base], "--out", str(folder),
                   "--budget-min", str(setup["budget_min"]), *setup["settings"], "--temperature", "1.0",
                   "--no-progress", "--json"]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        if done.returncode not in (0, 1):  # 1: trained but not usable, which is a result too
            sys.exit(f"maker train {task} --base {base} failed ({done.returncode})")
    return json.loads(record.read_text())


def summary(record: dict) -> dict:
    training, evaluation = record["training"], record.get("evaluation") or {}
    held = training["held_out"]
    return {
        "base": record["base"], "settings": {key: record["settings"][key] for key in
                                             ("budget_min", "batch_size", "lora_rank", "lora_alpha", "lr")},
        "held_out": held,
        "curve": [{"minutes": point["minutes"], "step": point["step"], "held_out_errors": point["held_out_errors"],
                   "held_out_accuracy": round(1 - point["held_out_errors"] / held, 4),
                   "held_out_loss": point["held_out_loss"]} for point in training["history"]],
        "evaluation": {key: evaluation.get(key) for key in ("states", "samples", "p", "p_low", "p_high", "v",
                                                            "collisions", "expected_collisions", "all_wrong_states",
                                                            "temperature", "first_temperature", "unseen")},
        "unusable": record.get("unusable"), "locked_in": locked_in_because(record),
        "total_minutes": record.get("total_minutes"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=lambda text: text.split(","), default=list(TASKS))
    parser.add_argument("--bases", type=lambda text: text.split(","), default=list(BASES))
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    numbers = {}
    for task in args.tasks:
        for base in args.bases:
            numbers[f"{task}/{base}"] = summary(train(task, base))
            last = numbers[f"{task}/{base}"]
            print(f"{task} / {base}: {last['curve'][-1] if last['curve'] else 'no curve'}; "
                  f"p {last['evaluation']['p']}", flush=True)
    path = write_result("base_curves", {**vars(args), "tasks_settings": {t: TASKS[t] for t in args.tasks},
                                        "temperature": 1.0, "model": "SmolLM2-135M-Instruct (maker install smollm2) "
                                        "and models/base/model, each with a LoRA adapter trained by maker train"},
                        numbers)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
