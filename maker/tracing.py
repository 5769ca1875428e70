"""OpenTelemetry spans of a run, for the tracing tools people already use (optional: the ``trace`` extra).

``TracingObserver`` turns a run's events into spans: the run, then each chain (attempt), then each
step, then each sampling round. A round is a GenAI client call as OpenTelemetry's semantic
conventions describe one (``gen_ai.*``: operation, model, choice count, seed, temperature, output
tokens, finish reasons); red flags are events on their step's span, and a step's votes, samples and
rounds are attributes of it. Steps replayed from a journal drew nothing and get no span; their count
is on the chain's span.

Off unless asked for: ``maker run --trace`` (spans to the OTLP exporter that the ``OTEL_*``
environment variables configure, or ``--trace console``), or in Python
``maker.run(..., observers=[TracingObserver()])``, which uses the global tracer provider.
"""

from __future__ import annotations

import json
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from maker.engine import step_seed
from maker.errors import ConfigError, Flagged
from maker.events import ChainInfo, Observer, StepDecision
from maker.task import Task


class TracingObserver(Observer):
    """Spans of one run (``tracer``: default, the global provider's tracer named ``maker``)."""

    def __init__(self, tracer: Tracer | None = None) -> None:
        self.tracer = tracer or trace.get_tracer("maker")
        self._run: Span | None = None
        self._model: str | None = None
        self._config: Any = None
        self._chains: dict[ChainInfo, Span] = {}
        self._replayed: dict[ChainInfo, int] = {}
        self._steps: dict[ChainInfo, tuple[Span, int]] = {}  # the open step span and when its last round began

    def run_started(self, task: Task, backend: Any, config: Any) -> None:
        described = backend.describe()
        self._model, self._config = described.get("model"), config
        self._run = self.tracer.start_span("maker.run " + task.name, attributes={
            "maker.task": task.name, "maker.params": json.dumps(task.describe().get("params", {}), sort_keys=True),
            "maker.k": config.k, "maker.rule": config.rule, "maker.checks": config.checks,
            "gen_ai.provider.name": described.get("name", "unknown"), "maker.simulated": bool(described.get("simulated")),
        })

    def run_finished(self, result: Any, error: BaseException | None) -> None:
        for span in [s for s, _ in self._steps.values()] + list(self._chains.values()):
            span.end()  # spans a failure or Ctrl-C left open
        self._steps.clear()
        self._chains.clear()
        if self._run is None:
            return
        if error is not None:
            self._run.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        else:
            stats = result.statistics
            self._run.set_attributes({"maker.solved": result.solved, "maker.steps": stats.steps, "maker.samples": stats.samples,
                                      "maker.red_flags": stats.red_flag_total, "gen_ai.usage.output_tokens": stats.tokens})
        self._run.end()
        self._run = None

    def chain_started(self, chain: ChainInfo, state: Any) -> None:
        context = None if self._run is None else trace.set_span_in_context(self._run)
        self._chains[chain] = self.tracer.start_span("maker.chain " + chain.name, context=context, attributes={
            "maker.chain": chain.name, "maker.attempt": chain.attempt, "maker.agents": str(chain.agents)})

    def step_started(self, chain: ChainInfo, step: int, state: Any, prompt: str) -> None:
        parent = self._chains.get(chain)
        context = None if parent is None else trace.set_span_in_context(parent)
        span = self.tracer.start_span("maker.step", context=context, attributes={"maker.chain": chain.name, "maker.step": step})
        self._steps[chain] = (span, time.time_ns())

    def sampled(self, chain: ChainInfo, step: int, samples: Any) -> None:
        open_step = self._steps.get(chain)
        if open_step is None:
            return
        span, began = open_step
        now = time.time_ns()
        model = chain.agent or self._model or "default"
        config = self._config
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "text_completion", "gen_ai.request.model": model,
            "gen_ai.request.choice.count": len(samples), "maker.step": step,
            "gen_ai.usage.output_tokens": sum(sample.tokens for sample in samples),
            "gen_ai.response.finish_reasons": sorted({sample.finish_reason for sample in samples}),
        }
        if config is not None:
            attributes["gen_ai.request.seed"] = step_seed(config.seed, step)
            attributes["gen_ai.request.temperature"] = config.temperature
        self.tracer.start_span(f"text_completion {model}", context=trace.set_span_in_context(span), start_time=began,
                               attributes=attributes).end(end_time=now)
        self._steps[chain] = (span, now)

    def red_flag(self, chain: ChainInfo, step: int, flagged: Flagged) -> None:
        open_step = self._steps.get(chain)
        if open_step is not None:
            open_step[0].add_event("maker.red_flag", {"maker.reason": flagged.reason.value, "maker.detail": flagged.detail[:200]})

    def step_decided(self, chain: ChainInfo, step: int, state: Any, decision: StepDecision) -> None:
        if decision.replayed:
            self._replayed[chain] = self._replayed.get(chain, 0) + 1
            return
        open_step = self._steps.pop(chain, None)
        if open_step is not None:
            span = open_step[0]
            span.set_attributes({"maker.votes": sum(decision.votes), "maker.samples": decision.samples,
                                 "maker.rounds": decision.rounds})
            span.end()

    def chain_reset(self, chain: ChainInfo, reason: str) -> None:
        self._end_chain(chain, reset=reason)

    def chain_finished(self, chain: ChainInfo, state: Any) -> None:
        self._end_chain(chain)

    def _end_chain(self, chain: ChainInfo, reset: str | None = None) -> None:
        span = self._chains.pop(chain, None)
        if span is None:
            return
        span.set_attribute("maker.replayed_steps", self._replayed.pop(chain, 0))
        if reset is not None:
            span.set_status(Status(StatusCode.ERROR, f"voided and redone: {reset}"))
        span.end()



def tracing_to(where: str) -> tuple[TracingObserver, Any]:
    """An observer with its own tracer provider that exports every span: ``"otlp"`` to the OTLP/HTTP
    endpoint the ``OTEL_EXPORTER_OTLP_*`` variables name (default http://localhost:4318), anything else
    a file that gets one JSON span a line. Call the provider's ``shutdown()`` at the end: it flushes."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if where == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter: Any = OTLPSpanExporter()
    else:
        try:
            out = open(where, "w")  # noqa: SIM115 (the exporter closes it at shutdown)
        except OSError as exc:
            raise ConfigError(f"--trace {where!r}: cannot write it: {exc.strerror or exc}") from None
        exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
    provider = TracerProvider(resource=Resource.create({"service.name": "maker"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))  # exported from a thread: the run never waits on it
    return TracingObserver(provider.get_tracer("maker")), provider
