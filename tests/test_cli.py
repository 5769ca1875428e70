"""The command line: the JSON summary, the journal, verification and clear errors for bad input."""

import json

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
