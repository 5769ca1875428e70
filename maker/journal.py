"""The journal: an append-only JSON Lines record of a run, from which it can resume.

Line 1 is a header (task, parameters, run settings, backend); every later line is one decided
step: ``{"step": i, "candidate": ..., "votes": [winner, others...], "samples": n, "rounds": r}``
(plus ``"chain"`` in multi-chain plans). Each step is handed to the operating system with one
``write`` before the next step starts, so a killed process loses nothing it decided. A torn last
line (the process died mid-write) is detected on reading and cut off.

One run writes a journal at a time: the writer holds an exclusive OS lock on it (``flock``, released
when the process ends, however it ends), and a second run on the same journal stops at once with a
``JournalError`` before it reads or changes anything. Readers (``maker verify``) need no lock.

Secrets never reach it: the header holds ``Backend.describe()``, which lists no keys.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maker.errors import JournalError
from maker.events import ChainInfo, Observer, StepDecision

FORMAT_VERSION = 1
Records = dict[int | None, list[dict[str, Any]]]  # step records by chain (see records_by_chain)
# Settings that must match for a journal to be resumed: anything that changes what is decided. The
# task's class is compared only when the journal records it (older journals do not).
_MUST_MATCH = ("task", "class", "params", "config")


@dataclass(frozen=True)
class JournalContents:
    header: dict[str, Any]
    records: list[dict[str, Any]]
    valid_bytes: int  # length of the intact prefix; anything after it is a torn tail
    torn_tail: bool
    resets: frozenset[int | None] = frozenset()  # chains whose first attempt was voided (being redone)


def read_journal(path: str | os.PathLike[str], stop: Callable[[], int] = lambda: 0) -> JournalContents:
    """Read a journal, stopping at (and reporting) a torn or corrupt last line. ``stop()`` non-zero: the reader's
    task is being cancelled (Ctrl-C during a resume); reading a million lines takes seconds, so it stops early."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"cannot read journal {str(path)!r}: {exc.strerror or exc}") from None
    records: list[dict[str, Any]] = []
    resets: set[int | None] = set()
    header: dict[str, Any] | None = None
    offset = 0
    *lines, tail = data.split(b"\n")
    torn = tail != b""  # text after the final newline: a write that never finished
    for number, raw in enumerate(lines, 1):
        if number % 4096 == 0 and stop():
            raise asyncio.CancelledError
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except ValueError:
            raise JournalError(f"journal {str(path)!r} line {number} is corrupt: {raw[:80]!r}") from None
        if header is None:
            if obj.get("maker_journal") != FORMAT_VERSION:
                raise JournalError(f"{str(path)!r} is not a maker journal (version {FORMAT_VERSION}): line 1 has no header")
            header = obj
        elif "reset" in obj:  # a chain that failed its end check is redone: drop its earlier records
            records = [r for r in records if r.get("chain") != obj.get("chain")]
            resets.add(obj.get("chain"))
        else:
            if not isinstance(obj.get("step"), int) or "candidate" not in obj:
                raise JournalError(f"journal {str(path)!r} line {number} is not a step record: {raw[:80]!r}")
            records.append(obj)
        offset += len(raw) + 1
    if header is None:
        raise JournalError(f"journal {str(path)!r} is empty or has no complete header")
    return JournalContents(header, records, offset, torn, frozenset(resets))


