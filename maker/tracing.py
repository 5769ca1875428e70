"""OpenTelemetry spans of a run, for the tracing tools people already use (optional: the ``trace`` extra).

``TracingObserver`` turns a run's events into spans: the run, then each chain (attempt), then each
step, then each sampling round (every contested or red-flagged step; a share of the easy ones). A round is a GenAI client call as OpenTelemetry's semantic
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
    """Spans of one run (``tracer``: default, the global provider's tracer named ``maker``).

    Every contested step (more than one round) and every step with a red flag gets its spans; of the
    others, a share ``easy_steps`` does (1.0: all), so that a million-step run gives a trace worth
    reading and costs the run little. A step's spans are made when it is decided, with the times it
    recorded as it went: a step left out costs a few tuple appends.
    """

    def __init__(self, tracer: Tracer | None = None, *, easy_steps: float = 0.01) -> None:
        if not 0.0 <= easy_steps <= 1.0:
            raise ConfigError(f"easy_steps is a share of the steps, from 0 to 1; got {easy_steps}")
        self.tracer = tracer or trace.get_tracer("maker")
        self.every = 0 if easy_steps == 0 else max(1, round(1 / easy_steps))  # keep easy step i when i % every == 0
        self._easy = 0
        self._run: Span | None = None
        self._model: str | None = None
        self._config: Any = None
        self._chains: dict[ChainInfo, Span] = {}
        self._replayed: dict[ChainInfo, int] = {}
        # the open step of each chain: [start time, rounds as (start, end, samples), red flags as (time, flagged)]
        self._steps: dict[ChainInfo, tuple[int, list[tuple[int, int, Any]], list[tuple[int, Flagged]]]] = {}

    def run_started(self, task: Task, backend: Any, config: Any) -> None:
        described = backend.describe()
        self._model, self._config = described.get("model"), config
        self._run = self.tracer.start_span("maker.run " + task.name, attributes={
            "maker.task": task.name, "maker.params": json.dumps(task.describe().get("params", {}), sort_keys=True),
            "maker.k": config.k, "maker.rule": config.rule, "maker.checks": config.checks,
            "gen_ai.provider.name": described.get("name", "unknown"), "maker.simulated": bool(described.get("simulated")),
        })

    def run_finished(self, result: Any, error: BaseException | None) -> None:
        for span in self._chains.values():
            span.end()  # chains a failure or Ctrl-C left open
        self._chains.clear()
        self._steps.clear()
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
        self._steps[chain] = (time.time_ns(), [], [])

    def sampled(self, chain: ChainInfo, step: int, samples: Any) -> None:
        open_step = self._steps.get(chain)
        if open_step is not None:
            rounds = open_step[1]
            now = time.time_ns()
            rounds.append((rounds[-1][1] if rounds else open_step[0], now, samples))

    def red_flag(self, chain: ChainInfo, step: int, flagged: Flagged) -> None:
        open_step = self._steps.get(chain)
        if open_step is not None:
            open_step[2].append((time.time_ns(), flagged))

    def step_decided(self, chain: ChainInfo, step: int, state: Any, decision: StepDecision) -> None:
        if decision.replayed:
            self._replayed[chain] = self._replayed.get(chain, 0) + 1
            return
        open_step = self._steps.pop(chain, None)
        if open_step is None:
            return
        began, rounds, flags = open_step
        if decision.rounds == 1 and not flags:  # an easy step: only a share of them
            self._easy += 1
            if not self.every or self._easy % self.every:
                return
        self._emit_step(chain, step, began, rounds, flags, decision)

    def _emit_step(self, chain: ChainInfo, step: int, began: int, rounds: list[tuple[int, int, Any]],
                   flags: list[tuple[int, Flagged]], decision: StepDecision) -> None:
        parent = self._chains.get(chain)
        span = self.tracer.start_span("maker.step", context=None if parent is None else trace.set_span_in_context(parent),
                                      start_time=began, attributes={
                                          "maker.chain": chain.name, "maker.step": step, "maker.votes": sum(decision.votes),
                                          "maker.samples": decision.samples, "maker.rounds": decision.rounds})
        inside = trace.set_span_in_context(span)
        model = chain.agent or self._model or "default"
        config = self._config
        for start, end, samples in rounds:
            attributes: dict[str, Any] = {
                "gen_ai.operation.name": "text_completion", "gen_ai.request.model": model,
                "gen_ai.request.choice.count": len(samples), "maker.step": step,
                "gen_ai.usage.output_tokens": sum(sample.tokens for sample in samples),
                "gen_ai.response.finish_reasons": sorted({sample.finish_reason for sample in samples}),
            }
            if config is not None:
                attributes["gen_ai.request.seed"] = step_seed(config.seed, step)
                attributes["gen_ai.request.temperature"] = config.temperature
            self.tracer.start_span(f"text_completion {model}", context=inside, start_time=start,
                                   attributes=attributes).end(end_time=end)
        for when, flagged in flags:
            span.add_event("maker.red_flag", {"maker.reason": flagged.reason.value, "maker.detail": flagged.detail[:200]},
                           timestamp=when)
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


def tracing_to(where: str, easy_steps: float = 0.01) -> tuple[TracingObserver, Any]:
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
    return TracingObserver(provider.get_tracer("maker"), easy_steps=easy_steps), provider
