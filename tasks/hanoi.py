"""Towers of Hanoi as MAKER ran it: one agent call per move, the paper's format and red flags.

A state is the three pegs (each listed bottom to top), the previous move and the direction disk
1 cycles in. A candidate is the pair (move, next_pegs), compared exactly, as in the paper.

Two prompt renderings: ``"paper"`` (full instructions, for general LLMs) and ``"compact"`` (the
minimal context our own small model was trained on). Both ask for the same reply format, read
by the same red-flag parser.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from maker import Plan, RedFlag, RedFlagReason, Subtask, Task

Pegs = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
Move = tuple[int, int, int]  # (disk, from_peg, to_peg)
Candidate = tuple[Move, Pegs]


class HanoiState(NamedTuple):
    pegs: Pegs
    previous: Move | None  # None before the first move
    cycle: int  # 1: disk 1 moves 0 -> 1 -> 2 -> 0 (clockwise); 2: 0 -> 2 -> 1 -> 0


class HanoiParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disks: int = Field(20, ge=1, le=64, description="number of disks")
    source: int = Field(0, ge=0, le=2, description="peg the tower starts on")
    target: int = Field(2, ge=0, le=2, description="peg the tower must end on")
    prompt_style: Literal["paper", "compact"] = Field(
        "compact", description="'compact': what our shipped model reads; 'paper': the paper's full instructions, for general LLMs"
    )

    @model_validator(mode="after")
    def _distinct_pegs(self) -> HanoiParams:
        if self.source == self.target:
            raise ValueError(f"source and target must differ (both are {self.source})")
        return self


def disk1_cycle(disks: int, source: int, target: int) -> int:
    """Direction disk 1 cycles in when moving ``disks`` disks from ``source`` to ``target``.

    With an odd count disk 1's first move goes straight to the target; with an even count it goes
    to the spare peg first.
    """
    direct = (target - source) % 3
    return direct if disks % 2 == 1 else 3 - direct


# Kinds of step (Task.kind): the disk that moves, with the rarer big disks grouped so that each kind
# holds enough steps to measure (at 20 disks: 524,288 moves of disk 1, 255 of disks 13 and up).
KIND_GROUPS: tuple[tuple[int, int], ...] = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 8), (9, 12), (13, 64))


def kind_name(low: int, high: int) -> str:
    return f"disk{low}" if low == high else f"disks{low}+" if high == 64 else f"disks{low}-{high}"


_KIND_OF_DISK = {disk: kind_name(low, high) for low, high in KIND_GROUPS for disk in range(low, high + 1)}


def disk_to_move(state: HanoiState) -> int:
    """The disk this step moves, by the rules the prompt states: disk 1 unless it moved last, else the
    one other legal move's disk (the smaller top of the two pegs disk 1 is not on). 0 if the pegs leave
    no such move."""
    if state.previous is None or state.previous[0] != 1:
        return 1
    tops = [peg[-1] for peg in state.pegs if peg and peg[-1] != 1]
    return min(tops) if tops else 0


def apply_move(pegs: Pegs, move: Move) -> Pegs:
    """Pegs after ``move``; raises ValueError if the move is illegal."""
    disk, src, dst = move
    if not (0 <= src <= 2 and 0 <= dst <= 2) or src == dst:
        raise ValueError(f"move {list(move)} names bad pegs")
    from_peg, to_peg = pegs[src], pegs[dst]
    if not from_peg or from_peg[-1] != disk:
        raise ValueError(f"disk {disk} is not on top of peg {src}")
    if to_peg and to_peg[-1] < disk:
        raise ValueError(f"disk {disk} cannot go on disk {to_peg[-1]}")
    new = list(pegs)
    new[src] = from_peg[:-1]
    new[dst] = to_peg + (disk,)
    return (new[0], new[1], new[2])


def strategy_move(state: HanoiState) -> Move:
    """The paper's strategy: disk 1 moves one peg in its direction unless it just moved;
    otherwise the only legal move that leaves disk 1 alone."""
    pegs = state.pegs
    one = next((i for i in range(3) if pegs[i] and pegs[i][-1] == 1), None)
    if one is None:
        raise ValueError("disk 1 is not on top of any peg")
    if state.previous is None or state.previous[0] != 1:
        return (1, one, (one + state.cycle) % 3)
    a, b = (one + 1) % 3, (one + 2) % 3
    top_a = pegs[a][-1] if pegs[a] else None
    top_b = pegs[b][-1] if pegs[b] else None
    if top_a is None and top_b is None:
        raise ValueError("no legal move besides disk 1: the tower is complete")
    if top_b is None or (top_a is not None and top_a < top_b):
        return (top_a, a, b)  # type: ignore[return-value]
    return (top_b, b, a)


# The paper's red-flag parser: last `move = [a, b, c]` and last `next_state = [[..], [..], [..]]`,
# case-insensitive, with a word boundary before the key. The patterns run on the lower-cased reply
# (cheaper than (?i)) and the boundary is checked by hand (a leading \b defeats regex prefix scans).
_MOVE = re.compile(r"move\s*=\s*\[([^\[\]]*)\]")
# Between the state's lists: whitespace, but not \v or \x1c-\x1f, which literal_eval refuses (a
# non-ASCII space, refused too, is caught after the match: isascii() is free on an ASCII reply).
_SEP = r"[^\S\x0b\x1c-\x1f]*"
_PEG_LIST = r"\[([^\[\]]*)\]"
_STATE = re.compile(rf"next_state\s*=\s*\[{_SEP}{_PEG_LIST}{_SEP},{_SEP}{_PEG_LIST}{_SEP},{_SEP}{_PEG_LIST}{_SEP}\]")
# A list's inside as the paper's literal_eval reads it, minus what it lets through that only a
# confused reply writes (True, +1, 1_0, 0x1, 00): ASCII integers in canonical form (no leading
# zero, no full-width or other-script digit), the whitespace Python's tokenizer allows, and an
# optional trailing comma. int() alone would read '３' and '01'. (Possessive quantifiers: nothing
# to backtrack into, and a third faster on a long peg.)
_SPACE = r"[ \t\n\r\f]*+"
_INT = r"-?+(?:0|[1-9][0-9]*+)"
_INT_LIST = re.compile(rf"{_SPACE}(?:{_INT}{_SPACE}(?:,{_SPACE}{_INT}{_SPACE})*+,?+{_SPACE})?+")
_LEADING_ZERO = re.compile(r"-?0[0-9]+")
_INTS_CACHE: dict[str, tuple[int, ...]] = {}  # list text -> ints: moves and most pegs repeat


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = None
    for match in pattern.finditer(text):
        start = match.start()
        if start == 0 or not (text[start - 1].isalnum() or text[start - 1] == "_"):
            last = match
    return last


def _cached_ints(text: str, what: str) -> tuple[int, ...]:
    ints = _INTS_CACHE.get(text)
    if ints is None:
        ints = _ints(text, what)  # only well-formed texts are cached
        if len(_INTS_CACHE) >= 4096:
            _INTS_CACHE.clear()
        _INTS_CACHE[text] = ints
    return ints


_PEG_JSON: dict[tuple[int, ...], str] = {}


def _peg_json(peg: tuple[int, ...]) -> str:
    text = _PEG_JSON.get(peg)
    if text is None:
        if len(_PEG_JSON) >= 4096:
            _PEG_JSON.clear()
        text = _PEG_JSON[peg] = str(list(peg))
    return text


def _ints(text: str, what: str) -> tuple[int, ...]:
    if _INT_LIST.fullmatch(text) is None:
        raise RedFlag(_why_not_ints(text, what))
    parts = text.split(",")
    if not parts[-1].strip():  # an empty list, or a Python list literal's trailing comma
        parts.pop()
    try:
        return tuple(map(int, parts))
    except ValueError:  # over Python's 4300-digit limit; literal_eval refuses it too
        raise RedFlag(f"{what} holds a number too long to read") from None


def _why_not_ints(text: str, what: str) -> str:
    """The red flag's detail for a list inside ``_INT_LIST`` refuses (not the hot path)."""
    shown = text.strip()
    for char in text:
        if char.isdigit() and not char.isascii():
            return f"non-ASCII digit in {what} ({char!r}, U+{ord(char):04X}): [{shown}]"
        if char.isspace() and char not in " \t\n\r\f":
            return f"whitespace literal_eval refuses in {what} (U+{ord(char):04X}): [{shown}]"
    if any(_LEADING_ZERO.fullmatch(part.strip(" \t\n\r\f")) for part in text.split(",")):
        return f"leading zero in {what}: [{shown}]"
    return f"{what} holds something other than integers: [{shown}]"


