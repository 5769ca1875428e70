"""One n x n-digit product solved by agent decomposition, from one ``maker solve`` command (issue 25's "beyond
the paper" point: 1000 x 1000 digits).

    .venv/bin/python bench/big_product.py --digits 1000 --seed 1000 --threads 1

The problem comes from the paper's generator (``MultiplyProblems.paper_set(digits, 1, seed)``), written with its
answer to runs/big_product/problem_<n>.jsonl; the answer only counts an error afterwards. The command it runs
(printed first) is ``maker solve --file that --journal runs/big_product/product_<n>.jsonl --no-tree --json``
with our microagents, in a child process; a rerun resumes the journal. Then ``maker verify`` replays it.
Results: bench/results/big_product_<n>.json (voted microsteps, samples, seconds, the verdict).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for common.py
from common import run_cli, write_result  # noqa: E402
from maker_tasks.multiply_problems import MultiplyProblems  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "runs" / "big_product"  # git-ignored: the problem file and the journal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the run (default: torch's)")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    problem = WORK / f"problem_{args.digits}.jsonl"
    question = MultiplyProblems.paper_set(args.digits, 1, args.seed)[0]
    problem.write_text(question.model_dump_json() + "\n")
    journal = WORK / f"product_{args.digits}.jsonl"
    command = ["solve", "--file", str(problem), "--k", str(args.k), "--no-tree", "--no-progress"]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    print("maker " + " ".join(command) + f" --journal {journal} --json", file=sys.stderr)
    summary = run_cli(command, journal=journal)
    wanted = ("solved", "correct", "wrong", "failed", "failures", "steps", "samples", "seconds", "wall_seconds",
              "peak_rss_mb", "k", "caught", "roles", "replayed_nodes", "verified", "backend", "simulated")
    numbers = {key: summary.get(key) for key in wanted}
    path = write_result(f"big_product_{args.digits}", {"digits": args.digits, "seed": args.seed, "k": args.k,
                                                      "threads": args.threads, "command": "maker " + " ".join(command),
                                                      "problem": "the paper's generator, one problem"}, numbers)
    print(json.dumps({key: numbers[key] for key in ("correct", "wrong", "steps", "seconds")}), path)


if __name__ == "__main__":
    main()
