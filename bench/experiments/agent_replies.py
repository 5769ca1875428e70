"""What each microagent replies on one Hanoi state: the evidence behind the agreement rule.

    .venv/bin/python bench/experiments/agent_replies.py [--samples 200] [--pegs JSON --previous JSON --cycle 1]

The default state is step 512 of chain 70 of the 20-disk run at depth 8, where a mixed run with
the plain race (every vote for every reply, checks off) committed a wrong step, 27 votes to 24.
Each agent (the specialist models/hanoi/model, the adapter models/adapters/hanoi) writes one
greedy reply and ``--samples`` at T = 1.0 through ``HFBackend``; the oracle judges them after the
fact. Replies are grouped: right, each distinct wrong reply, and unparsable.
Results: bench/results/agent_replies.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

import maker  # noqa: E402
from maker.backends.hf import HFBackend  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
AGENTS = {"specialist": ROOT / "models" / "hanoi" / "model", "adapter": ROOT / "models" / "adapters" / "hanoi"}
STATE = {"pegs": [[20, 15, 14, 9, 8, 7, 6, 5, 4, 3, 2, 1], [19], [18, 17, 16, 13, 12, 11, 10]], "previous": [1, 2, 0],
         "cycle": 1}


async def replies(task: maker.Task, state: object, samples: int) -> dict:
    prompt, right = task.prompt(state), task.oracle(state)
    found = {}
    async with HFBackend({name: str(folder) for name, folder in AGENTS.items()}) as backend:
        for agent in AGENTS:
            counts: Counter[str] = Counter()
            for temperature, n, seed in ((0.0, 1, 0), (1.0, samples, 1)):
                drawn = await backend.sample(maker.SampleRequest(prompt, n, temperature, 120, seed, agent))
                for sample in drawn:
                    try:
                        verdict = "right" if task.parse(state, sample.text) == right else sample.text
                    except maker.RedFlag:
                        verdict = "unparsable"
                    counts[f"{'greedy' if temperature == 0 else 'T=1.0'}: {verdict}"] += 1
            found[agent] = dict(counts.most_common())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=20)
    parser.add_argument("--pegs", default=json.dumps(STATE["pegs"]))
    parser.add_argument("--previous", default=json.dumps(STATE["previous"]))
    parser.add_argument("--cycle", type=int, default=STATE["cycle"], help="disk 1's direction: 1 (cw) or -1")
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    from maker_tasks.hanoi import HanoiState

    task = maker.load_task("hanoi", disks=args.disks)
    state = HanoiState(tuple(tuple(p) for p in json.loads(args.pegs)), tuple(json.loads(args.previous)), args.cycle)
    print(task.prompt(state), end="")
    print("oracle:", task.format_reply(state, task.oracle(state)).replace("\n", " "))
    found = asyncio.run(replies(task, state, args.samples))
    for agent, counts in found.items():
        print(f"{agent}:")
        for verdict, count in counts.items():
            print(f"  {count:>4}  {verdict}".replace("\n", " "))
    print(f"wrote {write_result('agent_replies', vars(args), {'prompt': task.prompt(state), 'replies': found})}")


if __name__ == "__main__":
    main()