@functools.cache
def _all_disks(disks: int) -> list[int]:
    return list(range(1, disks + 1))


def parse_reply(reply: str, disks: int) -> Candidate:
    """Parse a reply into (move, next_pegs) or raise RedFlag; legality is NOT checked here."""
    text = reply.lower()
    move_match = _last_match(_MOVE, text)
    if move_match is None:
        raise RedFlag("no 'move = [...]' found")
    state_match = _last_match(_STATE, text)
    if state_match is None:
        raise RedFlag("no 'next_state = [[...], [...], [...]]' found")
    move = _cached_ints(move_match.group(1), "move")
    if len(move) != 3:
        raise RedFlag(f"move must be exactly three integers, got {len(move)}")
    pegs = (
        _cached_ints(state_match.group(1), "next_state"),
        _cached_ints(state_match.group(2), "next_state"),
        _cached_ints(state_match.group(3), "next_state"),
    )
    # The lists' insides are checked; literal_eval also refuses a non-ASCII space between them.
    if not text.isascii() and not text[text.index("[", state_match.start()) : state_match.end()].isascii():
        raise RedFlag("non-ASCII character between next_state's lists")
    if sorted(pegs[0] + pegs[1] + pegs[2]) != _all_disks(disks):
        raise RedFlag(f"next_state must hold each disk 1..{disks} exactly once")
    return move, pegs


