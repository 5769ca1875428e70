"""Against a real server: vLLM's CPU build serves the shipped Hanoi model on 127.0.0.1 and maker
solves a 6-disk instance through the OpenAI-compatible HTTP backend.

Needs the vLLM environment (`scripts/setup --server` or `scripts/vllm_setup`, about 3.5 minutes
and 3.5 GB) and the shipped model; skipped without them. Deselect locally with -m "not server".
"""

import contextlib
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import maker
from maker import OpenAIBackend, RetryingBackend, load_task

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / os.environ.get("MAKER_VLLM_VENV", ".venv-vllm")
MODEL = ROOT / "models" / "hanoi" / "model"

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(not (VENV / "bin" / "python").exists(), reason="vLLM not installed: run scripts/vllm_setup"),
    pytest.mark.skipif(not (MODEL / "config.json").exists(), reason="the shipped model is missing"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(ROOT / "scripts" / "vllm_serve"), str(MODEL), str(port)], stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 420  # first start compiles: 60-100 s here, more on a busy machine
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM server did not come up in time:\n{log.read_text()[-3000:]}")
            time.sleep(2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited already
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


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
