"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

Every writer here creates a fresh temporary file beside the target (same directory, so the
final rename stays on one filesystem), writes and fsyncs it, then ``os.replace``-s it onto the
target. On any error the temporary file is removed and the target is left as it was. Files
are created with mode 0o666 less the umask, like any file the user writes (``tempfile.mkstemp``
would make them 0o600).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "DirectoryLock",
    "atomic_open",
    "atomic_path",
    "describe_os_error",
    "output_problem",
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
    try:
        tmp = _fresh_sibling(target)
    except OSError as exc:
        raise _naming(exc, target) from None
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        cause = _os_error_in(exc)
        if cause is not None and cause.errno in _WRITE_ERRORS:
            # e.g. ENOSPC wrapped by a library, or about the temporary file: name the target
            raise _naming(cause, target) from exc
        raise


_WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def _os_error_in(exc: BaseException) -> OSError | None:
    """The first OSError with an errno in ``exc``'s chain (itself, its cause or context)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno:
            return current
        current = current.__cause__ or current.__context__
    return None


def _naming(exc: OSError, target: Path) -> OSError:
    """``exc`` as a plain OSError about ``target`` (not the temporary file beside it)."""
    return OSError(exc.errno, exc.strerror or str(exc), str(target))


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


_OS_ERROR_WORDS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EISDIR: "is a directory",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EEXIST: "already exists",
}


def os_error_reason(exc: OSError) -> str:
    """Why a file operation failed, in words (``"read-only file system"``)."""
    return _OS_ERROR_WORDS.get(exc.errno or 0) or exc.strerror or str(exc) or "failed"


def describe_os_error(exc: OSError) -> str:
    """One line for a failed file operation: what failed, on which path, and why. The cause
    of a chained error (e.g. PyAV's or torch's wrapper around ENOSPC) is used when it is the
    more precise one."""
    cause = _os_error_in(exc) or exc
    why = os_error_reason(cause)
    paths = [p for p in (cause.filename, cause.filename2) if p]
    where = " → ".join(str(p) for p in paths)
    if cause.errno in (errno.ENOSPC, errno.EDQUOT):
        where = where or "the output"
        return f"cannot write {where}: {why}; free some space and run the command again"
    return f"{where}: {why}" if where else f"file operation failed: {why}"


LOCK_NAME = ".ndevgan.lock"
"""The lock file a writer of a run or study directory holds (see :class:`DirectoryLock`)."""


class DirectoryLock:
    """One writer per directory: an advisory ``fcntl.flock`` on ``DIR/.ndevgan.lock``, held
    from :meth:`acquire` until :meth:`release` (or the process's death, which frees it at once,
    so a lock left by a killed process is simply taken over). The file records the holder's pid
    and host for the message another process gets. On systems without ``fcntl`` it is a no-op.
    """

    def __init__(self, directory: str | Path, what: str = "run directory") -> None:
        self.directory = Path(directory)
        self.what = what
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> DirectoryLock:
        """Take the lock or raise :class:`~ndevgan_core.errors.DirectoryInUseError` at once."""
        from .errors import DirectoryInUseError

        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            from .errors import ConfigError

            raise ConfigError(
                f"cannot write the {self.what} {self.directory}: {os_error_reason(exc)}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
            os.close(fd)
            who = f"pid {holder[0]} on {holder[1]}" if len(holder) >= 2 else "another process"
            raise DirectoryInUseError(
                f"{self.what} {self.directory} is in use by {who} (lock {self.path}); wait for "
                "it to finish or stop it, or write to another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (the file stays: removing it would race with a new holder)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def output_problem(path: str | Path, directory: bool = False) -> str | None:
    """Why ``path`` could not be written (as a file, or a directory to create files in), or
    None when it looks writable: checked before long work starts, so a bad ``--out`` fails at
    once instead of after minutes of scoring. The write itself still reports what happens."""
    target = Path(path)
    if target.exists():
        if directory and not target.is_dir():
            return "it is a file, not a directory"
        if not directory and target.is_dir():
            return "it is a directory"
        parent = target if directory else target.parent
    else:
        parent = target.parent
    ancestor = parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        try:
            readonly = bool(os.statvfs(ancestor).f_flag & os.ST_RDONLY)
        except (AttributeError, OSError):
            readonly = False
        return (
            f"{ancestor} is on a read-only file system"
            if readonly
            else (f"{ancestor} is not writable (permission denied)")
        )
    return None
