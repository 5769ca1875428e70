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


MOVE = "move = [1, 0, 2]\n"
STATE3 = "\nnext_state = [[3, 2], [], [1]]"
STATE7 = "\nnext_state = [[7, 6, 5, 4, 3, 2], [], [1]]"

# Numbers as the paper's flag parser (ast.literal_eval) reads them: ASCII digits only, no leading
# zero. int() reads all of these; a confused reply is discarded, never repaired.
# (reply, disks, substring of the red flag's detail)
NUMBER_REJECTED = [
    pytest.param("move = [１, 0, 2]" + STATE3, 3, "non-ASCII digit in move", id="full-width disk in move"),
    pytest.param("move = [１, ０, ２]" + STATE3, 3, "non-ASCII digit in move", id="full-width move"),
    pytest.param(MOVE + "next_state = [[３, 2], [], [1]]", 3, "non-ASCII digit in next_state", id="full-width in state"),
    pytest.param(MOVE + "next_state = [[3, ２], [], [１]]", 3, "non-ASCII digit in next_state", id="full-width, 2 pegs"),
    pytest.param("move = [١, 0, 2]" + STATE3, 3, "non-ASCII digit in move", id="arabic-indic in move"),
    pytest.param(MOVE + "next_state = [[٣, 2], [], [1]]", 3, "non-ASCII digit in next_state", id="arabic-indic, state"),
    pytest.param(MOVE + "next_state = [[3, 2], [], [१]]", 3, "non-ASCII digit in next_state", id="devanagari in state"),
    pytest.param("move = [01, 0, 2]" + STATE3, 3, "leading zero in move", id="01 as disk"),
    pytest.param("move = [1, 01, 2]" + STATE3, 3, "leading zero in move", id="01 as peg"),
    pytest.param("move = [1, 0, 002]" + STATE3, 3, "leading zero in move", id="002 as peg"),
    pytest.param("move = [007, 0, 2]" + STATE7, 7, "leading zero in move", id="007 as disk"),
    pytest.param("move = [-01, 0, 2]" + STATE3, 3, "leading zero in move", id="-01 in move"),
    pytest.param(MOVE + "next_state = [[3, 2], [], [01]]", 3, "leading zero in next_state", id="01 in state"),
    pytest.param(MOVE + "next_state = [[3, 02], [], [1]]", 3, "leading zero in next_state", id="02 in state"),
    pytest.param(MOVE + STATE7.replace("7", "007"), 7, "leading zero in next_state", id="007 in state"),
    pytest.param(MOVE + "move = [01, 0, 2]" + STATE3, 3, "leading zero in move", id="last move line is bad"),
    pytest.param("move = [1,\u30000, 2]" + STATE3, 3, "whitespace", id="ideographic space in move"),
    pytest.param(MOVE + "next_state = [[3,\xa02], [], [1]]", 3, "whitespace", id="no-break space in state"),
    pytest.param(MOVE + "next_state = [[3, 2],\xa0[], [1]]", 3, "next_state", id="no-break space between pegs"),
    pytest.param("move = [1,\x0b0, 2]" + STATE3, 3, "whitespace", id="vertical tab in move"),
    pytest.param(MOVE + "next_state = [[3, 2],\x0b[], [1]]", 3, "next_state", id="vertical tab between pegs"),
    pytest.param("move = [1" + "0" * 5000 + ", 0, 2]" + STATE3, 3, "too long", id="5001-digit number"),
    # Stricter than the paper, on purpose: literal_eval lets these through (True as 1, 00 as 0).
    pytest.param("move = [1, 00, 2]" + STATE3, 3, "leading zero in move", id="00 as peg"),
    pytest.param(MOVE + "next_state = [[3, 2], [00], [1]]", 3, "leading zero in next_state", id="00 in state"),
    pytest.param("move = [True, 0, 2]" + STATE3, 3, "integers", id="True"),
    pytest.param("move = [1, False, 2]" + STATE3, 3, "integers", id="False"),
    pytest.param("move = [+1, 0, 2]" + STATE3, 3, "integers", id="+1"),
    pytest.param("move = [1_0, 0, 2]" + STATE3, 3, "integers", id="underscore"),
    pytest.param("move = [0x1, 0, 2]" + STATE3, 3, "integers", id="hex"),
]

