"""After-the-fact verification of a journal: replay every decided step against the task's rules.

Nothing here feeds back into a run: this is where the oracle and the answer-free rules judge a
finished (or interrupted) run.
"""

from __future__ import annotations

import os
from typing import Any

from maker.journal import read_journal
from maker.loading import load_task
from maker.redflag import RedFlag


def verify_journal(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Replay the journal at ``path``; report rule violations, oracle disagreements and whether
    the final state completes the task."""
    contents = read_journal(path)
    header = contents.header
    task = load_task(header.get("spec") or header["task"], **header.get("params", {}))
    state = task.initial_state()
    violations = errors = 0
    first_violation: str | None = None
    for index, record in enumerate(contents.records):
        if record.get("chain") is None and record["step"] != index:
            raise ValueError(f"journal record {index + 1} is step {record['step']}, expected {index}")
        candidate = task.candidate_from_json(record["candidate"])
        if task.has_check:
            try:
                task.check(state, candidate)
            except RedFlag as flag:
                violations += 1
                if first_violation is None:
                    first_violation = f"step {record['step']}: {flag.detail}"
        if task.has_oracle:
            try:
                errors += task.oracle(state) != candidate
            except Exception:
                errors += 1
        state = task.apply(state, candidate)
    done = task.is_done(state)
    return {
        "journal": str(path),
        "task": task.name,
        "params": header.get("params", {}),
        "steps": len(contents.records),
        "complete": done,
        "rule_violations": violations if task.has_check else None,
        "first_violation": first_violation,
        "errors": errors if task.has_oracle else None,
        "torn_tail": contents.torn_tail,
        "valid": done and violations == 0 and (errors == 0 or not task.has_oracle),
    }
