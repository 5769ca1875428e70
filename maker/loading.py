"""Finding a task class (or a backend class) from a spec: a registered name, ``pkg.module:Class`` or
``file.py:Class``.

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

from maker.errors import ConfigError, TaskError
from maker.problems import ProblemFamily
from maker.task import Task, check_task_class

ENTRY_POINT_GROUP = "maker.tasks"
# Fallback when maker runs from a source tree that was never installed (no entry points).
_BUILTIN = {"hanoi": "maker_tasks.hanoi:HanoiTask", "multiply": "maker_tasks.multiply:MultiplyTask"}


PROBLEM_GROUP = "maker.problems"  # problem families (maker.problems) register here, as tasks do under maker.tasks
_BUILTIN_FAMILIES = {"multiply": "maker_tasks.multiply_problems:MultiplyProblems", "sort": "maker_tasks.sort_problems:SortProblems",
                     "multiply-paper": "maker_tasks.multiply_problems:MultiplyPaperProblems"}


def registered_families() -> dict[str, str]:
    """Problem family names available by name, mapped to their ``module:Class`` targets."""
    return _BUILTIN_FAMILIES | {ep.name: ep.value for ep in entry_points(group=PROBLEM_GROUP)}


def load_family(spec: str) -> ProblemFamily:
    """A problem family (``maker.problems.ProblemFamily``) made from a registered name, ``package.module:Class`` or
    ``path/to/file.py:Class``."""
    cls = _registered_class(spec, registered_families(), "problem family")
    if not issubclass(cls, ProblemFamily):
        raise TaskError(f"{spec!r} is not a subclass of maker.problems.ProblemFamily")
    return cls()


def family_reading(question: str, where: str, hint: str) -> ProblemFamily:
    """The registered family whose parser reads ``question`` (problem ``where``); else a ``ConfigError`` that ends
    with ``hint`` (how to name a family)."""
    for name in registered_families():
        family = load_family(name)
        try:
            family.parse(question)
        except TaskError:
            continue
        return family
    raise ConfigError(f"no registered problem family ({', '.join(sorted(registered_families()))}) reads problem "
                      f"{where}: {question[:80]!r}; {hint}")


def registered_tasks() -> dict[str, str]:
    """Task names available by name, mapped to their ``module:Class`` targets."""
    return _BUILTIN | {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_task_class(spec: str) -> type[Task]:
    """Resolve ``spec`` to a task class without instantiating it; a class that is not a complete task
    (not a ``Task``, or missing a required method) is refused here, before any run."""
    if not isinstance(spec, str) or not spec.strip():
        raise TaskError(f"task spec must be a non-empty string, got {spec!r}")
    cls = _registered_class(spec, registered_tasks(), "task")
    check_task_class(cls, standalone=True)
    return cls


def _registered_class(spec: str, registry: dict[str, str], what: str) -> type:
    """The class a registered name or a ``module:Class`` / ``file.py:Class`` spec names."""
    target = registry.get(spec, spec)
    if ":" not in target:
        raise TaskError(f"unknown {what} {spec!r}: use a registered name ({', '.join(sorted(registry))}), "
                        "'package.module:Class' or 'path/to/file.py:Class'")
    cls = load_attribute(target, what)
    if not isinstance(cls, type):
        raise TaskError(f"{spec!r} is not a class")
    return cls


def load_attribute(spec: str, what: str) -> Any:
    """The object ``spec`` names: ``package.module:NAME`` or ``path/to/file.py:NAME``. A file's folder (or,
    in a package, the folder above the package) goes on ``sys.path`` first, as pytest does for test files,
    so it can import modules beside it."""
    target, _, attr = spec.rpartition(":")
    if _is_file(target):
        module = _import_file(Path(target), what)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise TaskError(f"cannot import module {target!r} for {what} {spec!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise TaskError(f"{what} module {target!r} has no attribute {attr!r}") from None


def resolved_spec(spec: str) -> str:
    """``spec`` with a file path made absolute, so a journal names its task from any folder."""
    target, sep, attr = spec.rpartition(":")
    return f"{Path(target).resolve()}{sep}{attr}" if sep and _is_file(target) else spec


def class_identity(cls: type) -> str:
    """Which class this is, beyond its task name: ``module:Class``, or ``file.py:Class`` for a task file
    (its name, not its folder, so a moved checkout still resumes). Journals record it, and resume refuses
    a journal written by another class."""
    source = getattr(sys.modules.get(cls.__module__), "__file__", None)
    where = Path(source).name if cls.__module__.startswith(_FILE_MODULE) and source else cls.__module__
    return f"{where}:{cls.__qualname__}"


def load_task(spec: str, **params: Any) -> Task:
    """Build a task from ``spec`` with validated ``params``.

    >>> task = load_task("hanoi", disks=3)
    >>> task.total_steps()
    7
    """
    task = load_task_class(spec)(**params)
    task.spec = resolved_spec(spec)  # recorded in journals, so `maker verify` can rebuild the task
    return task


_FILE_MODULE = "maker_user_file_"


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def _import_file(path: Path, what: str) -> Any:
    if not path.is_file():
        raise TaskError(f"{what} file {str(path)!r} does not exist")
    resolved = path.resolve()
    root, dotted = resolved.parent, [resolved.stem]
    while (root / "__init__.py").is_file():  # inside a package: import it as package.module, as pytest does
        root, dotted = root.parent, [root.name, *dotted]
    if str(root) not in sys.path:  # stays there: the task's own imports may happen later, at run time
        sys.path.insert(0, str(root))
    if len(dotted) > 1:
        try:
            return importlib.import_module(".".join(dotted))
        except Exception as exc:
            raise TaskError(f"importing {what} file {str(path)!r} as {'.'.join(dotted)} failed: "
                            f"{type(exc).__name__}: {exc}") from exc
    name = f"{_FILE_MODULE}{resolved.stem}_{abs(hash(str(resolved))):x}"
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
        raise TaskError(f"importing {what} file {str(path)!r} failed: {type(exc).__name__}: {exc}") from exc
    return module