_MOVE_OPENING = "move = ["  # how every reply begins


def format_reply(move: Move, pegs: Pegs) -> str:
    return f"move = {list(move)}\nnext_state = {[list(p) for p in pegs]}"


_CYCLE_WORDS = {1: "clockwise (0 -> 1 -> 2 -> 0)", 2: "counterclockwise (0 -> 2 -> 1 -> 0)"}

PAPER_PROMPT = """You are solving the Towers of Hanoi puzzle with {disks} disks, numbered 1 (smallest) \
to {disks} (largest), on 3 pegs numbered 0, 1 and 2. A state lists each peg's disks from bottom to top.

Rules:
- Move one disk at a time, taking the top disk of one peg and placing it on top of another peg.
- Never place a larger disk on a smaller disk.

Strategy (follow it exactly):
- If the previous move did not move disk 1, move disk 1 one peg {cycle}.
- Otherwise, make the only legal move that does not move disk 1.

Previous move: {previous}
Current state: {state}

Give the next move and the state after it, in exactly this form, and nothing after it:
move = [disk, from_peg, to_peg]
next_state = [[...], [...], [...]]
"""


class HanoiTask(Task):
    """Move a tower of ``disks`` disks from ``source`` to ``target``, one voted move per step.

    >>> task = HanoiTask(disks=3)
    >>> state = task.initial_state()
    >>> task.oracle(state)
    ((1, 0, 2), ((3, 2), (), (1,)))
    """

    name = "hanoi"
    Params = HanoiParams
    #: our own microagent, trained on the compact prompt (models/hanoi/); the default backend
    default_model = Path(__file__).resolve().parent.parent / "models" / "hanoi" / "model"
    agent = "hanoi"
    kind_names = tuple(kind_name(low, high) for low, high in KIND_GROUPS)
    params: HanoiParams

    def run_defaults(self) -> dict[str, object]:
        # Our model's replies are a few dozen tokens (its context is 256); the paper's prompt asks
        # a general LLM, for which the paper's 750-token limit stands.
        return {"max_tokens": 4 * self.disks + 40} if self._compact else {}

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        p = self.params
        self.disks = p.disks
        self._compact = p.prompt_style == "compact"
        # The instructions before the state, for each direction disk 1 can cycle in (a chain of
        # the planner carries its own); built once, not on every step.
        head = PAPER_PROMPT.split("Previous move:")[0]
        self._paper_heads = {cycle: head.format(disks=p.disks, cycle=words) for cycle, words in _CYCLE_WORDS.items()}

    # --- the Task protocol --------------------------------------------------------------------
    def initial_state(self) -> HanoiState:
        p = self.params
        pegs: list[tuple[int, ...]] = [(), (), ()]
        pegs[p.source] = tuple(range(p.disks, 0, -1))
        return HanoiState((pegs[0], pegs[1], pegs[2]), None, disk1_cycle(p.disks, p.source, p.target))

    def prompt(self, state: HanoiState) -> str:
        return self._rendered(state, str)

    def _rendered(self, state: HanoiState, written: Callable[[object], str]) -> str:
        """The prompt in this task's style, each list written by ``written`` (``str``: the task's own wording)."""
        if self._compact:
            return compact_prompt(state, written)
        previous = "none" if state.previous is None else written(list(state.previous))
        pegs = written([list(p) for p in state.pegs])
        return f"{self._paper_heads[state.cycle]}Previous move: {previous}\nCurrent state: {pegs}\n\n{_PAPER_TAIL}"

    def parse(self, state: HanoiState, reply: str) -> Candidate:
        return parse_reply(reply, self.disks)

    def paraphrase(self, state: HanoiState, variant: int) -> str | None:
        """The prompt with its lists written otherwise (the same numbers): 1, without spaces; 2, with a space
        inside each bracket. None past 2."""
        if variant not in (1, 2):
            return None

        def written(value: object) -> str:
            text = str(value)
            return text.replace(", ", ",") if variant == 1 else text.replace("[", "[ ").replace("]", " ]").replace("[  ]", "[]")

        return self._rendered(state, written)

    def apply(self, state: HanoiState, candidate: Candidate) -> HanoiState:
        move, pegs = candidate
        return HanoiState(pegs, move, state.cycle)

    def is_done(self, state: HanoiState) -> bool:
        return len(state.pegs[self.params.target]) == self.disks

    def answer(self, state: HanoiState) -> dict[str, Any]:
        """The pegs (bottom to top) and the last move."""
        return {"pegs": [list(peg) for peg in state.pegs], "last_move": list(state.previous or ())}

    # --- optional hooks -----------------------------------------------------------------------
    def check(self, state: HanoiState, candidate: Candidate) -> None:
        """Answer-free rules: the move is legal here and next_state is exactly that move applied."""
        move, pegs = candidate
        try:
            expected = apply_move(state.pegs, move)
        except ValueError as exc:
            raise RedFlag(f"illegal move {list(move)}: {exc}", RedFlagReason.INVALID) from None
        if expected != pegs:
            raise RedFlag(f"next_state is not move {list(move)} applied", RedFlagReason.INVALID)

    def kind(self, state: HanoiState) -> str:
        """Which disk moves (grouped: ``KIND_GROUPS``), from the rules, not the oracle: ``disk_to_move``."""
        return _KIND_OF_DISK.get(disk_to_move(state), "none")

    def oracle(self, state: HanoiState) -> Candidate:
        move = strategy_move(state)
        return move, apply_move(state.pegs, move)

    def total_steps(self) -> int:
        return 2**self.disks - 1

    def training_states(self, rng: random.Random, count: int) -> list[HanoiState]:
        """States of towers of 1 to max(20, disks) disks (more of the larger ones), not only this
        instance's trajectory: one microagent serves every size and every chain of a plan."""
        sizes = range(1, max(20, self.disks) + 1)
        weights = [1.0 if d < 10 else 2.0 + 4.0 * min(d - 10, 10) / 10 for d in sizes]
        return [training_state(rng, rng.choices(sizes, weights)[0]) for _ in range(count)]

    def plan(self, depth: int) -> Plan:
        """Split the tower ``depth`` levels deep into 2^depth chains that can run at once.

        n disks A -> C is n-1 disks A -> B, disk n A -> C, n-1 disks B -> C. Cut ``depth`` levels
        deep, the moves form 2^depth sub-tower moves of n - depth disks with single big-disk moves
        between them; each big-disk move opens the chain of the sub-tower after it. Every chain's
        start state, disk 1's direction and end state follow from the split alone (no oracle).
        """
        p = self.params
        if not 1 <= depth < p.disks:
            raise ValueError(f"depth must be between 1 and disks - 1 = {p.disks - 1}, got {depth}")
        pegs = self.initial_state().pegs
        plan = Plan()
        previous: Move | None = None
        for index, (big_disk, m, src, dst) in enumerate(_segments(p.disks, p.source, p.target, depth)):
            cycle = disk1_cycle(m, src, dst)
            start = HanoiState(pegs, previous, cycle)
            steps = 2**m - 1
            if big_disk is not None:  # this chain opens with the big-disk move
                d, s, t = big_disk
                pegs = _move_tower(pegs, 1, s, t, disk=d)
                steps += 1
            pegs = _move_tower(pegs, m, src, dst)
            end_pegs = pegs
            plan.add(Subtask(f"chain{index}", start=start, steps=steps, expect=lambda st, e=end_pegs: st.pegs == e))
            # The last move of a sub-tower is always disk 1 landing on its target.
            previous = (1, (dst - cycle) % 3, dst)
        return plan

    def format_reply(self, state: HanoiState, candidate: Candidate) -> str:
        return format_reply(*candidate)

    def draft(self, state: HanoiState, reply: str) -> str | None:
        """The rest of the reply, once it has named its disk: that disk's move by the puzzle's rules
        (disk 1 one peg in the prompt's direction; another disk to the one peg it fits on), and the
        state after it. Whether or not it is the right move: the guess follows the model's choice,
        it does not correct it (a model that writes something else simply does not take the guess)."""
        if not self._compact:
            return None
        if len(reply) < len(_MOVE_OPENING):
            return _MOVE_OPENING[len(reply) :] if _MOVE_OPENING.startswith(reply) else None
        if not reply.startswith(_MOVE_OPENING):
            return None
        named = reply[len(_MOVE_OPENING) :].split(",")[0].split("]")[0]
        if not (named.isascii() and named.isdigit()):  # "²".isdigit() is true, and int() refuses it
            return None
        disk = int(named)
        moves = [m for m in legal_moves(state.pegs) if m[0] == disk and (disk != 1 or m[2] == (m[1] + state.cycle) % 3)]
        if len(moves) != 1:
            return None
        whole = format_reply(moves[0], apply_move(state.pegs, moves[0]))
        return whole[len(reply) :] if whole.startswith(reply) and len(whole) > len(reply) else None

    def plausible_mistake(self, state: HanoiState, candidate: Candidate, rng: random.Random) -> Candidate:
        """Either another move with its (consistent) state, or the right move with a corrupted state."""
        move, pegs = candidate
        if rng.random() < 0.5:
            others = [m for m in legal_moves(state.pegs) if m != move]
            if others:
                wrong = rng.choice(others)
                return wrong, apply_move(state.pegs, wrong)
        return move, _corrupt(pegs, rng)

    def candidate_to_json(self, candidate: Candidate) -> dict[str, object]:
        move, pegs = candidate
        return {"move": list(move), "next_state": [list(p) for p in pegs]}

    def encode_candidate(self, candidate: Candidate) -> str:
        # Same JSON as candidate_to_json, built from cached peg texts: the journal writes one
        # candidate per step, and all but one peg repeat from the step before.
        move, pegs = candidate
        return f'{{"move":{list(move)},"next_state":[{_peg_json(pegs[0])},{_peg_json(pegs[1])},{_peg_json(pegs[2])}]}}'

    def candidate_from_json(self, data: dict[str, list]) -> Candidate:  # type: ignore[override]
        move = tuple(data["move"])
        pegs = tuple(tuple(p) for p in data["next_state"])
        return move, pegs  # type: ignore[return-value]


