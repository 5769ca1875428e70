"""Per-step error rate of the Hanoi microagent on random steps of the engine's own runs.

    .venv/bin/python models/hanoi/evaluate.py                       # 10,000 steps, 10..20 disks, greedy + T=0.1
    .venv/bin/python models/hanoi/evaluate.py --n 2000 --min-disks 20 --max-disks 20 --out models/hanoi/eval_20.json
    .venv/bin/python models/hanoi/evaluate.py --big-moves 20 --from-disk 11 --out models/hanoi/eval_big20.json

Each step is a uniformly random step t of the D-disk run from peg 0 to peg 2 (D uniform in
[min, max], fixed seed), rendered with ``compact_prompt``. The model writes its reply through the engine's own backend
(``maker.backends.hf.HFBackend``: one ``SampleRequest`` per step, all in flight at once, so the
backend batches them as it does a run's), greedily and once more sampled at ``--temperature``
(seeded per step). A reply is wrong when its parsed (move, next_state) differs from the oracle's.
Every wrong reply is listed with what would have caught it without the answer: ``format`` (a red
flag without the task's check: parse_reply raises RedFlag, the paper's red flag, or the reply was
cut at the generation cap), ``check`` (HanoiTask.check raises RedFlag: illegal move or next_state
not the move applied), or ``none`` (a valid, wrong vote). Results go to a JSON file (default
models/hanoi/eval_results.json), with the backend's description and counters.

``--big-moves D`` replaces the random steps by every step of the D-disk run that moves a disk of
``--from-disk`` or more (2^(D - from + 1) - 1 steps): a run meets each once, but uniform sampling
almost never does (a 10,000-step sample holds about 10 of the 1,023 for D = 20, from 11).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import prepare  # noqa: E402
from maker_tasks.hanoi import HanoiTask, compact_prompt  # noqa: E402

from maker.backends.base import Sample, SampleRequest  # noqa: E402
from maker.backends.hf import HFBackend  # noqa: E402
from maker.redflag import Flagged, RedFlagJudge  # noqa: E402
from maker.task import oracle_disagrees  # noqa: E402


def judge(state, sample: Sample, disks: int) -> tuple[bool, str | None, str | None]:
    """(correct, caught_by, reason): caught_by is 'format', 'check' or 'none' for a wrong reply.

    The engine's own red-flag judge decides, once without the task's check (the paper's format
    rule, and a reply cut at the generation cap) and once with it; there is no red-flag length
    limit here (the backend stops a reply at disks + 16 tokens).
    """
    task = HanoiTask(disks=disks)
    verdict = RedFlagJudge(task, max_tokens=1 << 30, checks=False).judge(state, sample)
    if isinstance(verdict, Flagged):
        return False, "format", verdict.detail
    if not oracle_disagrees(task, state, verdict):
        return True, None, None
    checked = RedFlagJudge(task, max_tokens=1 << 30, checks=True).judge(state, sample)
    if isinstance(checked, Flagged):
        return False, "check", checked.detail
    return False, "none", "legal move, consistent next_state, but not the strategy's move"


async def replies(backend: HFBackend, states, *, temperature: float, seed: int) -> list[Sample]:
    """One reply per state (greedy if temperature == 0), every request in flight at once."""
    requests = [
        SampleRequest(
            compact_prompt(s),
            n=1,
            temperature=temperature,
            max_tokens=sum(map(len, s.pegs)) + 16,
            seed=seed + i if temperature > 0 else None,
        )
        for i, s in enumerate(states)
    ]
    return [batch[0] for batch in await asyncio.gather(*(backend.sample(r) for r in requests))]


def score(states, samples: list[Sample], label: str) -> dict:
    wrong = []
    per_disks: dict[int, list[int]] = collections.defaultdict(lambda: [0, 0])
    for i, (s, r) in enumerate(zip(states, samples, strict=True)):
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
                    "reply": r.text,
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


async def evaluate(args: argparse.Namespace, states, result: dict) -> None:
    """The greedy pass, then the sampled one, on one backend; results go into ``result``."""
    async with HFBackend(
        args.model, device=args.device, max_batch=args.batch_size, num_threads=args.threads
    ) as backend:
        result["backend"] = backend.describe()
        for temp in [0.0] + ([args.temperature] if args.temperature > 0 else []):
            t0 = time.time()
            samples = await replies(backend, states, temperature=temp, seed=args.seed)
            res = score(states, samples, "greedy" if temp == 0 else f"sample T={temp}")
            res["seconds"] = round(time.time() - t0, 1)
            res["temperature"] = temp
            result["runs"].append(res)
        result["backend_statistics"] = backend.statistics()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(HERE / "model"))
    ap.add_argument("--n", type=int, default=10000, help="random steps")
    ap.add_argument("--seed", type=int, default=2025, help="seed of the steps (training validates on seed 1234)")
    ap.add_argument("--min-disks", type=int, default=10)
    ap.add_argument("--max-disks", type=int, default=20)
    ap.add_argument("--temperature", type=float, default=0.1, help="the sampled pass (0: greedy only)")
    ap.add_argument("--batch-size", type=int, default=256, help="the backend's max_batch (sequences a forward pass)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--big-moves", type=int, metavar="D", help="every big-disk step of the D-disk run instead")
    ap.add_argument("--from-disk", type=int, default=11, help="with --big-moves: the smallest disk counted as big")
    ap.add_argument("--out", default=str(HERE / "eval_results.json"))
    args = ap.parse_args()

    if args.big_moves:
        states = prepare.big_move_states(args.big_moves, args.from_disk)
        args.n, args.min_disks, args.max_disks = len(states), args.big_moves, args.big_moves
    else:
        states = prepare.eval_states(args.n, args.seed, args.min_disks, args.max_disks)
    # training_meta.json: the shipped weights (the earlier loop); training.json: a train.py folder
    meta = [p for p in (Path(args.model) / "training_meta.json", Path(args.model) / "training.json") if p.is_file()]
    training = json.loads(meta[0].read_text()) if meta else None
    for bulky in ("config", "settings", "data", "history"):
        (training or {}).pop(bulky, None)
    result = {
        "model": args.model,
        "n": args.n,
        "seed": args.seed,
        "disks": [args.min_disks, args.max_disks],
        "big_moves_from_disk": args.from_disk if args.big_moves else None,
        "training": training,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "runs": [],
    }
    asyncio.run(evaluate(args, states, result))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("written", args.out)


if __name__ == "__main__":
    main()
