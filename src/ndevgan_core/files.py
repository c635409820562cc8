"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

Every writer here creates a fresh temporary file beside the target (same directory, so the
final rename stays on one filesystem), writes and fsyncs it, then ``os.replace``-s it onto the
target. On any error the temporary file is removed and the target is left as it was. Files
are created with mode 0o666 less the umask, like any file the user writes (``tempfile.mkstemp``
would make them 0o600).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_open",
    "atomic_path",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


def _fresh_sibling(path: Path) -> Path:
    """Create and return an empty, unused file beside ``path`` that keeps its suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write with any library (matplotlib, PyAV, numpy); on a clean
    exit from the block it is synced and renamed onto ``path``.

    The temporary file has ``path``'s suffix, for writers that pick a format from it.
    """
    target = Path(path)
    tmp = _fresh_sibling(target)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "wb", encoding: str | None = None
) -> Iterator[IO[Any]]:
    """``open(path, mode)`` for writing, made atomic: the file appears at ``path`` only when
    the block ends without an error. ``mode`` is ``"wb"`` or ``"w"`` (text, utf-8 default)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes new files: mode must be 'wb' or 'w', not {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as fh:
        yield fh
        fh.flush()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (utf-8, newlines as given) to ``path`` atomically; return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON with a final newline to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")