_PAPER_TAIL = PAPER_PROMPT.split("Current state: {state}\n\n")[1]


def tower_positions(m: int, t: int, src: int, dst: int) -> list[int]:
    """Peg of each disk 1..m (index d-1) after t moves of the optimal m-disk solution src -> dst."""
    if not 0 <= t < 2**m:
        raise ValueError(f"an {m}-disk solution has moves 0..{2**m - 1}, not {t}")
    pos = [0] * m
    for disk in range(m, 0, -1):
        spare = 3 - src - dst
        half = 1 << (disk - 1)
        if t < half:  # disk still on src; the smaller tower is on its way src -> spare
            pos[disk - 1] = src
            dst = spare
        else:  # disk on dst; the smaller tower is on its way spare -> dst
            pos[disk - 1] = dst
            t -= half
            src = spare
    return pos


def tth_move(m: int, t: int, src: int, dst: int) -> Move:
    """The t-th move (1-based) of the optimal m-disk solution src -> dst."""
    disk = (t & -t).bit_length()  # disk k moves at the moves whose index has k-1 trailing zeros
    before = tower_positions(m, t - 1, src, dst)[disk - 1]
    after = tower_positions(m, t, src, dst)[disk - 1]
    return (disk, before, after)


def build_state(disks: int, m: int, t: int, src: int, dst: int, big: list[int], previous: Move | None) -> HanoiState:
    """State with disks m+1..D on pegs ``big`` (index d-m-1) and the m-tower after t moves src -> dst."""
    pos = tower_positions(m, t, src, dst)
    pegs: list[list[int]] = [[], [], []]
    for d in range(disks, m, -1):
        pegs[big[d - m - 1]].append(d)
    for d in range(m, 0, -1):
        pegs[pos[d - 1]].append(d)
    return HanoiState((tuple(pegs[0]), tuple(pegs[1]), tuple(pegs[2])), previous, disk1_cycle(m, src, dst))


