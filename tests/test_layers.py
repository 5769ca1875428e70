"""maker's layers hold: import-linter's contracts in pyproject.toml (layers, every module in one, no circles)
pass on the package, and fail on a copy of it with one upward import added."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).with_name("lint-imports")
    if not executable.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}  # the tree at root, not the installed one
    return subprocess.run([str(executable), "--no-cache", "--no-logo", str(root / "pyproject.toml")], cwd=root,
                          capture_output=True, text=True, env=env)


def test_the_layers_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_them(tmp_path):
    shutil.copytree(ROOT / "maker", tmp_path / "maker", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    task = tmp_path / "maker" / "task.py"
    task.write_text(task.read_text() + "\nimport maker.engine  # noqa: E402 (an upward import)\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "maker.task -> maker.engine" in result.stdout and "BROKEN" in result.stdout
