"""The command line: the JSON summary, the journal, verification and clear errors for bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from maker.cli import main

TOY = "tests/toy.py:Countdown"


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_summary_has_the_documented_fields(capsys):
    code, out, _ = run_cli(capsys, "run", "hanoi", "--disks", "6", "--backend", "sim", "--error-rate", "0.05",
                           "--k", "3", "--seed", "4", "--json", "--no-progress")
    assert code == 0
    summary = json.loads(out)  # exactly one JSON object on stdout
    for field in ["task", "backend", "steps", "solved", "errors", "samples", "valid_votes", "red_flags", "k",
                  "seconds", "steps_per_second"]:
        assert field in summary
    assert summary["task"] == "hanoi" and summary["backend"] == "sim" and summary["simulated"] is True
    assert summary["steps"] == 63 and summary["solved"] is True and summary["errors"] == 0 and summary["k"] == 3
    assert summary["samples"] >= 3 * 63


def test_readable_summary_labels_the_simulation(capsys):
    code, out, _ = run_cli(capsys, "run", "hanoi", "--disks", "3", "--backend", "sim", "--no-progress")
    assert code == 0 and "SIMULATED" in out and "solved: True" in out


def test_journal_records_every_step_and_verifies(capsys, tmp_path):
    journal = tmp_path / "run.jsonl"
    code, _, _ = run_cli(capsys, "run", "hanoi", "--disks", "5", "--backend", "sim", "--error-rate", "0.1", "--journal", str(journal),
                         "--json", "--no-progress")
    assert code == 0
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    header, records = lines[0], lines[1:]
    assert header["task"] == "hanoi" and header["params"]["disks"] == 5 and header["config"]["k"] == 3
    assert header["backend"]["simulated"] is True
    assert [r["step"] for r in records] == list(range(31))
    assert records[0]["candidate"] == {"move": [1, 0, 2], "next_state": [[5, 4, 3, 2], [], [1]]}
    assert all(r["votes"][0] >= 3 for r in records)
    code, out, _ = run_cli(capsys, "verify", str(journal), "--json")
    report = json.loads(out)
    assert code == 0 and report["valid"] and report["steps"] == 31 and report["rule_violations"] == 0


def test_verify_catches_a_tampered_journal(capsys, tmp_path):
    journal = tmp_path / "run.jsonl"
    run_cli(capsys, "run", "hanoi", "--disks", "3", "--backend", "sim", "--journal", str(journal), "--no-progress")
    lines = journal.read_text().splitlines()
    record = json.loads(lines[2])
    record["candidate"]["move"] = [3, 0, 1]
    lines[2] = json.dumps(record)
    journal.write_text("\n".join(lines) + "\n")
    code, out, _ = run_cli(capsys, "verify", str(journal), "--json")
    report = json.loads(out)
    assert code == 1 and not report["valid"] and "step 1:" in report["first_violation"]


def test_user_task_from_a_file(capsys):
    code, out, _ = run_cli(capsys, "run", TOY, "--start", "4", "--backend", "sim", "--error-rate", "0.2", "--json",
                           "--no-progress")
    summary = json.loads(out)
    assert code == 0 and summary["task"] == "countdown" and summary["steps"] == 4 and summary["solved"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "hanoi", "--disks", "0"], "--disks"),
        (["run", "hanoi", "--disks", "lots"], "--disks"),
        (["run", "hanoi", "--k", "0"], "k"),
        (["run", "hanoi", "--backend", "sim", "--error-rate", "1.5"], "--error-rate"),
        (["run", "nosuchtask"], "unknown task 'nosuchtask'"),
        (["run", "missing/file.py:Task"], "does not exist"),
        (["run", "hanoi", "--max-samples-per-step", "2", "--k", "3"], "max_samples_per_step"),
        (["verify", "/nonexistent/journal.jsonl"], "cannot read journal"),
    ],
)
def test_bad_input_gets_a_clear_error(capsys, args, message):
    code, out, err = run_cli(capsys, *args, "--no-progress") if args[0] == "run" else run_cli(capsys, *args)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_failed_run_reports_json_and_exit_code(capsys):
    code, out, err = run_cli(capsys, "run", "hanoi", "--disks", "4", "--backend", "sim", "--error-rate", "0.0", "--malformed-rate", "1.0",
                             "--max-samples-per-step", "5", "--json", "--no-progress")
    assert code == 1 and "no decision after 5 samples" in err
    summary = json.loads(out)
    assert summary["solved"] is False and summary["red_flags"] == 5


def test_tasks_lists_builtins(capsys):
    code, out, _ = run_cli(capsys, "tasks")
    assert code == 0 and "hanoi" in out


# --- a task author's first hour (issue 11) --------------------------------------------------------
FAKE_BACKENDS = '''
import maker


class Echo(maker.Backend):
    """A fake model: answers every prompt from the task's oracle, as a hand-written stand-in would."""
    name = "echo"

    def __init__(self, task):
        self.task, self.calls = task, 0

    async def sample(self, request):
        self.calls += 1
        if self.calls > 5 and "FAIL" in __import__("os").environ:
            raise maker.BackendConnectionError("connection reset by peer")
        state = int(request.prompt.split()[2])
        return [maker.Sample(str(state - 1), 1)] * request.n
