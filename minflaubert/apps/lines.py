"""Reading a corpus: UTF-8 texts, one per line, read lazily from files, ``.gz`` files or stdin.

The line rule is the same everywhere a command reads texts (``embed``, ``train-bpe``, the other commands' stdin): a line
ends at ``\\n`` and nowhere else, and invalid UTF-8 is an error naming the line.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import sys
import zlib
from typing import Iterator


class Tally:
    """The size and sha256 of the bytes read so far: an input's fingerprint, taken while it is read."""

    def __init__(self):
        self.bytes, self.digest = 0, hashlib.sha256()

    def update(self, raw: bytes) -> None:
        """Count ``raw`` in: its length and its bytes' sha256."""
        self.bytes += len(raw)
        self.digest.update(raw)


@contextlib.contextmanager
def open_binary(source: str):
    """The bytes of a file, of a gzip file (``.gz``), or of stdin (``-``, left open afterwards).

    A damaged ``.gz`` is a ValueError naming the file, whenever reading finds the damage: gzip itself raises
    ``EOFError`` (cut short), ``BadGzipFile`` or ``zlib.error`` with no file name.
    """
    if source == "-":
        yield sys.stdin.buffer
    elif str(source).endswith(".gz"):
        with gzip.open(source, "rb") as stream:
            try:
                yield stream
            except (EOFError, gzip.BadGzipFile, zlib.error) as error:
                reason = "it is cut short" if isinstance(error, EOFError) else error
                raise ValueError(f"{source} is not a valid gzip file: {reason}") from None
    else:
        with open(source, "rb") as stream:
            yield stream


def read_lines(source: str, tally: Tally | None = None) -> Iterator[str]:
    """The lines of a UTF-8 text (a file, ``.gz`` or ``-`` for stdin), one at a time: one text per line.

    A line ends at ``\\n`` (its ``\\r`` too, for Windows files) and nowhere else. ``str.splitlines`` would also cut
    at U+2028, U+0085, form feeds..., which text copied from the web contains, and the vectors would no longer
    line up with the file's lines. A last line without ``\\n`` counts; no empty line is invented after a final
    ``\\n``. Invalid UTF-8 is an error naming the line: replacing the bytes would embed another text than yours.
    """
    with open_binary(source) as stream:
        for number, raw in enumerate(stream, start=1):  # subtle: a binary stream splits at b"\n" only
            if tally is not None:
                tally.update(raw)
            try:
                yield raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"{source}: line {number} is not valid UTF-8 (byte {error.start + 1} of the line "
                                 f"is {raw[error.start:error.start + 1]!r})") from None


def describe_input(source: str) -> dict:
    """What identifies an input: its bytes, sha256 and lines. Stdin cannot be read twice: it is described while
    the job reads it (see ``corpus_lines``)."""
    if source == "-":
        return {"path": "-"}
    tally = Tally()
    lines = sum(1 for _ in read_lines(source, tally))  # also finds invalid UTF-8 before hours of work, not after
    return {"path": str(source), "bytes": tally.bytes, "sha256": tally.digest.hexdigest(), "lines": lines}


def corpus_lines(inputs: list[dict]) -> Iterator[str]:
    """Every line of every input, in order. Each input's ``first_line`` is set, and stdin's description filled
    in, as the reading reaches them."""
    first_line = 0
    for entry in inputs:
        tally, lines = Tally(), 0
        entry["first_line"] = first_line
        for line in read_lines(entry["path"], tally):
            lines += 1
            yield line
        entry.update(bytes=tally.bytes, sha256=tally.digest.hexdigest(), lines=lines)
        first_line += lines
