"""How a journal's lines are laid out in its file: plain JSON Lines, or zstd-compressed.

A compressed journal is a run of zstd frames. The writer flushes a zstd block after every record, so
the bytes on disk always end on a record: a killed run loses at most the record being written, as a
plain journal does. A frame holds up to ``RECORDS_PER_FRAME`` records and every frame decodes on its
own, so ``zstd -d`` (or any zstd library) reads the whole file. Within a frame each block refers back
to the earlier ones, which is what makes a record cost a dozen bytes instead of a hundred and more.

Readers see the same thing for both formats: each complete line with the file offset up to which it
is committed (``CommittedLines``). Anything after the last committed offset is a torn tail, which a
resumed run cuts off before it appends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import zstandard

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
RECORDS_PER_FRAME = 65_536
LEVEL = 3  # zstd's default: at a block per record, higher levels save little and cost time per step
_END_OF_FRAME = b"\x01\x00\x00"  # an empty raw block marked last: closes a frame a killed run left open
_READ_SIZE = 1 << 20


class PlainLines:
    """Writes records as they are: one JSON object per line."""

    compressed = False

    def encode(self, line: bytes) -> bytes:
        return line


class ZstdLines:
    """Writes records as zstd blocks, a frame of ``RECORDS_PER_FRAME`` records at a time."""

    compressed = True

    def __init__(self) -> None:
        self._compressor = zstandard.ZstdCompressor(level=LEVEL, write_checksum=False, write_content_size=False)
        self._frame = self._compressor.compressobj()
        self._in_frame = 0

    def encode(self, line: bytes) -> bytes:
        data = self._frame.compress(line)
        self._in_frame += 1
        if self._in_frame >= RECORDS_PER_FRAME:  # end this frame with its record; the next starts afresh
            self._in_frame = 0
            data += self._frame.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)
            self._frame = self._compressor.compressobj()
        else:
            data += self._frame.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        return data


def encoder(compressed: bool) -> PlainLines | ZstdLines:
    return ZstdLines() if compressed else PlainLines()


class CommittedLines:
    """Every complete line of a journal (without its newline), in either format. ``committed`` is
    the file offset up to which what was read is whole; a torn tail (a line or block left unfinished)
    ends the iteration, and ``committed`` below the file's size shows it. ``closing`` is what a
    resumed run writes at ``committed`` before its first record: a compressed journal's last frame,
    left open by a killed run, is closed with an empty last block, so the file stays valid zstd."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.committed, self.closing = file, 0, b""
        self.compressed = file.read(4) == ZSTD_MAGIC
        file.seek(0)

    def __iter__(self) -> Iterator[bytes]:
        return self._zstd_lines() if self.compressed else self._plain_lines()

    def _plain_lines(self) -> Iterator[bytes]:
        for raw in self.file:
            if not raw.endswith(b"\n"):
                return  # a write that never finished
            self.committed += len(raw)
            yield raw[:-1]

    def _zstd_lines(self) -> Iterator[bytes]:
        blocks = _Blocks(self.file)
        pending = b""  # decoded text after the last newline (a record spread over blocks)
        while (head := blocks.peek(18)).startswith(ZSTD_MAGIC):
            try:
                header = blocks.take(zstandard.frame_header_size(head))
                checksum = 4 if zstandard.get_frame_parameters(head).has_checksum else 0
            except zstandard.ZstdError:
                return  # a frame header cut short
            if header is None:
                return
            decoder = zstandard.ZstdDecompressor().decompressobj()
            chunk = header
            while True:
                block_header = blocks.take(3)
                if block_header is None:
                    return
                value = int.from_bytes(block_header, "little")
                last, kind, size = value & 1, (value >> 1) & 3, value >> 3
                body = blocks.take(1 if kind == 1 else size)  # an RLE block stores its one byte
                if body is None or (last and checksum and blocks.take(checksum) is None):
                    return
                *lines, pending = (pending + decoder.decompress(chunk + block_header + body)).split(b"\n")
                chunk = b""
                if lines or last:
                    self.committed, self.closing = blocks.offset, b"" if last else _END_OF_FRAME
                yield from lines
                if last:
                    break


class _Blocks:
    """Walks zstd frames block by block (RFC 8878: a 3-byte header gives each block's type and size),
    so the reader knows where every committed block ends."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.buffer, self.at, self.offset = file, b"", 0, 0  # offset: of buffer[at] in the file

    def _fill(self, size: int) -> bool:
        """At least ``size`` unread bytes in the buffer, unless the file ends first."""
        while len(self.buffer) - self.at < size:
            more = self.file.read(_READ_SIZE)
            if not more:
                return False
            self.buffer, self.at = self.buffer[self.at:] + more, 0
        return True

    def take(self, size: int) -> bytes | None:
        if not self._fill(size):
            return None
        data = self.buffer[self.at:self.at + size]
        self.at += size
        self.offset += size
        return data

    def peek(self, size: int) -> bytes:
        self._fill(size)
        return self.buffer[self.at:self.at + size]
