"""Finding a task class from a spec: a registered name, ``pkg.module:Class`` or ``file.py:Class``.

Built-in tasks register themselves under the ``maker.tasks`` entry-point group exactly as a
user's installed plug-in would, so the two paths cannot drift apart.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from maker.errors import TaskError
from maker.task import Task

ENTRY_POINT_GROUP = "maker.tasks"
# Fallback when maker runs from a source tree that was never installed (no entry points).
_BUILTIN = {"hanoi": "maker_tasks.hanoi:HanoiTask", "multiply": "maker_tasks.multiply:MultiplyTask"}


def registered_tasks() -> dict[str, str]:
    """Task names available by name, mapped to their ``module:Class`` targets."""
    return _BUILTIN | {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_task_class(spec: str) -> type[Task]:
    """Resolve ``spec`` to a task class without instantiating it."""
    if not isinstance(spec, str) or not spec.strip():
        raise TaskError(f"task spec must be a non-empty string, got {spec!r}")
    registry = registered_tasks()
    if spec in registry:
        spec = registry[spec]
    if ":" not in spec:
        raise TaskError(
            f"unknown task {spec!r}: use a registered name ({', '.join(sorted(registry))}), "
            "'package.module:Class' or 'path/to/file.py:Class'"
        )
    target, _, attr = spec.rpartition(":")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _import_file(Path(target))
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise TaskError(f"cannot import module {target!r} for task {spec!r}: {exc}") from exc
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise TaskError(f"module {target!r} has no attribute {attr!r}") from None
    if not isinstance(cls, type):
        raise TaskError(f"{spec!r} is not a class")
    missing = [m for m in ("initial_state", "prompt", "parse", "apply", "is_done") if not callable(getattr(cls, m, None))]
    if missing:
        raise TaskError(f"{spec!r} is not a task: it lacks {', '.join(missing)}")
    return cls


def load_task(spec: str, **params: Any) -> Task:
    """Build a task from ``spec`` with validated ``params``.

    >>> task = load_task("hanoi", disks=3)
    >>> task.total_steps()
    7
    """
    task = load_task_class(spec)(**params)
    task.spec = spec  # recorded in journals, so `maker verify` can rebuild the task
    return task


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise TaskError(f"task file {str(path)!r} does not exist")
    resolved = path.resolve()
    name = f"maker_user_task_{abs(hash(str(resolved))):x}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise TaskError(f"cannot load {str(path)!r} as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise TaskError(f"importing task file {str(path)!r} failed: {type(exc).__name__}: {exc}") from exc
    return module
