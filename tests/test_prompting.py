"""Few-shot prompts (maker.prompting): solved examples of other states, never the one asked; stops."""

import asyncio

import pytest

from maker import ConfigError, RunConfig, Sample, run_async
from maker.backends.base import Backend
from maker.prompting import FewShotPrompt, prompter, stop_for
from tests.toy import Countdown


def test_examples_come_before_the_asked_prompt_and_are_solved_by_the_oracle():
    task = Countdown(start=50)
    prompt = FewShotPrompt(task, 3)
    text = prompt(17)
    blocks = text.split("\n\n")
    assert len(blocks) == 4 and blocks[-1] == "What is 17 minus one?"
    for block in blocks[:3]:
        question, reply = block.split("\n")
        asked = int(question.split()[2])
        assert reply == str(asked - 1)  # the oracle's answer to that other state
    assert prompt(17) == text  # the same examples at every step


def test_the_asked_states_answer_is_never_shown():
    task = Countdown(start=50)
    prompt = FewShotPrompt(task, 3)
    for state, _ in [(int(q.split()[2]), r) for q, r in prompt.examples[None]]:
        text = prompt(state)
        shown = text.split("\n\n")[:-1]
        assert len(shown) == 3
        assert all(not block.startswith(f"What is {state} minus one?") for block in shown)


def test_a_tasks_few_shot_prompt_is_made_once():
    task = Countdown(start=50)
    assert prompter(task, 3) is prompter(task, 3) and prompter(task, 3) is not prompter(task, 2)
    assert prompter(task, None) == task.prompt


def test_one_line_replies_stop_at_the_line_end():
    prompt = prompter(Countdown(start=50), 2)
    assert stop_for(prompt) == ("\n",)
    assert stop_for(prompter(Countdown(start=50), None)) == ()


def test_a_runs_own_stop_strings_win_even_when_empty():
    prompt = prompter(Countdown(start=50), 2)
    assert stop_for(prompt, ("###",)) == ("###",)
    assert stop_for(prompt, ()) == ()


def test_a_task_without_an_oracle_is_refused_by_name():
    class NoOracle(Countdown):
        name = "no-oracle"
        oracle = Countdown.__mro__[1].oracle  # the base class's: no oracle

    with pytest.raises(ConfigError, match="no-oracle.*oracle"):
        FewShotPrompt(NoOracle(start=5), 2)


def test_too_few_distinct_states_is_refused():
    with pytest.raises(ConfigError, match="distinct solved examples"):
        FewShotPrompt(Countdown(start=2), 3)


class Echo(Backend):
    """Answers each prompt with the right number followed by more lines, as a chatty LLM does,
    and records the requests it saw."""

    def __init__(self):
        self.requests = []

    async def sample(self, request):
        self.requests.append(request)
        asked = int(request.prompt.rsplit("What is ", 1)[1].split()[0])
        text = f"{asked - 1}\nWhat is 99 minus one?\n98"
        if request.stop:  # a real backend cuts the reply before its first stop
            text = text[: min(text.find(s) for s in request.stop if s in text)]
        return [Sample(text, 3)] * request.n


def test_a_few_shot_run_sends_the_examples_and_stops_replies():
    backend = Echo()
    result = asyncio.run(run_async(Countdown(start=6), backend, config=RunConfig(k=2, few_shot=2, checks=True)))
    assert result.solved and result.statistics.errors == 0
    first = backend.requests[0]
    assert first.stop == ("\n",) and first.prompt.count("minus one?") == 3
    assert first.prompt.endswith("What is 6 minus one?")


def test_a_runs_own_stop_wins():
    backend = Echo()
    asyncio.run(run_async(Countdown(start=3), backend, config=RunConfig(k=1, few_shot=2, stop=("\nWhat",))))
    assert backend.requests[0].stop == ("\nWhat",)


def test_examples_are_of_the_asked_steps_kind():
    from maker_tasks.multiply import MultiplyTask

    task = MultiplyTask(a=4321, b=987)
    prompt = FewShotPrompt(task, 3)
    assert set(prompt.examples) == {"product", "sum"}
    state = task.initial_state()
    while task.kind(state) == "product":
        state = task.apply(state, task.oracle(state))
    text = prompt(state)
    assert text.count("Compute") == 4 and " x " not in text  # a sum step, with sum examples only
    assert stop_for(prompt) == ("\n",)
