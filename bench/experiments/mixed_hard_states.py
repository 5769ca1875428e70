"""Correlated errors on the hardest Hanoi states: one agent against a mix of two, at equal samples.

    .venv/bin/python bench/experiments/mixed_hard_states.py [--disks 20] [--min-disk 8] [--per-state 4] [--limit N]

The states are every step of the 20-disk run that moves a disk >= 8 (on the optimal trajectory,
step t moves disk 1 + the trailing zeros of t + 1: 8,191 steps). Each state gets ``per_state``
samples drawn as a run draws a step's first round (the first greedy, the rest at the run's
temperature), checks off, so only the vote stands between a wrong reply and the journal, by:

- the specialist alone (models/hanoi/model),
- the adapter on the shared base alone (models/adapters/hanoi),
- the mix specialist,adapter (sample i from entry i mod 2),

all in this one process, one after another, on the same states with the same seeds. Counted per
configuration (the oracle judges after the fact; ``maker.estimate``): states whose valid samples
are all wrong, and states where two valid samples give the *same* wrong answer (what a vote can
lock in), among all of a state's samples and among its first two (a k = 3 step's first votes). The
mix is compared with the better single agent by a one-sided Fisher exact test.
Results: bench/results/mixed_hard_states_d<disks>.json
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

import maker  # noqa: E402
from maker.backends.hf import HFBackend  # noqa: E402
from maker.estimate import estimate_async, states_at  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
SPECIALIST, ADAPTER = "specialist", "adapter"
FOLDERS = {SPECIALIST: ROOT / "models" / "hanoi" / "model", ADAPTER: ROOT / "models" / "adapters" / "hanoi"}


def fisher_less(a_hits: int, a_total: int, b_hits: int, b_total: int) -> float:
    """One-sided p-value that the first proportion is lower than the second (hypergeometric lower tail)."""
    hits, total = a_hits + b_hits, a_total + b_total
    norm = math.comb(total, hits)
    return sum(math.comb(a_total, x) * math.comb(b_total, hits - x) for x in range(0, a_hits + 1)) / norm


async def measure(task: maker.Task, states: list, mix: str, args: argparse.Namespace) -> dict:
    async with HFBackend({name: str(folder) for name, folder in FOLDERS.items()}, max_batch=args.max_batch) as backend:
        began = time.perf_counter()
        report = await estimate_async(task, backend, samples=len(states), per_state=args.per_state, states=states,
                                      temperature=args.temperature, first_temperature=0.0, checks=False,
                                      concurrency=args.concurrency, seed=args.seed, mix=mix)
        seconds = time.perf_counter() - began
    agents = report.agents
    return {
        "mix": mix, "states": report.states, "samples": report.samples, "valid": report.valid,
        "wrong_valid": report.valid - report.correct, "p": report.p, "v": report.v,
        "all_wrong_states": report.all_wrong_states, "same_wrong_states": report.same_wrong_states,
        "first_pair_collisions": report.collisions, "first_pair_collisions_same": report.collisions_same,
        "by_agent": None if agents is None else {a.agent: {"samples": a.samples, "valid": a.valid, "p": a.p,
                                                          "collisions_same": a.collisions_same, "pairs": a.pairs}
                                                 for a in agents.agents},
        "cross": None if agents is None else [{"agents": list(c.agents), "pairs": c.pairs, "both_wrong": c.collisions,
                                               "same": c.collisions_same, "expected": c.expected_collisions}
                                              for c in agents.crosses],
        "seconds": round(seconds, 1),
    }


def big_disk_states(task: maker.Task, min_disk: int, limit: int | None) -> tuple[list[int], list]:
    """The steps of the optimal trajectory that move a disk >= ``min_disk`` (the first ``limit``), and their states."""
    period = 2 ** (min_disk - 1)
    indices = [t for t in range(task.total_steps()) if (t + 1) % period == 0][:limit]
    return indices, states_at(task, indices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=20)
    parser.add_argument("--min-disk", type=int, default=8, help="states whose move is of this disk or a larger one")
    parser.add_argument("--per-state", type=int, default=4, help="samples per state, the same for every configuration")
    parser.add_argument("--temperature", type=float, default=1.0, help="of every sample after the first (greedy)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N of those states (a quick look)")
    parser.add_argument("--max-batch", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    task = maker.load_task("hanoi", disks=args.disks)
    _, states = big_disk_states(task, args.min_disk, args.limit)
    runs = {mix: asyncio.run(measure(task, states, mix, args)) for mix in (SPECIALIST, ADAPTER, f"{SPECIALIST},{ADAPTER}")}
    for name, r in runs.items():
        print(f"{name:>20}: {r['samples']:,} samples, p {r['p']:.5f}, v {r['v']:.4f}, all-wrong states "
              f"{r['all_wrong_states']}, same-wrong-answer states {r['same_wrong_states']} ({r['seconds']} s)")
    singles = [runs[SPECIALIST], runs[ADAPTER]]
    best = min(singles, key=lambda r: (r["same_wrong_states"], r["all_wrong_states"]))
    mixed = runs[f"{SPECIALIST},{ADAPTER}"]
    n = len(states)
    comparison = {
        "best_single": best["mix"],
        "same_wrong_states": {"single": best["same_wrong_states"], "mix": mixed["same_wrong_states"],
                              "p_value_mix_lower": fisher_less(mixed["same_wrong_states"], n, best["same_wrong_states"], n)},
        "all_wrong_states": {"single": best["all_wrong_states"], "mix": mixed["all_wrong_states"],
                             "p_value_mix_lower": fisher_less(mixed["all_wrong_states"], n, best["all_wrong_states"], n)},
        # The first two samples of a state (a k = 3 step's first votes): the same wrong answer twice.
        "first_pair_same_wrong": {"single": best["first_pair_collisions_same"], "mix": mixed["first_pair_collisions_same"],
                                  "p_value_mix_lower": fisher_less(mixed["first_pair_collisions_same"], n,
                                                                   best["first_pair_collisions_same"], n)},
    }
    for what, counts in comparison.items():
        if what != "best_single":
            print(f"mix against {best['mix']}, {what.replace('_', ' ')}: {counts}")
    path = write_result(f"mixed_hard_states_d{args.disks}", vars(args), {"states": n, "runs": runs, "comparison": comparison})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