TEN = (9, 8, 7, 6, 5, 4, 3, 2, 1)
NUMBER_ACCEPTED = [
    pytest.param(MOVE + STATE3, 3, GOOD, id="ordinary"),
    pytest.param("move = [  1 ,   0 ,2  ]\nnext_state = [ [ 3 ,  2 ] , [  ] , [ 1 ] ]", 3, GOOD, id="extra spaces"),
    pytest.param("move = [\t1,\n0,\r\n2\x0c]" + STATE3, 3, GOOD, id="tab, newlines, form feed"),
    pytest.param("move = [2, 1, 0]\nnext_state = [[3, 2], [1], []]", 3, ((2, 1, 0), ((3, 2), (1,), ())), id="0 as peg"),
    pytest.param("move = [10, 0, 2]\nnext_state = [[], [9, 8, 7, 6, 5, 4, 3, 2, 1], [10]]", 10,
                 ((10, 0, 2), ((), TEN, (10,))), id="10 as disk"),
    pytest.param(MOVE + "next_state = [[12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2], [], [1]]", 12,
                 ((1, 0, 2), ((12, 11, 10) + TEN[:-1], (), (1,))), id="10-12 in state"),
    pytest.param("move = [01, 0, 2]\nmove = [１, 0, 2]\n" + MOVE + STATE3, 3, GOOD, id="last of several moves"),
    pytest.param(MOVE + "next_state = [[3, 02], [], [1]]" + STATE3, 3, GOOD, id="last of several states"),
    pytest.param("Step ３ of 7: move\u3000=\u3000[1, 0, 2]" + STATE3, 3, GOOD, id="non-ASCII outside the lists"),
    pytest.param("move = [1, -1, 2]" + STATE3, 3, ((1, -1, 2), GOOD[1]), id="negative, as the paper"),
    pytest.param("move = [1, -0, 2]" + STATE3, 3, GOOD, id="-0, as the paper"),
    pytest.param("move = [1, 0, 2,]\nnext_state = [[3, 2,], [], [1,]]", 3, GOOD, id="trailing commas"),
]


@pytest.mark.parametrize("reply,disks,flag", NUMBER_REJECTED)
def test_parser_rejects_numbers_the_paper_rejects(reply, disks, flag):
    with pytest.raises(RedFlag) as info:
        parse_reply(reply, disks)
    assert flag in info.value.detail
    assert info.value.reason is RedFlagReason.MALFORMED


@pytest.mark.parametrize("reply,disks,expected", NUMBER_ACCEPTED)
def test_parser_accepts_plain_numbers(reply, disks, expected):
    assert parse_reply(reply, disks) == expected


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


def test_the_draft_hook_completes_a_reply_once_its_disk_is_named_and_never_consults_the_oracle():
    """The hook follows the model's choice: the right disk gives the right reply, another legal disk
    gives that disk's move (not the oracle's), and anything it cannot follow gives no guess."""
    task = HanoiTask(disks=5)
    state = task.initial_state()
    right = task.format_reply(state, task.oracle(state))  # 'move = [1, 0, 2]\nnext_state = ...'
    assert task.draft(state, "") == "move = ["
    assert task.draft(state, "mov") == "e = ["
    assert task.draft(state, "move = [") is None  # the disk is the model's to choose
    assert "move = [1" + task.draft(state, "move = [1") == right
    assert "move = [1, 0" + task.draft(state, "move = [1, 0") == right
    assert task.draft(state, "move = [1, 0, 1]") is None  # not the move the prompt's direction gives
    assert task.draft(state, "move = [2") is None  # disk 2 is not on top
    assert task.draft(state, "next_state") is None
    assert task.draft(state, "move = [\u00b2") is None  # a digit to str.isdigit, not to int()
    later = task.apply(state, task.oracle(state))  # disk 1 just moved: disk 2's only legal move
    assert task.draft(later, "move = [2") == ", 0, 1]\nnext_state = [[5, 4, 3], [2], [1]]"
    assert task.draft(later, "move = [1") is not None  # a wrong choice of disk is followed too
    assert HanoiTask(disks=5, prompt_style="paper").draft(state, "") is None  # a general LLM's replies: no guess


def test_paraphrases_write_the_same_lists_otherwise_in_either_prompt_style():
    import re

    from maker_tasks.hanoi import HanoiTask

    for style in ("compact", "paper"):
        task = HanoiTask(disks=5, prompt_style=style)
        state = task.initial_state()
        state = task.apply(state, task.oracle(state))
        numbers = re.findall(r"\d+", task.prompt(state))
        worded = [task.paraphrase(state, v) for v in (1, 2)]
        assert all(w != task.prompt(state) and re.findall(r"\d+", w) == numbers for w in worded), style
        assert task.paraphrase(state, 3) is None