'''


@pytest.fixture
def fake_backend(tmp_path):
    path = tmp_path / "fakes.py"
    path.write_text(FAKE_BACKENDS)
    return f"{path}:Echo"


def test_a_backend_from_a_file_runs_with_journal_and_verify(capsys, tmp_path, fake_backend):
    journal = tmp_path / "run.jsonl"
    code, out, _ = run_cli(capsys, "run", TOY, "--start", "9", "--backend", fake_backend, "--journal", str(journal),
                           "--json", "--no-progress")
    summary = json.loads(out)
    assert code == 0 and summary["backend"] == "echo" and summary["solved"] and summary["steps"] == 9
    assert summary["answer"] == 0  # the final state, when the task defines no answer()
    code, out, _ = run_cli(capsys, "verify", str(journal), "--json")
    assert code == 0 and json.loads(out)["valid"]


def test_a_backend_failure_has_its_own_exit_code_names_the_step_and_says_resume(capsys, tmp_path, fake_backend, monkeypatch):
    monkeypatch.setenv("FAIL", "1")
    journal = tmp_path / "run.jsonl"
    code, out, err = run_cli(capsys, "run", TOY, "--start", "9", "--backend", fake_backend, "--k", "1",
                             "--journal", str(journal), "--no-progress")
    assert code == 3 and out == ""
    assert "backend failed: step 5: connection reset by peer" in err and "rerun the same command to resume" in err
    monkeypatch.delenv("FAIL")
    code, out, _ = run_cli(capsys, "run", TOY, "--start", "9", "--backend", fake_backend, "--k", "1",
                           "--journal", str(journal), "--json", "--no-progress")
    assert code == 0 and json.loads(out)["resumed_steps"] == 5


def test_a_task_parameter_named_like_a_maker_option_is_refused(capsys, tmp_path):
    path = tmp_path / "seeded.py"
    path.write_text("from pydantic import BaseModel\nfrom tests.toy import Countdown\n\n"
                    "class Seeded(Countdown):\n    class Params(BaseModel):\n        start: int = 3\n        seed: int = 0\n")
    code, _, err = run_cli(capsys, "run", f"{path}:Seeded", "--seed", "5", "--backend", "sim", "--no-progress")
    assert code == 2 and "task parameter 'seed' has the name of maker's own option --seed" in err and "rename it" in err
    code, out, _ = run_cli(capsys, "check-task", f"{path}:Seeded")
    assert code == 1 and "FAIL  parameter names  'seed' is maker's option --seed in `maker run`, `maker estimate`" in out


def test_the_summary_says_why_a_run_is_not_solved_and_shows_the_answer(capsys, tmp_path):
    path = tmp_path / "short.py"
    path.write_text("from tests.toy import Countdown\n\nclass Short(Countdown):\n"
                    "    def total_steps(self):\n        return self.params.start + 2\n")
    code, out, _ = run_cli(capsys, "run", f"{path}:Short", "--start", "4", "--backend", "sim", "--no-progress")
    assert code == 1 and "solved: False" in out and "errors: 0" in out
    assert "why unsolved: is_done after 4 steps, but the task declares total_steps() = 6" in out
    assert "answer: 0" in out


def test_verify_works_from_any_folder_and_accepts_a_task(capsys, tmp_path, monkeypatch):
    (tmp_path / "doubling.py").write_text("from tests.toy import Countdown\n\nclass Down(Countdown):\n    pass\n")
    journal = tmp_path / "run.jsonl"
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(Path(__file__).parent.parent))
    assert run_cli(capsys, "run", "doubling.py:Down", "--backend", "sim", "--journal", str(journal), "--no-progress")[0] == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, _ = run_cli(capsys, "verify", str(journal), "--json")
    assert code == 0 and json.loads(out)["valid"]
    (tmp_path / "doubling.py").rename(tmp_path / "moved.py")
    code, out, _ = run_cli(capsys, "verify", str(journal), "--task", f"{tmp_path / 'moved.py'}:Down", "--json")
    assert code == 0 and json.loads(out)["valid"]


def test_resume_refuses_a_journal_of_another_class_with_the_same_name(capsys, tmp_path):
    for name in ("one", "two"):
        (tmp_path / f"{name}.py").write_text("from tests.toy import Countdown\n\nclass Down(Countdown):\n    pass\n")
    journal = tmp_path / "run.jsonl"
    run_cli(capsys, "run", f"{tmp_path / 'one.py'}:Down", "--backend", "sim", "--max-steps", "1", "--journal",
            str(journal), "--no-progress")
    code, _, err = run_cli(capsys, "run", f"{tmp_path / 'two.py'}:Down", "--backend", "sim", "--journal", str(journal),
                           "--no-progress")
    assert code == 2 and "was written with a different class" in err and "one.py:Down" in err


def test_python_dash_m_maker_runs_the_command_line():
    done = subprocess.run([sys.executable, "-m", "maker", "tasks"], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parent.parent)
    assert done.returncode == 0 and "hanoi" in done.stdout


def test_the_summary_shows_rule_violations_and_every_reason_when_unsolved():
    import maker
    from maker.cli import _summary_table
    from tests.toy import Countdown

    seen = set()

    def reply(request):  # at state 3 the first answer repeats the state: it breaks the check but is applied,
        # and the declared total then stops the run one step short
        state = int(request.prompt.split()[2])
        answer = state if state == 3 and state not in seen else state - 1
        seen.add(state)
        return str(answer)

    result = maker.run(Countdown(start=3), maker.ScriptedBackend(reply_for=reply), k=1, checks=False)
    table = _summary_table(result.summary())
    assert "solved: False" in table and "violations: 1" in table
    assert ("why unsolved: stopped after 3 steps without finishing: the task declares total_steps() = 3, and is_done "
            "is still false; 1 committed steps break the task's check (rule_violations)") in table


def test_a_journal_resumes_after_its_task_file_moves_and_one_without_a_class_resumes_too(capsys, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    (first / "down.py").write_text("from tests.toy import Countdown\n\nclass Down(Countdown):\n    pass\n")
    journal = tmp_path / "run.jsonl"
    run_cli(capsys, "run", f"{first / 'down.py'}:Down", "--start", "6", "--backend", "sim", "--max-steps", "2",
            "--journal", str(journal), "--no-progress")
    first.rename(second)  # the checkout moved
    lines = journal.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["class"] == "down.py:Down"
    del header["class"]  # as journals written before the class was recorded
    journal.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    code, out, _ = run_cli(capsys, "run", f"{second / 'down.py'}:Down", "--start", "6", "--backend", "sim",
                           "--journal", str(journal), "--json", "--no-progress")
    assert code == 0 and json.loads(out)["resumed_steps"] == 2


def test_a_yes_no_parameter_whose_no_option_is_makers_is_refused(capsys, tmp_path):
    path = tmp_path / "flagged.py"
    path.write_text("from pydantic import BaseModel\nfrom tests.toy import Countdown\n\n"
                    "class Flagged(Countdown):\n    class Params(BaseModel):\n        start: int = 3\n"
                    "        progress: bool = False\n")
    code, _, err = run_cli(capsys, "run", f"{path}:Flagged", "--backend", "sim")
    assert code == 2 and "task parameter 'progress' has the name of maker's own option --no-progress" in err
    code, out, _ = run_cli(capsys, "check-task", f"{path}:Flagged", "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"] and "--no-progress in `maker run`" in report["findings"][0]["message"]


def test_an_answer_that_raises_leaves_the_summary_intact(capsys, tmp_path):
    path = tmp_path / "picky.py"
    path.write_text("from tests.toy import Countdown\n\nclass Picky(Countdown):\n"
                    "    def answer(self, state):\n        assert state == 0, 'not finished'\n        return 'done'\n")
    code, out, err = run_cli(capsys, "run", f"{path}:Picky", "--start", "5", "--backend", "sim", "--max-steps", "2",
                             "--json", "--no-progress")
    summary = json.loads(out)
    assert code == 1 and summary["steps"] == 2 and summary["answer"] is None
    assert "answer() raised AssertionError: not finished" in err


def test_maker_solve_prints_the_answer_the_tree_and_each_role_and_verify_replays_it(capsys, tmp_path):
    journal = tmp_path / "solve.jsonl"
    code, out, _ = run_cli(capsys, "solve", "Multiply the following numbers:\\n46048 × 42098", "--backend", "sim",
                           "--error-rate", "0.05", "--k-role", "decompose=2", "--journal", str(journal))
    assert code == 0 and "SIMULATED" in out
    assert f"problem 1: {46048 * 42098}  (right)" in out
    assert "46048 × 42098 = 1938528704  [split 2]" in out and "46048 × 8 = 368384  [too small to split]" in out
    assert "role: decompose: 4 steps" in out and "k: decompose 2, solve 3, compose 3" in out
    code, out, _ = run_cli(capsys, "verify", str(journal))
    assert code == 0 and "valid: True" in out and "right: 1" in out


def test_maker_solve_reads_a_problem_file_and_refuses_bad_input_clearly(capsys, tmp_path):
    problems = tmp_path / "set.jsonl"
    problems.write_text('{"id": "a", "question": "12 x 34", "answer": "408"}\n'
                        '{"id": "b", "question": "Multiply the following numbers:\\n99 × 99", "answer": "9800"}\n')
    code, out, _ = run_cli(capsys, "solve", "--file", str(problems), "--backend", "sim", "--json")
    summary = json.loads(out)
    # "b"'s given answer is wrong (99 x 99 = 9801): the answer is compared afterwards, never used to decide
    assert code == 1 and summary["correct"] == 1 and summary["wrong"] == 1
    assert [r["answer"] for r in summary["results"]] == ["408", "9801"]
    assert summary["failures"] == {"differs from the given answer": 1}
    code, _, err = run_cli(capsys, "solve", "Sort [3, 1]", "--backend", "sim")
    assert code == 2 and "no registered problem family" in err and "give --family" in err
    code, _, err = run_cli(capsys, "solve", "--backend", "sim")
    assert code == 2 and "one statement or --file" in err
    code, _, err = run_cli(capsys, "solve", "12 x 34", "--backend", "sim", "--k-role", "planner")
    assert code == 2 and "--k-role wants ROLE=K pairs" in err


def test_maker_solve_chooses_each_roles_k_from_its_p_hat_or_only_prints_the_estimate(capsys, tmp_path):
    question = "Multiply the following numbers:\\n46048 × 42098"
    code, out, err = run_cli(capsys, "solve", question, "--backend", "sim", "--error-rate", "0.1",
                             "--target-success", "0.99", "--estimate-samples", "30", "--estimate-only")
    assert code == 0 and "k per role for multiply [SIMULATED]" in out and "k per role: decompose=" in out
    code, out, err = run_cli(capsys, "solve", question, "--backend", "sim", "--error-rate", "0.1", "--json",
                             "--target-success", "0.99", "--estimate-samples", "30", "--k-role", "decompose=7")
    summary = json.loads(out)
    plan = summary["role_estimate"]["plan"]
    assert code == 0 and summary["correct"] == 1 and plan["p_full"] >= 0.99
    assert summary["k"] == {**plan["k_by_kind"], "decompose": 7}  # a --k-role entry wins over the plan
    assert "maker:   k per role:" in err
    code, _, err = run_cli(capsys, "solve", question, "--backend", "sim", "--estimate-only")
    assert code == 2 and "--estimate-only needs --target-success" in err
