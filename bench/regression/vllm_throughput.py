"""Throughput of the shipped Hanoi model served by vLLM's CPU build, through maker's HTTP backend.

Starts `scripts/vllm_serve` on a free loopback port, then measures (1) generated tokens/s for
batches of concurrent sampling requests on random 10..20-disk Hanoi prompts and (2) steps/s of a
full voted run (`maker.run` over the OpenAI-compatible backend, several chains at once).
With --speculate N it measures both ways, side by side: the same workload on a server without
speculation, then on one with n-gram speculative decoding of N draft tokens (`SPECULATE=N
scripts/vllm_serve`), and records both, their ratio, and whether a handful of greedy replies (and
low-temperature samples, against those greedy replies) come out the same both ways.

    .venv/bin/python bench/regression/vllm_throughput.py [--disks 10] [--depth 4] [--concurrency 64] [--speculate 5]
Results: bench/results/vllm_throughput.json, or bench/results/vllm_speculation.json with --speculate
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

import maker  # noqa: E402
from maker.backends.base import SampleRequest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "models" / "hanoi"))
from prepare import eval_states  # noqa: E402  (random 10..20-disk steps, computed directly)


def start_server(model: Path, port: int, log: Path, speculate: int = 0) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != "SPECULATE"}
    if speculate:
        env["SPECULATE"] = str(speculate)
        env["SPECULATE_GREEDY_ONLY"] = "1"  # the bench measures that it is not: see scripts/vllm_serve
    with open(log, "w") as out:
        proc = subprocess.Popen([str(ROOT / "scripts" / "vllm_serve"), str(model), str(port)], stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True, env=env)
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


async def raw_throughput(backend: maker.Backend, prompts: list[str], n: int, concurrency: int,
                         temperature: float = 0.1) -> dict:
    limiter = asyncio.Semaphore(concurrency)

    async def one(prompt: str, seed: int) -> int:
        async with limiter:
            samples = await backend.sample(SampleRequest(prompt, n=n, temperature=temperature, max_tokens=120, seed=seed))
            return sum(s.tokens for s in samples)

    start = time.perf_counter()
    tokens = sum(await asyncio.gather(*(one(p, i) for i, p in enumerate(prompts))))
    wall = time.perf_counter() - start
    return {"requests": len(prompts), "samples": len(prompts) * n, "tokens": tokens, "seconds": round(wall, 2),
            "tokens_per_second": round(tokens / wall, 1), "concurrency": concurrency, "temperature": temperature}


async def replies(backend: maker.Backend, prompts: list[str], n: int, temperature: float) -> list[list[str]]:
    """The reply texts to each prompt (seeded by its index), for comparing one server's with another's."""
    async def one(prompt: str, seed: int) -> list[str]:
        samples = await backend.sample(SampleRequest(prompt, n=n, temperature=temperature, max_tokens=120, seed=seed))
        return [s.text for s in samples]

    return list(await asyncio.gather(*(one(p, i) for i, p in enumerate(prompts))))


def spec_decode_counters(url: str) -> dict[str, float]:
    """vLLM's speculative-decoding counters (drafts, draft tokens, accepted tokens) from /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    counters = {}
    for line in lines:
        name = line.split("{", 1)[0]
        if name in ("vllm:spec_decode_num_drafts_total", "vllm:spec_decode_num_draft_tokens_total",
                    "vllm:spec_decode_num_accepted_tokens_total"):
            counters[name.removeprefix("vllm:spec_decode_num_").removesuffix("_total")] = float(line.split()[-1])
    return counters


