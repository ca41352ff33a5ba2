"""Streaming JSONL input and atomic output.

Reading never raises on a bad line: each line comes back as a ``Line`` with
either the parsed object or a reason naming what is wrong, so stages can
quarantine the row instead of crashing. Writing goes to a temporary file in
the same folder and is renamed into place, so a crash never leaves a half
file for DVC to cache.

    >>> for line in read_jsonl("data/generated/generated.jsonl"):
    ...     print(line.where, line.error or line.row.keys())
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator


class InputError(Exception):
    """An input file cannot be read at all (missing, a folder, unreadable)."""


@dataclass(frozen=True)
class Line:
    """One line of a JSONL file: the parsed row, or why it could not be parsed."""

    path: str
    lineno: int
    row: dict | None
    error: str | None = None
    text: str = ""

    @property
    def where(self) -> str:
        return f"{self.path}:{self.lineno}"


def read_jsonl(path: str | Path, notices: list[str] | None = None) -> Iterator[Line]:
    """Yield every non-blank line of ``path`` as a :class:`Line`.

    Tolerates UTF-8 byte-order marks, CRLF line ends and blank lines, and says
    so in ``notices`` (one message each, naming the file and lines); invalid
    UTF-8, invalid JSON and non-object lines come back with ``error`` set.
    """
    for lineno, raw in read_raw(path, notices):
        yield parse_line(str(path), lineno, raw)


def read_raw(path: str | Path, notices: list[str] | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of every non-blank line, without BOM or line end; nothing parsed."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a JSONL file")
    seen = {key: _Seen() for key in _QUIRKS}
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
                seen["bom"].add(lineno)
            if raw.endswith(b"\r\n"):
                seen["crlf"].add(lineno)
            raw = raw.rstrip(b"\r\n")
            if raw.strip():
                yield lineno, raw
            else:
                seen["blank"].add(lineno)
    if notices is not None:
        notices += [f"{path}: {_QUIRKS[key]} on {s}" for key, s in seen.items() if s.count]


_QUIRKS = {"bom": "UTF-8 byte-order mark removed", "crlf": "CRLF line end read as LF",
           "blank": "blank line skipped (not a row)"}


class _Seen:
    """How many lines had a quirk, and the first five of them (a CRLF file must not keep every line number)."""

    def __init__(self):
        self.count, self.first = 0, []

    def add(self, lineno: int) -> None:
        self.count += 1
        if len(self.first) < 5:
            self.first.append(lineno)

    def __str__(self) -> str:
        more = f" and {self.count - 5} more" if self.count > 5 else ""
        return f"{self.count} line{'s' * (self.count != 1)} ({', '.join(map(str, self.first))}{more})"


def parse_line(path: str, lineno: int, raw: bytes) -> Line:
    """A :class:`Line` from the bytes of one non-blank line (``error`` set when unusable)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Line(path, lineno, None, f"invalid UTF-8 at byte {exc.start}", repr(raw[:200]))
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        return Line(path, lineno, None, f"invalid JSON: {exc.msg} at column {exc.colno}", text)
    if not isinstance(row, dict):
        return Line(path, lineno, None, f"expected a JSON object, got {type(row).__name__}", text)
    return Line(path, lineno, row, None, text)


def jsonl_files(paths: Iterable[str | Path]) -> list[Path]:
    """Each path, with a folder replaced by the ``*.jsonl`` files in it (sorted)."""
    out = []
    for path in map(Path, paths):
        out.extend(sorted(path.glob("*.jsonl")) if path.is_dir() else [path])
    return out


def read_rows(path: str | Path) -> list[dict]:
    """Read a file written by this project; any bad line is an error naming it."""
    rows = []
    for line in read_jsonl(path):
        if line.error:
            raise InputError(f"{line.where}: {line.error}")
        rows.append(line.row)
    return rows


def dumps(row: Any) -> str:
    """The one JSON serialisation used for every output row (stable, UTF-8)."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w"):
    """Open a temporary file beside ``path``; rename it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8", newline=None if "b" in mode else "\n") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write ``rows`` atomically, one JSON object per line; return the count."""
    count = 0
    with atomic_open(path) as fh:
        for row in rows:
            fh.write(dumps(row))
            fh.write("\n")
            count += 1
    return count


def write_json(path: str | Path, obj: Any) -> None:
    """Write a JSON document (reports, metrics) atomically, pretty-printed."""
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, ensure_ascii=False)
        fh.write("\n")


def file_md5(path: str | Path) -> str:
    """MD5 of a file's bytes: the hash DVC 3 records for a file."""
    digest = hashlib.md5()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
