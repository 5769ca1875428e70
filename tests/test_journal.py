"""The journal: records every decided step, resumes a run without redoing committed work, refuses
a journal from other settings, and cuts a torn last line."""

import json
import subprocess
import sys
import time

import pytest

import maker
from maker import JournalError, SimulatedBackend, load_task
from maker.journal import JournalReader
from maker.verify import verify_journal


def _run(journal, *, disks=6, k=3, max_steps=None, seed=1):
    task = load_task("hanoi", disks=disks)
    return maker.run(task, SimulatedBackend(task, error_rate=0.1, seed=seed), k=k, journal=journal, max_steps=max_steps)


def test_resume_continues_where_the_journal_ends(tmp_path):
    journal = tmp_path / "j.jsonl"
    first = _run(journal, max_steps=20)
    assert first.steps == 20 and not first.solved
    second = _run(journal)
    assert second.resumed_steps == 20 and second.solved and second.steps == 63 and second.errors == 0
    records = list(JournalReader(journal).records())
    assert [r["step"] for r in records] == list(range(63))  # nothing lost, nothing duplicated
    # the resumed run re-spent nothing: its samples are the first run's plus the new steps'
    assert second.statistics.samples == sum(r["samples"] for r in records)


def test_resuming_a_finished_run_draws_no_samples(tmp_path):
    journal = tmp_path / "j.jsonl"
    _run(journal, disks=4)
    again = _run(journal, disks=4)
    assert again.solved and again.resumed_steps == 15
    assert len(list(JournalReader(journal).records())) == 15


@pytest.mark.parametrize("change", [{"k": 4}, {"disks": 7}])
def test_journal_from_other_settings_is_refused(tmp_path, change):
    journal = tmp_path / "j.jsonl"
    _run(journal, max_steps=5)
    with pytest.raises(JournalError, match="different (config|params)"):
        _run(journal, **change)


def test_torn_last_line_is_cut_and_redone(tmp_path):
    journal = tmp_path / "j.jsonl"
    _run(journal, max_steps=10)
    with open(journal, "ab") as f:
        f.write(b'{"step":10,"candidate":{"move":[1,')  # the process died mid-write
    contents = JournalReader(journal)
    assert contents.torn_tail and len(list(contents.records())) == 10
    result = _run(journal)
    assert result.solved and result.resumed_steps == 10
    lines = journal.read_text().splitlines()
    assert all(json.loads(line) for line in lines) and len(lines) == 64


def test_a_torn_tail_is_cut_even_when_the_resume_has_nothing_to_add(tmp_path):
    journal = tmp_path / "j.jsonl"
    _run(journal, disks=4)
    with open(journal, "ab") as f:
        f.write(b'{"step":15,"cand')
    assert _run(journal, disks=4).resumed_steps == 15
    assert not JournalReader(journal).torn_tail and journal.read_bytes().endswith(b"}\n")


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "empty"),
        (b'{"hello": 1}\n', "not a maker journal"),
        (b'{"maker_journal": 1, "task": "hanoi"}\nnot json\n{"step": 1}\n', "line 2 is corrupt"),
        (b'{"maker_journal": 1, "task": "hanoi"}\n{"step": "x", "candidate": 1}\n', "not a step record"),
    ],
)
def test_corrupt_journals_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(JournalError, match=message):
        list(JournalReader(path).records())


def test_a_second_run_on_a_held_journal_stops_at_once_and_the_first_finishes(tmp_path):
    journal = tmp_path / "run.jsonl"
    command = [sys.executable, "-m", "maker.cli", "run", "hanoi", "--disks", "17", "--backend", "sim",
               "--journal", str(journal), "--json", "--no-progress"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while first.poll() is None and (not journal.exists() or journal.stat().st_size < 20_000):
        time.sleep(0.02)  # until the first run is well under way
    assert first.poll() is None, "the first run ended before the second could start"
    began = time.monotonic()
    second = subprocess.run(command, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - began
    assert second.returncode == 2 and "is being written by another run" in second.stderr, second.stderr
    assert took < 10  # it stops at once (about 0.5 s here, Python's start-up), not when the first run ends
    # A reader needs no lock: verifying the held journal reads what is committed so far, a run not yet complete.
    partial = verify_journal(journal)
    assert 0 < partial["steps"] < 2**17 - 1 and not partial["complete"]
    assert partial["rule_violations"] is None or partial["rule_violations"] == 0
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert json.loads(out)["solved"] and verify_journal(journal)["valid"]
