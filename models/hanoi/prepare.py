"""Training and evaluation data for the Hanoi microagent, straight from the oracle.

A sample is one step: the state the engine would show the model (``HanoiState``), the prompt text
(``compact_prompt``) and the correct reply (``format_reply`` of ``strategy_move``). Everything
textual comes from ``maker_tasks.hanoi``; nothing here re-implements the format.

States are those reachable on optimal solutions:

* a whole tower of D disks moved between any two pegs (the engine's run is 0 -> 2), and
* a sub-tower of m < D disks moved between any two pegs while the larger disks m+1..D sit at the
  bottom of the pegs in any legal arrangement (the planner runs such chains; disk 1 cycles the way
  ``disk1_cycle(m, a, b)`` says).

The step index t is uniform over the 2^m - 1 moves; the state after t moves is computed directly
in O(m) (no simulation). Generated on the fly; ``python models/hanoi/prepare.py`` prints samples
and checks them against a brute-force replay.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from maker_tasks.hanoi import (
    HanoiState,
    apply_move,
    build_state,
    compact_prompt,
    format_reply,
    strategy_move,
    tth_move,
)


@dataclass
class DataConfig:
    min_disks: int = 1  # smallest disk count D in training
    max_disks: int = 24  # largest; a few past 20 so that 20 is not the edge of the positions seen
    weight_small: float = 1.0  # relative weight of each D below 10
    weight_10: float = 2.0  # weight of D = 10, rising linearly to ...
    weight_20: float = 6.0  # ... D = 20 (evaluation is 10..20 and errors grow with D)
    weight_large: float = 1.5  # weight of each D above 20
    subtower_share: float = 0.35  # share of samples where a sub-tower moves over larger disks
    non_disk1_share: float = 0.6  # share of steps whose move is not disk 1's (the harder kind)
    first_prev_none: float = 0.5  # at step 0 of a sub-tower chain: previous = none, else a big-disk move
    boundary_share: float = 0.25  # share of steps taken around a move of disk k+1 (k uniform):
    # a k-disk sub-tower has just been assembled on disk 1's peg. Under uniform t such states are
    # exponentially rare (about 2^-k), and they are where a 70-minute model still erred: it named a
    # buried disk in the move that does not move disk 1.
    boundary_top_share: float = 0.0  # share of those boundary steps whose k is drawn from the top
    # half (m // 2 .. m - 1) instead of 1 .. m - 1: the moves of disks 11..20 of a 20-disk run,
    # where the step-6010 model still erred (6 % greedy) while copying long pegs.


def disk_weights(cfg: DataConfig) -> dict[int, float]:
    w = {}
    for d in range(cfg.min_disks, cfg.max_disks + 1):
        if d < 10:
            w[d] = cfg.weight_small
        elif d <= 20:
            w[d] = cfg.weight_10 + (cfg.weight_20 - cfg.weight_10) * (d - 10) / 10
        else:
            w[d] = cfg.weight_large
    return w


def sample_state(rng: random.Random, disks: int, cfg: DataConfig) -> HanoiState:
    """One random training state with ``disks`` disks in all."""
    src, dst = rng.sample(range(3), 2)
    if disks > 1 and rng.random() < cfg.subtower_share:
        m = rng.randint(1, disks - 1)
        big = [rng.randrange(3) for _ in range(disks - m)]
    else:
        m, big = disks, []
    steps = 2**m - 1  # states t = 0 .. steps-1 have a next move
    if m > 2 and rng.random() < cfg.boundary_share:
        top = rng.random() < cfg.boundary_top_share
        k = rng.randint(max(1, m // 2), m - 1) if top else rng.randint(1, m - 1)  # move j * 2^k moves disk k+1; j odd
        j = 2 * rng.randrange(2 ** (m - k - 1)) + 1
        # just before the big move (offset 0: it is the next move), or a little before or after it
        t = min(steps - 1, max(0, j * 2**k - 1 + rng.choice([-2, -1, 0, 0, 0, 1, 1, 2])))
    elif m > 1 and rng.random() < cfg.non_disk1_share:  # t odd: the next move is not disk 1's
        t = 2 * rng.randrange(steps // 2) + 1
    elif m > 1:
        t = 2 * rng.randrange((steps + 1) // 2)
    else:
        t = 0
    if t > 0:
        previous = tth_move(m, t, src, dst)
    elif big and rng.random() >= cfg.first_prev_none:
        state0 = build_state(disks, m, 0, src, dst, big, None)
        tops = [(p[-1], i) for i, p in enumerate(state0.pegs) if p and p[-1] > m]
        if tops:
            disk, peg = rng.choice(tops)
            previous = (disk, rng.choice([i for i in range(3) if i != peg]), peg)
        else:
            previous = None
    else:
        previous = None
    return build_state(disks, m, t, src, dst, big, previous)


def run_state(disks: int, t: int) -> HanoiState:
    """The state after t moves of the engine's own run (D disks from peg 0 to peg 2), as shown."""
    return build_state(disks, disks, t, 0, 2, [], tth_move(disks, t, 0, 2) if t > 0 else None)


