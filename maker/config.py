"""Run settings: everything about how steps are sampled and voted, validated at the edge and
resolved in one place (``resolve_config``) from the defaults, the microagent, the task and the user."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from maker.errors import ConfigError
from maker.escalation import Escalation
from maker.pretrained import PRETRAINED, installed_folder, local_folder, missing_model_hint
from maker.task import Task


class RunConfig(BaseModel):
    """How a run samples and votes. Keyword-only, validated, recorded in every journal header.

    >>> RunConfig(k=3).temperature
    0.1
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(3, ge=1, description="margin (ahead-by-k) or vote count (first-to-k) that decides a step")
    rule: Literal["ahead-by-k", "first-to-k"] = "ahead-by-k"
    escalation: Escalation | None = Field(None, description="the ladder a hard step climbs (maker.escalation); None: off")
    k_by_kind: dict[str, Annotated[int, Field(ge=1)]] | None = Field(
        None, description="k for steps of these kinds (Task.kind), e.g. from maker estimate --by-kind; other kinds use k")
    first_temperature: float = Field(0.0, ge=0.0, description="temperature of each step's first sample (the paper: 0)")
    temperature: float = Field(0.1, ge=0.0, description="temperature of every later sample (the paper: 0.1)")
    max_tokens: int = Field(750, ge=1, description="red-flag limit: a longer reply is discarded (the paper: 750)")
    generation_cap: int | None = Field(
        None, ge=1, description="tokens a backend may generate; None: one past max_tokens, enough to see a reply is too long")
    max_samples_per_step: int = Field(100, ge=1, description="a step that draws this many samples undecided fails")
    checks: bool = Field(False, description="apply the task's answer-free validity checks as red flags")
    verify: bool = Field(True, description="count decisions that differ from the oracle (after the fact only)")
    seed: int = Field(0, description="base of the per-request seeds")
    few_shot: int | None = Field(None, ge=1, le=64, description="ask through a completion prompt with this many solved "
                                                               "examples of other states first (maker.prompting), for "
                                                               "general LLMs; None: the task's own prompt")
    stop: tuple[str, ...] | None = Field(None, description="strings that end a reply (cut before the first); None: "
                                                           "the prompt's own (a few-shot prompt's, else none)")

    @property
    def largest_k(self) -> int:
        """The largest k any step of the run may use."""
        return max([self.k, *(self.k_by_kind or {}).values()])

    def scaled_k(self, factor: int) -> RunConfig:
        """This config with k, and each kind's k, multiplied by ``factor`` (a redone chain's votes)."""
        by_kind = None if self.k_by_kind is None else {kind: k * factor for kind, k in self.k_by_kind.items()}
        return self.model_copy(update={"k": self.k * factor, "k_by_kind": by_kind})

    @property
    def cap(self) -> int:
        """The generation cap sent with every request."""
        return self.max_tokens + 1 if self.generation_cap is None else self.generation_cap

    @model_validator(mode="after")
    def _cap_allows_k(self) -> RunConfig:
        if self.max_samples_per_step < self.largest_k:
            raise ValueError(f"max_samples_per_step ({self.max_samples_per_step}) must be >= k ({self.largest_k})")
        if self.stop is not None and not all(self.stop):
            raise ValueError("a stop string must not be empty")
        return self


def make_config(**settings: object) -> RunConfig:
    """Build a RunConfig, turning validation errors into one ConfigError naming each field."""
    try:
        return RunConfig(**settings)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(f"invalid run settings: {validation_problems(exc)}") from None


