"""The documentation's examples run as written: the tutorial's task from a file outside the
repository (through `maker run` and `maker.run`) and the README's Python API example."""

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import maker

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks(markdown: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown.read_text(), flags=re.S)


def test_tutorial_task_runs_from_outside_the_repository(tmp_path):
    task_file = tmp_path / "elsewhere" / "collatz.py"
    task_file.parent.mkdir()
    task_file.write_text(_python_blocks(ROOT / "docs" / "tasks.md")[0])
    # through the command line, from a working directory outside the repository
    done = subprocess.run(
        [sys.executable, "-m", "maker.cli", "run", f"{task_file}:Collatz", "--start", "97", "--backend", "sim",
         "--error-rate", "0.1", "--k", "3", "--json", "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["task"] == "collatz" and summary["solved"] and summary["steps"] == 118 and summary["errors"] == 0
    # and through the Python API
    task = maker.load_task(f"{task_file}:Collatz", start=97)
    result = maker.run(task, maker.SimulatedBackend(task, error_rate=0.1), k=3)
    assert result.solved and result.steps == 118 and result.errors == 0


def test_the_backend_example_runs_the_tutorial_task_and_check_task_passes(tmp_path):
    blocks = _python_blocks(ROOT / "docs" / "tasks.md")
    (tmp_path / "collatz.py").write_text(blocks[0])
    (tmp_path / "fake.py").write_text(next(b for b in blocks if "class CollatzByHand" in b))
    journal = tmp_path / "run.jsonl"
    cli = [sys.executable, "-m", "maker"]
    done = subprocess.run([*cli, "run", "collatz.py:Collatz", "--start", "27", "--backend", "fake.py:CollatzByHand",
                           "--journal", str(journal), "--json", "--no-progress"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["backend"] == "collatz-by-hand" and summary["solved"] and summary["steps"] == 111
    assert summary["answer"] == {"reached": 1} and summary["errors"] == 0
    checked = subprocess.run([*cli, "check-task", "collatz.py:Collatz", "--start", "27"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and "0 failed" in checked.stdout, checked.stdout + checked.stderr


def test_the_training_tutorial_task_checks_runs_and_trains_as_written(tmp_path):
    """The sort task of "Train a microagent for your task": check-task, a simulated run, and the
    documented `maker train` command line on the shipped base (a few seconds of training: this checks
    the commands and the folder they write, not the model's accuracy)."""
    block = next(b for b in _python_blocks(ROOT / "docs" / "tasks.md") if "class BubbleSort" in b)
    (tmp_path / "sort.py").write_text(block)
    cli = [sys.executable, "-m", "maker"]
    checked = subprocess.run([*cli, "check-task", "sort.py:BubbleSort", "--items", "30"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and "0 failed" in checked.stdout, checked.stdout + checked.stderr
    done = subprocess.run([*cli, "run", "sort.py:BubbleSort", "--items", "150", "--shuffle", "1", "--backend", "sim",
                           "--json", "--no-progress"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    summary = json.loads(done.stdout)
    assert summary["solved"] and summary["steps"] == 11_175 and summary["errors"] == 0
    assert summary["answer"]["sorted"] == sorted(summary["answer"]["sorted"])
    trained = subprocess.run([*cli, "train", "sort.py:BubbleSort", "--out", "sorter", "--budget-min", "0.02",
                              "--examples", "500", "--held-out", "40", "--eval-states", "10", "--no-progress", "--json"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    record = json.loads(trained.stdout)
    # a second of training rarely makes a usable model; the command says which it made
    assert trained.returncode == (1 if record["unusable"] else 0), trained.stderr
    assert record["data"]["held_out_unseen"] and record["evaluation"]["states"] == 10
    assert record["data"]["training_states"] == "the task's own"
    assert {"adapter_config.json", "maker.json", "training.json", "README.md"} <= {p.name for p in (tmp_path / "sorter").iterdir()}


def test_the_task_guide_documents_what_a_task_author_needs():
    guide = (ROOT / "docs" / "tasks.md").read_text()
    for needed in ["`maker-engine`", '[project.entry-points."maker.tasks"]', "pip install -e", "`steps` (how many",
                   "`task` (the task whose", "`total_steps()`", "has_check", "candidate_to_json",
                   "candidate_from_json", "maker check-task", "--backend fake.py:CollatzByHand", "maker.run_async",
                   "may not be named like one of them", "maker train", "training_states(rng, count)",
                   "--from-journal", "--method full"]:
        assert needed in guide, needed


def test_readme_python_example(capsys):
    block = next(b for b in _python_blocks(ROOT / "README.md") if "class Countdown" in b)
    exec(compile(block, "README.md", "exec"), {})
    assert capsys.readouterr().out.startswith("True 0 ")


def test_every_docstring_example_in_the_package_runs():
    import doctest
    import importlib
    import pkgutil

    failed = {}
    for info in pkgutil.walk_packages(maker.__path__, "maker."):
        if info.name in ("maker.backends.hf", "maker.backends.hf_decode", "maker.plots", "maker.__main__"):
            continue  # torch and matplotlib: covered by their own tests
        result = doctest.testmod(importlib.import_module(info.name), optionflags=doctest.ELLIPSIS)
        if result.failed:
            failed[info.name] = result.failed
    assert not failed


def test_the_ledger_example_checks_and_its_plan_posts_what_one_chain_posts():
    """docs/examples/ledger.py (our own task family for `maker train --base smollm2`): check-task passes,
    and its ledgers run as concurrent chains close with the balances one chain of them all reaches."""
    spec = f"{ROOT / 'docs' / 'examples' / 'ledger.py'}:Ledger"
    checked = subprocess.run([sys.executable, "-m", "maker.cli", "check-task", spec, "--ledgers", "3", "--postings", "40"],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and "0 failed" in checked.stdout, checked.stdout + checked.stderr
    task = maker.load_task(spec, ledgers=6, postings=30, books=2)
    answers = []
    for depth in (0, 1):
        result = maker.run(task, maker.SimulatedBackend(task, error_rate=0.1), k=3, depth=depth)
        assert result.solved and result.errors == 0 and result.steps == 180
        answers.append(result.answer)
    assert answers[0] == answers[1] and len(answers[0]["closing"]) == 6
    # training states are never a run's: their ledger numbers are negative, so their postings differ
    assert all(state.ledger < 0 for state in task.training_states(random.Random(0), 50))


def test_the_decomposition_guide_family_runs_from_outside_the_repository(tmp_path):
    """docs/decomposition.md as a new user tries it: the family saved elsewhere, self-tested, then solved."""
    blocks = _python_blocks(ROOT / "docs" / "decomposition.md")
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "sums.py").write_text(next(b for b in blocks if "class SumProblems" in b))
    cli = [sys.executable, "-m", "maker"]
    done = subprocess.run([*cli, "check-family", "sums.py:SumProblems"], cwd=folder, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "3 passed, 0 failed" in done.stdout, done.stdout + done.stderr
    done = subprocess.run([*cli, "solve", "--family", "sums.py:SumProblems",
                           "Add the following numbers: 12, 7, 30, 5, 81, -3", "--backend", "sim", "--error-rate", "0.1",
                           "--json"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["simulated"] and summary["results"][0]["answer"] == "132" and summary["results"][0]["correct"]
    assert summary["roles"]["decompose"]["steps"] >= 1 and summary["roles"]["compose"]["steps"] >= 1
    example = next(b for b in blocks if "maker.solve(" in b)
    done = subprocess.run([sys.executable, "-c", example], cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "10", done.stderr