def training_state(rng: random.Random, disks: int) -> HanoiState:
    """A random state of an optimal solution with ``disks`` disks in all, as a run or a plan's chain
    meets it: a whole tower moving between any two pegs, or (a third of the time) a sub-tower moving
    over larger disks that sit anywhere. A quarter of the steps are taken next to a move of a large
    disk: a sub-tower has just been assembled, which is rare under uniform sampling and where small
    models err; the rest are uniform, with the harder move (not disk 1's) oversampled."""
    src, dst = rng.sample(range(3), 2)
    if disks > 1 and rng.random() < 0.35:
        m = rng.randint(1, disks - 1)
        big = [rng.randrange(3) for _ in range(disks - m)]
    else:
        m, big = disks, []
    steps = 2**m - 1  # states t = 0 .. steps-1 have a next move
    if m > 2 and rng.random() < 0.25:
        k = rng.randint(1, m - 1)  # move j * 2^k (j odd) moves disk k+1
        j = 2 * rng.randrange(2 ** (m - k - 1)) + 1
        t = min(steps - 1, max(0, j * 2**k - 1 + rng.choice([-2, -1, 0, 0, 0, 1, 1, 2])))
    elif m > 1:
        t = 2 * rng.randrange(steps // 2) + 1 if rng.random() < 0.6 else 2 * rng.randrange((steps + 1) // 2)
    else:
        t = 0
    previous = tth_move(m, t, src, dst) if t > 0 else None
    return build_state(disks, m, t, src, dst, big, previous)


def compact_prompt(state: HanoiState, written: Callable[[object], str] = str) -> str:
    """The minimal context our small model reads: disk 1's direction, previous move, state (each list
    written by ``written``; ``HanoiTask.paraphrase`` writes them otherwise)."""
    previous = "none" if state.previous is None else written(list(state.previous))
    return f"{'cw' if state.cycle == 1 else 'ccw'} prev = {previous} state = {written([list(p) for p in state.pegs])}\n"


def _segments(n: int, src: int, dst: int, depth: int) -> list[tuple[Move | None, int, int, int]]:
    """(big-disk move before it or None, sub-tower size, from, to) for each leaf chain, in order."""
    if depth == 0:
        return [(None, n, src, dst)]
    aux = 3 - src - dst
    left = _segments(n - 1, src, aux, depth - 1)
    right = _segments(n - 1, aux, dst, depth - 1)
    _, m, s, t = right[0]
    return left + [((n, src, dst), m, s, t)] + right[1:]


def _move_tower(pegs: Pegs, m: int, src: int, dst: int, disk: int | None = None) -> Pegs:
    """Pegs after moving the top ``m`` disks of ``src`` onto ``dst`` as a block (planning arithmetic)."""
    new = list(pegs)
    block = new[src][len(new[src]) - m :]
    if disk is not None and block != (disk,):
        raise ValueError(f"planner expected disk {disk} on top of peg {src}, found {block}")
    new[src] = new[src][: len(new[src]) - m]
    new[dst] = new[dst] + block
    return (new[0], new[1], new[2])


def legal_moves(pegs: Pegs) -> list[Move]:
    moves = []
    for src in range(3):
        if not pegs[src]:
            continue
        disk = pegs[src][-1]
        for dst in range(3):
            if dst != src and (not pegs[dst] or pegs[dst][-1] > disk):
                moves.append((disk, src, dst))
    return moves


def _corrupt(pegs: Pegs, rng: random.Random) -> Pegs:
    """Move one disk of ``pegs`` to another peg's top (each disk still appears exactly once)."""
    filled = [i for i in range(3) if pegs[i]]
    src = rng.choice(filled)
    pos = rng.randrange(len(pegs[src]))
    dst = rng.choice([i for i in range(3) if i != src])
    new = [list(p) for p in pegs]
    disk = new[src].pop(pos)
    new[dst].append(disk)
    return (tuple(new[0]), tuple(new[1]), tuple(new[2]))


def replay(disks: int, moves: Iterable[Move], *, source: int = 0, target: int = 2) -> int:
    """Replay ``moves`` from the start; raise ValueError at the first illegal move or if the tower
    does not end complete on ``target``. Returns the number of moves replayed."""
    pegs: list[tuple[int, ...]] = [(), (), ()]
    pegs[source] = tuple(range(disks, 0, -1))
    state: Pegs = (pegs[0], pegs[1], pegs[2])
    count = 0
    for count, move in enumerate(moves, 1):
        try:
            state = apply_move(state, tuple(move))  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(f"move {count} {list(move)} is illegal: {exc}") from None
    if len(state[target]) != disks:
        raise ValueError(f"after {count} moves the tower is not complete on peg {target}: {[list(p) for p in state]}")
    return count
