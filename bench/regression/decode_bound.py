"""How close the in-process decoder comes to the machine's arithmetic limit, drafting on and off.

    .venv/bin/python bench/regression/decode_bound.py                      # Hanoi, 20 disks, our model
    .venv/bin/python bench/regression/decode_bound.py --batches 64,256 --steps 512

The workload is what a run asks of the model: voted Hanoi steps along the 20-disk trajectory
(states from the start of the run, where the million-step run spends most of its steps on the
same kinds of moves), each asked as the engine's first round asks it: one greedy sample and two
at T = 1.0 (k = 3), with the task's draft hook. Per configuration (batch = sequences per forward
batch, drafting on or off) it reports:

- ``flops``: the workload's arithmetic, counted the plain way: every prompt token once, every
  sample's every reply token once, through every matmul of the model (2 x multiply-adds of its
  weights, the LM head included, and attention to the context each token sees);
- ``matmul_gflops``: the machine's measured rate on the model's own matmul shapes (the MLP's, on
  ``--matmul-rows`` rows), with the same threads;
- ``bound_s`` = flops / rate: the time a decoder that did nothing but those matmuls at that rate
  would take; ``fraction`` = bound_s / measured seconds. Sharing work that the plain count
  repeats (a prompt's cache read by its samples, the samples' identical prefixes computed once)
  is how a decoder can do better than the plain count, so the fraction may exceed 1.

Replies are checked equal with drafting on and off. Writes bench/results/decode_bound.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import torch
import transformers

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from maker import load_task  # noqa: E402
from maker.backends.base import SampleRequest  # noqa: E402
from maker.backends.hf import HFBackend  # noqa: E402
from maker.engine import draft_hook  # noqa: E402


def model_flops_per_token(model: Any, context: float) -> float:
    """FLOPs for one token through ``model`` (a GPT-2 or Llama) that attends to ``context`` tokens."""
    cfg = model.config
    width = cfg.hidden_size
    matmul_params = sum(p.numel() for name, p in model.named_parameters()
                        if p.dim() == 2 and "wte" not in name and "wpe" not in name and "embed_tokens" not in name)
    if getattr(cfg, "tie_word_embeddings", False):
        matmul_params += model.get_output_embeddings().weight.numel()  # the head is the embedding, used as a matmul
    attention = 2 * 2 * cfg.num_hidden_layers * width * context  # scores and weighted values
    return 2 * matmul_params + attention


def matmul_rate(width: int, inner: int, rows: int, device: str, seconds: float = 2.0) -> float:
    """GFLOP/s of ``rows x width @ width x inner`` then ``@ inner x width`` (an MLP), as fast as it goes."""
    a, w1, w2 = (torch.randn(*shape, device=device) for shape in ((rows, width), (width, inner), (inner, width)))
    for _ in range(3):
        (a @ w1) @ w2
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        (a @ w1) @ w2
        done += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return done * 4 * rows * width * inner / (time.perf_counter() - start) / 1e9


def workload(disks: int, steps: int) -> tuple[Any, list[Any]]:
    task = load_task("hanoi", disks=disks)
    state, states = task.initial_state(), []
    for _ in range(steps):
        states.append(state)
        state = task.apply(state, task.oracle(state))
    return task, states


async def run(backend: HFBackend, task: Any, states: list[Any], per_batch: int) -> tuple[float, list[list[str]]]:
    cap = task.run_defaults()["max_tokens"]
    replies: list[list[str]] = []
    start = time.perf_counter()
    for i in range(0, len(states), per_batch):
        requests = []
        for j, state in enumerate(states[i : i + per_batch], start=i):
            prompt, hook = task.prompt(state), draft_hook(task, state)
            requests += [SampleRequest(prompt, 1, 0.0, cap, j, task.agent, hook),
                         SampleRequest(prompt, 2, 1.0, cap, 10_000_000 + j, task.agent, hook)]
        replies += [[s.text for s in r] for r in await backend.sample_many(requests)]
    return time.perf_counter() - start, replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--disks", type=int, default=20)
    parser.add_argument("--steps", type=int, default=2048, help="voted steps per configuration")
    parser.add_argument("--batches", default="64,256,1024", help="sequences per forward batch (3 per step)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--matmul-rows", type=int, default=4096)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the matmul rate is measured there too)")
    parser.add_argument("--name", default="decode_bound")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    # The timed states, then as many others to warm up on: a backend remembers replies per prompt
    # (drafts for later samples of a step), so it must never have seen a timed prompt before.
    task, every_state = workload(args.disks, 2 * args.steps)
    states, warm_states = every_state[: args.steps], every_state[args.steps :]
    # The FLOP count reads transformers' model (the backend reads a plain GPT-2 folder without it).
    model = transformers.AutoModelForCausalLM.from_pretrained(task.default_model, local_files_only=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(task.default_model, local_files_only=True)
    prompt_tokens = [len(tokenizer(task.prompt(s))["input_ids"]) for s in states]
    reply_tokens = [len(tokenizer(task.format_reply(s, task.oracle(s)), add_special_tokens=False)["input_ids"]) + 1  # + EOS
                    for s in states]
    per_token_prompt = model_flops_per_token(model, sum(prompt_tokens) / len(states) / 2)
    per_token_reply = model_flops_per_token(model, sum(p + r / 2 for p, r in zip(prompt_tokens, reply_tokens, strict=True)) / len(states))
    flops = sum(prompt_tokens) * per_token_prompt + 3 * sum(reply_tokens) * per_token_reply
    cfg = model.config
    rate = matmul_rate(cfg.hidden_size, getattr(cfg, "n_inner", None) or getattr(cfg, "intermediate_size", None) or 4 * cfg.hidden_size,
                       args.matmul_rows, args.device)
    bound = flops / (rate * 1e9)
    print(f"model {sum(p.numel() for p in model.parameters()):,} parameters; workload {args.steps} steps, "
          f"{flops / 1e9:.1f} GFLOP; matmul rate {rate:.1f} GFLOP/s; bound {bound:.2f} s", flush=True)
    rows, loop = [], asyncio.new_event_loop()
    for batch in (int(b) for b in args.batches.split(",")):
        per_batch = max(1, batch // 3)
        measured: dict[int, tuple[float, list[list[str]]]] = {}
        # A fresh pair of backends per batch size, each warmed up on other states than the timed ones.
        backends = {draft: HFBackend(str(task.default_model), max_batch=batch, draft=draft, device=args.device)
                    for draft in (0, 32)}
        for draft in (0, 32):
            loop.run_until_complete(run(backends[draft], task, warm_states[: per_batch * 2], per_batch))
        for draft in (0, 32):
            before = backends[draft].statistics()
            seconds, replies = loop.run_until_complete(run(backends[draft], task, states, per_batch))
            after = backends[draft].statistics()
            measured[draft] = (seconds, replies)
            generated = after["tokens"] - before["tokens"]
            row = {"batch": batch, "drafting": bool(draft), "seconds": round(seconds, 3),
                   "generated_tok_s": round(generated / seconds), "steps_s": round(len(states) / seconds, 1),
                   "forward_passes": after["forward_passes"] - before["forward_passes"],
                   "drafted": after["drafted"] - before["drafted"], "draft_accepted": after["draft_accepted"] - before["draft_accepted"],
                   "fraction_of_bound": round(bound / seconds, 3)}
            rows.append(row)
            print(row, flush=True)
        if measured[0][1] != measured[32][1]:
            sys.exit(f"batch {batch}: replies differ with and without drafting: drafting is not exact")
        rows[-1]["speedup_vs_no_drafting"] = round(measured[0][0] / measured[32][0], 2)
        print(f"batch {batch}: drafting {rows[-1]['speedup_vs_no_drafting']}x, replies identical", flush=True)
        for backend in backends.values():
            loop.run_until_complete(backend.aclose())
    loop.close()
    settings = {"task": "hanoi", "disks": args.disks, "steps": args.steps, "samples_per_step": "1 greedy + 2 at T=1.0",
                "threads": torch.get_num_threads(), "device": args.device, "model": str(task.default_model), "draft_tokens": 32}
    numbers = {"parameters": sum(p.numel() for p in model.parameters()), "workload_gflop": round(flops / 1e9, 2),
               "prompt_tokens_per_step": round(sum(prompt_tokens) / len(states), 1),
               "reply_tokens_per_sample": round(sum(reply_tokens) / len(states), 1),
               "matmul_gflops": round(rate, 1), "bound_s": round(bound, 3), "runs": rows}
    print(f"wrote {write_result(args.name, settings, numbers)}")


if __name__ == "__main__":
    main()
