"""OpenTelemetry spans of a run: run > chain > step > sampling round, with the GenAI attributes, red
flags as events, and ``maker run --trace FILE``."""

import json
import subprocess
import sys
from collections import Counter

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the trace extra is not installed (pip install 'maker-engine[trace]')")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

import maker  # noqa: E402
from maker import SimulatedBackend, load_task  # noqa: E402
from maker.tracing import TracingObserver  # noqa: E402


def test_a_run_is_a_tree_of_spans_with_genai_attributes():
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    task = load_task("hanoi", disks=6)
    backend = SimulatedBackend(task, error_rate=0.05, malformed_rate=0.1, seed=2)
    result = maker.run(task, backend, k=3, depth=1, observers=[TracingObserver(provider.get_tracer("test"), easy_steps=1.0)])
    assert result.solved
    spans = exporter.get_finished_spans()
    kinds = Counter(span.name.split(" ")[0] for span in spans)
    assert kinds["maker.run"] == 1 and kinds["maker.chain"] == 2 and kinds["maker.step"] == 63
    run = next(s for s in spans if s.name == "maker.run hanoi")
    chains = [s for s in spans if s.name.startswith("maker.chain")]
    steps = [s for s in spans if s.name == "maker.step"]
    rounds = [s for s in spans if s.name.startswith("text_completion")]
    assert all(c.parent.span_id == run.context.span_id for c in chains)
    chain_ids = {c.context.span_id for c in chains}
    assert all(s.parent.span_id in chain_ids for s in steps)
    step_ids = {s.context.span_id for s in steps}
    assert all(r.parent.span_id in step_ids for r in rounds) and len(rounds) >= 63
    assert len({s.context.trace_id for s in spans}) == 1
    first = rounds[0].attributes
    assert first["gen_ai.operation.name"] == "text_completion" and first["gen_ai.request.choice.count"] >= 1
    assert {"gen_ai.request.seed", "gen_ai.usage.output_tokens", "gen_ai.response.finish_reasons",
            "gen_ai.request.model"} <= set(first)
    assert sum(r.attributes["gen_ai.request.choice.count"] for r in rounds) == result.statistics.samples
    flagged = [e for s in steps for e in s.events if e.name == "maker.red_flag"]
    assert len(flagged) == result.statistics.red_flag_total > 0
    assert run.attributes["maker.solved"] is True and run.attributes["maker.steps"] == 63


def test_maker_run_trace_writes_one_json_span_a_line(tmp_path):
    out = tmp_path / "spans.jsonl"
    done = subprocess.run([sys.executable, "-m", "maker", "run", "hanoi", "--disks", "4", "--backend", "sim", "--k", "2",
                           "--no-progress", "--json", "--trace", str(out), "--trace-easy-steps", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    spans = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(s["name"] == "maker.step" for s in spans) == 15
    assert any(s["name"] == "maker.run hanoi" and s["attributes"]["maker.simulated"] for s in spans)


def test_easy_steps_are_traced_at_their_share_and_hard_ones_always():
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    task = load_task("hanoi", disks=8)
    backend = SimulatedBackend(task, error_rate=0.05, malformed_rate=0.05, seed=3)
    result = maker.run(task, backend, k=3, observers=[TracingObserver(provider.get_tracer("test"), easy_steps=0.1)])
    steps = [s for s in exporter.get_finished_spans() if s.name == "maker.step"]
    hard = [s for s in steps if s.attributes["maker.rounds"] > 1 or s.events]
    easy = len(steps) - len(hard)
    all_hard = sum(n for rounds, n in result.statistics.rounds_per_step.items() if rounds > 1)
    assert len(hard) >= all_hard > 0 and len(steps) < 255
    assert easy == (255 - len(hard)) // 10
    with pytest.raises(maker.ConfigError, match="share"):
        TracingObserver(easy_steps=2)
