"""Finding tasks: registered names, module paths and files outside the repository."""

import textwrap

import pytest

import maker
from maker import TaskError, load_task
from maker.loading import registered_tasks

OUTSIDE_TASK = textwrap.dedent(
    '''
    from pydantic import BaseModel
    import maker

    class Doubling(maker.Task):
        """Double a number until it passes a limit."""
        name = "doubling"

        class Params(BaseModel):
            limit: int = 100

        def initial_state(self): return 1
        def prompt(self, state): return f"double {state}"
        def parse(self, state, reply):
            if not reply.strip().isdigit():
                raise maker.RedFlag("not a number")
            return int(reply)
        def apply(self, state, candidate): return candidate
        def is_done(self, state): return state > self.params.limit
        def oracle(self, state): return state * 2
        def format_reply(self, state, candidate): return str(candidate)
        def plausible_mistake(self, state, candidate, rng): return candidate + 1
    '''
)


def test_builtin_hanoi_is_registered():
    assert registered_tasks()["hanoi"] == "maker_tasks.hanoi:HanoiTask"
    assert load_task("hanoi", disks=3).total_steps() == 7


def test_module_path_spec():
    task = load_task("maker_tasks.hanoi:HanoiTask", disks=2)
    assert task.name == "hanoi"


def test_task_in_a_file_outside_the_repository(tmp_path):
    path = tmp_path / "elsewhere" / "doubling.py"
    path.parent.mkdir()
    path.write_text(OUTSIDE_TASK)
    task = load_task(f"{path}:Doubling", limit=50)
    result = maker.run(task, maker.SimulatedBackend(task, error_rate=0.2), k=3)
    assert result.solved and result.steps == 6 and result.errors == 0


@pytest.mark.parametrize(
    "spec,message",
    [
        ("nope", "unknown task 'nope'"),
        ("no_such_module_xyz:Task", "cannot import module"),
        ("maker_tasks.hanoi:Missing", "has no attribute 'Missing'"),
        ("maker_tasks.hanoi:disk1_cycle", "is not a class"),
        ("maker.errors:MakerError", "is not a task"),
        ("", "non-empty"),
    ],
)
def test_bad_specs_are_clear_errors(spec, message):
    with pytest.raises(TaskError, match=message):
        load_task(spec)


def test_a_task_file_that_fails_to_import(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(TaskError, match="RuntimeError: boom"):
        load_task(f"{path}:Anything")
