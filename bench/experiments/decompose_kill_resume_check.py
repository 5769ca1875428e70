"""The check after bench/experiments/decompose_kill_resume.sh: no split or result journalled twice, the same answers
as the uninterrupted run, and the rerun's summary and ``maker verify``'s report; written to bench/results/."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

RUNS = Path(__file__).resolve().parent.parent.parent / "runs"


def journal(path: Path) -> tuple[dict[str, str], int, int]:
    """Each problem's answer (its root's result), records journalled twice, and records in all."""
    answers, seen, twice, lines = {}, set(), 0, path.read_text().splitlines()[1:]
    for line in lines:
        record = json.loads(line)
        key = (record["problem"], record["node"], "split" in record)
        twice += key in seen
        seen.add(key)
        if record["node"] == "" and "result" in record:
            answers[record["problem"]] = record["result"]
    return answers, twice, len(lines)


def main() -> None:
    resumed, twice, records = journal(RUNS / "kill50.jsonl")
    clean, _, _ = journal(RUNS / "decompose" / "multiply_50_decomposed.jsonl")
    rerun = json.loads((RUNS / "kill50_second.json").read_text())
    verified = json.loads((RUNS / "kill50_verify.json").read_text())
    numbers = {"records": records, "records_journalled_twice": twice, "problems": len(resumed),
               "answers_equal_to_the_uninterrupted_run": sum(resumed[k] == clean.get(k) for k in resumed),
               "rerun": {k: rerun[k] for k in ("correct", "wrong", "failed", "replayed_nodes", "steps", "samples")},
               "verify": {k: verified[k] for k in ("valid", "nodes", "bad_splits", "rule_violations", "unfinished", "wrong",
                                                   "right")}}
    print(json.dumps(numbers))
    write_result("decompose_kill_resume_50", {"set": "the paper's 50x50, Random(44), 100 problems",
                                              "models": "models/adapters/multiply-decompose, models/adapters/multiply"},
                 numbers)


if __name__ == "__main__":
    main()
