"""The million-step benchmark with our own model: 20-disk Hanoi (1,048,575 steps), every move
and state written by the shipped microagent (in process, hf backend), voted, journalled, verified.

Runs the CLI in a child process (its progress bar goes to this process's stderr), records wall
time, steps/s, samples, red flags and the child's peak memory, then replays the journal with
``maker verify``. The journal is kept where ``--journal`` says, so an interrupted benchmark
resumes from it when run again (the record then says how many steps were resumed).

    .venv/bin/python bench/regression/model_million.py [--disks 20] [--depth 8] [--k 3] [--journal runs/model_d20.jsonl]
    .venv/bin/python bench/regression/model_million.py --draft 0             # one token per forward pass, as before drafting
    .venv/bin/python bench/regression/model_million.py --mix specialist,adapter --no-checks --journal runs/mix_d20.jsonl
    .venv/bin/python bench/regression/model_million.py --k-by-kind bench/results/estimate_by_kind_d20.json --name model_million_d20_k_by_kind --journal runs/kinds_d20.jsonl
    .venv/bin/python bench/regression/model_million.py --no-checks --escalate agent,k --escalate-agent adapter --hard-kinds disks5-8,disks9-12,disks13+ --name model_million_d20_ladder_nochecks --journal runs/ladder_d20.jsonl
    .venv/bin/python bench/regression/model_million.py --no-checks --escalate agent,k --escalate-agent adapter --witness --name model_million_d20_witness_nochecks --journal runs/witness_d20.jsonl

``--mix`` names the agents that draw each step's samples in turn (``maker run --mix``; the words
specialist and adapter stand for models/hanoi/model and models/adapters/hanoi). ``--no-checks``
turns the answer-free rule checks off, so that only format red flags and the vote stand between a
wrong reply and the journal (issue 14's setting). Every wrong step is then listed in the record,
found after the fact by ``maker verify``.

Targets: 0 errors (issue 4); at most 25 minutes on this 2-core machine with nothing else running
(issue 13: exact drafted decoding). The record holds the backend's counters: forward passes, drafted
and accepted tokens, and the seconds spent decoding.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import run_cli, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
SHORT_NAMES = {"specialist": ROOT / "models" / "hanoi" / "model", "adapter": ROOT / "models" / "adapters" / "hanoi"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=20)
    parser.add_argument("--depth", type=int, default=8, help="256 chains at once at depth 8")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--max-batch", type=int, default=512, help="sequences per forward batch (all chains' requests)")
    parser.add_argument("--max-samples-per-step", type=int, default=3000,
                        help="the rare hard states may need a few hundred samples at T = 1.0")
    parser.add_argument("--journal", default="runs/model_d20.jsonl")
    parser.add_argument("--draft", type=int, default=32, help="most draft tokens per row and pass (0: no drafting)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--mix", default=None, help="agents drawing samples in turn, e.g. specialist,adapter")
    parser.add_argument("--checks", action=argparse.BooleanOptionalAction, default=True,
                        help="the answer-free rule checks (--no-checks: only format red flags and the vote)")
    parser.add_argument("--k-by-kind", default=None,
                        help="k per kind of step: KIND=K pairs or an estimate's JSON (maker estimate --by-kind --json)")
    parser.add_argument("--escalate", default=None, help="the escalation ladder, e.g. paraphrase,agent,k")
    parser.add_argument("--escalate-agent", default=None, help="the agent rung's agent: specialist, adapter or a folder")
    parser.add_argument("--escalate-after", type=int, default=None)
    parser.add_argument("--hard-kinds", default=None, help="kinds that start on the agent rung")
    parser.add_argument("--witness", action="store_true", help="the agent rung's agent witnesses each step's first round")
    parser.add_argument("--name", default=None,
                        help="result file name (default: model_million_d<disks>, with _mix and _nochecks when set)")
    args = parser.parse_args()

    journal = Path(args.journal)
    journal.parent.mkdir(parents=True, exist_ok=True)
    cli_args = ["run", "hanoi", "--disks", str(args.disks), "--depth", str(args.depth), "--k", str(args.k),
             "--max-batch", str(args.max_batch), "--max-samples-per-step", str(args.max_samples_per_step),
             "--draft", str(args.draft), "--device", args.device]
    if args.threads is not None:
        cli_args += ["--threads", str(args.threads)]
    if args.mix:
        cli_args += ["--mix", ",".join(str(SHORT_NAMES.get(a, a)) for a in args.mix.split(","))]
    if not args.checks:
        cli_args += ["--no-checks"]
    if args.k_by_kind:
        cli_args += ["--k-by-kind", args.k_by_kind]
    if args.escalate:
        cli_args += ["--escalate", args.escalate]
        if args.escalate_agent:  # bound in the catalog by name, so the agent rung can call on it
            helper = SHORT_NAMES.get(args.escalate_agent, args.escalate_agent)
            cli_args += ["--agent", f"helper={helper}", "--escalate-agent", "helper"]
        if args.escalate_after is not None:
            cli_args += ["--escalate-after", str(args.escalate_after)]
        if args.hard_kinds:
            cli_args += ["--hard-kinds", args.hard_kinds]
        if args.witness:
            cli_args += ["--witness"]
    summary = run_cli(cli_args, journal=journal, stderr=None)  # the progress bar passes through
    wall, verified = summary["wall_seconds"], summary["verified"]

    numbers = {
        "simulated": False,
        "steps": summary["steps"],
        "resumed_steps": summary.get("resumed_steps"),
        "solved": summary["solved"],
        "errors": summary["errors"],
        "samples": summary["samples"],
        "samples_per_step": summary["samples_per_step"],
        "red_flags": summary["red_flags"],
        "red_flags_by_reason": summary["red_flags_by_reason"],
        "tokens": summary["tokens"],
        "max_votes_in_one_step": summary["max_votes_in_one_step"],
        "wall_seconds_incl_startup": round(wall, 1),
        "wall_minutes": round(wall / 60, 2),
        "engine_seconds": summary["seconds"],
        "steps_per_second": round((summary["steps"] - (summary.get("resumed_steps") or 0)) / wall, 1),
        "peak_rss_mb": round(summary["peak_rss_mb"], 1),
        "journal_mb": round(journal.stat().st_size / 1e6, 1),
        "journal_verified": verified["valid"],
        "journal_rule_violations": verified["rule_violations"],
        "solution_sha256": verified.get("solution_sha256"),
        "backend": summary.get("backend"),
        "backend_statistics": summary.get("backend_statistics"),
        "by_agent": summary.get("by_agent"),
        "by_kind": summary.get("by_kind"),
        "escalations": summary.get("escalations"),
        "k_by_kind": summary.get("config", {}).get("k_by_kind"),  # a failed run's summary has no config
        "failure": summary.get("error"),  # why a run failed (a step or a chain that could not be decided), if it did
        "journal_errors": verified.get("errors"),
        "first_wrong_steps": verified.get("wrong_steps"),
    }
    settings = {"command": " ".join(["maker", *cli_args, "--json", "--journal", str(journal)]), **vars(args)}
    default_name = f"model_million_d{args.disks}" + ("_mix" if args.mix else "") + ("" if args.checks else "_nochecks")
    path = write_result(args.name or default_name, settings, numbers)
    print(json.dumps(numbers, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
