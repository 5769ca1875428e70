"""Plans: a task decomposed into a graph of subtasks, each a chain of voted microsteps.

A plan is a networkx DiGraph whose nodes are ``Subtask`` chains and whose edges are dependencies that
pass results: a subtask with a known start state can run at once; one that needs other subtasks' results
builds its start state from their final states (``start_from``). A million microsteps are a loop inside
nodes, never a million graph nodes. A subtask may declare what its end state must be (``expect``): a free
error detector, derived from the decomposition itself (never from the oracle), checked when the chain ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from maker.errors import StepError, TaskError
from maker.task import Task


@dataclass(frozen=True)
class Subtask:
    """One chain of microsteps.

    >>> Subtask("count", start=3, steps=3).describe()
    {'name': 'count', 'steps': 3, 'after': []}
    """

    name: str
    start: Any = None  # the start state, when known in advance
    start_from: Callable[[Mapping[str, Any]], Any] | None = None  # or: built from dependencies' final states
    steps: int | None = None  # microsteps in the chain; None: until the task is done
    expect: Callable[[Any], bool] | None = None  # checks the end state (a boundary known from the split)
    task: Task | None = None  # the chain's own task (its prompts and parser); None: the plan's task
    after: tuple[str, ...] = ()  # names of subtasks whose results this one needs

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "steps": self.steps, "after": list(self.after)}


@dataclass
class Plan:
    """A DAG of subtasks and how their final states make the task's final state.

    >>> plan = Plan()
    >>> plan.add(Subtask("a", start=0, steps=2)); plan.add(Subtask("b", start_from=lambda r: r["a"], steps=1, after=("a",)))
    >>> plan.order(), plan.critical_path()
    (['a', 'b'], (['a', 'b'], 3))
    """

    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    # final state of the whole task from every subtask's final state; default: the last subtask's
    finish: Callable[[Mapping[str, Any]], Any] | None = None

    def add(self, subtask: Subtask) -> None:
        if "subtask" in self.graph.nodes.get(subtask.name, {}):
            raise TaskError(f"plan has two subtasks named {subtask.name!r}")
        if (subtask.start is None) == (subtask.start_from is None):
            raise TaskError(f"subtask {subtask.name!r} needs exactly one of start or start_from")
        if subtask.start_from is not None and not subtask.after:
            raise TaskError(f"subtask {subtask.name!r} builds its start from dependencies but names none (after=...)")
        self.graph.add_node(subtask.name, subtask=subtask)
        for dep in subtask.after:
            self.graph.add_edge(dep, subtask.name)

    def subtask(self, name: str) -> Subtask:
        return self.graph.nodes[name]["subtask"]

    def validate(self) -> None:
        """Raise TaskError for a dependency on an unknown subtask or a cycle."""
        for u, v in self.graph.edges:
            if "subtask" not in self.graph.nodes[u]:
                raise TaskError(f"subtask {v!r} depends on {u!r}, which is not in the plan")
        if not nx.is_directed_acyclic_graph(self.graph):
            cycle = nx.find_cycle(self.graph)
            raise TaskError(f"plan has a dependency cycle: {' -> '.join(str(u) for u, _ in cycle)} -> {cycle[0][0]}")
        if not self.graph:
            raise TaskError("plan has no subtasks")

    def order(self) -> list[str]:
        """Subtask names in a stable topological order (insertion order among independent ones)."""
        self.validate()
        index = {name: i for i, name in enumerate(self.graph.nodes)}
        return list(nx.lexicographical_topological_sort(self.graph, key=index.__getitem__))

    def total_steps(self) -> int | None:
        steps = [self.subtask(n).steps for n in self.graph.nodes]
        return None if any(s is None for s in steps) else sum(steps)  # type: ignore[misc]

    def critical_path(self) -> tuple[list[str], int]:
        """The chain of dependent subtasks with the most steps: the least wall time in steps."""
        weight = {n: self.subtask(n).steps or 0 for n in self.graph.nodes}
        best: dict[str, tuple[int, list[str]]] = {}
        for name in self.order():
            preds = [best[p] for p in self.graph.predecessors(name)]
            length, path = max(preds, default=(0, []), key=lambda lp: lp[0])
            best[name] = (length + weight[name], path + [name])
        length, path = max(best.values(), key=lambda lp: lp[0])
        return path, length

    def describe(self) -> dict[str, Any]:
        path, length = self.critical_path()
        return {"subtasks": len(self.graph), "steps": self.total_steps(), "critical_path": path,
                "critical_path_steps": length, "nodes": [self.subtask(n).describe() for n in self.order()]}


def start_of(subtask: Subtask, results: Mapping[str, Any]) -> Any:
    """A subtask's start state: given, or built from its dependencies' final states."""
    if subtask.start_from is None:
        return subtask.start
    try:
        return subtask.start_from({name: results[name] for name in subtask.after})
    except Exception as exc:
        raise StepError(f"subtask {subtask.name!r}: building its start state raised {type(exc).__name__}: {exc}", step=0) from exc


def draw_plan(plan: Plan, path: str | Path, *, title: str = "plan") -> Path:
    """Write a PNG of the plan as its ideal schedule: one bar per subtask, starting when its
    dependencies end (unbounded concurrency), as long as its steps; the critical path in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = plan.order()
    begin: dict[str, int] = {}
    for name in order:
        begin[name] = max((begin[p] + (plan.subtask(p).steps or 0) for p in plan.graph.predecessors(name)), default=0)
    critical, length = plan.critical_path()
    fig, ax = plt.subplots(figsize=(10, max(3.0, min(12.0, 0.18 * len(order) + 1.5))))
    for row, name in enumerate(order):
        steps = plan.subtask(name).steps or 0
        ax.barh(row, max(steps, 1), left=begin[name], color="#e07a5f" if name in critical else "#8ab6d6", edgecolor="none")
        for dep in plan.graph.predecessors(name):
            ax.plot([begin[name]] * 2, [order.index(dep), row], color="#999999", linewidth=0.5)
    if len(order) <= 40:
        ax.set_yticks(range(len(order)), order, fontsize=7)
    else:
        ax.set_ylabel(f"{len(order)} subtasks")
    ax.invert_yaxis()
    ax.set_xlabel("microsteps (ideal schedule: every ready subtask runs at once)")
    ax.set_title(f"{title}: {len(order)} subtasks, {plan.total_steps() or 0:,} steps, critical path {length:,} (red)")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def plan_for(task: Task, depth: int) -> Plan:
    """The task's own plan at ``depth`` (``Task.plan``), or at depth 0 the paper's plan: one chain
    from the initial state until the task is done."""
    if depth < 0:
        raise TaskError(f"depth must be >= 0, got {depth}")
    if depth == 0:
        plan = Plan()
        plan.add(Subtask("main", start=task.initial_state(), steps=task.total_steps()))
        return plan
    if not task.has_plan:
        raise TaskError(f"task {task.name!r} has no planner (a plan(depth) method); use depth 0")
    try:
        plan = task.plan(depth)
    except TaskError:
        raise
    except Exception as exc:
        raise TaskError(f"task {task.name!r} cannot make a plan at depth {depth}: {exc}") from exc
    if not isinstance(plan, Plan):
        raise TaskError(f"task {task.name!r}.plan({depth}) returned {type(plan).__name__}, not a maker Plan")
    plan.validate()
    return plan
