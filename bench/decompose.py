"""The MAKER paper's App. F problem sets, solved by agent decomposition (``maker solve``), beside two baselines.

    .venv/bin/python bench/decompose.py --family multiply --size 5            # 200 problems of 5 x 5 digits
    .venv/bin/python bench/decompose.py --family sort --size 500 --count 50 --seed 44
    .venv/bin/python bench/decompose.py --family multiply --size 5 --backend sim --tag sim

A problem set from the paper's own generator (``MultiplyProblems.paper_set``, ``SortProblems.paper_set``; the
answers count wrong ones afterwards, never reach a vote) is solved three ways, each with a journal under
runs/decompose/ that a rerun resumes and ``verify_solve`` replays:

- ``decomposed``: ``maker.solve`` at ``--k`` (every role);
- ``solver_alone``: the solver on each whole problem (``max_depth = 0``: long multiplication in one chain,
  insertion sort by comparisons), the same k;
- ``k1``: the decomposition with k = 1 (one sample decides each step; the per-node rule still redoes a node once).

Numbers per run: problems right, wrong and failed, the failure classes, samples and voted steps per problem,
seconds, and each role's steps, samples, vote share and red flags. The default backend is the family's own
microagents, in process (``--backend sim`` is the simulated one, labelled so in the results). Beside them, the
paper's Fig. 12 (gpt-4.1-mini for every role, depth 5): every 5 x 5 problem, about 0.95 at 6 x 6.
Results: bench/results/decompose_<family>_<size>[_<tag>].json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for common.py
from common import RESULTS, commit, machine, write_result  # noqa: E402

from maker.loading import load_family  # noqa: E402
from maker.problems import DecomposerTask  # noqa: E402
from maker.solving import family_catalog, solve_async, verify_solve  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "runs" / "decompose"  # git-ignored: the journals
RUNS = ("decomposed", "solver_alone", "k1")
PAPER_FIG12 = {"multiply": {"5": 1.0, "6": 0.95}, "note": "gpt-4.1-mini for every role, depth 5, the solve rate "
                                                          "at its largest k (read off the figure; counts not stated)"}


def make_backend(family, kind: str, error_rate: float):
    if kind == "sim":
        from maker import SimulatedBackend

        return SimulatedBackend(DecomposerTask(family), error_rate=error_rate)
    from maker.backends.hf import HFBackend

    return HFBackend(family_catalog(family).folders())


async def one_run(name: str, family, questions, args) -> dict:
    settings = {"decomposed": {"k": args.k}, "solver_alone": {"k": args.k, "max_depth": 0}, "k1": {"k": 1}}[name]
    journal = WORK / f"{family.name}_{args.size}{'_' + args.tag if args.tag else ''}_{name}.jsonl"
    journal.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    async with make_backend(family, args.backend, args.error_rate) as backend:
        result = await solve_async(family, questions, backend, journal=journal, max_concurrency=args.concurrency,
                                   **{"max_depth": args.max_depth, **settings})
    wall = time.perf_counter() - began
    summary = result.summary(trees=False)
    summary.pop("results")
    count = len(questions)
    summary.update(solve_rate=round(summary["correct"] / count, 4), wall_seconds=round(wall, 1),
                   steps_per_problem=round(summary["steps"] / count, 1), seconds_per_problem=round(wall / count, 3),
                   verified={key: value for key, value in verify_solve(journal).items() if key != "issues"},
                   measured={"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit(),
                             "load_average_at_start": machine()["load_average_at_start"]})
    print(name, {key: summary[key] for key in ("solve_rate", "correct", "wrong", "failed", "samples_per_problem",
                                               "steps_per_problem", "wall_seconds", "replayed_nodes")}, flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", choices=["multiply", "sort"], required=True)
    parser.add_argument("--size", type=int, required=True, help="digits of each factor, or numbers in each list")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--max-depth", type=int, default=16)
    parser.add_argument("--backend", choices=["hf", "sim"], default="hf")
    parser.add_argument("--error-rate", type=float, default=0.05, help="sim only")
    parser.add_argument("--concurrency", type=int, default=64, help="problems in flight at once")
    parser.add_argument("--runs", type=lambda text: text.split(","), default=list(RUNS))
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    family = load_family(args.family)
    questions = family.paper_set(args.size, args.count, args.seed)
    name = f"decompose_{family.name}_{args.size}{'_' + args.tag if args.tag else ''}"
    runs = {run: asyncio.run(one_run(run, family, questions, args)) for run in RUNS if run in args.runs}
    models = {agent: str(Path(where).relative_to(ROOT)) if Path(where).is_relative_to(ROOT) else str(where)
              for agent, where in family_catalog(family).items()} if args.backend == "hf" else "SIMULATED"
    settings = {**vars(args), "problems": f"the paper's generator, Random({args.seed}), {args.count} problems"}
    earlier = _earlier_runs(name, settings, models)
    path = write_result(name, {**settings, "runs": [run for run in RUNS if run in {*earlier, *runs}]},
                        {"models": models, "runs": {**earlier, **runs}, "paper_fig12": PAPER_FIG12})
    print(f"written to {path}")


def _earlier_runs(name: str, settings: dict, models: object) -> dict:
    """The runs an earlier invocation measured for the same set, settings and models (each run keeps when and on
    which commit it was measured), so that a baseline added later sits beside them instead of replacing them."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    same = {key: value for key, value in old["settings"].items() if key != "runs"} == \
        {key: value for key, value in settings.items() if key != "runs"}
    if not same or old["results"].get("models") != json.loads(json.dumps(models)):  # as the file holds them (None: "null")
        return {}
    return {run: {**numbers, "measured": numbers.get("measured", {"when": old["when"], "commit": old["commit"]})}
            for run, numbers in old["results"]["runs"].items()}


if __name__ == "__main__":
    main()
