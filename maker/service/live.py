"""What a watcher sees of a running job: ``LiveView`` observes the run and keeps its numbers.

It does little per step (a count per chain, one comparison for the hardest steps), so that watching
costs the run almost nothing; the statistics themselves come from the run's own recorder through the
progress callback, at most ten times a second. Watchers wait for a change (``wait``) instead of polling.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from typing import Any

from maker.errors import Flagged
from maker.events import ChainInfo, Observer, StepDecision
from maker.planner import plan_for
from maker.statistics import RunStatistics
from maker.task import Task

HARDEST_KEPT = 10  # steps listed by samples drawn
EVENTS_KEPT = 1000  # recent discrete events (a watcher that falls further behind gets the newest ones)
FLAG_EXAMPLES = 3  # replies kept per red-flag reason
EXAMPLE_CHARS = 200
RATE_WINDOW = 5.0  # seconds of snapshots the steps-per-second figure spans (batched backends decide in bursts)


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

    def expect(self, task: Task, depth: int) -> None:
        """What the run will do: its declared steps, and each chain's."""
        plan = plan_for(task, depth)
        self.total_steps = task.total_steps()
        self.chain_steps = {name: plan.subtask(name).steps for name in plan.order()}

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
        self.chains[chain.name] = {"steps": 0, "attempt": chain.attempt, "done": False}
        self._event("chain_started", {"chain": chain.name, "attempt": chain.attempt})

    def chain_reset(self, chain: ChainInfo, reason: str) -> None:
        self._event("chain_reset", {"chain": chain.name, "reason": reason})

    def chain_finished(self, chain: ChainInfo, state: Any) -> None:
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
                "chains": self.chains, "total_steps": self.total_steps, "chain_steps": self.chain_steps}
