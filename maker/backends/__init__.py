"""Backends: where samples come from. See ``maker.backends.base`` for the protocol."""

from maker.backends.base import Backend, Sample, SampleRequest
from maker.backends.openai import OpenAIBackend
from maker.backends.retry import RetryingBackend
from maker.backends.scripted import ScriptedBackend
from maker.backends.sim import SimulatedBackend

__all__ = ["Backend", "OpenAIBackend", "RetryingBackend", "Sample", "SampleRequest", "ScriptedBackend", "SimulatedBackend"]
