"""One side's file read as records, a chunk at a time: memory bounded by the chunk, not the file.

A `Source` reads a binary stream in chunks that end at a newline (a newline
byte never sits inside a UTF-8 sequence, so each chunk decodes alone), hashes
what it reads and checks that it is UTF-8, reporting the first bad byte where
reading the whole file would have (offsets after the byte order mark, as
`bytes.decode("utf-8-sig")` counts them).

`csv_batches` turns a source into batches of records. A chunk without quotes,
lone carriage returns or huge lines is "simple": each line is one record, kept
as its raw bytes so that identical lines are recognised without parsing. Any
other chunk goes through `csv.reader`, exactly as the whole-file reader would
(one reader for the whole file, so a quoted field may span chunks).
`jsonl_lines` yields the non-blank lines of a JSON-lines file with their numbers.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from typing import IO, Any, Iterator

from harness.compare.documents import Unparsable

__all__ = ["CHUNK_SIZE", "Source", "csv_batches", "jsonl_lines"]

#: Bytes read per side at a time; a line longer than this is read whole.
CHUNK_SIZE = 1 << 20
_BOM = b"\xef\xbb\xbf"
_FIELD_LIMIT = 131072  # csv's default field_size_limit: longer lines go through csv.reader for its error


class _NoHash:
    """For callers that hashed the bytes already."""

    def update(self, data: bytes) -> None:
        pass


class Source:
    """A side's stream as newline-ended chunks of valid UTF-8, hashed (from `hashed_from` on) as they pass."""

    def __init__(self, stream: IO[bytes], side: str, *, chunk_size: int = CHUNK_SIZE,
                 sha256: Any = None, hashed_from: int = 0) -> None:
        self.stream, self.side, self.chunk_size = stream, side, max(1, chunk_size)
        self.sha256 = sha256 if sha256 is not None else _NoHash()
        self._hashed_from = hashed_from
        self.size = 0          # raw bytes read so far
        self._text_offset = 0  # decoded-coordinate offset of the next chunk (after the BOM)
        self._checked: Iterator[bytes] | None = None

    def read(self, size: int) -> bytes:
        """Up to `size` raw bytes (hashed), for formats read by exact byte counts (.npy)."""
        return self._read(size)

    def _read(self, size: int | None = None) -> bytes:
        data = self.stream.read(self.chunk_size if size is None else size)
        start, self.size = self.size, self.size + len(data)
        if self.size > self._hashed_from:
            self.sha256.update(data[max(0, self._hashed_from - start):] if start < self._hashed_from else data)
        return data

    def whole(self) -> bytes:
        """Everything not read yet, as it is (for formats read whole: JSON documents)."""
        parts = []
        while True:
            data = self._read()
            if not data:
                return b"".join(parts)
            parts.append(data)

    def finish(self) -> None:
        """Hash whatever was not read (a comparison may stop early); the digest then covers the file."""
        while self._read():
            pass

    def raw_chunks(self) -> Iterator[bytes]:
        """Chunks ending at a newline (the last one may not), BOM removed from the first, UTF-8 unchecked."""
        rest = b""
        while len(rest) < len(_BOM):
            data = self._read()
            if not data:
                break
            rest += data
        if rest.startswith(_BOM):
            rest = rest[len(_BOM):]
        while True:
            data = self._read()
            if not data:
                if rest:
                    yield rest
                return
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            rest = data[cut:]
            yield data[:cut]

    def chunks(self) -> Iterator[bytes]:
        """`raw_chunks`, each checked to be UTF-8; raises Unparsable at the first bad byte.

        One iterator per source: whoever calls this again continues where reading stopped.
        """
        if self._checked is None:
            self._checked = self._checked_chunks()
        return self._checked

    def _checked_chunks(self) -> Iterator[bytes]:
        for chunk in self.raw_chunks():
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Unparsable(f"{self.side} is not valid UTF-8 ({exc.reason} at byte {self._text_offset + exc.start})") from None
            self._text_offset += len(chunk)
            yield chunk

    def drain(self) -> None:
        """Read to the end (hashing, checking UTF-8): a later bad byte outranks an earlier CSV error."""
        for _ in self.chunks():
            pass


def _simple(chunk: bytes) -> bool:
    if b'"' in chunk or chunk.count(b"\r") != chunk.count(b"\r\n"):
        return False
    return len(chunk) < _FIELD_LIMIT or max(map(len, chunk.split(b"\n"))) < _FIELD_LIMIT


def _simple_lines(chunk: bytes) -> list[bytes]:
    lines = chunk.split(b"\n")
    if not lines[-1]:
        lines.pop()
    if b"\r" in chunk:
        lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    return lines if all(lines) else [line for line in lines if line]


class _CsvReader:
    """Records of one side: bytes for a line of a simple chunk, a list of str for what csv.reader parsed."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._chunks = source.chunks()
        self._pending: deque[str] = deque()
        self._reader = csv.reader(self._lines())

    def _lines(self) -> Iterator[str]:
        while True:
            if not self._pending:
                chunk = next(self._chunks, None)
                if chunk is None:
                    return
                self._pending.extend(io.StringIO(chunk.decode("utf-8"), newline=""))
            yield self._pending.popleft()

    def batches(self) -> Iterator[list[Any]]:
        try:
            while True:
                if self._pending:  # csv.reader ran into this chunk mid-record: it reads the rest of it
                    yield self._parsed()
                    continue
                chunk = next(self._chunks, None)
                if chunk is None:
                    return
                if _simple(chunk):
                    yield _simple_lines(chunk)
                else:
                    self._pending.extend(io.StringIO(chunk.decode("utf-8"), newline=""))
                    yield self._parsed()
        except csv.Error as exc:
            self.source.drain()
            raise Unparsable(f"{self.source.side} is not valid CSV ({exc})") from None

    def _parsed(self) -> list[Any]:
        batch: list[Any] = []
        while self._pending:
            row = next(self._reader, None)
            if row is None:
                break
            if row:
                batch.append(row)
        return batch


def csv_batches(source: Source) -> Iterator[list[Any]]:
    """Batches of non-blank records (bytes lines or lists of str); raises Unparsable."""
    return _CsvReader(source).batches()


def jsonl_lines(source: Source) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line, numbered as str.splitlines() numbers them."""
    number = 0
    for chunk in source.chunks():
        for line in chunk.decode("utf-8").splitlines():
            number += 1
            if line.strip():
                yield number, line