def measure(args: argparse.Namespace, prompts: list[str], speculate: int = 0) -> dict[str, Any]:
    """Start a server (speculating ``speculate`` tokens a step, 0: not), measure it, stop it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = Path("/tmp") / f"vllm_bench_{port}.log"
    started = time.perf_counter()
    proc = start_server(args.model, port, log, speculate)
    startup = time.perf_counter() - started
    url = f"http://127.0.0.1:{port}/v1"
    numbers: dict[str, Any] = {"server_startup_seconds": round(startup, 1)}
    counters = {"drafts": 0.0, "draft_tokens": 0.0, "accepted_tokens": 0.0}

    def spec_phase(name: str) -> None:  # the speculation counters' growth since the last phase
        nonlocal counters
        if speculate:
            now = spec_decode_counters(url.removesuffix("/v1"))
            phase = {key: now.get(key, 0.0) - counters[key] for key in counters}
            phase["acceptance"] = round(phase["accepted_tokens"] / phase["draft_tokens"], 3) if phase["draft_tokens"] else None
            numbers.setdefault("spec_decode", {})[name] = phase
            counters = {key: now.get(key, 0.0) for key in counters}

    try:
        backend = maker.OpenAIBackend(url, str(args.model), timeout=120)
        if args.speculate:
            checked = prompts[:args.check_prompts]
            numbers["greedy"] = [texts[0] for texts in asyncio.run(replies(backend, checked, 1, 0.0))]

            async def mixed() -> tuple[list[list[str]], list[list[str]]]:  # greedy and sampled in the same batches
                return await asyncio.gather(replies(backend, checked, 1, 0.0), replies(backend, checked, 4, 0.1))

            greedy_mixed, numbers["sampled"] = asyncio.run(mixed())
            numbers["greedy_mixed"] = [texts[0] for texts in greedy_mixed]
            spec_phase("checks")
        raw = asyncio.run(raw_throughput(backend, prompts, 4, args.concurrency))
        print("raw:", raw)
        spec_phase("raw")
        if args.speculate:  # speculation keeps greedy output exactly, so greedy decoding is its own case
            numbers["raw_greedy"] = asyncio.run(raw_throughput(backend, prompts * 4, 1, args.concurrency, 0.0))
            print("raw greedy:", numbers["raw_greedy"])
            spec_phase("raw_greedy")
        task = maker.load_task("hanoi", disks=args.disks)
        start = time.perf_counter()
        run_backend = maker.RetryingBackend(maker.OpenAIBackend(url, str(args.model), timeout=120))
        try:
            result = asyncio.run(asyncio.wait_for(maker.run_async(task, run_backend, k=args.k, checks=True,
                                                                  depth=args.depth), args.run_timeout))
        except (TimeoutError, maker.MakerError) as error:  # a timeout, or a step that failed: recorded, not raised
            run = {"disks": args.disks, "depth": args.depth, "k": args.k, "solved": False,
                   "error": str(error).splitlines()[0] if str(error) else "timed out",
                   "seconds": round(time.perf_counter() - start, 2)}
        else:
            wall = time.perf_counter() - start
            run = {"disks": args.disks, "depth": args.depth, "k": args.k, "steps": result.steps,
                   "solved": result.solved, "errors": result.errors, "samples": result.statistics.samples,
                   "tokens": result.statistics.tokens, "seconds": round(wall, 2),
                   "steps_per_second": round(result.steps / wall, 1),
                   "tokens_per_second": round(result.statistics.tokens / wall, 1)}
        print("run:", run)
        numbers.update(raw=raw, run=run)
        spec_phase("run")
        if speculate:
            print("spec_decode:", numbers["spec_decode"])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    return numbers


def ratio(new: dict[str, Any], old: dict[str, Any], key: str) -> float | None:
    return round(new[key] / old[key], 3) if new.get(key) and old.get(key) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "hanoi" / "model")
    parser.add_argument("--disks", type=int, default=10)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--run-timeout", type=float, default=600, help="seconds the voted run may take")
    parser.add_argument("--speculate", type=int, default=0,
                        help="also measure with n-gram speculative decoding of this many tokens, side by side")
    parser.add_argument("--check-prompts", type=int, default=16,
                        help="with --speculate: prompts whose replies are compared both ways")
    args = parser.parse_args()

    from maker_tasks.hanoi import compact_prompt

    prompts = [compact_prompt(state) for state in eval_states(args.prompts, seed=7)]
    settings = {**vars(args), "model": str(args.model)}
    if not args.speculate:
        numbers = measure(args, prompts)
        path = write_result("vllm_throughput", settings,
                            {key: numbers[key] for key in ("server_startup_seconds", "raw", "run")})
        print(f"written to {path}")
        return
    print("without speculation:")
    off = measure(args, prompts)
    print(f"with speculation ({args.speculate} tokens):")
    on = measure(args, prompts, args.speculate)
    # At temperature 0.1 nearly every sample of this model is its greedy reply; a sample that is not
    # is sampling noise or a broken sampler, and the two servers' shares tell which.
    sampled = {}
    for name, numbers in (("without", off), ("with", on)):
        pairs = [(text, greedy) for texts, greedy in zip(numbers.pop("sampled"), numbers["greedy"], strict=True) for text in texts]
        sampled[name] = round(sum(text == greedy for text, greedy in pairs) / len(pairs), 3)
    greedy_off, greedy_on = off.pop("greedy"), on.pop("greedy")
    differing = [{"prompt": prompts[i], "without": a, "with": b}
                 for i, (a, b) in enumerate(zip(greedy_off, greedy_on, strict=True)) if a != b]
    mixed_off, mixed_on = off.pop("greedy_mixed"), on.pop("greedy_mixed")
    differing_mixed = [{"prompt": prompts[i], "without": a, "with": b}
                       for i, (a, b) in enumerate(zip(greedy_off, mixed_on, strict=True)) if a != b]
    comparison = {
        "raw_tokens_per_second_ratio": ratio(on["raw"], off["raw"], "tokens_per_second"),
        "raw_greedy_tokens_per_second_ratio": ratio(on["raw_greedy"], off["raw_greedy"], "tokens_per_second"),
        "run_tokens_per_second_ratio": ratio(on["run"], off["run"], "tokens_per_second"),
        "run_steps_per_second_ratio": ratio(on["run"], off["run"], "steps_per_second"),
        "greedy_prompts": len(greedy_off),
        "greedy_replies_identical": not differing,
        "greedy_replies_differing": differing,
        # The same greedy requests sent while sampled ones share their batches (as a voted run does).
        "greedy_in_mixed_batches_identical": not differing_mixed,
        "greedy_in_mixed_batches_stable_without": mixed_off == greedy_off,
        "greedy_in_mixed_batches_differing": differing_mixed,
        "sampled_equal_to_greedy_share": sampled,
        "draft_acceptance": {phase: counts["acceptance"] for phase, counts in on["spec_decode"].items()},
    }
    print("comparison:", comparison)
    path = write_result("vllm_speculation", settings, {"without": off, "with": on, "comparison": comparison})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
