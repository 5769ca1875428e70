"""A real pretrained LLM on each step type, untuned: p-hat, red flags, collisions and locked-in errors.

    .venv/bin/python bench/experiments/llm_steps.py [--model smollm2] [--states 200] [--per-state 8]
        [--shots 5] [--temperature 0.6] [--paper-states 16] [--only sort-compare,...]

``--only`` measures some step types again and keeps the others' numbers in the results file.

Each step type is measured by ``maker estimate``'s own code (``estimate_async``) through the in-process
backend: per state, the first sample greedy and the rest at ``--temperature``, checks on (as a run).
- ``sort-compare``: the training tutorial's step (docs/tasks.md, BubbleSort), its compact prompt with
  ``--shots`` solved examples of other pairs before it (``maker.prompting``), replies ending at the line's end;
- ``multiply-product`` / ``multiply-sum``: multiplication's digit steps, likewise few-shot (examples of
  the same kind);
- ``hanoi-compact``: Hanoi's compact prompt, few-shot (``--hanoi-states`` x ``--hanoi-per-state``: its
  replies are about 120 tokens at 20 disks);
- ``hanoi-paper``: Hanoi's paper prompt (full instructions, zero-shot, as the paper asked its models),
  fewer states (``--paper-states``), red-flag limit 750 tokens as the paper.
States are drawn with a seed other than the examples' (an example equal to the state asked is
never shown). The oracle judges samples after the fact only. Results: bench/results/llm_steps_<model>.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import RESULTS, write_result  # noqa: E402
from llm_voting import tutorial_file  # noqa: E402  (the tutorial, saved under runs/llm_voting)
from maker_tasks.hanoi import HanoiTask, training_state  # noqa: E402
from maker_tasks.multiply import MultiplyTask  # noqa: E402

from maker.backends.hf import HFBackend  # noqa: E402
from maker.estimate import estimate_async  # noqa: E402
from maker.loading import load_task_class  # noqa: E402
from maker.pretrained import local_folder  # noqa: E402
from maker.task import trajectory_sample  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
STATE_SEED = 12345  # the states measured; the few-shot examples use the run's seed (0)
KEPT = ("p", "p_low", "p_high", "v", "valid", "correct", "samples", "red_flags", "pairs", "collisions",
        "collisions_same", "expected_collisions", "collision_p_value", "all_wrong_states", "same_wrong_states",
        "k_min", "k_min_cautious", "mean_output_tokens", "samples_per_second", "few_shot", "stop", "max_tokens",
        "temperature", "first_temperature", "checks")


def tutorial_task():
    """The BubbleSort task of docs/tasks.md, as a user saves it (``llm_voting.tutorial_file``)."""
    return load_task_class(f"{tutorial_file()}:BubbleSort")(items=200, shuffle=1)


def step_types(args: argparse.Namespace) -> dict[str, tuple]:
    """name -> (task, states, few_shot, max_tokens or None)."""
    rng = random.Random(STATE_SEED)
    sort = tutorial_task()
    multiply = MultiplyTask(a="".join(rng.choice("123456789") for _ in range(40)),
                            b="".join(rng.choice("123456789") for _ in range(12)))
    walked = trajectory_sample(multiply, random.Random(STATE_SEED), 4 * args.states)
    hanoi, paper = HanoiTask(disks=20), HanoiTask(disks=20, prompt_style="paper")
    return {
        "sort-compare": (sort, sort.training_states(rng, args.states), args.shots, None),
        "multiply-product": (multiply, [s for s in walked if multiply.kind(s) == "product"][:args.states], args.shots, None),
        "multiply-sum": (multiply, [s for s in walked if multiply.kind(s) == "sum"][:args.states], args.shots, None),
        "hanoi-compact": (hanoi, [training_state(rng, 20) for _ in range(args.hanoi_states)], args.shots, None),
        "hanoi-paper": (paper, [training_state(rng, 20) for _ in range(args.paper_states)], None, 750),
    }


async def measure(args: argparse.Namespace) -> dict:
    folder = local_folder(args.model)
    if folder is None:
        sys.exit(f"model {args.model!r} not found: run `maker install {args.model}`")
    found = {}
    types = step_types(args)
    async with HFBackend(str(folder), max_batch=args.max_batch) as backend:
        for name, (task, states, shots, max_tokens) in types.items():
            if args.only and name not in args.only:
                continue
            report = await estimate_async(
                task, backend, samples=len(states), states=states,
                per_state=2 if not shots else args.hanoi_per_state if name.startswith("hanoi") else args.per_state,
                temperature=args.temperature, first_temperature=0.0, checks=True, few_shot=shots,
                max_tokens=max_tokens, steps=1_048_575, seed=args.seed)
            data = report.to_json()
            found[name] = {"states": report.states, **{key: data.get(key) for key in KEPT}}
            print(f"{name}: p {report.p}, v {report.v:.3f}, all wrong on {report.all_wrong_states} of "
                  f"{report.states} states, red flags {report.red_flags}", flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--states", type=int, default=200)
    parser.add_argument("--per-state", type=int, default=8)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--hanoi-states", type=int, default=40, help="hanoi-compact's states (its replies are long)")
    parser.add_argument("--hanoi-per-state", type=int, default=4)
    parser.add_argument("--paper-states", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", type=lambda text: text.split(","), default=None)
    args = parser.parse_args()
    found = asyncio.run(measure(args))
    settings = {**vars(args), "prompts": "few-shot (maker.prompting) on each task's compact prompt; hanoi-paper: the "
                "paper's prompt, zero-shot", "state_seed": STATE_SEED}
    name = f"llm_steps_{args.model}"
    earlier = RESULTS / f"{name}.json"
    if args.only and earlier.is_file():  # a partial rerun keeps the other step types' numbers, and their settings
        record = json.loads(earlier.read_text())
        found = {**record["results"], **found}
        settings = {**record["settings"], "rerun": {"only": args.only, **{k: v for k, v in vars(args).items() if k != "only"}}}
    path = write_result(name, settings, found)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
