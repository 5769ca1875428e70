"""An adapter attached unchanged to a sibling base: does what it learnt go with it? (issue 14)

    .venv/bin/python bench/experiments/adapter_transfer.py [--sibling models/base/sibling] [--methods-out runs/methods]
    .venv/bin/python bench/experiments/adapter_transfer.py --sibling models/base/longer --name adapter_transfer_longer

The sibling (``models/base/train.py --seed 1 --out models/base/sibling``) has the shared base's
recipe, architecture, tokenizer and training time, with other initial weights and another stream
of examples. A kinder sibling is the base itself trained longer (``models/base/train.py
--continue-from models/base/model --out models/base/longer``). Resa (arXiv 2506.09967) reports
that an SAE-tuned adapter can be attached to a sibling at test time. For each task this
measures, on the same states:

- each base alone (no adapter): the sibling learnt both tasks from the same mixture, so an adapter
  pays on the sibling only if it beats the sibling alone;
- each adapter on its own base, and attached unchanged to the sibling: a copy of its folder whose
  manifest names the sibling as its base, every weight as trained.

The adapters are the task's shipped one (models/adapters/<task>, LoRA) and the 2-minute LoRA,
SAE-tuned (kl) and SAE-tuned (sft) adapters of ``bench/experiments/adapter_methods.py`` (run that first; its
folders are under --methods-out). Full fine-tuning writes a whole model, with nothing to attach.
The states and the evaluation are adapter_methods' own (``maker train``'s): 500 states of a
20-disk run / of 20-digit products that the 20,000 training examples do not hold, 2 samples each
(the first greedy, then T = 1.0), checks on, through ``HFBackend``.
Results: bench/results/adapter_transfer.json, and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

import maker  # noqa: E402
from maker.config import adapter_base  # noqa: E402
from maker.training.microagent import _oracle_data, _run_states, evaluate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
BASE = ROOT / "models" / "base" / "model"
TASKS = {"hanoi": {"disks": 20}, "multiply": {"digits": 20}}
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "maker.json")


def eval_states(task: maker.Task, args: argparse.Namespace) -> tuple[list, bool]:
    """adapter_methods' evaluation states: the run's states that its training examples do not hold."""
    train, _, _ = _oracle_data(task, args.examples, 300, args.seed)
    return _run_states(task, {e.prompt for e in train}, args.eval_states, args.seed + 2)


def on_base(adapter: Path, base: Path, scratch: Path) -> Path:
    """A copy of ``adapter`` whose manifest names ``base``: the weights unchanged."""
    copy = scratch / f"{adapter.name}-on-{base.name}"
    copy.mkdir()
    for name in ADAPTER_FILES:
        shutil.copy2(adapter / name, copy / name)
    manifest = json.loads((copy / "maker.json").read_text())
    manifest["base"] = str(base.resolve())
    (copy / "maker.json").write_text(json.dumps(manifest, indent=2))
    assert adapter_base(copy) == base.resolve(), "the backend would load the adapter onto another base"
    return copy


def measured(task: maker.Task, folder: Path, states: list) -> dict:
    ev = evaluate(task, folder, states, temperature=1.0)
    return {"samples": ev["samples"], "not_right": ev["wrong_samples"], "valid": ev["valid"],
            "wrong_valid": ev["valid"] - ev["correct"], "p": ev["p"], "p_low": ev["p_low"],
            "collisions": ev["collisions"], "collisions_same": ev["collisions_same"],
            "all_wrong_states": ev.get("all_wrong_states")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sibling", default=str(ROOT / "models" / "base" / "sibling"))
    parser.add_argument("--methods-out", default="runs/methods", help="bench/experiments/adapter_methods.py's --out")
    parser.add_argument("--tasks", default="hanoi,multiply")
    parser.add_argument("--grid-methods", default="lora,sae-lora,sae-lora-sft",
                        help="adapter_methods' 2-minute adapters to move (its folders <task>-<method>-2)")
    parser.add_argument("--examples", type=int, default=20_000, help="as adapter_methods was run")
    parser.add_argument("--eval-states", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="adapter_transfer", help="result file: bench/results/NAME.json")
    args = parser.parse_args()
    sibling = Path(args.sibling).resolve()
    if not (sibling / "config.json").is_file():
        sys.exit(f"no sibling base in {sibling}: train one with models/base/train.py --seed 1 --out {sibling}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks.split(","):
            task = maker.load_task(name, **TASKS[name])
            states, unseen = eval_states(task, args)
            adapters = {"shipped lora": ROOT / "models" / "adapters" / name}
            for method in filter(None, args.grid_methods.split(",")):
                folder = Path(args.methods_out) / f"{name}-{method}-2"
                if not (folder / "adapter_config.json").is_file():
                    sys.exit(f"no adapter in {folder}: run bench/experiments/adapter_methods.py --budgets 2 --methods {method} first")
                adapters[f"{method} (2 min)"] = folder
            for base in (BASE, sibling):
                rows.append({"task": name, "adapter": "none", "base": base.name, **measured(task, base, states),
                             "states_unseen": unseen})
                print(rows[-1], flush=True)
            for label, folder in adapters.items():
                for base in (BASE, sibling):
                    attached = on_base(folder, base, Path(tmp))
                    rows.append({"task": name, "adapter": label, "base": base.name,
                                 **measured(task, attached, states), "states_unseen": unseen})
                    print(rows[-1], flush=True)
    print("\n| task | adapter | on base | samples not right | wrong among valid | collisions (alike) |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['task']} | {r['adapter']} | {r['base']} | {r['not_right']} of {r['samples']} | "
              f"{r['wrong_valid']} of {r['valid']} | {r['collisions']} ({r['collisions_same']}) |")
    print(f"wrote {write_result(args.name, vars(args), {'rows': rows})}")


if __name__ == "__main__":
    main()
