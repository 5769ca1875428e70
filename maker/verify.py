"""After-the-fact verification of a journal: replay every decided step against the task's rules.

Nothing here feeds back into a run: the oracle and the answer-free rules judge a finished (or interrupted)
run. Multi-chain runs are replayed chain by chain from the same plan, each chain's declared end state checked.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from maker.errors import TaskError
from maker.journal import JournalReader
from maker.loading import load_task
from maker.planner import Subtask, plan_for
from maker.replay import PlanVisit, replay_plan
from maker.task import Task, oracle_disagrees, oracle_fault, rule_violation

WRONG_STEPS_LISTED = 50


class SolutionDigest:
    """A fingerprint of the decided candidates in plan order, whichever way the chains interleaved in
    the journal: equal solutions, equal digests, at any depth.

    Each chain keeps a polynomial hash of its candidates' SHA-256s modulo the prime 2^127 - 1, and
    the chains' hashes join in plan order as if it were one sequence (h(A + B) = h(A) * BASE^|B| + h(B)),
    so nothing is kept per step. The result is reported as the SHA-256 of that number.
    """

    PRIME = (1 << 127) - 1
    BASE = 0x9E3779B97F4A7C15F39CC0605CEDC835  # any fixed number below PRIME

    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.chains: dict[str, tuple[int, int]] = {}  # name -> (hash, steps)

    def add(self, chain: str, candidate: Any) -> None:
        value = int.from_bytes(hashlib.sha256(json.dumps(candidate, sort_keys=True).encode()).digest()[:15], "big")
        acc, steps = self.chains.get(chain, (0, 0))
        self.chains[chain] = ((acc * self.BASE + value) % self.PRIME, steps + 1)

    def hexdigest(self) -> str:
        total = 0
        for name in self.order:
            acc, steps = self.chains.get(name, (0, 0))
            total = (total * pow(self.BASE, steps, self.PRIME) + acc) % self.PRIME
        return hashlib.sha256(total.to_bytes(16, "big")).hexdigest()


def verify_journal(path: str | os.PathLike[str], task_spec: str | None = None, visit: PlanVisit | None = None) -> dict[str, Any]:
    """Replay the journal at ``path``; report rule violations, oracle disagreements, failed chain
    end checks and whether the final state completes the task in its declared number of steps. The task
    is rebuilt from the journal's spec (a task file's absolute path), or from ``task_spec`` if given.
    ``visit`` sees every replayed step too (training collects its examples in the same pass)."""
    contents = JournalReader(path)
    header = contents.header
    spec = task_spec or header.get("spec") or header["task"]
    try:
        task = load_task(spec, **header.get("params", {}))
    except TaskError as exc:
        if task_spec or header.get("spec"):
            raise
        raise TaskError(f"{exc}; the journal names its task only as {header['task']!r} (class "
                        f"{header.get('class', 'unknown')}): give the task's spec (--task path/file.py:Class)") from None
    depth = header.get("config", {}).get("depth", 0)
    plan = plan_for(task, depth)
    digest = SolutionDigest(plan.order())
    found = {"violations": 0, "errors": 0, "oracle_faults": 0, "steps": 0}
    first_violation: list[str] = []
    wrong_steps: list[str] = []  # where the oracle disagreed, the first WRONG_STEPS_LISTED of them

    def judge(sub: Subtask, chain_task: Task, record: dict[str, Any], state: Any, candidate: Any) -> None:
        digest.add(sub.name, record["candidate"])
        found["steps"] += 1
        broken = rule_violation(chain_task, state, candidate, step=record["step"]) if chain_task.has_check else None
        if broken is not None:
            found["violations"] += 1
            first_violation.append(f"{sub.name} step {record['step']}: {broken.detail or broken.reason.value}")
        if chain_task.has_oracle and oracle_disagrees(chain_task, state, candidate):
            kind = "oracle_faults" if oracle_fault(chain_task, state) else "errors"
            found[kind] += 1
            if kind == "errors" and len(wrong_steps) < WRONG_STEPS_LISTED:
                wrong_steps.append(f"{sub.name} step {record['step']}")
        if visit is not None:
            visit(sub, chain_task, record, state, candidate)

    ends, final = replay_plan(task, plan, contents.records(), judge)
    bad_ends = sum(1 for name, state in ends.items() if (expect := plan.subtask(name).expect) is not None and not expect(state))
    done = task.is_done(final)
    declared = task.total_steps()
    violations, errors = found["violations"], found["errors"]
    in_declared_steps = declared is None or found["steps"] == declared
    return {
        "journal": str(path),
        "task": task.name,
        "params": header.get("params", {}),
        "depth": depth,
        "subtasks": len(ends),
        "steps": found["steps"],
        "declared_steps": declared,
        "complete": done,
        "rule_violations": violations if task.has_check else None,
        "first_violation": first_violation[0] if first_violation else None,
        "failed_end_checks": bad_ends,
        "errors": errors if task.has_oracle else None,
        "wrong_steps": wrong_steps if task.has_oracle else None,
        "oracle_faults": found["oracle_faults"] if task.has_oracle else None,
        "torn_tail": contents.torn_tail,
        "solution_sha256": digest.hexdigest(),
        "compressed": contents.compressed,
        "valid": done and in_declared_steps and violations == 0 and bad_ends == 0 and (errors == 0 or not task.has_oracle),
    }
