"""Generated tokens/s of the in-process HF backend next to plain ``model.generate``, same model, same run.

    .venv/bin/python bench/regression/hf_throughput.py --model models/hanoi/model --threads 1
    .venv/bin/python bench/regression/hf_throughput.py --random-model     # a random 4 x 128 GPT-2, for development

Prompts are compact Hanoi prompts of random mid-game states (3 to 10 disks). Every sequence
generates exactly ``--new-tokens`` tokens on both sides (EOS ignored), so the token counts match.
Columns: ``generate`` (one ``model.generate`` call on the left-padded batch, greedy), ``hf`` (the
backend, one greedy request per prompt, all concurrent), ``hf shared`` (the backend, batch/4
prompts, each asked as the engine asks a step's first votes: one greedy sample and three at
T = 0.1, so four samples share a prompt; at batch 1 it is empty). Times are
medians of ``--repeats`` runs taken in turns, end to end (tokenizing and detokenizing included),
by wall time and by CPU time (steadier on a shared machine). Writes
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers

ROOT = Path(__file__).resolve().parent.parent.parent
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
        task = load_task("hanoi", disks=rng.randint(3, 10), prompt_style="compact")
        state = task.initial_state()
        for _ in range(rng.randrange(min(2**task.disks - 1, 200))):
            state = task.apply(state, task.oracle(state))
        prompts.append(task.prompt(state))
    return prompts


def run_generate(model, tokenizer, prompts: list[str], new: int) -> None:
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    config = transformers.GenerationConfig(
        do_sample=False, max_new_tokens=new, min_new_tokens=new, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    with torch.inference_mode():
        out = model.generate(**enc, generation_config=config)
    assert out.shape[1] - enc["input_ids"].shape[1] == new


async def run_backend(backend: HFBackend, requests: list[SampleRequest], new: int) -> None:
    replies = await asyncio.gather(*(backend.sample(r) for r in requests))
    assert all(s.tokens == new for reply in replies for s in reply)


def measure(runs: dict[str, Callable[[], None]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds of each run. The runs take turns, so that the machine's
    background load falls on all of them alike; CPU time is the steadier of the two here."""
    for run in runs.values():
        run()  # warm-up: first-call allocations and lazy imports
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for name, t in times.items()}


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
        # HF generate, the baseline, needs transformers' own model (the backend may read a plain GPT-2 folder without it).
        model = transformers.AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        tokenizer.padding_side = "left"
        pool = hanoi_prompts(max(batches))
        lengths = [len(ids) for ids in tokenizer(pool)["input_ids"]]
        rows = []
        loop = asyncio.new_event_loop()
        for b in batches:
            prompts = pool[:b]
            greedy = [SampleRequest(p, 1, 0.0, new) for p in prompts]
            # As the engine asks for a step's first votes: one greedy sample and three at T = 0.1.
            shared = [SampleRequest(p, 1, 0.0, new) for p in prompts[: b // 4]]
            shared += [SampleRequest(p, 3, 0.1, new, seed=i) for i, p in enumerate(prompts[: b // 4])]
            runs = {
                "generate": lambda: run_generate(model, tokenizer, prompts, new),  # noqa: B023
                "hf": lambda: loop.run_until_complete(run_backend(backend, greedy, new)),  # noqa: B023
            }
            if shared:
                runs["hf_shared"] = lambda: loop.run_until_complete(run_backend(backend, shared, new))  # noqa: B023
            seconds = measure(runs, args.repeats)
            row: dict[str, Any] = {"batch": b, "tokens": b * new}
            for name, (wall, cpu) in seconds.items():
                row |= {f"{name}_tok_s": b * new / wall, f"{name}_cpu_tok_s": b * new / cpu, f"{name}_s": wall, f"{name}_cpu_s": cpu}
            row["speedup"] = row["hf_tok_s"] / row["generate_tok_s"]
            row["cpu_speedup"] = row["hf_cpu_tok_s"] / row["generate_cpu_tok_s"]
            rows.append(row)
            print(f"batch {b}: " + ", ".join(f"{k} {v:,.0f}" for k, v in row.items() if k.endswith("tok_s")), flush=True)
        loop.run_until_complete(backend.aclose())
        loop.close()
        described = backend.describe() | {"model": "random 4x128 GPT-2" if args.random_model else str(path)}
        parameters = sum(p.numel() for p in model.parameters())

    print("\nnew tokens/s, by wall time | by CPU time (steadier on a shared machine); shared: 4 samples a prompt")
    print(f"{'batch':>6} {'generate':>9} {'hf':>7} {'shared':>7} {'hf/gen':>7} | {'generate':>9} {'hf':>7} {'shared':>7} {'hf/gen':>7}")
    for r in rows:
        cells = [f"{r[k]:,.0f}" if k in r else "-" for k in ("generate_tok_s", "hf_tok_s", "hf_shared_tok_s")]
        cpu = [f"{r[k]:,.0f}" if k in r else "-" for k in ("generate_cpu_tok_s", "hf_cpu_tok_s", "hf_shared_cpu_tok_s")]
        print(f"{r['batch']:>6} {cells[0]:>9} {cells[1]:>7} {cells[2]:>7} {r['speedup']:>6.2f}x | "
              f"{cpu[0]:>9} {cpu[1]:>7} {cpu[2]:>7} {r['cpu_speedup']:>6.2f}x")
    result = {
        "bench": "hf_throughput",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip(),
        # Uncommitted changes to the code measured: the commit alone does not pin it down.
        "git_dirty": bool(subprocess.run(["git", "status", "--porcelain", "maker", "bench"], cwd=ROOT, capture_output=True, text=True).stdout.strip()),
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
