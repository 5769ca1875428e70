"""The agent catalog: every microagent a run calls, by name, bound to where it is served.

An agent is a name bound to ``where`` it is served: a model or adapter folder for the in-process
backend, a served-model name for a server or pool (vLLM picks a LoRA adapter by it), or the
workers that hold those folders. A folder's manifest (``maker.json``) gives the run settings the
agent asks for and, for an adapter, its base. The catalog's default entry (name None) serves every
agent not named in it, as one model folder does.

Who serves a chain is decided here once (``chain_agents``): the run's mix, else the run's agent,
else the task's mix, else the task's agent. A chain's agents are always an ``AgentMix``; one agent
is a cycle of one.

>>> catalog = AgentCatalog.coerce(["multiply-product=/models/a", "multiply-sum=/models/b"])
>>> catalog["multiply-sum"]
'/models/b'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from maker.config import served_defaults
from maker.errors import ConfigError
from maker.mixing import AgentMix
from maker.pretrained import local_folder, missing_model_hint
from maker.task import Task

Where = str | PathLike[str]


class AgentCatalog(Mapping[str | None, str]):
    """Agent name -> where it is served (None: the default entry, which serves any other name).

    A mapping, so a backend takes it as its table: ``HFBackend(catalog)``, ``OpenAIBackend(...,
    agents=catalog)``. ``defaults(name)`` reads the serving folder's manifest.
    """

    def __init__(self, entries: Mapping[str | None, Where] | None = None) -> None:
        self._where: dict[str | None, str] = {}
        for name, where in (entries or {}).items():
            if name is not None and (not isinstance(name, str) or not name.strip()):
                raise ConfigError(f"an agent's name must be a non-empty string, got {name!r}")
            if not isinstance(where, str | PathLike) or not str(where).strip():
                raise ConfigError(f"agent {name!r} must be bound to a folder or a served model's name, got {where!r}")
            self._where[name] = str(where)

    @classmethod
    def coerce(cls, spec: AgentCatalog | Mapping[str | None, Where] | Sequence[str] | Where | None,
               where: str = "agents") -> AgentCatalog:
        """A catalog from what a user wrote: a dict ``{name: where}``, ``NAME=WHERE`` texts (``maker run
        --agent``), or a file of ``NAME=WHERE`` lines, ``#`` starting a comment line (``--agents FILE``)."""
        if spec is None:
            return cls()
        if isinstance(spec, AgentCatalog):
            return spec
        if isinstance(spec, Mapping):
            return cls(spec)
        if isinstance(spec, str | PathLike):
            return cls._from_file(Path(spec))
        return cls(dict(_binding(text, where) for text in spec))

    @classmethod
    def _from_file(cls, path: Path) -> AgentCatalog:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read the agent catalog {str(path)!r}: {exc.strerror or exc}") from None
        lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
        return cls(dict(_binding(line, f"{path}:{n}") for n, line in lines if line and not line.startswith("#")))

    def merged(self, other: Mapping[str | None, Where]) -> AgentCatalog:
        """This catalog with ``other``'s entries added (``other`` wins where both name an agent)."""
        return AgentCatalog({**self._where, **{name: str(where) for name, where in other.items()}})

    def __getitem__(self, name: str | None) -> str:
        return self._where[name]

    def __iter__(self) -> Iterator[str | None]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __repr__(self) -> str:
        return f"AgentCatalog({self._where!r})"

    def serving(self, name: str | None) -> str | None:
        """Where ``name`` is served: its own entry, else the default entry, else None (the backend's own)."""
        return self._where.get(name, self._where.get(None))

    def defaults(self, name: str | None) -> dict[str, Any]:
        """The run settings the folder serving ``name`` asks for (its manifest); {} if none serves it."""
        return served_defaults(self, name)

    def folders(self) -> dict[str | None, str]:
        """The entries as absolute folders, for an in-process backend (an installed pretrained model's name,
        ``smollm2``, stands for its folder: ``maker.pretrained``); a missing folder is a ConfigError."""
        found = {name: local_folder(where) for name, where in self._where.items()}
        if missing := [(name, self._where[name]) for name, folder in found.items() if folder is None]:
            name, where = missing[0]
            serves = "every agent" if name is None else f"agent {name!r}"
            raise ConfigError(f"model folder {where!r} does not exist (it is to serve {serves}){missing_model_hint(where)}")
        return {name: str(folder.resolve()) for name, folder in found.items() if folder is not None}


def _binding(text: str, where: str) -> tuple[str, str]:
    name, sep, place = text.partition("=")
    if not sep or not name.strip() or not place.strip():
        raise ConfigError(f"{where}: {text!r} is not NAME=WHERE (an agent's name, '=', a folder or a served model)")
    return name.strip(), place.strip()


def chain_agents(task: Task, *, agent: str | None = None, mix: AgentMix | str | Sequence[str] | None = None) -> AgentMix:
    """The agents that serve a chain of ``task``: the run's mix, else the run's agent, else the task's
    mix, else the task's agent (None: the backend's default). The one place this is decided."""
    if mix is not None:
        return AgentMix.coerce(mix)
    if agent is not None:
        return AgentMix.one(agent)
    if task.mix is not None:
        return AgentMix.coerce(task.mix, f"mix of task {task.name!r}")
    return AgentMix.one(task.agent)


def task_catalog(task: Task, agents: AgentCatalog | Mapping[str | None, Where] | Sequence[str] | Where | None = None
                 ) -> AgentCatalog:
    """The catalog a task brings: its shipped model (``Task.default_model``), where installed, serving every agent;
    with a user's ``agents`` (anything ``AgentCatalog.coerce`` takes) on top."""
    model = task.default_model
    own = AgentCatalog({None: model} if model is not None and Path(model).is_dir() else {})
    return own.merged(AgentCatalog.coerce(agents))
