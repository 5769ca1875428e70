"""After-the-fact verification of a journal: replay every decided step against the task's rules.

Nothing here feeds back into a run: this is where the oracle and the answer-free rules judge a
finished (or interrupted) run. Multi-chain runs are replayed chain by chain from the start states
of the same plan, with each chain's declared end state checked.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from maker.journal import read_journal, records_by_chain
from maker.loading import load_task
from maker.planner import plan_for
from maker.redflag import RedFlag


def verify_journal(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Replay the journal at ``path``; report rule violations, oracle disagreements, failed chain
    end checks and whether the final state completes the task."""
    contents = read_journal(path)
    header = contents.header
    task = load_task(header.get("spec") or header["task"], **header.get("params", {}))
    depth = header.get("config", {}).get("depth", 0)
    plan = plan_for(task, depth)
    order = plan.order()
    grouped = records_by_chain(contents)
    violations = errors = bad_ends = 0
    first_violation: str | None = None
    digest = hashlib.sha256()  # of the decided candidates in plan order: equal runs, equal digests
    results: dict[str, Any] = {}
    steps = 0
    for index, name in enumerate(order):
        sub = plan.subtask(name)
        chain_task = sub.task or task
        state = sub.start if sub.start_from is None else sub.start_from({d: results[d] for d in sub.after})
        records = grouped.get(None if len(order) == 1 else index, [])
        for record in records:
            candidate = chain_task.candidate_from_json(record["candidate"])
            digest.update(json.dumps(record["candidate"], sort_keys=True).encode())
            if chain_task.has_check:
                try:
                    chain_task.check(state, candidate)
                except RedFlag as flag:
                    violations += 1
                    if first_violation is None:
                        first_violation = f"{name} step {record['step']}: {flag.detail}"
            if chain_task.has_oracle:
                try:
                    errors += chain_task.oracle(state) != candidate
                except Exception:
                    errors += 1
            state = chain_task.apply(state, candidate)
        steps += len(records)
        if sub.expect is not None and not sub.expect(state):
            bad_ends += 1
        results[name] = state
    final = plan.finish(results) if plan.finish is not None else results[order[-1]]
    done = task.is_done(final)
    return {
        "journal": str(path),
        "task": task.name,
        "params": header.get("params", {}),
        "depth": depth,
        "subtasks": len(order),
        "steps": steps,
        "complete": done,
        "rule_violations": violations if task.has_check else None,
        "first_violation": first_violation,
        "failed_end_checks": bad_ends,
        "errors": errors if task.has_oracle else None,
        "torn_tail": contents.torn_tail,
        "solution_sha256": digest.hexdigest(),
        "valid": done and violations == 0 and bad_ends == 0 and (errors == 0 or not task.has_oracle),
    }
