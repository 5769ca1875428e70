"""The journal: an append-only JSON Lines record of a run, from which it can resume.

A journal whose name ends in ``.zst`` is written compressed (zstd frames, a dozen bytes a step instead
of about 180; ``maker.journal_frames``) with the same promises; every reader takes both formats, and
reads them as a stream (``JournalReader``): resuming or verifying takes memory that does not grow
with the journal's length.

Line 1 is a header (task, parameters, run settings, backend); every later line is one decided
step: ``{"step": i, "candidate": ..., "votes": [winner, others...], "samples": n, "rounds": r}``
(plus ``"chain"`` in multi-chain plans, ``"kind"``, the step's ``Task.kind``, for a task with kinds,
and ``"escalated"``, rung -> samples, for a step that climbed the escalation ladder). Each step is
handed to the operating system with one ``write`` before the next step starts, so a killed process
loses nothing it decided. A torn last line (the process died mid-write) is detected on reading and
cut off when the run resumes.

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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from maker.errors import JournalError
from maker.events import ChainInfo, Observer, StepDecision
from maker.journal_frames import CommittedLines, encoder

FORMAT_VERSION = 1
COMPRESSED_SUFFIX = ".zst"  # a new journal with this ending is written compressed (maker.journal_frames)
# Settings that must match for a journal to be resumed: anything that changes what is decided. The
# task's class is compared only when the journal records it (older journals do not).
_MUST_MATCH = ("task", "class", "params", "config")


class JournalReader:
    """A journal read as a stream, in memory that does not grow with its length.

    Opening it reads the header and scans the lines once (without parsing them) for the chains a
    ``reset`` voided and for where the committed part ends (``valid_bytes``; a torn tail after it is
    reported, and cut by a resumed run). ``records()`` then yields each step record that counts, in
    journal order: a chain's records before its last reset are skipped, and each chain's steps must
    run 0, 1, 2, ... Both formats read the same (``maker.journal_frames``).

    ``stop()`` non-zero means the reader's task is being cancelled (Ctrl-C during a resume): reading
    millions of lines takes seconds, so it stops early with ``CancelledError``.
    """

    def __init__(self, path: str | os.PathLike[str], stop: Callable[[], int] = lambda: 0) -> None:
        self.path, self.stop = Path(path), stop
        last_reset: dict[int | None, int] = {}  # chain -> the line number of its last reset
        self.header: dict[str, Any] | None = None
        with self._open() as file:
            lines = CommittedLines(file)
            number = 0
            for number, raw in enumerate(lines, 1):
                if number == 1:
                    self.header = self._parse(raw, 1)
                    if self.header.get("maker_journal") != FORMAT_VERSION:
                        raise JournalError(f"{str(path)!r} is not a maker journal (version {FORMAT_VERSION}): line 1 has no header")
                elif b'"reset"' in raw and "reset" in (marker := self._parse(raw, number)):
                    last_reset[marker.get("chain")] = number
                elif number % 65_536 == 0 and stop():
                    raise asyncio.CancelledError
            size = os.fstat(file.fileno()).st_size
        if self.header is None:
            raise JournalError(f"journal {str(path)!r} is empty or has no complete header")
        self.lines, self._last_reset = number, last_reset
        self.resets = frozenset(last_reset)  # chains whose first attempt was voided (being redone)
        self.compressed, self.valid_bytes, self.closing = lines.compressed, lines.committed, lines.closing
        self.torn_tail = size > self.valid_bytes

    def _open(self) -> BinaryIO:
        try:
            return open(self.path, "rb")  # noqa: SIM115 (closed by its caller's with)
        except OSError as exc:
            raise JournalError(f"cannot read journal {str(self.path)!r}: {exc.strerror or exc}") from None

    def _parse(self, raw: bytes, number: int) -> dict[str, Any]:
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            raise JournalError(f"journal {str(self.path)!r} line {number} is corrupt: {raw[:80]!r}")
        return obj

    def entries(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Every committed record after the header, with its line number, as written (only the lines the scan saw,
        so a journal another run is still writing reads as it was when it was opened)."""
        with self._open() as file:
            for number, raw in enumerate(CommittedLines(file), 1):
                if number > self.lines:
                    break
                if number % 4096 == 0 and self.stop():
                    raise asyncio.CancelledError
                if number > 1:
                    yield number, self._parse(raw, number)

    def records(self) -> Iterator[dict[str, Any]]:
        """The step records that count, in journal order."""
        expected: dict[int | None, int] = {}
        for number, record in self.entries():
            if "reset" in record:
                continue
            if not isinstance(record.get("step"), int) or "candidate" not in record:
                raise JournalError(f"journal {str(self.path)!r} line {number} is not a step record: {json.dumps(record)[:80]}")
            chain = record.get("chain")
            if number < self._last_reset.get(chain, 0):
                continue  # voided by the chain's reset
            if record["step"] != (want := expected.get(chain, 0)):
                raise JournalError(f"journal {str(self.path)!r} line {number}: chain {chain} has step {record['step']} "
                                   f"where step {want} was expected")
            expected[chain] = want + 1
            yield record


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
                 resume_from: JournalReader | None = None, fsync_every: float = 1.0) -> None:
        self.path = Path(path)
        self.fsync_every = fsync_every
        self._last_sync = time.monotonic()
        self._kinds: dict[str, str] = {}  # kind -> its JSON part of a record, made once
        self._fd = locked(self.path) if fd is None else fd  # open_journal locks before it reads
        self._resume_from = resume_from  # cut its torn tail at the first write: a resume that fails changes nothing
        if resume_from is None:
            self._lines = encoder(self.path.name.endswith(COMPRESSED_SUFFIX))
            os.ftruncate(self._fd, 0)
            self._write(json.dumps({"maker_journal": FORMAT_VERSION, **header}, sort_keys=True).encode() + b"\n")
        else:
            self._lines = encoder(resume_from.compressed)

    @property
    def compressed(self) -> bool:
        return self._lines.compressed

    def _write(self, line: bytes) -> None:
        if self._resume_from is not None:
            os.ftruncate(self._fd, self._resume_from.valid_bytes)
            os.lseek(self._fd, self._resume_from.valid_bytes, os.SEEK_SET)
            data, self._resume_from = self._resume_from.closing + self._lines.encode(line), None
        else:
            data = self._lines.encode(line)
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
                        decision.rounds, chain.index, decision.kind, decision.escalated)

    def chain_reset(self, chain: ChainInfo, reason: str) -> None:
        self.reset(chain.index, reason)

    def append(self, step: int, candidate_text: str, votes: list[int], samples: int, rounds: int, chain: int | None = None,
               kind: str | None = None, escalated: dict[str, int] | None = None) -> None:
        """Commit one decided step. ``candidate_text`` is the candidate's JSON (Task.encode_candidate); ``kind``
        the step's kind (Task.kind), when the task has kinds; ``escalated`` the escalation rungs it climbed, with
        the samples drawn on each (``maker.escalation``)."""
        chain_part = "" if chain is None else f'"chain":{chain},'
        tail = "" if kind is None else self._kinds.get(kind) or self._kinds.setdefault(kind, f',"kind":{json.dumps(kind)}')
        if escalated:  # rare: a hard step
            tail += f',"escalated":{json.dumps(escalated)}'
        # str() of a list of ints is valid JSON and much cheaper than json.dumps.
        self._write((f'{{{chain_part}"step":{step},"candidate":{candidate_text},"votes":{votes},'
                     f'"samples":{samples},"rounds":{rounds}{tail}}}\n').encode())

    def reset(self, chain: int | None, reason: str) -> None:
        """Mark a chain's records void: it is being redone from its start."""
        self._write(json.dumps({"chain": chain, "reset": reason}).encode() + b"\n")

    def note(self, record: dict[str, Any]) -> None:
        """Commit a record of another shape (``maker.solving``'s nodes): one write, as a step's."""
        self._write(json.dumps(record, sort_keys=True).encode() + b"\n")

    def close(self) -> None:
        if self._fd >= 0:
            try:
                if self._resume_from is not None and self._resume_from.torn_tail:  # nothing appended: still cut it
                    os.ftruncate(self._fd, self._resume_from.valid_bytes)
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1


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
                 stop: Callable[[], int] = lambda: 0) -> tuple[JournalWriter | None, JournalReader | None]:
    """The writer for a run, and what it resumes from. The journal is locked first (``locked``); an existing
    one is resumed only if it was written by the same task and settings (``check_compatible``)."""
    if path is None:
        return None, None
    existed = Path(path).exists() and Path(path).stat().st_size > 0
    fd = locked(Path(path))
    try:
        contents = JournalReader(path, stop) if existed else None
        if contents is not None:
            check_compatible(contents.header, header, path)
        return JournalWriter(path, header, fd=fd, resume_from=contents), contents
    except BaseException:
        os.close(fd)
        raise
