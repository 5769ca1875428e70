"""Run settings: everything about how steps are sampled and voted, validated at the edge."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from maker.errors import ConfigError


class RunConfig(BaseModel):
    """How a run samples and votes. Keyword-only, validated, recorded in every journal header.

    >>> RunConfig(k=3).temperature
    0.1
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(3, ge=1, description="margin (ahead-by-k) or vote count (first-to-k) that decides a step")
    rule: Literal["ahead-by-k", "first-to-k"] = "ahead-by-k"
    first_temperature: float = Field(0.0, ge=0.0, description="temperature of each step's first sample (the paper: 0)")
    temperature: float = Field(0.1, ge=0.0, description="temperature of every later sample (the paper: 0.1)")
    max_tokens: int = Field(750, ge=1, description="red-flag limit: a longer reply is discarded (the paper: 750)")
    max_samples_per_step: int = Field(100, ge=1, description="a step that draws this many samples undecided fails")
    checks: bool = Field(False, description="apply the task's answer-free validity checks as red flags")
    verify: bool = Field(True, description="count decisions that differ from the oracle (after the fact only)")
    seed: int = Field(0, description="base of the per-request seeds")

    @model_validator(mode="after")
    def _cap_allows_k(self) -> RunConfig:
        if self.max_samples_per_step < self.k:
            raise ValueError(f"max_samples_per_step ({self.max_samples_per_step}) must be >= k ({self.k})")
        return self


def make_config(**settings: object) -> RunConfig:
    """Build a RunConfig, turning validation errors into one ConfigError naming each field."""
    try:
        return RunConfig(**settings)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            + (f" (got {err['input']!r})" if err["type"] != "missing" and err["loc"] else "")
            for err in exc.errors()
        )
        raise ConfigError(f"invalid run settings: {problems}") from None
