"""Against a real server: vLLM's CPU build, started by scripts/vllm_serve on 127.0.0.1.

- The shipped Hanoi model: maker solves a 6-disk instance through the OpenAI-compatible HTTP backend.
- LoRA adapters on a shared base (a tiny random Llama built here): base and adapter requests that
  share a batch each get their own model's greedy reply, the one transformers + peft give. vLLM
  0.32's CPU build silently answers base requests with the last adapter's output unless
  ``--max-loras`` has a spare slot; a vote would take those wrong replies for agreement.
- Trained microagents (models/base/model with models/adapters/hanoi and multiply) run two tasks
  through one server; skipped until those folders exist.
- A real pretrained LLM, SmolLM2-135M (``maker install smollm2``), served with one LoRA adapter: each
  greedy reply, base and adapter, is the in-process backend's. Skipped when it is not installed.

Needs the vLLM environment (`scripts/setup --server` or `scripts/vllm_setup`, about 3.5 minutes
and 3.5 GB); each part is skipped without its models. A server takes 25-100 s to start here.
Deselect locally with -m "not server".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from maker_tasks.multiply import product_of

import maker
from maker import OpenAIBackend, RetryingBackend, SampleRequest, load_task
from maker.pretrained import installed_folder

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / os.environ.get("MAKER_VLLM_VENV", ".venv-vllm")
SERVE = ROOT / "scripts" / "vllm_serve"
MODEL = ROOT / "models" / "hanoi" / "model"
BASE = ROOT / "models" / "base" / "model"
HANOI_ADAPTER = ROOT / "models" / "adapters" / "hanoi"
MULTIPLY_ADAPTER = ROOT / "models" / "adapters" / "multiply"

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(not (VENV / "bin" / "python").exists(), reason="vLLM not installed: run scripts/vllm_setup"),
]

START_TIMEOUT_S = 420  # a first start compiles: 25-100 s here, more on a busy machine


# --- one server: start, wait, stop ----------------------------------------------------------------
@dataclass
class Server:
    """A running scripts/vllm_serve: its OpenAI base URL, process (vLLM itself: the script execs it)
    and log file."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(model: Path, log: Path, adapters: Sequence[Path] = ()) -> Iterator[Server]:
    """Run ``scripts/vllm_serve model PORT *adapters`` until the block ends; fails the test (with the
    log's tail) if the server exits or does not answer in time."""
    args = [str(SERVE), str(model), str(free_port()), *map(str, adapters)]
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{args[2]}/v1", proc, log)
    try:
        _wait_until_up(server)
        yield server
    finally:
        _stop(proc)


