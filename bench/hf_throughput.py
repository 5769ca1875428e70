"""Generated tokens/s of the in-process HF backend next to plain ``model.generate``, same model, same run.

    .venv/bin/python bench/hf_throughput.py --model models/hanoi/model --threads 1
    .venv/bin/python bench/hf_throughput.py --random-model     # a random 4 x 128 GPT-2, for development

Prompts are compact Hanoi prompts of random mid-game states (4 to 12 disks). Every sequence
generates exactly ``--new-tokens`` tokens on both sides (EOS ignored), so the token counts match.
Columns: ``generate`` (one ``model.generate`` call on the left-padded batch, greedy), ``hf`` (the
backend, one greedy request per prompt, all concurrent), ``hf shared`` (the backend, batch/4
prompts x 4 samples at temperature 1: how the engine asks, one prefill per prompt). Times are
medians of ``--repeats`` runs, end to end (tokenizing and detokenizing included). Writes
bench/results/hf_throughput-<time>.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from maker import load_task  # noqa: E402
from maker.backends.base import SampleRequest  # noqa: E402
from maker.backends.hf import HFBackend  # noqa: E402


def random_model(folder: Path) -> None:
    """A random GPT-2 (4 layers x 128) with a 70-token Hanoi-ish vocabulary, saved to ``folder``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    words = ["<pad>", "<eos>", "<unk>", "cw", "ccw", "prev", "state", "none", "move", "next_state"]
    words += [str(i) for i in range(31)] + list("[], =\n") + list("abcdefghijklmnopqrstuvwxyz")
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\d+|[a-z_]+|."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(vocab), n_layer=4, n_embd=128, n_head=4, n_positions=256, bos_token_id=1, eos_token_id=1, pad_token_id=0
    )
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def hanoi_prompts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    prompts = []
    while len(prompts) < count:
        task = load_task("hanoi", disks=rng.randint(4, 12), prompt_style="compact")
        state = task.initial_state()
        for _ in range(rng.randrange(min(2**task.disks - 1, 200))):
            state = task.apply(state, task.oracle(state))
        prompts.append(task.prompt(state))
    return prompts


def time_generate(model, tokenizer, prompts: list[str], new: int) -> float:
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    config = transformers.GenerationConfig(
        do_sample=False, max_new_tokens=new, min_new_tokens=new, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**enc, generation_config=config)
    seconds = time.perf_counter() - start
    assert out.shape[1] - enc["input_ids"].shape[1] == new
    return seconds


async def time_backend(backend: HFBackend, requests: list[SampleRequest], new: int) -> float:
    start = time.perf_counter()
    replies = await asyncio.gather(*(backend.sample(r) for r in requests))
    seconds = time.perf_counter() - start
    assert all(s.tokens == new for reply in replies for s in reply)
    return seconds


def median_time(run, repeats: int) -> float:
    run()  # warm-up: first-call allocations and lazy imports
    return statistics.median(run() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/hanoi/model", help="a local Hugging Face causal LM folder")
    parser.add_argument("--random-model", action="store_true", help="use a random 4 x 128 GPT-2 instead of --model")
    parser.add_argument("--batches", default="1,4,16,64,256", help="comma-separated batch sizes")
    parser.add_argument("--new-tokens", type=int, default=48, help="tokens generated per sequence")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default=None, help="JSON output path (default: bench/results/hf_throughput-<time>.json)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    new = args.new_tokens

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) if args.random_model else Path(args.model)
        if args.random_model:
            random_model(path)
        backend = HFBackend(path, max_batch=max(batches), ignore_eos=True, num_threads=args.threads)
        model, tokenizer = backend.model, backend.tokenizer
        tokenizer.padding_side = "left"
        pool = hanoi_prompts(max(batches))
        lengths = [len(ids) for ids in tokenizer(pool)["input_ids"]]
        rows = []
        loop = asyncio.new_event_loop()
        for b in batches:
            prompts = pool[:b]
            greedy = [SampleRequest(p, 1, 0.0, new) for p in prompts]
            n = 4 if b >= 4 else 1
            shared = [SampleRequest(p, n, 1.0, new, seed=i) for i, p in enumerate(prompts[: b // n])]
            t_gen = median_time(lambda: time_generate(model, tokenizer, prompts, new), args.repeats)  # noqa: B023
            t_hf = median_time(lambda: loop.run_until_complete(time_backend(backend, greedy, new)), args.repeats)  # noqa: B023
            t_shared = median_time(lambda: loop.run_until_complete(time_backend(backend, shared, new)), args.repeats)  # noqa: B023
            tokens = b * new
            rows.append({
                "batch": b, "generate_tok_s": tokens / t_gen, "hf_tok_s": tokens / t_hf, "hf_shared_tok_s": tokens / t_shared,
                "speedup": t_gen / t_hf, "generate_s": t_gen, "hf_s": t_hf, "hf_shared_s": t_shared,
            })
            print(f"batch {b}: generate {tokens / t_gen:,.0f} tok/s, hf {tokens / t_hf:,.0f}, shared {tokens / t_shared:,.0f}", flush=True)
        loop.run_until_complete(backend.aclose())
        loop.close()
        described = backend.describe() | {"model": "random 4x128 GPT-2" if args.random_model else str(path)}
        parameters = sum(p.numel() for p in model.parameters())

    print(f"\n{'batch':>6} {'generate':>10} {'hf':>10} {'hf shared':>10} {'hf/gen':>7}   (new tokens/s)")
    for r in rows:
        print(f"{r['batch']:>6} {r['generate_tok_s']:>10,.0f} {r['hf_tok_s']:>10,.0f} {r['hf_shared_tok_s']:>10,.0f} {r['speedup']:>6.2f}x")
    result = {
        "bench": "hf_throughput",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip(),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "settings": {
            "threads": torch.get_num_threads(), "new_tokens": new, "repeats": args.repeats, "batches": batches,
            "prompt_tokens": {"min": min(lengths), "median": statistics.median(lengths), "max": max(lengths)},
            "parameters": parameters, "backend": described,
        },
        "results": rows,
    }
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"hf_throughput-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
