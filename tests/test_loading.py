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


# --- a task author's first hour (issue 11) --------------------------------------------------------
def test_a_task_missing_required_methods_is_refused_at_load_time(tmp_path):
    path = tmp_path / "half.py"
    path.write_text(OUTSIDE_TASK.replace("def apply(self, state, candidate): return candidate\n", "")
                    .replace("        def is_done(self, state): return state > self.params.limit\n", ""))
    with pytest.raises(TaskError, match="task class 'Doubling' does not define apply, is_done: every task needs"):
        maker.load_task_class(f"{path}:Doubling")


def test_a_task_missing_a_required_method_cannot_be_made_directly_either():
    class NoApply(maker.Task):
        def prompt(self, state): return ""
        def parse(self, state, reply): return reply
        def is_done(self, state): return True

    with pytest.raises(TaskError, match="task class .*NoApply' does not define apply"):
        NoApply()


def test_a_misspelt_parameter_is_an_error_naming_the_close_match(tmp_path):
    path = tmp_path / "doubling.py"
    path.write_text(OUTSIDE_TASK)
    with pytest.raises(maker.TaskParameterError, match=r"unknown --limt \(did you mean --limit\?\); its parameters are: --limit"):
        load_task(f"{path}:Doubling", limt=5)


def test_a_task_file_imports_a_module_beside_it(tmp_path):
    (tmp_path / "helpers_beside.py").write_text("LIMIT = 7\n")
    path = tmp_path / "uses_helper.py"
    path.write_text("import helpers_beside\n" + OUTSIDE_TASK.replace("limit: int = 100", "limit: int = helpers_beside.LIMIT"))
    assert load_task(f"{path}:Doubling").params.limit == 7


def test_a_task_file_spec_is_recorded_absolute(tmp_path, monkeypatch):
    (tmp_path / "doubling.py").write_text(OUTSIDE_TASK)
    monkeypatch.chdir(tmp_path)
    assert load_task("doubling.py:Doubling").spec == f"{tmp_path / 'doubling.py'}:Doubling"


def test_a_task_file_inside_a_package_imports_its_neighbours_relatively_and_absolutely(tmp_path):
    package = tmp_path / "mytasks"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "limits.py").write_text("LIMIT = 9\n")
    (package / "task.py").write_text("from . import limits\nimport mytasks.limits as again\n" + OUTSIDE_TASK.replace(
        "limit: int = 100", "limit: int = limits.LIMIT + again.LIMIT"))
    task = load_task(f"{package / 'task.py'}:Doubling")
    assert task.params.limit == 18 and type(task).__module__ == "mytasks.task"
