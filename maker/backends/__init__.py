"""Backends: where samples come from. See ``maker.backends.base`` for the protocol."""

from maker.backends.base import Backend, Sample, SampleRequest
from maker.backends.openai import OpenAIBackend
from maker.backends.pool import EndpointPool
from maker.backends.retry import RetryingBackend
from maker.backends.scripted import ScriptedBackend
from maker.backends.sim import SimulatedBackend


def __getattr__(name: str) -> object:
    # HFBackend imports torch and transformers: load it only when asked for.
    if name == "HFBackend":
        from maker.backends.hf import HFBackend

        return HFBackend
    raise AttributeError(f"module 'maker.backends' has no attribute {name!r}")


__all__ = ["Backend", "EndpointPool", "HFBackend", "OpenAIBackend", "RetryingBackend", "Sample", "SampleRequest", "ScriptedBackend", "SimulatedBackend"]
