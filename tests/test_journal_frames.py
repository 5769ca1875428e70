"""The compressed journal: standard zstd frames, a block per record, resumable and cut at a torn tail
like a plain one."""

import json

import pytest
import zstandard

import maker
from maker import SimulatedBackend, journal_frames, load_task
from maker.journal import JournalReader
from maker.verify import verify_journal


def _run(journal, *, disks=8, max_steps=None, seed=3):
    task = load_task("hanoi", disks=disks)
    return maker.run(task, SimulatedBackend(task, error_rate=0.05, seed=seed), k=4, journal=journal, max_steps=max_steps)


def _decoded(path):
    """The whole file as any zstd reader sees it."""
    with open(path, "rb") as f:
        return zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()


def test_a_zst_journal_holds_the_plain_journals_lines_in_standard_zstd(tmp_path):
    plain, packed = tmp_path / "run.jsonl", tmp_path / "run.jsonl.zst"
    _run(plain)
    _run(packed)
    assert packed.read_bytes()[:4] == journal_frames.ZSTD_MAGIC and plain.read_bytes()[:1] == b"{"
    assert _decoded(packed) == plain.read_bytes()  # same seed, same run, same lines
    assert packed.stat().st_size * 4 < plain.stat().st_size
    reader = JournalReader(packed)
    assert reader.compressed and not reader.torn_tail
    assert list(reader.records()) == list(JournalReader(plain).records())
    report = verify_journal(packed)
    assert report["valid"] and report["compressed"] and report["steps"] == 255
    assert report["solution_sha256"] == verify_journal(plain)["solution_sha256"]


def test_many_frames_and_a_resume_stay_one_valid_zstd_stream(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_frames, "RECORDS_PER_FRAME", 16)
    journal = tmp_path / "run.zst"
    first = _run(journal, max_steps=40)  # stops inside the third frame, which it leaves open
    assert first.steps == 40
    again = _run(journal)
    assert again.solved and again.resumed_steps == 40 and again.steps == 255
    lines = _decoded(journal).splitlines()
    assert len(lines) == 256 and [json.loads(line)["step"] for line in lines[1:]] == list(range(255))
    assert verify_journal(journal)["valid"]


@pytest.mark.parametrize("cut", [1, 2, 5])
def test_a_torn_compressed_tail_is_cut_and_redone(tmp_path, cut):
    journal = tmp_path / "run.jsonl.zst"
    _run(journal, max_steps=30)
    data = journal.read_bytes()
    journal.write_bytes(data[:-cut])  # the process died inside the last record's block
    reader = JournalReader(journal)
    assert reader.torn_tail and len(list(reader.records())) == 29
    result = _run(journal)
    assert result.solved and result.resumed_steps == 29
    assert [json.loads(line)["step"] for line in _decoded(journal).splitlines()[1:]] == list(range(255))
    assert verify_journal(journal)["valid"]


def test_a_resumed_journal_keeps_its_own_format_whatever_its_name(tmp_path):
    journal = tmp_path / "run.jsonl.zst"
    _run(journal, max_steps=10)
    renamed = journal.rename(tmp_path / "renamed.jsonl")
    assert _run(renamed).solved
    assert renamed.read_bytes()[:4] == journal_frames.ZSTD_MAGIC and verify_journal(renamed)["valid"]