def eval_state(rng: random.Random, disks: int) -> HanoiState:
    """A random step of the engine's own run: D disks from peg 0 to peg 2, t uniform."""
    return run_state(disks, rng.randrange(2**disks - 1))


def eval_states(n: int, seed: int, min_disks: int = 10, max_disks: int = 20) -> list[HanoiState]:
    rng = random.Random(seed)
    return [eval_state(rng, rng.randint(min_disks, max_disks)) for _ in range(n)]


def big_move_states(disks: int, min_disk: int) -> list[HanoiState]:
    """Every state of the engine's own run (``disks`` from peg 0 to 2) whose next move is that of a
    disk >= ``min_disk``: 2^(disks - min_disk + 1) - 1 states, in run order. A run meets each one
    once; under uniform sampling they are exponentially rare."""
    # move j * 2^(disk-1) (j odd) moves ``disk``; t counts the moves made before it
    moves_before = sorted(
        j * 2 ** (disk - 1) - 1 for disk in range(min_disk, disks + 1) for j in range(1, 2 ** (disks - disk + 1), 2)
    )
    return [run_state(disks, t) for t in moves_before]


def big_move_eval_states(n: int, seed: int, min_disks: int = 16, max_disks: int = 20) -> list[HanoiState]:
    """``n`` random states of D-disk runs (D uniform in [min, max]) whose next move is a disk of the
    top half (k+1 with k >= D // 2)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        d = rng.randint(min_disks, max_disks)
        k = rng.randint(d // 2, d - 1)
        j = 2 * rng.randrange(2 ** (d - k - 1)) + 1
        out.append(run_state(d, j * 2**k - 1))
    return out


def answer(state: HanoiState) -> tuple[str, str]:
    """(prompt, reply) exactly as the engine sends and expects them."""
    move = strategy_move(state)
    return compact_prompt(state), format_reply(move, apply_move(state.pegs, move))


def _check(n: int = 3000) -> None:
    """Direct states equal brute-force replay, and the strategy reproduces the optimal move."""
    from maker_tasks.hanoi import HanoiTask

    rng = random.Random(0)
    for disks in range(1, 9):
        for src in range(3):
            for dst in range(3):
                if src == dst:
                    continue
                task = HanoiTask(disks=disks, source=src, target=dst)
                state = task.initial_state()
                for t in range(2**disks - 1):
                    direct = build_state(disks, disks, t, src, dst, [], tth_move(disks, t, src, dst) if t else None)
                    assert direct == state, (disks, src, dst, t, direct, state)
                    state = task.apply(state, task.oracle(state))
    cfg = DataConfig()
    for _ in range(n):
        disks = rng.randint(2, 24)
        s = sample_state(rng, disks, cfg)
        move = strategy_move(s)
        apply_move(s.pegs, move)  # legal
        assert sorted(sum(s.pegs, ())) == list(range(1, disks + 1))
    print("prepare: direct states match replay; strategy legal on", n, "random samples")


if __name__ == "__main__":
    _check()
    rng = random.Random(1)
    for _ in range(4):
        p, r = answer(sample_state(rng, rng.randint(3, 8), DataConfig()))
        print(repr(p), "->", repr(r))
