"""How often the discriminator-rule test's call leaves a problem unsolved: the paper's 5 x 5 set (40 problems),
every role and the judge played by tests/test_solving.py's scripted server (injected errors), through
`maker solve --backend openai --discriminate decompose,solve,compose`, repeated. The threaded server answers
concurrent requests in no fixed order, so each repetition draws its errors differently.

    .venv/bin/python bench/experiments/discriminator_flake_rate.py [--judge-k 3] [--runs 300]
Prints one line per run that was not 40 of 40 right, then the count.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))  # the repository, for tests and tasks
from maker.cli import main  # noqa: E402
from tasks.multiply_problems import MultiplyProblems  # noqa: E402
from tests.backends.fault_server import threaded_fault_server  # noqa: E402
from tests.test_solving import paper_roles  # noqa: E402


def one_run(judge_k: int, folder: Path) -> dict:
    problems = folder / "mul5.jsonl"
    problems.write_text("".join(q.model_dump_json() + "\n" for q in MultiplyProblems.paper_set(5, 40, 42)))
    out = io.StringIO()
    with threaded_fault_server(paper_roles(random.Random(11))) as server, contextlib.redirect_stdout(out):
        main(["solve", "--file", str(problems), "--family", "multiply-paper", "--backend", "openai", "--base-url",
              server.base_url, "--model", "scripted", "--temperature", "0.5", "--json", "--no-progress",
              "--discriminate", "decompose,solve,compose", "--k-role", f"discriminate={judge_k}"])
    return json.loads(out.getvalue())


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judge-k", type=int, default=3)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    bad = 0
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            summary = one_run(args.judge_k, Path(tmp))
        if summary["correct"] != 40:
            bad += 1
            print(f"run {run}: {summary['correct']} right, {summary['wrong']} wrong, {summary['failed']} failed "
                  f"{summary['failures']}", flush=True)
    print(f"judge k = {args.judge_k}: {bad} of {args.runs} runs not 40 of 40 right")


if __name__ == "__main__":
    main_()
