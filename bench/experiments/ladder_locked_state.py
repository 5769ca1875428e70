"""One state the specialist gets wrong every time, checks off: can the escalation ladder catch it?

    .venv/bin/python bench/experiments/ladder_locked_state.py

The state is step 820 of chain 115 of the 20-disk depth-8 run (a disk-3 move), where the checks-off
run with the ladder (``model_million.py --no-checks --escalate agent,k ... --hard-kinds disks5-8,...``)
committed its first wrong step: the right move, with disk 7 misplaced in the written next state.
The step is decided 200 times (seeds 0..199) by the engine with the specialist (models/hanoi/model,
T = 1.0 after a greedy first sample, k = 3, checks off): without the ladder, and with the ladder
agent > k calling on the adapter (models/adapters/hanoi) after 8 and after 3 undecided samples, and with
that ladder (after 8) and its witness: the adapter's greedy sample beside each decision's first round.
Counted after the fact by the oracle: wrong decisions, escalated decisions, samples.
Results: bench/results/ladder_locked_state.json
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402
from maker_tasks.hanoi import HanoiState  # noqa: E402

import maker  # noqa: E402
from maker.backends.hf import HFBackend  # noqa: E402
from maker.config import resolve_config  # noqa: E402
from maker.engine import Engine  # noqa: E402
from maker.events import ChainInfo, emitter  # noqa: E402
from maker.mixing import AgentMix  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
FOLDERS = {"hanoi": str(ROOT / "models/hanoi/model"), "helper": str(ROOT / "models/adapters/hanoi")}
DECISIONS = 200


async def measure(task: maker.Task, state: HanoiState) -> dict:
    out = {}
    async with HFBackend(FOLDERS, max_batch=512) as backend:
        for name, after, witness in (("no ladder", None, False), ("ladder after 8", 8, False), ("ladder after 3", 3, False),
                                     ("ladder after 8, witness", 8, True)):
            ladder = None if after is None else {"ladder": ["agent", "k"], "after": after, "agent": "helper",
                                                 "witness": witness}
            config = resolve_config(task, agent="hanoi", catalog=FOLDERS, k=3, checks=False, max_samples_per_step=3000,
                                    escalation=ladder)
            chain = ChainInfo(None, "chain115", task, AgentMix.one("hanoi"))
            decisions = await asyncio.gather(*(Engine(chain, backend, config.model_copy(update={"seed": seed}),
                                                      emitter([])).decide(state, 820) for seed in range(DECISIONS)))
            right = task.oracle(state)
            out[name] = {"wrong": sum(d.candidate != right for d in decisions), "decisions": DECISIONS,
                         "escalated": sum(bool(d.escalated) for d in decisions), "samples": sum(d.samples for d in decisions)}
            print(f"{name}: {out[name]}", flush=True)
    return out


def main() -> None:
    task = maker.load_task("hanoi", disks=20)
    start = task.plan(8).subtask("chain115").start
    pegs = ((20,), (19, 18, 17, 14, 13, 10, 9, 6, 5, 2, 1), (16, 15, 12, 11, 8, 7, 4, 3))
    state = HanoiState(pegs, (1, 0, 1), start.cycle)
    runs = asyncio.run(measure(task, state))
    path = write_result("ladder_locked_state", {"state": {"pegs": [list(p) for p in pegs], "previous": [1, 0, 1],
                                                          "cycle": start.cycle, "kind": task.kind(state)},
                                                "k": 3, "checks": False, "temperature": "1.0 (manifest), first greedy",
                                                "decisions": DECISIONS}, runs)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
