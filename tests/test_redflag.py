"""The one red-flag judge: length against the limit first (however the reply ended), then the
backend's cut, then the parser, then (with checks) the task's answer-free rules."""

from pathlib import Path

import pytest

import maker
from maker import RedFlagReason, Sample, ScriptedBackend, StepError
from maker.cli import main
from maker.redflag import Flagged, RedFlagJudge, rule_violation
from tests.toy import BrokenCheck, Countdown

LIMIT = 5


@pytest.mark.parametrize(
    "sample,checks,expected",
    [
        (Sample("2", 1, "stop"), False, 2),
        (Sample("2", LIMIT, "stop"), False, 2),  # at the limit: fine
        (Sample("2", LIMIT + 1, "stop"), False, RedFlagReason.TOO_LONG),  # ended by itself, but too long
        (Sample("2", LIMIT + 1, "length"), False, RedFlagReason.TOO_LONG),  # cut past the limit: still too long
        (Sample("2", LIMIT, "length"), False, RedFlagReason.TRUNCATED),  # a cap at or under the limit cut it
        (Sample("two", 1, "stop"), False, RedFlagReason.MALFORMED),
        (Sample("5", 1, "stop"), False, 5),  # breaks Countdown's rule, but checks are off
        (Sample("5", 1, "stop"), True, RedFlagReason.INVALID),
    ],
)
def test_judge_table(sample, checks, expected):
    verdict = RedFlagJudge(Countdown(start=3), max_tokens=LIMIT, checks=checks).judge(3, sample)
    if isinstance(expected, RedFlagReason):
        assert isinstance(verdict, Flagged) and verdict.reason is expected and verdict.text == sample.text
    else:
        assert verdict == expected


def test_the_judge_keeps_the_parsers_words():
    verdict = RedFlagJudge(Countdown(start=3), max_tokens=LIMIT, checks=True).judge(3, Sample("5", 1))
    assert verdict.detail == rule_violation(Countdown(start=3), 3, 5).detail and verdict.detail


def test_a_reply_longer_than_the_limit_but_inside_the_cap_is_too_long():
    long_reply = "2 and some words after it"  # six tokens for the scripted backend (one per word)
    backend = ScriptedBackend([long_reply, "2", "2", "2"])
    result = maker.run(Countdown(start=3), backend, k=2, max_tokens=LIMIT, generation_cap=50, max_steps=1)
    assert backend.requests[0].max_tokens == 50  # the backend may write past the red-flag limit
    assert result.steps == 1 and result.statistics.red_flags["too_long"] == 1
    assert result.statistics.red_flags["truncated"] == 0


@pytest.mark.parametrize("checks", [True, False])
def test_a_check_that_raises_is_a_clear_task_error_naming_the_step(checks, capsys, tmp_path):
    task = BrokenCheck(start=4)
    with pytest.raises(StepError, match=r"step 2: task.check raised TypeError: '<' not supported"):
        maker.run(task, maker.SimulatedBackend(task, error_rate=0.0), checks=checks)  # off: the statistics apply it
    spec = f"{Path(__file__).resolve().parent / 'toy.py'}:BrokenCheck"
    code = main(["run", spec, "--start", "4", "--backend", "sim", "--error-rate", "0", "--no-progress",
                 "--checks" if checks else "--no-checks"])
    err = capsys.readouterr().err
    assert code == 1 and "step 2: task.check raised TypeError" in err and "Traceback" not in err