def check_compatible(header: dict[str, Any], expected: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Refuse to resume a journal written by another task or with other settings."""
    for key in _MUST_MATCH:
        if key == "class" and key not in header:
            continue
        if header.get(key) != expected.get(key):
            theirs, ours = (json.dumps(h.get(key), sort_keys=True) for h in (header, expected))
            raise JournalError(f"journal {str(path)!r} was written with a different {key}: {theirs} (journal) vs "
                               f"{ours} (this run); use another journal file")


class JournalWriter(Observer):
    """Appends step records with one unbuffered write each.

    A record survives the process being killed once ``append`` returns. Surviving a power loss
    needs the disk to have it too: the writer calls fsync at most every ``fsync_every`` seconds
    (0: after every record, which costs milliseconds per step) and when it closes.
    """

    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any], *, fd: int | None = None,
                 resume_from: JournalContents | None = None, fsync_every: float = 1.0) -> None:
        self.path = Path(path)
        self.fsync_every = fsync_every
        self._last_sync = time.monotonic()
        self._fd = locked(self.path) if fd is None else fd  # open_journal locks before it reads
        if resume_from is None:
            os.ftruncate(self._fd, 0)
            self._write(json.dumps({"maker_journal": FORMAT_VERSION, **header}, sort_keys=True).encode() + b"\n")
        else:
            os.ftruncate(self._fd, resume_from.valid_bytes)  # cut a torn tail
            os.lseek(self._fd, resume_from.valid_bytes, os.SEEK_SET)

    def _write(self, data: bytes) -> None:
        # One write() per record: once it returns, the record survives the process being killed.
        while data:
            written = os.write(self._fd, data)
            data = data[written:]
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_every:
            os.fsync(self._fd)
            self._last_sync = now

    # --- as an observer of the run: a decided step is committed here -------------------------
    def step_decided(self, chain: ChainInfo, step: int, state: Any, decision: StepDecision) -> None:
        if not decision.replayed:
            self.append(step, chain.task.encode_candidate(decision.candidate), decision.votes, decision.samples,
                        decision.rounds, chain.index)

    def chain_reset(self, chain: ChainInfo, reason: str) -> None:
        self.reset(chain.index, reason)

    def append(self, step: int, candidate_text: str, votes: list[int], samples: int, rounds: int, chain: int | None = None) -> None:
        """Commit one decided step. ``candidate_text`` is the candidate's JSON (Task.encode_candidate)."""
        chain_part = "" if chain is None else f'"chain":{chain},'
        # str() of a list of ints is valid JSON and much cheaper than json.dumps.
        self._write((f'{{{chain_part}"step":{step},"candidate":{candidate_text},"votes":{votes},'
                     f'"samples":{samples},"rounds":{rounds}}}\n').encode())

    def reset(self, chain: int | None, reason: str) -> None:
        """Mark a chain's records void: it is being redone from its start."""
        self._write(json.dumps({"chain": chain, "reset": reason}).encode() + b"\n")

    def close(self) -> None:
        if self._fd >= 0:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1


def records_by_chain(contents: JournalContents) -> Records:
    """Step records grouped by chain (None: the single chain of a depth-0 run), in step order."""
    grouped: Records = {}
    for rec in contents.records:
        grouped.setdefault(rec.get("chain"), []).append(rec)
    for chain, recs in grouped.items():
        for expected, rec in enumerate(recs):
            if rec["step"] != expected:
                raise JournalError(f"journal chain {chain}: record {expected + 1} is step {rec['step']}, expected {expected}")
    return grouped


def locked(path: Path) -> int:
    """The journal at ``path`` opened for writing (made if missing) and locked for this process alone. A journal
    another process holds is a ``JournalError`` at once, with nothing read or written: two writers would
    interleave their records."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
    except OSError as exc:
        raise JournalError(f"cannot open journal {str(path)!r}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise JournalError(f"journal {str(path)!r} is being written by another run: wait for it to end (or stop it), "
                           "then rerun this command to resume; two runs on one journal would corrupt it") from None
    return fd


def open_journal(path: str | os.PathLike[str] | None, header: dict[str, Any],
                 stop: Callable[[], int] = lambda: 0) -> tuple[JournalWriter | None, JournalContents | None]:
    """The writer for a run, and what it resumes from. The journal is locked first (``locked``); an existing
    one is resumed only if it was written by the same task and settings (``check_compatible``)."""
    if path is None:
        return None, None
    existed = Path(path).exists() and Path(path).stat().st_size > 0
    fd = locked(Path(path))
    try:
        contents = read_journal(path, stop) if existed else None
        if contents is not None:
            check_compatible(contents.header, header, path)
        return JournalWriter(path, header, fd=fd, resume_from=contents), contents
    except BaseException:
        os.close(fd)
        raise
