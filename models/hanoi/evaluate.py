"""Per-step error rate of the Hanoi microagent on random steps of the engine's own runs.

    .venv/bin/python models/hanoi/evaluate.py                       # 10,000 steps, 10..20 disks, greedy + T=0.1
    .venv/bin/python models/hanoi/evaluate.py --n 2000 --min-disks 20 --max-disks 20 --out models/hanoi/eval_20.json
    .venv/bin/python models/hanoi/evaluate.py --big-moves 20 --from-disk 11 --out models/hanoi/eval_big20.json

Each step is a uniformly random step t of the D-disk run from peg 0 to peg 2 (D uniform in
[min, max], fixed seed), rendered with ``compact_prompt``. The model writes its reply greedily
(``model.generate``, batched, no padding: a batch holds prompts of one token length), and once
more sampled at ``--temperature``. A reply is wrong when its parsed (move, next_state) differs from
the oracle's. Every wrong reply is listed with what would have caught it without the answer:
``format`` (parse_reply raises RedFlag: the paper's red flag), ``check`` (HanoiTask.check raises
RedFlag: illegal move or next_state not the move applied), or ``none`` (a valid, wrong vote).
Results go to a JSON file (default models/hanoi/eval_results.json).

``--big-moves D`` replaces the random steps by every step of the D-disk run that moves a disk of
``--from-disk`` or more (2^(D - from + 1) - 1 steps): a run meets each once, but uniform sampling
almost never does (a 10,000-step sample holds about 10 of the 1,023 for D = 20, from 11).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import prepare  # noqa: E402
from maker_tasks.hanoi import HanoiTask, compact_prompt  # noqa: E402

from maker import Sample  # noqa: E402
from maker.redflag import Flagged, RedFlagJudge  # noqa: E402
from maker.task import oracle_disagrees  # noqa: E402

torch.set_num_threads(1)


def judge(state, reply: str, disks: int) -> tuple[bool, str | None, str | None]:
    """(correct, caught_by, reason): caught_by is 'format', 'check' or 'none' for a wrong reply.

    The engine's own red-flag judge decides, once without the task's check (the paper's format
    rule) and once with it; length is not judged here (generation stops at disks + 16 tokens).
    """
    task = HanoiTask(disks=disks)
    sample = Sample(reply, 0)
    verdict = RedFlagJudge(task, max_tokens=1 << 30, checks=False).judge(state, sample)
    if isinstance(verdict, Flagged):
        return False, "format", verdict.detail
    if not oracle_disagrees(task, state, verdict):
        return True, None, None
    checked = RedFlagJudge(task, max_tokens=1 << 30, checks=True).judge(state, sample)
    if isinstance(checked, Flagged):
        return False, "check", checked.detail
    return False, "none", "legal move, consistent next_state, but not the strategy's move"


@torch.inference_mode()
def generate(model, tok, states, *, temperature: float, batch_size: int, seed: int) -> list[str]:
    """Replies for ``states`` (greedy if temperature == 0), batched by prompt length."""
    prompts = [compact_prompt(s) for s in states]
    ids = tok(prompts, add_special_tokens=False)["input_ids"]
    groups: dict[int, list[int]] = collections.defaultdict(list)
    for i, x in enumerate(ids):
        groups[len(x)].append(i)
    out: list[str] = [""] * len(states)
    torch.manual_seed(seed)
    for length in sorted(groups):
        idx = groups[length]
        for j in range(0, len(idx), batch_size):
            chunk = idx[j : j + batch_size]
            inp = torch.tensor([ids[i] for i in chunk])
            max_disks = max(sum(len(p) for p in states[i].pegs) for i in chunk)
            kwargs = (
                dict(do_sample=False)
                if temperature == 0
                else dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
            )
            gen = model.generate(
                input_ids=inp,
                attention_mask=torch.ones_like(inp),
                max_new_tokens=max_disks + 16,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
                **kwargs,
            )
            for i, row in zip(chunk, gen[:, length:].tolist(), strict=True):
                out[i] = tok.decode(row, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return out


def score(states, replies, label: str) -> dict:
    wrong = []
    per_disks: dict[int, list[int]] = collections.defaultdict(lambda: [0, 0])
    for i, (s, r) in enumerate(zip(states, replies, strict=True)):
        d = sum(len(p) for p in s.pegs)
        ok, caught, reason = judge(s, r, d)
        per_disks[d][1] += 1
        if not ok:
            per_disks[d][0] += 1
            wrong.append(
                {
                    "index": i,
                    "disks": d,
                    "prompt": compact_prompt(s),
                    "reply": r,
                    "expected": prepare.answer(s)[1],
                    "caught_by": caught,
                    "reason": reason,
                }
            )
    n = len(states)
    caught = collections.Counter(w["caught_by"] for w in wrong)
    res = {
        "mode": label,
        "steps": n,
        "wrong": len(wrong),
        "error_rate": len(wrong) / n,
        "caught_by_format": caught["format"],
        "caught_by_check": caught["check"],
        "uncaught": caught["none"],
        "wrong_by_disks": {d: w for d, (w, _) in sorted(per_disks.items()) if w},
        "wrong_replies": wrong,
    }
    print(
        f"{label}: {len(wrong)}/{n} wrong ({100 * len(wrong) / n:.3f} %); caught by format {caught['format']}, "
        f"by check {caught['check']}, uncaught {caught['none']}; by disks {res['wrong_by_disks']}"
    )
    for w in wrong[:50]:
        print(
            f"  [{w['caught_by']}] {w['prompt'].strip()}\n     got      {w['reply']!r}\n     expected {w['expected']!r}"
        )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(HERE / "model"))
    ap.add_argument("--n", type=int, default=10000, help="random steps")
    ap.add_argument("--seed", type=int, default=2025, help="seed of the steps (training validates on seed 1234)")
    ap.add_argument("--min-disks", type=int, default=10)
    ap.add_argument("--max-disks", type=int, default=20)
    ap.add_argument("--temperature", type=float, default=0.1, help="the sampled pass (0: greedy only)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--big-moves", type=int, metavar="D", help="every big-disk step of the D-disk run instead")
    ap.add_argument("--from-disk", type=int, default=11, help="with --big-moves: the smallest disk counted as big")
    ap.add_argument("--out", default=str(HERE / "eval_results.json"))
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    if args.big_moves:
        states = prepare.big_move_states(args.big_moves, args.from_disk)
        args.n, args.min_disks, args.max_disks = len(states), args.big_moves, args.big_moves
    else:
        states = prepare.eval_states(args.n, args.seed, args.min_disks, args.max_disks)
    meta_path = Path(args.model) / "training_meta.json"
    result = {
        "model": args.model,
        "n": args.n,
        "seed": args.seed,
        "disks": [args.min_disks, args.max_disks],
        "big_moves_from_disk": args.from_disk if args.big_moves else None,
        "training": json.loads(meta_path.read_text()) if meta_path.exists() else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "runs": [],
    }
    if result["training"]:
        result["training"].pop("config", None)
    passes = [0.0] + ([args.temperature] if args.temperature > 0 else [])
    for temp in passes:
        t0 = time.time()
        replies = generate(model, tok, states, temperature=temp, batch_size=args.batch_size, seed=args.seed)
        label = "greedy" if temp == 0 else f"sample T={temp}"
        res = score(states, replies, label)
        res["seconds"] = round(time.time() - t0, 1)
        res["temperature"] = temp
        result["runs"].append(res)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("written", args.out)


if __name__ == "__main__":
    main()
