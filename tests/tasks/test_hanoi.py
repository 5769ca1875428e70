"""The Hanoi task: the paper's red-flag parser, the strategy for odd and even towers, the oracle,
the answer-free check and the replay verifier."""

import random

import pytest
from maker_tasks.hanoi import HanoiTask, apply_move, compact_prompt, disk1_cycle, parse_reply, replay

from maker import RedFlag, RedFlagReason, TaskParameterError

GOOD = ((1, 0, 2), ((3, 2), (), (1,)))

# (reply, expected candidate or None for a red flag, substring of the red flag's detail)
PARSER_TABLE = [
    ("move = [1, 0, 2]\nnext_state = [[3, 2], [], [1]]", GOOD, None),
    ("move=[1,0,2]\nnext_state=[[3,2],[],[1]]", GOOD, None),  # no spaces
    ("MOVE = [1, 0, 2]\nNext_State = [[3, 2], [ ], [1]]", GOOD, None),  # case, space in empty peg
    ("Let me think. The move is easy.\nmove = [1, 0, 2]\nnext_state = [[3, 2], [], [1]]\nDone!", GOOD, None),  # prose
    ("move = [2, 0, 1]\nmove = [1, 0, 2]\nnext_state = [[3, 2], [], [1]]", GOOD, None),  # the last move wins
    ("move = [1, 0, 2]\nnext_state = [[3], [2], [1]]\nnext_state = [[3, 2], [], [1]]", GOOD, None),  # last state wins
    ("move = [ 1 ,0, 2 ]\n\nnext_state =\n[[3, 2],\n [],\n [1]]", GOOD, None),  # line breaks and spacing
    ("move = [1, 0, 2]\nnext_state = [[3, 2,], [], [1]]", GOOD, None),  # a Python literal's trailing comma
    ("move = [1, 0, 2]\nnext_state = [[3, 2], [], [1", None, "next_state"),  # truncated
    ("move = [1, 0, 2]\nnext_state = [[3, 2], [", None, "next_state"),  # truncated earlier
    ("move = [1, 0, 2]", None, "next_state"),  # missing state
    ("next_state = [[3, 2], [], [1]]", None, "move"),  # missing move
    ("move = [1, 0]\nnext_state = [[3, 2], [], [1]]", None, "three integers"),
    ("move = [1, 0, 2, 2]\nnext_state = [[3, 2], [], [1]]", None, "three integers"),
    ("move = [1, 0, 'a']\nnext_state = [[3, 2], [], [1]]", None, "integers"),
    ("move = [1.0, 0, 2]\nnext_state = [[3, 2], [], [1]]", None, "integers"),
    ("move = [1, 0, 2]\nnext_state = [[3, 2], [2], [1]]", None, "exactly once"),  # duplicate disk
    ("move = [1, 0, 2]\nnext_state = [[3], [], [1]]", None, "exactly once"),  # missing disk
    ("move = [1, 0, 2]\nnext_state = [[3, 2], [4], [1]]", None, "exactly once"),  # extra disk
    ("move = [1, 0, 2]\nnext_state = [[3, 2], [], [1], []]", None, "next_state"),  # four pegs
    ("move = [1, 0, 2]\nnext_state = [[3, 2], [[]], [1]]", None, "next_state"),  # nested
    ("remove = [1, 0, 2]\nnext_state = [[3, 2], [], [1]]", None, "move"),  # 'move' must be a word
    ("", None, "move"),
]


@pytest.mark.parametrize("reply,expected,flag", PARSER_TABLE)
def test_parser(reply, expected, flag):
    if expected is not None:
        assert parse_reply(reply, 3) == expected
    else:
        with pytest.raises(RedFlag) as info:
            parse_reply(reply, 3)
        assert flag in info.value.detail
        assert info.value.reason is RedFlagReason.MALFORMED


def test_parser_does_not_judge_legality():
    # Disk 3 "moves" from an empty peg: well-formed, so the parser accepts it; voting decides.
    assert parse_reply("move = [3, 1, 2]\nnext_state = [[1, 2, 3], [], []]", 3) == ((3, 1, 2), ((1, 2, 3), (), ()))