def _wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.proc.poll() is not None:
            pytest.fail(f"vLLM server exited ({server.proc.returncode}):\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/models", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"vLLM server did not come up in {START_TIMEOUT_S} s:\n{server.log_tail()}")
        time.sleep(2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's whole process group (vLLM's engine and worker processes too), then
    SIGKILL if it has not gone in 30 s."""
    with contextlib.suppress(ProcessLookupError):  # it may have exited already
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def complete(url: str, model: str, prompt: str, tokens: int) -> dict[str, Any]:
    """One greedy /completions choice of exactly ``tokens`` tokens (``ignore_eos``), with its token ids."""
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0.0, "ignore_eos": True,
            "return_token_ids": True}  # vLLM extensions: a fixed length, and ids to compare exactly
    request = urllib.request.Request(f"{url}/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as resp:
        return json.load(resp)["choices"][0]


def complete_at_once(url: str, jobs: Sequence[tuple[str, str]], tokens: int) -> list[dict[str, Any]]:
    """``complete`` for every (model, prompt) in ``jobs``, all sent at the same moment (threads
    released by one barrier), so that the server schedules them into the same batches."""
    barrier = threading.Barrier(len(jobs))

    def one(job: tuple[str, str]) -> dict[str, Any]:
        barrier.wait(timeout=60)
        return complete(url, *job, tokens)

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(one, jobs))


# --- the shipped Hanoi model ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory) -> Iterator[str]:
    if not (MODEL / "config.json").exists():
        pytest.skip("the shipped model is missing")
    with serve(MODEL, tmp_path_factory.mktemp("vllm") / "server.log") as server:
        yield server.url


def test_server_binds_to_loopback_only(vllm_server):
    port = int(vllm_server.rsplit(":", 1)[1].split("/")[0])
    outward = socket.gethostbyname(socket.gethostname())
    if outward.startswith("127."):
        pytest.skip("this machine has no non-loopback address to probe")
    with socket.socket() as sock:
        sock.settimeout(2)
        assert sock.connect_ex((outward, port)) != 0


def test_http_backend_solves_six_disks_against_vllm(vllm_server):
    task = load_task("hanoi", disks=6, prompt_style="compact")
    backend = RetryingBackend(OpenAIBackend(vllm_server, str(MODEL), api="completions", timeout=60))
    # The red-flag limit comes from the task; the temperature from the served folder's maker.json.
    result = maker.run(task, backend, k=2)
    assert result.config.checks and result.config.max_tokens == 4 * 6 + 40 and result.config.temperature == 1.0
    assert result.solved and result.errors == 0 and result.steps == 63
    assert result.backend == "openai" and not result.simulated


# --- LoRA routing: a tiny random base and two adapters, against transformers + peft -------------
PROMPTS = ("move disk 1 from", "digit = 3, carry", "The quick brown fox", "12 x 7 + 4")
NEW_TOKENS = 12
RANKS = {"a": 8, "b": 12}  # b's 12 makes the script round --max-lora-rank up to 16, a rank vLLM accepts


@dataclass
class TinyLoRA:
    """The tiny models' folders and peft's greedy token ids, ``reference[served name][prompt]``."""

    base: Path
    adapters: list[Path]
    reference: dict[str, dict[str, list[int]]]

    @property
    def names(self) -> list[str]:
        """Served model names: the folder paths as given to scripts/vllm_serve."""
        return [str(self.base), *map(str, self.adapters)]


@pytest.fixture(scope="module")
def tiny_lora(tmp_path_factory) -> TinyLoRA:
    pytest.importorskip("peft")
    from tests import lora_models  # imports torch, transformers and peft: only once they are known to be there

    if not lora_models.has_tokenizer(BASE):
        pytest.skip(f"no tokenizer files in {BASE} to build the tiny model with")
    root = tmp_path_factory.mktemp("tiny_lora")
    base = lora_models.build_base(root / "base", BASE)
    adapters = [lora_models.build_adapter(root / name, base, seed=i + 1, rank=rank)
                for i, (name, rank) in enumerate(RANKS.items())]
    models = {str(base): None} | {str(adapter): adapter for adapter in adapters}
    return TinyLoRA(base, adapters, lora_models.reference_replies(base, models, PROMPTS, NEW_TOKENS))


@pytest.fixture(scope="module")
def tiny_lora_server(tiny_lora, tmp_path_factory) -> Iterator[Server]:
    with serve(tiny_lora.base, tmp_path_factory.mktemp("vllm_lora") / "server.log", tiny_lora.adapters) as server:
        yield server


def _check_replies(tiny_lora: TinyLoRA, jobs: Sequence[tuple[str, str]], replies: Sequence[dict[str, Any]]) -> None:
    """Every reply has peft's tokens and text for its own model; a mismatch names the model whose
    reference it equals instead, if any (a request served by the wrong model)."""
    from tests.lora_models import tokenizer_of

    tokenizer = tokenizer_of(tiny_lora.base)
    wrong = []
    for (model, prompt), reply in zip(jobs, replies, strict=True):
        got, want = reply["token_ids"], tiny_lora.reference[model][prompt]
        assert reply["finish_reason"] == "length" and len(got) == NEW_TOKENS
        if got != want:
            like = [Path(name).name for name, peft in tiny_lora.reference.items() if peft[prompt] == got]
            wrong.append(f"{Path(model).name} on {prompt!r}: got {got}, peft {want}, same as {like or 'none'}")
        else:
            # vLLM's incremental detokenizer holds back text that ends in an incomplete UTF-8 sequence
            # and does not flush it when the reply ends: random weights pick byte tokens, which
            # decode to trailing U+FFFD that vLLM's text lacks. All text before them must agree.
            text = tokenizer.decode(want, skip_special_tokens=True)
            assert reply["text"].rstrip("\ufffd") == text.rstrip("\ufffd"), f"{model} on {prompt!r}"
    assert not wrong, f"{len(wrong)} of {len(jobs)} replies are not their model's:\n" + "\n".join(wrong)


def _assert_models_differ(tiny_lora: TinyLoRA) -> None:
    """peft's replies of the base and of each adapter differ on every prompt: otherwise a request
    served by the wrong model could pass the comparison."""
    for prompt in PROMPTS:
        replies = [tuple(tiny_lora.reference[name][prompt]) for name in tiny_lora.names]
        assert len(set(replies)) == len(replies), f"models agree on {prompt!r}: {replies}"


def test_base_and_adapters_in_one_batch_match_peft(tiny_lora, tiny_lora_server):
    _assert_models_differ(tiny_lora)
    jobs = [(name, prompt) for prompt in PROMPTS for name in tiny_lora.names] * 2
    _check_replies(tiny_lora, jobs, complete_at_once(tiny_lora_server.url, jobs, NEW_TOKENS))


def test_adapters_only_in_one_batch_match_peft(tiny_lora, tiny_lora_server):
    _assert_models_differ(tiny_lora)
    jobs = [(str(adapter), prompt) for prompt in PROMPTS for adapter in tiny_lora.adapters] * 2
    _check_replies(tiny_lora, jobs, complete_at_once(tiny_lora_server.url, jobs, NEW_TOKENS))


def test_script_keeps_a_spare_lora_slot(tiny_lora, tiny_lora_server):
    # Without the spare slot (--max-loras 2 for two adapters) vLLM 0.32 on CPU answers the base requests
    # of a mixed batch with the last adapter's output; the batch tests above then fail. Read what runs.
    cmdline = Path(f"/proc/{tiny_lora_server.proc.pid}/cmdline")
    if not cmdline.exists():
        pytest.skip("no /proc to read the server's command line from")
    args = cmdline.read_bytes().decode().split("\0")

    def after(flag: str, count: int = 1) -> list[str]:
        return args[args.index(flag) + 1: args.index(flag) + 1 + count]

    adapters = [str(adapter) for adapter in tiny_lora.adapters]
    assert "--enable-lora" in args
    assert after("--max-loras") == [str(len(adapters) + 1)]
    assert after("--max-lora-rank") == ["16"]  # the largest r, 12, rounded up to a rank vLLM accepts
    assert after("--lora-modules", len(adapters)) == [f"{path}={path}" for path in adapters]
    assert after("--served-model-name") == [str(tiny_lora.base)]


# --- trained microagents: two tasks through two adapters on one base -----------------------------
TRAINED = {
    BASE: ("config.json", "model.safetensors"),
    HANOI_ADAPTER: ("adapter_config.json", "adapter_model.safetensors"),
    MULTIPLY_ADAPTER: ("adapter_config.json", "adapter_model.safetensors"),
}


@pytest.fixture(scope="module")
def microagent_server(tmp_path_factory) -> Iterator[Server]:
    missing = [str((folder / name).relative_to(ROOT)) for folder, names in TRAINED.items() for name in names
               if not (folder / name).is_file()]
    if missing:
        pytest.skip(f"the trained base and adapters are not there yet (missing {', '.join(missing)})")
    log = tmp_path_factory.mktemp("vllm_agents") / "server.log"
    with serve(BASE, log, [HANOI_ADAPTER, MULTIPLY_ADAPTER]) as server:
        yield server


def test_two_tasks_run_through_their_adapters_on_one_server(microagent_server):
    # Served names are the folder paths given to the script; each agent asks for its adapter by it.
    hanoi, multiply = str(HANOI_ADAPTER), str(MULTIPLY_ADAPTER)
    agents = {"hanoi": hanoi, "multiply": multiply, "multiply-product": multiply, "multiply-sum": multiply}
    backend = RetryingBackend(OpenAIBackend(microagent_server.url, str(BASE), api="completions", timeout=60,
                                            agents=agents))

    result = maker.run(load_task("hanoi", disks=5, prompt_style="compact"), backend, k=2)
    assert result.solved and result.errors == 0 and result.steps == 31

    result = maker.run(load_task("multiply", a="4821", b="77"), backend, k=2, depth=1)
    assert result.solved and result.errors == 0
    assert product_of(result.final_state) == 4821 * 77


# --- a real pretrained LLM: SmolLM2-135M and a LoRA adapter on it, against the in-process backend --
SMOLLM2_PROMPTS = (
    "rent 430, food 16, fuel 940\nwithdraw 7 from fuel. New fuel balance?\n",  # docs/examples/ledger.py's
    "Which is larger, 637 or 81? Reply with exactly: larger = <the number>\n",  # the training tutorial's
    "Q: What is the capital of France?\nA:",
    "The three primary colours are",
)
SMOLLM2_TOKENS = 16


@dataclass
class ServedLLM:
    base: Path
    adapter: Path
    server: Server


@pytest.fixture(scope="module")
def smollm2_lora(tmp_path_factory) -> Iterator[ServedLLM]:
    base = installed_folder("smollm2")
    if base is None:
        pytest.skip("SmolLM2 is not installed here: `maker install smollm2` (scripts/setup runs it)")
    pytest.importorskip("peft")
    from tests import lora_models

    root = tmp_path_factory.mktemp("smollm2")
    # A random adapter, gentle enough that SmolLM2 still writes text (near-tied logits would make the
    # comparison a test of rounding), strong enough to change its replies.
    adapter = lora_models.build_adapter(root / "adapter", base, seed=1, rank=8, b_std=0.04)
    with serve(base, root / "server.log", [adapter]) as server:
        yield ServedLLM(base, adapter, server)


def test_smollm2_and_an_adapter_served_reply_as_in_process(smollm2_lora):
    from maker.backends.hf import HFBackend

    agents = {"smollm2": smollm2_lora.base, "adapted": smollm2_lora.adapter}
    requests = [SampleRequest(prompt, max_tokens=SMOLLM2_TOKENS, agent=agent)
                for prompt in SMOLLM2_PROMPTS for agent in agents]

    async def replies(backend: maker.Backend) -> list[str]:
        async with backend:
            return [samples[0].text for samples in await backend.sample_many(requests)]

    local = asyncio.run(replies(HFBackend(agents)))
    served = asyncio.run(replies(OpenAIBackend(smollm2_lora.server.url, str(smollm2_lora.base), api="completions",
                                               timeout=120, agents={name: str(path) for name, path in agents.items()})))
    mismatches = [f"{request.agent} on {request.prompt!r}: in process {mine!r}, vLLM {theirs!r}"
                  for request, mine, theirs in zip(requests, local, served, strict=True) if mine != theirs]
    assert not mismatches, f"{len(mismatches)} of {len(requests)} replies differ:\n" + "\n".join(mismatches)
    # The adapter is applied, on both sides: otherwise a request routed to the base would pass.
    changed = sum(mine != base for base, mine in zip(local[0::2], local[1::2], strict=True))
    assert changed >= len(SMOLLM2_PROMPTS) // 2, f"the adapter changed {changed} of {len(SMOLLM2_PROMPTS)} replies: {local}"
