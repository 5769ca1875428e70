"""maker.verify: replaying a journal finds wrong steps (by the oracle, after the fact) and says where."""

import json

from maker.cli import main
from maker.verify import verify_journal


def _journal(tmp_path, capsys, disks=4):
    journal = tmp_path / "run.jsonl"
    assert main(["run", "hanoi", "--disks", str(disks), "--backend", "sim", "--journal", str(journal), "--no-progress"]) == 0
    capsys.readouterr()
    return journal


def test_a_clean_journal_lists_no_wrong_steps(tmp_path, capsys):
    report = verify_journal(_journal(tmp_path, capsys))
    assert report["valid"] and report["errors"] == 0 and report["wrong_steps"] == []


def test_a_legal_but_wrong_step_is_found_and_located(tmp_path, capsys):
    # Step 0 of 4-disk Hanoi moves disk 1 to peg 1 (an even tower goes to peg 2 through peg 1).
    # Record the other legal move, disk 1 to peg 2: the rules allow it, only the oracle knows it is wrong.
    journal = _journal(tmp_path, capsys)
    lines = journal.read_text().splitlines()
    first = json.loads(lines[1])
    assert first["step"] == 0 and first["candidate"]["move"] == [1, 0, 1]
    first["candidate"] = {"move": [1, 0, 2], "next_state": [[4, 3, 2], [], [1]]}
    lines[1] = json.dumps(first)
    journal.write_text("\n".join(lines) + "\n")
    report = verify_journal(journal)
    assert not report["valid"] and report["errors"] >= 1
    assert report["wrong_steps"][0].endswith("step 0")
    assert len(report["wrong_steps"]) == report["errors"]  # a short run lists every one
