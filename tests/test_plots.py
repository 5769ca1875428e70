"""Plots: each writes a non-empty PNG and returns the numbers it drew."""

import subprocess
import sys

import pytest

import maker
from maker import ConfigError, SimulatedBackend, load_task
from maker.journal import JournalReader
from maker.plots import plot_kmin, plot_vote_rounds
from maker.scaling import k_min

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return data.startswith(PNG) and len(data) > 1000


def test_vote_rounds_count_the_steps_left_undecided(tmp_path):
    task = load_task("hanoi", disks=8)
    journal = tmp_path / "j.jsonl"
    maker.run(task, SimulatedBackend(task, error_rate=0.2), k=3, journal=journal)
    rounds = [r["rounds"] for r in JournalReader(journal).records()]
    data = plot_vote_rounds(journal, tmp_path / "rounds.png")
    assert _is_png(tmp_path / "rounds.png")
    assert data.steps == 255 == data.undecided[0]
    assert data.undecided[1] == sum(r > 1 for r in rounds) > 0
    assert data.undecided[-1] == 0 and len(data.undecided) == max(rounds) + 1
    assert all(a >= b for a, b in zip(data.undecided, data.undecided[1:], strict=False))
    assert data.rounds == list(range(max(rounds) + 1))


def test_kmin_plot_matches_the_formula(tmp_path):
    data = plot_kmin(tmp_path / "kmin.png", ps=(0.9, 0.9978), s_range=(10, 2**20 - 1))
    assert _is_png(tmp_path / "kmin.png")
    s, k = data[0.9978]
    assert s[0] == 10 and s[-1] == 2**20 - 1 and k[-1] == 3
    assert k == sorted(k)  # k_min grows with s
    assert data[0.9][1][-1] == k_min(0.9, 2**20 - 1, 0.95)
    with pytest.raises(ConfigError, match="s_range"):
        plot_kmin(tmp_path / "bad.png", s_range=(100, 10))


def test_importing_maker_does_not_import_matplotlib():
    code = "import sys, maker, maker.estimate, maker.plots; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_solve_tree_is_drawn_node_by_node(tmp_path):
    from maker_tasks.multiply_problems import MultiplyProblems

    from maker import SimulatedBackend, solve
    from maker.plots import plot_tree
    from maker.problems import DecomposerTask

    family = MultiplyProblems()
    result = solve(family, ["46048 × 42098"], SimulatedBackend(DecomposerTask(family), error_rate=0.0))
    drawn = plot_tree(result.problems[0].tree.to_json(family), tmp_path / "tree.png")
    assert drawn == 9 and (tmp_path / "tree.png").stat().st_size > 10_000  # the root, 3 splits below it, 5 leaves
