"""Crash safety: a run killed with SIGKILL at random moments and resumed each time loses no
decided step, duplicates none, and re-spends samples only on the step in flight at each kill."""

import json
import os
import random
import signal
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
import zstandard

from maker import load_task
from maker.journal import JournalReader
from maker.verify import verify_journal

TARGET = Path(__file__).with_name("crash_target.py")
ROOT = TARGET.parent.parent


def _start(journal, log, disks, *, capture=False):
    env = {**os.environ, "CRASH_DISKS": str(disks), "PYTHONPATH": str(ROOT)}
    pipe = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, str(TARGET), str(journal), str(log)], env=env,
                            stdout=pipe, stderr=pipe, text=True)


def _wait_for_progress(proc, journal, timeout=60.0):
    """Wait until the process commits its first step (start-up and replay are over)."""
    size = journal.stat().st_size if journal.exists() else 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.stat().st_size > size:
            return
        time.sleep(0.002)


def _journalled_steps(journal):
    return len(list(JournalReader(journal).records())) if journal.exists() and journal.stat().st_size else 0


@pytest.mark.parametrize("name,kills", [("run.jsonl", 20), ("run.jsonl.zst", 10)])
def test_sigkills_then_resume(tmp_path, name, kills):
    """Plain and compressed journals alike."""
    disks = 15
    journal, log = tmp_path / name, tmp_path / "requests.log"
    rng = random.Random(2026)
    in_flight_at_kill = []
    while len(in_flight_at_kill) < kills:
        proc = _start(journal, log, disks)
        _wait_for_progress(proc, journal)
        time.sleep(rng.uniform(0.0, 0.05))  # a random moment while it decides steps
        if proc.poll() is not None:
            break  # finished before we could kill it
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        in_flight_at_kill.append(_journalled_steps(journal))  # the step being decided at the kill
    final = _start(journal, log, disks, capture=True)
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err
    assert out.startswith("solved")
    assert len(in_flight_at_kill) == kills, "every kill must land mid-run"
    assert len(set(in_flight_at_kill)) > kills // 2, "kills landed at many different steps"

    # The solution verifies, and every step is recorded exactly once, in order.
    report = verify_journal(journal)
    assert report["valid"] and report["steps"] == 2**disks - 1
    records = list(JournalReader(journal).records())
    assert [r["step"] for r in records] == list(range(2**disks - 1))
    if name.endswith(".zst"):  # resumed ten times, still one valid zstd stream for any zstd reader
        with open(journal, "rb") as f:
            text = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()
        assert [json.loads(line) for line in text.splitlines()[1:]] == records

    # Count every sample drawn, by step, from the request log (a prompt names its step).
    task = load_task("hanoi", disks=disks)
    step_of, state = {}, task.initial_state()
    for step in range(2**disks - 1):
        step_of[zlib.crc32(task.prompt(state).encode())] = step
        state = task.apply(state, task.oracle(state))
    drawn = Counter()
    for line in log.read_text().splitlines():
        crc, n = line.split()
        drawn[step_of[int(crc)]] += int(n)
    extra = {step: drawn[step] - rec["samples"] for step, rec in enumerate(records) if drawn[step] != rec["samples"]}
    # Extra samples exist only at steps that were in flight when a kill came.
    assert set(extra) <= set(in_flight_at_kill), (extra, in_flight_at_kill)
    assert all(n > 0 for n in extra.values())
    print(f"\n{kills} SIGKILLs at steps {in_flight_at_kill}; {len(records)} steps journalled once each; "
          f"extra samples {sum(extra.values())} at {len(extra)} in-flight steps; verified {report['valid']}")


@pytest.mark.parametrize("depth", [0, 6])
def test_ctrl_c_on_the_simulated_backend_stops_within_a_second_and_resumes(tmp_path, depth):
    """The simulator never waits for I/O, so a run that never yielded to the event loop used to
    ignore Ctrl-C until it had finished; at depth 6, 64 chains each ran on for their turn. Now SIGINT
    stops it within a second (exit 130), the journal keeps every decided step, and the same command
    resumes and finishes."""
    journal = tmp_path / "run.jsonl"
    command = [sys.executable, "-m", "maker", "run", "hanoi", "--disks", "17", "--backend", "sim", "--error-rate",
               "0.01", "--k", "4", "--depth", str(depth), "--journal", str(journal), "--no-progress", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # even if ours ignores it
    _wait_for_progress(proc, journal)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 1.0, "Ctrl-C took more than a second"
    assert proc.returncode == 130 and out == "" and "rerun the same command" in err
    kept = _journalled_steps(journal)
    assert 0 < kept < 2**17 - 1
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["solved"] and summary["resumed_steps"] == kept and summary["steps"] == 2**17 - 1
    assert verify_journal(journal)["valid"]


def test_reading_a_journal_stops_when_the_run_is_cancelled(tmp_path):
    """Resuming a million-step journal reads and replays for seconds; Ctrl-C must not wait for that."""
    import asyncio

    from maker import SimulatedBackend, run

    task = load_task("hanoi", disks=13)
    run(task, SimulatedBackend(task), journal=tmp_path / "run.jsonl")
    calls = []
    with pytest.raises(asyncio.CancelledError):
        list(JournalReader(tmp_path / "run.jsonl", stop=lambda: calls.append(1) or 1).records())
    assert len(calls) == 1  # asked after the first 4,096 lines, not after all 8,191
