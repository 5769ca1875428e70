"""Throughput of the shipped Hanoi model served by vLLM's CPU build, through maker's HTTP backend.

Starts `scripts/vllm_serve` on a free loopback port, then measures (1) generated tokens/s for
batches of concurrent sampling requests on random 10..20-disk Hanoi prompts and (2) steps/s of a
full voted run (`maker.run` over the OpenAI-compatible backend, several chains at once).

    .venv/bin/python bench/vllm_throughput.py [--disks 10] [--depth 4] [--concurrency 64]
Results: bench/results/vllm_throughput.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

import maker  # noqa: E402
from maker.backends.base import SampleRequest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models" / "hanoi"))
from prepare import eval_states  # noqa: E402  (random 10..20-disk steps, computed directly)


def start_server(model: Path, port: int, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        proc = subprocess.Popen([str(ROOT / "scripts" / "vllm_serve"), str(model), str(port)], stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"vLLM exited:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                return proc
        except OSError:
            time.sleep(2)
    sys.exit("vLLM did not start in 10 minutes")


async def raw_throughput(backend: maker.Backend, prompts: list[str], n: int, concurrency: int) -> dict:
    limiter = asyncio.Semaphore(concurrency)

    async def one(prompt: str, seed: int) -> int:
        async with limiter:
            samples = await backend.sample(SampleRequest(prompt, n=n, temperature=0.1, max_tokens=120, seed=seed))
            return sum(s.tokens for s in samples)

    start = time.perf_counter()
    tokens = sum(await asyncio.gather(*(one(p, i) for i, p in enumerate(prompts))))
    wall = time.perf_counter() - start
    return {"requests": len(prompts), "samples": len(prompts) * n, "tokens": tokens, "seconds": round(wall, 2),
            "tokens_per_second": round(tokens / wall, 1), "concurrency": concurrency}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "hanoi" / "model")
    parser.add_argument("--disks", type=int, default=10)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--prompts", type=int, default=512)
    args = parser.parse_args()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = Path("/tmp") / f"vllm_bench_{port}.log"
    started = time.perf_counter()
    proc = start_server(args.model, port, log)
    startup = time.perf_counter() - started
    url = f"http://127.0.0.1:{port}/v1"
    try:
        from maker_tasks.hanoi import compact_prompt

        prompts = [compact_prompt(state) for state in eval_states(args.prompts, seed=7)]
        backend = maker.OpenAIBackend(url, str(args.model), timeout=120)
        raw = asyncio.run(raw_throughput(backend, prompts, 4, args.concurrency))
        print("raw:", raw)
        task = maker.load_task("hanoi", disks=args.disks)
        start = time.perf_counter()
        result = maker.run(task, maker.RetryingBackend(maker.OpenAIBackend(url, str(args.model), timeout=120)),
                           k=args.k, checks=True, depth=args.depth)
        wall = time.perf_counter() - start
        run = {"disks": args.disks, "depth": args.depth, "k": args.k, "steps": result.steps, "solved": result.solved,
               "errors": result.errors, "samples": result.statistics.samples, "tokens": result.statistics.tokens,
               "seconds": round(wall, 2), "steps_per_second": round(result.steps / wall, 1),
               "tokens_per_second": round(result.statistics.tokens / wall, 1)}
        print("run:", run)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    path = write_result("vllm_throughput", {**vars(args), "model": str(args.model)},
                        {"server_startup_seconds": round(startup, 1), "raw": raw, "run": run})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