@pytest.mark.parametrize("disks", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
@pytest.mark.parametrize("source,target", [(0, 2), (0, 1), (2, 0), (1, 2)])
def test_strategy_solves_odd_and_even_towers(disks, source, target):
    task = HanoiTask(disks=disks, source=source, target=target)
    state = task.initial_state()
    moves = []
    while not task.is_done(state):
        candidate = task.oracle(state)
        task.check(state, candidate)  # the oracle's answers obey the rules
        moves.append(candidate[0])
        state = task.apply(state, candidate)
        assert len(moves) <= 2**disks - 1
    assert len(moves) == 2**disks - 1 == task.total_steps()
    assert replay(disks, moves, source=source, target=target) == len(moves)


def test_first_move_of_the_paper():
    task = HanoiTask(disks=20)
    assert task.oracle(task.initial_state())[0] == (1, 0, 1)
    assert HanoiTask(disks=3).oracle(HanoiTask(disks=3).initial_state())[0] == (1, 0, 2)


def test_disk1_cycles_by_parity():
    assert disk1_cycle(20, 0, 2) == 1  # even: 0 -> 1 -> 2
    assert disk1_cycle(3, 0, 2) == 2  # odd: 0 -> 2 -> 1
    assert disk1_cycle(4, 0, 1) == 2
    assert disk1_cycle(5, 0, 1) == 1


@pytest.mark.parametrize(
    "candidate,reason",
    [
        (((1, 0, 2), ((3, 2), (), (1,))), None),
        (((2, 0, 1), ((3,), (2,), (1,))), "illegal"),  # disk 2 is under disk 1
        (((1, 0, 1), ((3, 2), (), (1,))), "not move"),  # state does not follow the move
        (((1, 0, 0), ((3, 2, 1), (), ())), "illegal"),
    ],
)
def test_answer_free_check(candidate, reason):
    task = HanoiTask(disks=3)
    state = task.initial_state()
    if reason is None:
        task.check(state, candidate)
    else:
        with pytest.raises(RedFlag) as info:
            task.check(state, candidate)
        assert info.value.reason is RedFlagReason.INVALID and reason in info.value.detail


def test_replay_rejects_illegal_and_incomplete():
    with pytest.raises(ValueError, match="move 3 \\[2, 0, 2\\]"):
        replay(2, [(1, 0, 1), (1, 1, 2), (2, 0, 2)])
    with pytest.raises(ValueError, match="not complete"):
        replay(2, [(1, 0, 1)])


def test_plausible_mistakes_parse_and_are_wrong():
    task = HanoiTask(disks=6)
    rng = random.Random(0)
    state = task.initial_state()
    for _ in range(40):
        truth = task.oracle(state)
        wrong = task.plausible_mistake(state, truth, rng)
        assert wrong != truth
        assert task.parse(state, task.format_reply(state, wrong)) == wrong  # well-formed
        state = task.apply(state, truth)


def test_format_and_parse_round_trip_on_a_whole_run():
    task = HanoiTask(disks=7)
    state = task.initial_state()
    while not task.is_done(state):
        truth = task.oracle(state)
        assert task.parse(state, task.format_reply(state, truth)) == truth
        assert task.candidate_from_json(task.candidate_to_json(truth)) == truth
        state = task.apply(state, truth)


def test_prompts_carry_what_the_step_needs():
    task = HanoiTask(disks=4, prompt_style="paper")
    state = task.initial_state()
    prompt = task.prompt(state)
    assert "Previous move: none" in prompt and "[[4, 3, 2, 1], [], []]" in prompt
    assert "counterclockwise" not in prompt  # 4 disks: disk 1 cycles clockwise
    assert "move = [disk, from_peg, to_peg]" in prompt
    compact = HanoiTask(disks=4, prompt_style="compact")
    assert compact.prompt(state) == compact_prompt(state) == "cw prev = none state = [[4, 3, 2, 1], [], []]\n"


@pytest.mark.parametrize(
    "params,field",
    [({"disks": 0}, "--disks"), ({"disks": "many"}, "--disks"), ({"source": 3}, "--source"),
     ({"source": 1, "target": 1}, "source and target"), ({"prompt_style": "fancy"}, "--prompt-style"), ({"colour": 1}, "--colour")],
)
def test_bad_parameters_name_the_parameter(params, field):
    with pytest.raises(TaskParameterError) as info:
        HanoiTask(**params)
    assert field in str(info.value)


def test_apply_move_rejects_bad_pegs():
    with pytest.raises(ValueError, match="bad pegs"):
        apply_move(((1,), (), ()), (1, 0, 3))
