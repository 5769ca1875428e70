"""The documentation's examples run as written: the tutorial's task from a file outside the
repository (through `maker run` and `maker.run`) and the README's Python API example."""

import json
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
