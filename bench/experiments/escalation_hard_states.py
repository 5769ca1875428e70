"""The escalation ladder on the hardest Hanoi states: the specialist alone, checks off, with and without it.

    .venv/bin/python bench/experiments/escalation_hard_states.py [--disks 20] [--min-disk 8] [--limit N]

The states are every step of the 20-disk run that moves a disk >= 8 (8,191 steps; the states of
``mixed_hard_states.py``). Each state's step is decided on its own by the engine (``Engine.decide``,
k = 3, the first sample greedy, the rest at T = 1, checks off: only format red flags and the vote
stand between a wrong reply and the decision), once per configuration, in this one process:

- ``plain``: the specialist (models/hanoi/model) alone, no ladder;
- ``ladder``: paraphrase > agent > k after 8 undecided samples a rung, the agent rung calling on the
  adapter on the shared base (models/adapters/hanoi), which must then agree;
- ``ladder+hard``: the same, and steps of the kinds ``--hard-kinds`` start on the agent rung;
- ``ladder+witness``: the ladder, and the adapter draws a witness beside each step's first round (one greedy
  sample); a step whose winner the witness did not give climbs straight to the agent rung.

Counted after the fact by the oracle (``maker.statistics``): wrong decisions, steps that failed at the
cap, samples, the samples each rung drew, and wall time.
Results: bench/results/escalation_hard_states_d<disks>.json
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402
from mixed_hard_states import big_disk_states  # noqa: E402 (beside this file)

import maker  # noqa: E402
from maker.backends.hf import HFBackend  # noqa: E402
from maker.config import resolve_config  # noqa: E402
from maker.engine import Engine  # noqa: E402
from maker.events import ChainInfo, emitter  # noqa: E402
from maker.mixing import AgentMix  # noqa: E402
from maker.statistics import StatisticsRecorder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
FOLDERS = {"specialist": ROOT / "models" / "hanoi" / "model", "adapter": ROOT / "models" / "adapters" / "hanoi"}


async def decide_all(task: maker.Task, backend: HFBackend, states: list, indices: list[int], escalation: dict | None,
                     args: argparse.Namespace) -> dict:
    catalog = {name: str(folder) for name, folder in FOLDERS.items()}
    config = resolve_config(task, agent="specialist", catalog=catalog, k=args.k, checks=False,
                            max_samples_per_step=args.cap, escalation=escalation)
    recorder = StatisticsRecorder(oracle=True, check=True, verify=True, checks=False)
    chain = ChainInfo(None, "hard-states", task, AgentMix.one("specialist"))
    engine = Engine(chain, backend, config, emitter([recorder]))
    limit, failed = asyncio.Semaphore(args.concurrency), []

    async def one(index: int, state: object) -> None:
        async with limit:
            try:
                decision = await engine.decide(state, index)
            except maker.StepFailed as exc:
                failed.append({"step": index, "samples": exc.samples, "climbed": exc.escalated})
                return
            for hook in engine.emit.step_decided:
                hook(chain, index, state, decision)

    began = time.perf_counter()
    await asyncio.gather(*(one(i, s) for i, s in zip(indices, states, strict=True)))
    seconds = time.perf_counter() - began
    stats = recorder.snapshot()
    return {"decided": stats.steps, "wrong": stats.errors, "failed": len(failed), "failed_steps": failed[:20],
            "samples": stats.samples + sum(f["samples"] for f in failed), "samples_decided": stats.samples,
            "red_flags": stats.red_flag_total, "escalations": {r: dict(c) for r, c in stats.escalations.items()},
            "by_agent": {a: dict(c) for a, c in stats.by_agent.items()}, "seconds": round(seconds, 1)}


async def measure(task: maker.Task, states: list, indices: list[int], args: argparse.Namespace) -> dict:
    ladder = {"ladder": ["paraphrase", "agent", "k"], "after": args.after, "agent": "adapter"}
    configurations = {"plain": None, "ladder": ladder, "ladder+hard": {**ladder, "hard_kinds": args.hard_kinds.split(",")},
                      "ladder+witness": {**ladder, "witness": True}}
    out = {}
    async with HFBackend({name: str(folder) for name, folder in FOLDERS.items()}, max_batch=args.max_batch) as backend:
        for name, escalation in configurations.items():
            out[name] = await decide_all(task, backend, states, indices, escalation, args)
            r = out[name]
            print(f"{name:>12}: {r['wrong']} wrong, {r['failed']} failed of {len(states):,}; {r['samples']:,} samples; "
                  f"escalations {r['escalations']}; {r['seconds']} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=20)
    parser.add_argument("--min-disk", type=int, default=8, help="states whose move is of this disk or a larger one")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--after", type=int, default=8, help="undecided samples on a rung before the next")
    parser.add_argument("--hard-kinds", default="disks5-8,disks9-12,disks13+",
                        help="kinds that start on the agent rung in the ladder+hard configuration")
    parser.add_argument("--cap", type=int, default=200, help="samples a step may draw undecided")
    parser.add_argument("--limit", type=int, default=None, help="only the first N of those states (a quick look)")
    parser.add_argument("--max-batch", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=256)
    args = parser.parse_args()
    task = maker.load_task("hanoi", disks=args.disks)
    indices, states = big_disk_states(task, args.min_disk, args.limit)
    runs = asyncio.run(measure(task, states, indices, args))
    name = f"escalation_hard_states_d{args.disks}" + ("" if args.limit is None else f"_first{args.limit}")
    path = write_result(name, {**vars(args), "temperature": "the specialist's manifest (1.0), first sample greedy",
                               "checks": False, "prompt": "hanoi compact (paraphrase rung: its two rewordings)"},
                        {"states": len(states), "runs": runs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