def validation_problems(exc: ValidationError) -> str:
    """Each field pydantic refused, where it is and why, with the value given (cut short if long)."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
                     + (f" (got {_short(err['input'])})" if err["type"] != "missing" and err["loc"] else "")
                     for err in exc.errors())


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def resolve_config(task: Task, *, agent: str | None = None, catalog: Mapping[str | None, str] | None = None,
                   simulated: bool = False, **overrides: Any) -> RunConfig:
    """The run's settings, resolved once, in one place, for ``maker.run``, ``maker run`` and ``maker estimate``.

    Layers, later ones winning: ``RunConfig``'s defaults; ``checks`` on for real backends, off for the simulated one
    (which follows the paper); the manifest of the folder that serves ``agent`` in the agent ``catalog``
    (``maker.agents``; ``served_defaults``); the task's ``run_defaults()``; the user's ``overrides`` (None values
    count as not given). ``agent`` is the chain's first agent (``maker.agents.chain_agents``).
    """
    settings: dict[str, Any] = {"checks": not simulated}
    settings.update(served_defaults(catalog or {}, agent))
    settings.update(task.run_defaults())
    settings.update({key: value for key, value in overrides.items() if value is not None})
    config = make_config(**settings)
    if config.k_by_kind:
        check_kinds(task, config.k_by_kind, "k_by_kind")
    if config.escalation is not None and config.escalation.hard_kinds:
        check_kinds(task, config.escalation.hard_kinds, "escalation.hard_kinds")
    return config


def check_kinds(task: Task, names: Iterable[str], setting: str) -> None:
    """Refuse kinds of step ``task`` cannot have (named in ``setting``): any, when it has one kind; else those
    outside ``Task.kind_names``."""
    names = list(names)
    if not task.has_kinds:
        raise ConfigError(f"task {task.name!r} has one kind of step (no Task.kind): {setting} ({', '.join(names)}) "
                          "applies only to tasks with several")
    known = task.kind_names
    for name in names:
        if known is not None and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{setting} names kind {name!r}, which task {task.name!r} does not have (its kinds: "
                              f"{', '.join(known)}){hint}")


def served_defaults(catalog: Mapping[str | None, str], agent: str | None) -> dict[str, Any]:
    """The run settings asked for by the model folder that serves ``agent`` in ``catalog`` (its own entry,
    else the default entry, None); {} when no folder serves it (a served model's name, the backend's own)."""
    where = catalog.get(agent, catalog.get(None))
    folder = None if where is None else local_folder(where)
    return {} if folder is None else manifest_defaults(folder)


def read_manifest(folder: Path) -> dict[str, Any]:
    """A model folder's manifest (``maker.json``), or {} when it has none.

    Keys maker reads: ``defaults`` (run settings the model asks for, layered by ``resolve_config``),
    ``base`` (an adapter folder's base model folder, relative to the adapter folder, or an installed
    pretrained model's name, ``maker.pretrained``). Other keys are
    for people (``agent``: the agent it was trained for; what trained it, measured numbers).
    """
    manifest = folder / "maker.json"
    try:
        data = json.loads(manifest.read_text()) if manifest.is_file() else {}
        if not isinstance(data, dict) or not isinstance(data.get("defaults", {}), dict):
            raise ValueError("not a JSON object with a 'defaults' object")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{str(manifest)!r} is not a JSON object with a 'defaults' object: {exc}") from None
    return data


def manifest_defaults(folder: Path) -> dict[str, Any]:
    """The run settings a model folder's manifest (``maker.json``: ``{"defaults": {...}}``) asks for."""
    return dict(read_manifest(folder).get("defaults", {}))


def adapter_base(folder: Path) -> Path | None:
    """The base model folder of an adapter folder (one with peft's ``adapter_config.json``), else None.

    The manifest's ``base`` (relative to the adapter folder) wins; else peft's own
    ``base_model_name_or_path``, relative to the adapter folder when it is not absolute.
    """
    if not (folder / "adapter_config.json").is_file():
        return None
    named = read_manifest(folder).get("base")
    if named is None:
        try:
            named = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{str(folder / 'adapter_config.json')!r} is not valid JSON: {exc}") from None
    if not named:
        raise ConfigError(f"adapter folder {str(folder)!r} names no base model: add \"base\" to its maker.json")
    if named in PRETRAINED:  # an installed pretrained model, by name: wherever this machine keeps it
        base = installed_folder(named)
        if base is None:
            raise ConfigError(f"adapter folder {str(folder)!r} adapts {named!r}, which is not installed here"
                              f"{missing_model_hint(named)}")
        return base
    base = (folder / named).resolve()
    if not (base / "config.json").is_file():
        raise ConfigError(f"adapter folder {str(folder)!r} names the base {str(base)!r}, which holds no model "
                          "(config.json): fix \"base\" in its maker.json")
    return base
