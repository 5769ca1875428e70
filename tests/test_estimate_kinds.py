"""Estimation per kind of step: the states it samples, what each kind measures, and the plans it makes."""

import json
import random
from collections import Counter

import pytest

from maker import SimulatedBackend, load_task
from maker.errors import ConfigError
from maker.estimate import estimate
from maker.estimate_kinds import kinded_states
from tests.test_cli import run_cli
from tests.toy import Countdown


def test_every_kind_is_counted_and_rare_kinds_are_topped_up():
    task = load_task("hanoi", disks=14)
    chosen, counts = kinded_states(task, 2**14 - 1, 1000, 50, random.Random(1))
    assert counts == {"disk1": 8192, "disk2": 4096, "disk3": 2048, "disk4": 1024, "disks5-8": 960, "disks9-12": 60,
                      "disks13+": 3}
    per_kind = Counter(task.kind(state) for _, state in chosen)
    assert all(per_kind[kind] >= min(50, n) for kind, n in counts.items()), per_kind
    assert per_kind["disks13+"] == 3 and per_kind["disks9-12"] == 50
    assert len({i for i, _ in chosen}) == len(chosen)  # no state twice


def test_the_plan_reaches_the_one_k_bound_for_no_more_samples():
    """Simulated, one error rate for every kind: the kinds differ only by chance and by how many states
    measured them, and the plan follows what was measured."""
    task = load_task("hanoi", disks=12)
    report = estimate(task, SimulatedBackend(task, error_rate=0.002, seed=3), samples=3000, per_state=4,
                      by_kind=True, min_per_kind=200, seed=1)
    kinds = report.kinds
    assert [row.kind for row in kinds.rows][:2] == ["disk1", "disk2"]  # in the order the task asks them
    assert sum(row.steps for row in kinds.rows) == 2**12 - 1
    assert kinds.uniform.k_by_kind == dict.fromkeys(kinds.uniform.k_by_kind, 3)
    assert kinds.plan.p_full >= kinds.target == kinds.uniform.p_full
    assert kinds.plan.samples_per_step <= kinds.uniform.samples_per_step
    assert "SIMULATED" in report.to_table() and "--k-by-kind" in report.to_table()
    assert json.loads(json.dumps(report.to_json()))["kinds"]["k_by_kind"] == kinds.plan.k_by_kind


def test_by_kind_needs_a_task_with_kinds():
    task = Countdown(start=30)
    with pytest.raises(ConfigError, match="one kind of step"):
        estimate(task, SimulatedBackend(task), samples=10, by_kind=True)


def test_the_cli_plan_runs_from_its_json(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "estimate", "hanoi", "--disks", "10", "--backend", "sim", "--error-rate", "0.001",
                           "--samples", "800", "--per-state", "3", "--by-kind", "--min-per-kind", "100", "--json")
    assert code == 0
    plan = tmp_path / "plan.json"
    plan.write_text(out)
    ks = json.loads(out)["kinds"]["k_by_kind"]
    code, out, _ = run_cli(capsys, "run", "hanoi", "--disks", "10", "--backend", "sim", "--error-rate", "0",
                           "--k-by-kind", str(plan), "--json", "--no-progress")
    summary = json.loads(out)
    assert code == 0 and summary["config"]["k_by_kind"] == ks
    for kind, counts in summary["by_kind"].items():  # no errors: each step draws exactly its kind's k
        assert counts["samples"] == counts["steps"] * ks[kind], kind
