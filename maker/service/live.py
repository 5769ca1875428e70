"""What a watcher sees of a running job: ``LiveView`` observes the run and keeps its numbers; for a ``maker solve``
job, also each problem's decomposition tree as it grows (from its chains' names, ``maker.solving.chain_node``)
and the problems answered so far.

It does little per step (a count per chain, one comparison for the hardest steps), so that watching
costs the run almost nothing; the statistics themselves come from the run's own recorder through the
progress callback, at most every ``LIVE_EVERY`` seconds (a snapshot sums every chain's tally). Watchers
wait for a change (``wait``) instead of polling.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from maker.errors import Flagged
from maker.events import ChainInfo, Observer, StepDecision
from maker.planner import plan_for
from maker.problems import DISCRIMINATE, ProblemFamily
from maker.solving import ProblemOutcome, Question, chain_node
from maker.statistics import RunStatistics
from maker.task import Task

HARDEST_KEPT = 10  # steps listed by samples drawn
EVENTS_KEPT = 1000  # recent discrete events (a watcher that falls further behind gets the newest ones)
FLAG_EXAMPLES = 3  # replies kept per red-flag reason
EXAMPLE_CHARS = 200
RATE_WINDOW = 5.0  # seconds of snapshots the steps-per-second figure spans (batched backends decide in bursts)
LIVE_EVERY = 0.5  # seconds between two snapshots the view takes, at least: its streams send one a second
TREES_SHOWN = 3  # a solve job's most recently started problems whose trees the view carries
NODES_SHOWN = 200  # nodes of one tree the view carries


class LiveView(Observer):
    """A running job's numbers, for the service's watchers (``view``)."""

    def __init__(self) -> None:
        self.statistics: dict[str, Any] = {}
        self.steps_per_second = 0.0
        self.flag_examples: dict[str, deque[dict[str, Any]]] = {}
        self.hardest: list[tuple[int, int, str, int]] = []  # a min-heap: (samples, votes, chain, step)
        self.chains: dict[str, dict[str, Any]] = {}
        self.total_steps: int | None = None  # the task's declared steps, for the page's progress bar
        self.chain_steps: dict[str, int | None] = {}  # each chain's declared steps
        self.events: deque[tuple[int, str, dict[str, Any]]] = deque(maxlen=EVENTS_KEPT)  # (number, kind, data)
        self._numbered = 0
        self._changed = asyncio.Event()
        self._recent: deque[tuple[float, int]] = deque()  # (time, steps) of the snapshots in the last RATE_WINDOW
        self.problems: dict[str, int] | None = None  # a solve job's counts: total, answered, right, wrong, failed
        self.labels: dict[str, str] = {}  # problem id -> its description
        self.trees: dict[str, dict[str, dict[str, Any]]] = {}  # problem id -> node path -> its split, role, done
        self.recent_problems: deque[str] = deque(maxlen=TREES_SHOWN)

    def expect(self, task: Task, depth: int) -> None:
        """What the run will do: its declared steps, and each chain's."""
        plan = plan_for(task, depth)
        self.total_steps = task.total_steps()
        self.chain_steps = {name: plan.subtask(name).steps for name in plan.order()}

    def expect_problems(self, family: ProblemFamily, questions: Sequence[Question]) -> None:
        """A solve job: its problems, whose trees grow as it runs (no plan of chains)."""
        self.problems = {"total": len(questions), "answered": 0, "right": 0, "wrong": 0, "failed": 0}
        self.labels = {q.id: family.describe(family.parse(q.question)) for q in questions}

    def problem_finished(self, outcome: ProblemOutcome) -> None:
        assert self.problems is not None, "expect_problems() first"
        self.problems["failed" if outcome.answer is None else "answered"] += 1
        if outcome.correct is not None:
            self.problems["right" if outcome.correct else "wrong"] += 1
        self._event("problem_finished", {"problem": outcome.id, "answer": (outcome.answer or "")[:EXAMPLE_CHARS],
                                         "correct": outcome.correct, "failure": outcome.failure})
        self.touch()

    def _node(self, chain: ChainInfo) -> tuple[dict[str, Any], str] | None:
        """A solve chain's node in its problem's tree (made on first sight) and the chain's role, or None for a
        plan's chain. A node's role is the last one of its own to start (a judge's chain is not one)."""
        found = chain_node(chain.name) if self.problems is not None else None
        if found is None:
            return None
        pid, path, role = found
        if pid not in self.trees:
            self.recent_problems.append(pid)
        node = self.trees.setdefault(pid, {}).setdefault(path, {"split": None, "role": role, "done": False})
        if role != DISCRIMINATE:
            node["role"] = role
        return node, role

    # --- the run's events ------------------------------------------------------------------
    def progress(self, snapshot: RunStatistics) -> None:
        now, steps = time.perf_counter(), snapshot.steps
        self._recent.append((now, steps))
        while len(self._recent) > 2 and now - self._recent[1][0] >= RATE_WINDOW:
            self._recent.popleft()
        first_time, first_steps = self._recent[0]
        if now > first_time:
            self.steps_per_second = (steps - first_steps) / (now - first_time)
        self.statistics = snapshot.to_json()
        self.touch()

    def touch(self) -> None:
        """Wake every watcher (new numbers, or the job changed state)."""
        self._changed.set()
        self._changed = asyncio.Event()  # a fresh one for the next change: no watcher clears another's

    async def wait(self, timeout: float) -> None:
        """Until the next change, or ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        self._numbered += 1
        self.events.append((self._numbered, kind, data))

    def events_after(self, number: int) -> list[tuple[int, str, dict[str, Any]]]:
        """The kept discrete events numbered above ``number``, oldest first."""
        return [event for event in self.events if event[0] > number]

    def chain_started(self, chain: ChainInfo, state: Any) -> None:
        if self._node(chain) is not None:  # a solve's node: its tree shows it, not the list of chains
            self._event("chain_started", {"chain": chain.name, "attempt": chain.attempt})
            return
        self.chains[chain.name] = {"steps": 0, "attempt": chain.attempt, "done": False}
        self._event("chain_started", {"chain": chain.name, "attempt": chain.attempt})

    def chain_reset(self, chain: ChainInfo, reason: str) -> None:
        self._event("chain_reset", {"chain": chain.name, "reason": reason})

    def chain_finished(self, chain: ChainInfo, state: Any) -> None:
        found = self._node(chain)
        if found is not None:
            node, role = found
            if role == "decompose":
                node["split"] = state.split
            elif role in ("solve", "compose"):
                node["done"] = True
            self._event("chain_finished", {"chain": chain.name})
            return
        self.chains.setdefault(chain.name, {"steps": 0, "attempt": chain.attempt})["done"] = True
        self._event("chain_finished", {"chain": chain.name, "steps": self.chains[chain.name]["steps"]})

    def red_flag(self, chain: ChainInfo, step: int, flagged: Flagged) -> None:
        examples = self.flag_examples.setdefault(flagged.reason.value, deque(maxlen=FLAG_EXAMPLES))
        example = {"chain": chain.name, "step": step, "reason": flagged.reason.value, "detail": flagged.detail,
                   "reply": flagged.text[:EXAMPLE_CHARS]}
        examples.append(example)
        self._event("red_flag", example)

    def step_decided(self, chain: ChainInfo, step: int, state: Any, decision: StepDecision) -> None:
        entry = self.chains.get(chain.name)
        if entry is not None:
            entry["steps"] = step + 1
        if decision.rounds > 1 and not decision.replayed:
            self._event("contested_step", {"chain": chain.name, "step": step, "samples": decision.samples,
                                           "votes": decision.votes, "rounds": decision.rounds})
        if len(self.hardest) < HARDEST_KEPT:
            heapq.heappush(self.hardest, (decision.samples, sum(decision.votes), chain.name, step))
        elif decision.samples > self.hardest[0][0]:
            heapq.heapreplace(self.hardest, (decision.samples, sum(decision.votes), chain.name, step))

    # --- for watchers ----------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        hardest = sorted(self.hardest, reverse=True)
        return {"statistics": self.statistics, "steps_per_second": round(self.steps_per_second, 1),
                "red_flag_examples": {reason: list(found) for reason, found in self.flag_examples.items()},
                "hardest_steps": [{"chain": c, "step": s, "samples": n, "votes": v} for n, v, c, s in hardest],
                "chains": self.chains, "total_steps": self.total_steps, "chain_steps": self.chain_steps,
                **({} if self.problems is None else {"problems": self.problems, "trees": self._trees()})}

    def _trees(self) -> list[dict[str, Any]]:
        """The most recently started problems' trees, newest first, each node with its path and depth."""
        shown = []
        for pid in reversed(self.recent_problems):
            nodes = sorted(self.trees.get(pid, {}).items(), key=lambda item: [int(n) for n in item[0].split(".") if n])
            shown.append({"problem": pid, "label": self.labels.get(pid, pid), "nodes": len(nodes),
                          "tree": [{"path": path or "root", "depth": path.count(".") + bool(path), **node}
                                   for path, node in nodes[:NODES_SHOWN]]})
        return shown
