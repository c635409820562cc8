"""The UCF101 LMDB database: its format, the parallel ``prepare`` that writes it, and a reader.

One database is one LMDB environment (a directory holding ``data.mdb``) with three kinds of
record, keys in ASCII:

``__meta__``
    JSON: ``format`` (:data:`FORMAT`), ``version`` (:data:`VERSION`), ``complete``, ``split``,
    ``subset``, ``height``/``width`` (stored frame size, rows×cols), ``codec`` (+ ``level``),
    ``class_names`` (index = label), counts (``videos``, ``frames``, ``listed``, ``skipped``
    by reason and ``skipped_files``), ``min_frames``, ``resize``, the ``command`` that made it
    (canonical, absolute paths) and the process's ``argv``, ``resumes``, ``created``.
``v/00000012``
    JSON per video (ids 0…videos-1, in split-file order): ``label`` (0-based, classInd − 1),
    ``class``, ``frames``, ``source`` (path relative to the UCF-101 folder).
``f/00000012/00034``
    Frame 34 of video 12: RGB ``uint8`` H×W×3 in row-major order, stored once, losslessly —
    ``raw`` bytes, or ``zlib`` of those bytes (see ``--codec``).

Since version 2 every video and frame record starts with the CRC-32 of the rest (4 bytes,
little-endian), checked when a process first reads it (video records when the database
opens): a damaged record is an error naming the video and frame, never altered pixels.
Version 1 databases (no checksums) are still read. Opening a database first compares
``data.mdb``'s size with the size its LMDB meta pages record (:func:`check_lmdb_size`): a
truncated file would otherwise kill the reader with SIGBUS.

Frames are decoded with PyAV to RGB and resized bicubic by one of two methods (``--resize``):

- ``cv2-cubic`` (the default): OpenCV's ``INTER_CUBIC`` as the paper's code and tgan2 used
  it — a = −0.75, half-pixel centres, replicated borders, 11-bit fixed-point weights, and
  **not antialiased** (each output pixel reads 4×4 source pixels whatever the scale). Written
  here in numpy; within one grey level of OpenCV (tested against opencv-python-headless).
- ``antialiased``: libswscale's SWS_BICUBIC (accurate rounding, bit-exact), which widens the
  kernel by the scale factor when shrinking — less aliasing, but not the authors' data.

The stored width is ``round(height·4/3)`` (64 → 85, 192 → 256, as the authors' 320×240 →
85×64 and 256×192).

This module imports neither torch nor ndevgan_core at import time (a decode worker needs
only PyAV, numpy and lmdb); errors meant for the user are
:class:`ndevgan_core.errors.ConfigError`, imported when raised.
"""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing as mp
import os
import secrets
import shlex
import shutil
import signal
import struct
import sys
import time
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
import lmdb
import numpy as np

FORMAT = "ndevgan.ucf101-lmdb"
VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Version 1 (ndevgan 0.1) has no record checksums; it is read without them."""
_CRC = struct.Struct("<I")
META_KEY = b"__meta__"
CODECS = ("raw", "zlib")
SUBSETS = ("train", "test", "all")
VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v")
"""Files ``data prepare videos`` takes from a folder (any container and codec PyAV decodes)."""
FITS = ("crop", "pad")
"""How ``data prepare videos`` makes frames of any aspect ratio square: centre ``crop`` or
``pad`` (black bars) to a square before resizing."""
SOURCE_LAYOUTS = ("ucf101", "folder")
PARTIAL_SUFFIX = ".partial"

RESIZES = {
    "cv2-cubic": "bicubic as OpenCV's INTER_CUBIC (a = -0.75, fixed point; not antialiased)",
    "antialiased": "bicubic (libswscale SWS_BICUBIC, accurate rounding, bit-exact; antialiased)",
}
"""The resize methods of ``prepare`` and what the meta record says of each."""
SKIP_REASONS = (
    "missing",
    "unreadable",
    "truncated",
    "too short",
    "unknown class",
    "bad split line",
)


def _config_error(message: str) -> Exception:
    from ndevgan_core import ConfigError

    return ConfigError(message)


def stored_width(height: int) -> int:
    """The stored width for a stored height: the 4:3 frame, ``round(height·4/3)``."""
    return round(height * 4 / 3)


def video_key(video: int) -> bytes:
    """Key of video ``video``'s JSON record."""
    return b"v/%08d" % video


def frame_key(video: int, frame: int) -> bytes:
    """Key of frame ``frame`` of video ``video``."""
    return b"f/%08d/%05d" % (video, frame)


# --------------------------------------------------------------------------------------------
# The official split files


@attrs.frozen
class Item:
    """One video a split file lists: its path relative to the UCF-101 folder and its class."""

    source: str
    label: int
    class_name: str


@attrs.frozen
class Skip:
    """A listed video that was not written, and why."""

    source: str
    reason: str
    detail: str = ""


@attrs.frozen
class Layout:
    """Where the videos and split files are, and what the chosen split and subset list."""

    root: Path
    splits: Path
    class_names: tuple[str, ...]
    items: tuple[Item, ...]
    problems: tuple[Skip, ...]
    """Lines of the split files that name no usable video (unknown class, malformed)."""


def _list_files(split: int, subset: str) -> list[str]:
    names = []
    if subset in ("train", "all"):
        names.append(f"trainlist{split:02d}.txt")
    if subset in ("test", "all"):
        names.append(f"testlist{split:02d}.txt")
    return names


def find_layout(root: str | Path, splits: str | Path | None, split: int, subset: str) -> Layout:
    """Check ``--root`` and ``--splits`` and read the split's video list.

    ``root`` is the unpacked ``UCF-101`` folder (its parent is accepted too); ``splits`` the
    ``ucfTrainTestlist`` folder, looked for beside or inside ``root`` when None. A wrong folder
    raises a ConfigError saying what was expected there.
    """
    if split not in (1, 2, 3):
        raise _config_error(f"--split: expected 1, 2 or 3, got {split}")
    if subset not in SUBSETS:
        raise _config_error(f"--subset: expected train, test or all, got {subset!r}")
    root = Path(root).expanduser().absolute()
    example = "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
    if not root.is_dir():
        raise _config_error(
            f"--root {root}: no such directory; expected the unpacked UCF-101 folder with one "
            f"sub-folder of .avi files per class (e.g. {example})"
        )
    if (root / "UCF-101").is_dir():
        root = root / "UCF-101"
    if splits is None:
        candidates = [root.parent / "ucfTrainTestlist", root / "ucfTrainTestlist"]
        found = next((c for c in candidates if c.is_dir()), None)
        if found is None:
            raise _config_error(
                f"--splits not given and no ucfTrainTestlist folder beside or inside {root}; "
                "pass --splits DIR (the unpacked UCF101TrainTestSplits-RecognitionTask.zip)"
            )
        splits_dir = found
    else:
        splits_dir = Path(splits).expanduser().absolute()
    needed = ["classInd.txt", *_list_files(split, subset)]
    if not splits_dir.is_dir():
        raise _config_error(
            f"--splits {splits_dir}: no such directory; expected the ucfTrainTestlist folder "
            "with classInd.txt, trainlist01-03.txt and testlist01-03.txt"
        )
    missing = [n for n in needed if not (splits_dir / n).is_file()]
    if missing:
        raise _config_error(
            f"--splits {splits_dir}: missing {', '.join(missing)}; expected the "
            "ucfTrainTestlist folder with classInd.txt, trainlist01-03.txt and testlist01-03.txt"
        )
    class_names = _read_class_index(splits_dir / "classInd.txt")
    present = [c for c in class_names if (root / c).is_dir()]
    if not present:
        shown = ", ".join(class_names[:3]) + (", …" if len(class_names) > 3 else "")
        raise _config_error(
            f"--root {root}: none of the {len(class_names)} class folders that classInd.txt "
            f"lists ({shown}) is there; expected the unpacked UCF-101 folder with one "
            f"sub-folder of .avi files per class (e.g. {example})"
        )
    labels = {name: i for i, name in enumerate(class_names)}
    items: list[Item] = []
    problems: list[Skip] = []
    seen: set[str] = set()
    for name in _list_files(split, subset):
        for number, line in enumerate(_read_lines(splits_dir / name), start=1):
            parts = line.split()
            if not parts:
                continue
            where = f"{name} line {number}"
            source = parts[0].replace("\\", "/")
            if len(parts) > 2 or "/" not in source or not source.lower().endswith(".avi"):
                problems.append(Skip(source, "bad split line", f"{where}: {line.strip()!r}"))
                continue
            class_name = source.split("/", 1)[0]
            if class_name not in labels:
                problems.append(
                    Skip(source, "unknown class", f"{where}: {class_name!r} not in classInd.txt")
                )
                continue
            if len(parts) == 2 and parts[1] != str(labels[class_name] + 1):
                problems.append(
                    Skip(
                        source,
                        "bad split line",
                        f"{where}: label {parts[1]} but classInd.txt gives "
                        f"{class_name} {labels[class_name] + 1}",
                    )
                )
                continue
            if source in seen:
                continue
            seen.add(source)
            items.append(Item(source, labels[class_name], class_name))
    return Layout(root, splits_dir, tuple(class_names), tuple(items), tuple(problems))


def find_folder_layout(root: str | Path, split_file: str | Path | None = None) -> Layout:
    """Every video under ``root`` (:data:`VIDEO_SUFFIXES`, any depth): a video in a sub-folder
    is of the class named by its first folder, one at the top is of class ``videos``; labels
    follow the sorted class names. ``split_file`` (optional) lists the videos to take, one
    path relative to ``root`` per line (``#`` starts a comment); a listed path that is not a
    video under ``root`` is reported as a problem line."""
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise _config_error(
            f"--root {root}: no such directory; expected a folder of videos "
            f"({', '.join(VIDEO_SUFFIXES)}), optionally one sub-folder per class"
        )
    found = sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file()
    )
    problems: list[Skip] = []
    if split_file is not None:
        listed_path = Path(split_file).expanduser().absolute()
        if not listed_path.is_file():
            raise _config_error(f"--split-file {listed_path}: no such file")
        available = set(found)
        chosen: list[str] = []
        for number, line in enumerate(_read_lines(listed_path), start=1):
            entry = line.split("#", 1)[0].strip().replace("\\", "/")
            if not entry:
                continue
            if entry not in available:
                problems.append(
                    Skip(
                        entry,
                        "bad split line",
                        f"{listed_path.name} line {number}: not a video under {root}",
                    )
                )
            elif entry not in chosen:
                chosen.append(entry)
        found = chosen
    if not found and not problems:
        raise _config_error(
            f"--root {root}: no video files ({', '.join(VIDEO_SUFFIXES)}) in it or below it"
        )
    classes = sorted({source.split("/", 1)[0] if "/" in source else "videos" for source in found})
    labels = {name: i for i, name in enumerate(classes)}
    items = []
    for source in found:
        name = source.split("/", 1)[0] if "/" in source else "videos"
        items.append(Item(source, labels[name], name))
    where = Path(split_file).expanduser().absolute() if split_file is not None else root
    return Layout(root, where, tuple(classes), tuple(items), tuple(problems))


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text("utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise _config_error(f"cannot read {path}: {exc}") from None


def _read_class_index(path: Path) -> tuple[str, ...]:
    by_index: dict[int, str] = {}
    for number, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise _config_error(
                f"{path} line {number}: expected '<index> <ClassName>' (e.g. '1 ApplyEyeMakeup'), "
                f"got {line.strip()!r}"
            )
        by_index[int(parts[0])] = parts[1]
    if not by_index or sorted(by_index) != list(range(1, len(by_index) + 1)):
        raise _config_error(f"{path}: expected class indices 1…N, one per line")
    return tuple(by_index[i] for i in range(1, len(by_index) + 1))


def resolve_source(root: Path, source: str, listing: dict[Path, dict[str, str]]) -> Path | None:
    """The file a split line names, or None. Falls back to a case-insensitive match inside the
    class folder (the official lists and folders disagree on case for a few files)."""
    path = root / source
    if path.is_file():
        return path
    folder = path.parent
    if folder not in listing:
        try:
            listing[folder] = {p.name.lower(): p.name for p in folder.iterdir()}
        except OSError:
            listing[folder] = {}
    actual = listing[folder].get(path.name.lower())
    return folder / actual if actual else None


# --------------------------------------------------------------------------------------------
# Decoding (runs in the worker processes)


class VideoError(Exception):
    """A video that cannot be used; ``reason`` is one of :data:`SKIP_REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _interpolation() -> Any:
    from av.video.reformatter import Interpolation

    return Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.BITEXACT


def _cubic_table(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices (dst, 4) and fixed-point weights (dst, 4) of OpenCV's INTER_CUBIC along
    one axis: centres ``(d + 0.5)·src/dst − 0.5`` in float32, Keys' kernel with a = −0.75,
    weights rounded at scale 2^11, indices clamped to the edge (replicated border)."""
    scale = src / dst
    x = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    x0 = np.floor(x)
    f = x - x0
    a, one = np.float32(-0.75), np.float32(1.0)
    w0 = ((a * (f + one) - 5 * a) * (f + one) + 8 * a) * (f + one) - 4 * a
    w1 = ((a + 2) * f - (a + 3)) * f * f + one
    w2 = ((a + 2) * (one - f) - (a + 3)) * (one - f) * (one - f) + one
    w3 = one - w0 - w1 - w2
    weights = np.rint(np.stack([w0, w1, w2, w3], axis=1) * 2048).astype(np.int64)
    index = np.clip(x0.astype(np.int64)[:, None] + np.arange(-1, 3), 0, src - 1)
    return index, weights


def cv2_cubic(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``uint8`` (H, W, C) to (height, width, C) as OpenCV's ``INTER_CUBIC`` does:
    two separable passes of four taps in integers, rounded once at the end (2^22).

    Plain numpy element-wise work, no BLAS call: prepare runs it in forked worker processes,
    where a BLAS thread pool per worker would oversubscribe the cores.
    """
    xi, xw = _cubic_tables(image.shape[1], width)
    yi, yw = _cubic_tables(image.shape[0], height)
    # Integer sums are exact, so the order of the passes does not change the result; each
    # pass gathers whole rows (contiguous), the fast direction for numpy.
    pixels = image.astype(np.int32)
    columns = pixels[yi[:, 0]] * yw[:, 0, None, None]  # |sum| < 2^20: int32 is exact
    for k in range(1, 4):
        columns += pixels[yi[:, k]] * yw[:, k, None, None]
    columns = columns.transpose(1, 0, 2).astype(np.int64)
    out = columns[xi[:, 0]] * xw[:, 0, None, None]
    for k in range(1, 4):
        out += columns[xi[:, k]] * xw[:, k, None, None]
    out = np.clip((out + (1 << 21)) >> 22, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out.transpose(1, 0, 2))


@functools.lru_cache(maxsize=16)
def _cubic_tables(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    index, weights = _cubic_table(src, dst)
    return index, weights.astype(np.int32)


def fit_aspect(image: np.ndarray, height: int, width: int, fit: str) -> np.ndarray:
    """``uint8`` (H, W, 3) made of the aspect ratio ``width / height``: the centred window of
    that ratio (``crop``), or the image centred on black bars (``pad``)."""
    h, w = image.shape[:2]
    if h * width == w * height:
        return image
    if fit == "crop":
        if w * height > h * width:  # too wide: keep the middle columns
            keep = max(1, round(h * width / height))
            x0 = (w - keep) // 2
            return image[:, x0 : x0 + keep]
        keep = max(1, round(w * height / width))
        y0 = (h - keep) // 2
        return image[y0 : y0 + keep]
    if w * height > h * width:  # too wide: bars above and below
        full = round(w * height / width)
        canvas = np.zeros((full, w, 3), dtype=np.uint8)
        y0 = (full - h) // 2
        canvas[y0 : y0 + h] = image
        return canvas
    full = round(h * width / height)
    canvas = np.zeros((h, full, 3), dtype=np.uint8)
    x0 = (full - w) // 2
    canvas[:, x0 : x0 + w] = image
    return canvas


def resize_frame(
    frame: Any, height: int, width: int, resize: str = "cv2-cubic", fit: str = "none"
) -> np.ndarray:
    """A decoded ``av.VideoFrame`` as RGB ``uint8`` (height, width, 3), resized bicubic by
    ``resize`` (:data:`RESIZES`); with ``fit`` (:data:`FITS`) first made of the target's
    aspect ratio by cropping or padding (``none``: stretched, as UCF101's 4:3 frames are).

    The one resize function of the project: ``prepare`` stores its output, and the tests and
    the benchmark's direct-decode baseline call it too.
    """
    if fit != "none":
        image = fit_aspect(frame.to_ndarray(format="rgb24"), height, width, fit)
        if resize == "cv2-cubic":
            return cv2_cubic(image, height, width)
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    if resize == "cv2-cubic":
        return cv2_cubic(frame.to_ndarray(format="rgb24"), height, width)
    flags = _interpolation()
    out = frame.reformat(width=width, height=height, format="rgb24", interpolation=flags)
    return out.to_ndarray()


def decode_video(
    path: str | Path, height: int, width: int, resize: str = "cv2-cubic", fit: str = "none"
) -> np.ndarray:
    """All frames of a video, resized by ``resize``: ``uint8`` (T, height, width, 3).

    Raises :class:`VideoError`: ``missing`` (no file), ``unreadable`` (not a video, no frame
    decodes), ``truncated`` (decoding fails part-way, or yields fewer frames than the header
    announces beyond a small tolerance).
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoError("missing", "no such file")
    frames: list[np.ndarray] = []
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoError("unreadable", _short(exc)) from None
    with container:
        if not container.streams.video:
            raise VideoError("unreadable", "no video stream")
        stream = container.streams.video[0]
        expected = int(stream.frames or 0)
        try:
            for frame in container.decode(stream):
                frames.append(resize_frame(frame, height, width, resize, fit))
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            if not frames:
                raise VideoError("unreadable", _short(exc)) from None
            raise VideoError(
                "truncated", f"decoding failed after {len(frames)} frames: {_short(exc)}"
            ) from None
    if not frames:
        raise VideoError("unreadable", "no frame could be decoded")
    # A header count may differ from what decodes by a frame or two in intact files.
    if expected and len(frames) + max(2, expected // 50) < expected:
        raise VideoError("truncated", f"{len(frames)} of the {expected} frames the header lists")
    return np.stack(frames)


def _short(exc: BaseException) -> str:
    strerror = getattr(exc, "strerror", None)  # FFmpeg errors: the message without errno/path
    text = (strerror if isinstance(strerror, str) and strerror else str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def encode_frame(frame: np.ndarray, codec: str, level: int) -> bytes:
    """One frame's stored bytes (sealed with its checksum)."""
    raw = np.ascontiguousarray(frame, dtype=np.uint8).tobytes()
    return seal(zlib.compress(raw, level) if codec == "zlib" else raw)


def seal(payload: bytes) -> bytes:
    """A record as stored since version 2: the CRC-32 of ``payload``, then ``payload``."""
    return _CRC.pack(zlib.crc32(payload)) + payload


class DamagedRecordError(Exception):
    """A record's checksum does not match its content."""


def unseal(data: Any) -> memoryview:
    """The payload of a sealed record (a view, no copy); :class:`DamagedRecordError` if its
    checksum does not match."""
    view = memoryview(data)
    if len(view) < _CRC.size:
        raise DamagedRecordError("shorter than its checksum")
    payload = view[_CRC.size :]
    if zlib.crc32(payload) != _CRC.unpack_from(view)[0]:
        raise DamagedRecordError("its CRC-32 does not match its content")
    return payload


def decode_frame(data: Any, codec: str) -> Any:
    """Stored bytes → the frame's raw bytes (a buffer; no copy for ``raw``)."""
    return zlib.decompress(data) if codec == "zlib" else data


@attrs.frozen
class Task:
    """What a worker needs to turn one listed video into stored frames."""

    position: int
    path: str
    height: int
    width: int
    codec: str
    level: int
    min_frames: int
    resize: str = "cv2-cubic"
    fit: str = "none"


def process_video(task: Task) -> tuple[int, list[bytes] | None, str, str]:
    """Decode, resize and encode one video: ``(position, frames, reason, detail)``.

    ``frames`` is None when the video is skipped; ``reason`` then says why. Any failure is
    caught here, so one strange file never stops a run.
    """
    try:
        video = decode_video(task.path, task.height, task.width, task.resize, task.fit)
        if len(video) < task.min_frames:
            raise VideoError("too short", f"{len(video)} frames, fewer than {task.min_frames}")
        return task.position, [encode_frame(f, task.codec, task.level) for f in video], "", ""
    except VideoError as exc:
        return task.position, None, exc.reason, exc.detail
    except Exception as exc:  # a decoder surprise: report the file rather than crash the run
        return task.position, None, "unreadable", f"{type(exc).__name__}: {_short(exc)}"


def _ignore_sigint() -> None:
    # Workers leave Ctrl-C to the parent, which stops them and keeps the partial database.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool_context(method: str | None = None) -> Any:
    """The start method of the decode workers: ``spawn`` unless ``method`` says otherwise.
    Workers get only picklable :class:`Task` objects, so spawn works everywhere; ``fork`` would
    start them faster but copies every lock of the parent as it is, and a lock that one of the
    parent's threads (torch's, a progress bar's, a test runner's) held at that moment leaves the
    worker waiting forever."""
    return mp.get_context(method or "spawn")


@contextlib.contextmanager
def worker_pool(workers: int, method: str | None = None) -> Iterator[Any]:
    """A pool of ``workers`` decode processes that ignore Ctrl-C (None for 0 workers)."""
    if workers <= 0:
        yield None
        return
    pool = _pool_context(method).Pool(workers, initializer=_ignore_sigint)
    try:
        yield pool
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def run_tasks(
    tasks: Iterable[Task], pool: Any, workers: int
) -> Iterator[tuple[int, Any, str, str]]:
    """Results of :func:`process_video` in task order, from ``pool`` (None: in-process).

    At most two tasks per worker are in flight, so finished videos waiting to be written never
    pile up in memory.
    """
    if pool is None:
        for task in tasks:
            yield process_video(task)
        return
    pending: deque[Any] = deque()
    for task in tasks:
        pending.append(pool.apply_async(process_video, (task,)))
        if len(pending) >= 2 * max(1, workers):
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


# --------------------------------------------------------------------------------------------
# Writing


def _is_database(path: Path) -> bool:
    return (path / "data.mdb").is_file()


_LMDB_MAGIC = 0xBEEFC0DE
# MDB_meta after the 16-byte page header: magic, version (uint32), address, mapsize, then two
# MDB_db of 48 bytes (the free-list db's first field is the page size), last page, txn id.
_LMDB_META = struct.Struct("<IIQQ I44x 48x QQ")


def check_lmdb_size(path: Path, what: str = "database") -> None:
    """Refuse an LMDB file smaller than its meta pages say it is (a truncated copy), before
    anything maps it: reading past the end of a mapped file kills the process with SIGBUS."""
    data_file = path / "data.mdb"
    try:
        size = data_file.stat().st_size
        with data_file.open("rb") as fh:
            first = fh.read(16 + _LMDB_META.size)
            metas = []
            if len(first) == 16 + _LMDB_META.size:
                metas.append(_LMDB_META.unpack_from(first, 16))
                page_size = metas[0][4]
                if metas[0][0] == _LMDB_MAGIC and page_size >= 512:
                    fh.seek(page_size)
                    second = fh.read(16 + _LMDB_META.size)
                    if len(second) == 16 + _LMDB_META.size:
                        metas.append(_LMDB_META.unpack_from(second, 16))
    except OSError as exc:
        raise _config_error(f"{what} {data_file}: cannot read it ({exc.strerror})") from None
    valid = [m for m in metas if m[0] == _LMDB_MAGIC]
    if not valid:
        raise _config_error(
            f"{what} {data_file}: not an LMDB file (no valid meta page; {size} bytes)"
        )
    newest = max(valid, key=lambda m: m[6])  # the meta of the latest transaction
    page_size, last_page = newest[4], newest[5]
    expected = (last_page + 1) * page_size
    if size < expected:
        raise _config_error(
            f"{what} {data_file} is truncated: {size:,} bytes, but its LMDB header records "
            f"{expected:,} ({last_page + 1:,} pages of {page_size}); copy or prepare it again"
        )


def _read_meta_from(env: lmdb.Environment) -> dict[str, Any] | None:
    with env.begin() as txn:
        raw = txn.get(META_KEY)
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


# lmdb 3.x refuses to open one environment (its files) twice in a process, so every reader in
# a process shares one read-only handle per database: file identity → [pid, env, users]. An
# entry whose pid is not ours was inherited through fork and is closed, never used.
_SHARED: dict[tuple[int, int], list[Any]] = {}


def _identity(path: Path) -> tuple[int, int]:
    st = os.stat(path / "data.mdb")
    return st.st_dev, st.st_ino


def _acquire(path: Path, max_readers: int = 126) -> tuple[tuple[int, int], lmdb.Environment]:
    """This process's shared read-only handle on the database at ``path`` (one more user)."""
    key = _identity(path)
    pid = os.getpid()
    entry = _SHARED.get(key)
    if entry is not None and entry[0] != pid:
        with contextlib.suppress(Exception):
            entry[1].close()
        entry = None
    if entry is None:
        check_lmdb_size(path)
        env = lmdb.open(
            str(path), readonly=True, lock=False, readahead=False, max_readers=max_readers
        )
        entry = _SHARED[key] = [pid, env, 0]
    entry[2] += 1
    return key, entry[1]


def _release(key: tuple[int, int]) -> None:
    """One user fewer; the last one closes the handle."""
    entry = _SHARED.get(key)
    if entry is None or entry[0] != os.getpid():
        return
    entry[2] -= 1
    if entry[2] <= 0:
        del _SHARED[key]
        entry[1].close()


def read_meta(path: str | Path) -> dict[str, Any] | None:
    """The meta record of the database at ``path`` (None if there is none)."""
    key, env = _acquire(Path(path))
    try:
        return _read_meta_from(env)
    finally:
        _release(key)


class _Writer:
    """The only writer of a partial database: one transaction per video, grown on demand."""

    def __init__(self, path: Path, map_size: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if _is_database(path):
            check_lmdb_size(path, "partial database")
        # sync=False: a killed process loses nothing (the pages are in the OS cache); only a
        # machine crash could, and the final sync() and rename guard the finished database.
        self.env = lmdb.open(
            str(path), map_size=map_size, sync=False, metasync=False, readahead=False
        )
        if self.env.info()["map_size"] < map_size:
            self.env.set_mapsize(map_size)

    def _write(self, records: list[tuple[bytes, bytes]]) -> None:
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in records:
                        txn.put(key, value)
                return
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def put_meta(self, meta: dict[str, Any]) -> None:
        self._write([(META_KEY, json.dumps(meta, indent=1).encode())])

    def add_video(self, video: int, record: dict[str, Any], frames: list[bytes]) -> None:
        records = [(frame_key(video, i), f) for i, f in enumerate(frames)]
        records.append((video_key(video), seal(json.dumps(record).encode())))
        self._write(records)

    def videos(self) -> list[dict[str, Any]]:
        with self.env.begin() as txn:
            cursor = txn.cursor()
            found = []
            if cursor.set_range(b"v/"):
                for key, value in cursor:
                    if not key.startswith(b"v/"):
                        break
                    try:
                        found.append(json.loads(bytes(unseal(value))))
                    except (DamagedRecordError, ValueError):
                        continue  # a damaged record: that video is written again
        return found

    def sync(self) -> None:
        self.env.sync(True)

    def close(self) -> None:
        self.env.sync(True)
        self.env.close()


@attrs.frozen
class PrepareOptions:
    """Everything ``ndevgan data prepare ucf101`` is asked to do."""

    root: str
    out: str
    splits: str | None = None
    split: int = 1
    subset: str = "train"
    size: int = 64
    resize: str = "cv2-cubic"
    workers: int = 0
    min_frames: int = 16
    codec: str = "raw"
    level: int = 1
    resume: bool = False
    overwrite: bool = False
    map_size: int = 0
    limit: int = 0
    progress: bool = True
    source_layout: str = "ucf101"
    """``ucf101`` (the official tree and split files) or ``folder`` (any folder of videos)."""
    fit: str = "crop"
    """``folder``: how frames become square (:data:`FITS`)."""
    split_file: str | None = None
    """``folder``: an optional list of the videos to take."""


@attrs.define
class PrepareReport:
    """What a prepare run did."""

    out: Path
    written: int = 0
    frames: int = 0
    resumed_videos: int = 0
    resumed_frames: int = 0
    skipped: list[Skip] = attrs.Factory(list)
    seconds: float = 0.0
    interrupted: bool = False
    partial: Path | None = None
    height: int = 0
    width: int = 0
    codec: str = "raw"
    listed: int = 0

    @property
    def total_videos(self) -> int:
        """Videos in the database: written now plus those a resumed run found."""
        return self.written + self.resumed_videos

    def by_reason(self) -> dict[str, list[Skip]]:
        """Skipped videos grouped by reason, in :data:`SKIP_REASONS` order."""
        groups: dict[str, list[Skip]] = {}
        for s in sorted(self.skipped, key=lambda s: _reason_rank(s.reason)):
            groups.setdefault(s.reason, []).append(s)
        return groups

    def lines(self) -> list[str]:
        """The report printed at the end of a run."""
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        fps = self.frames / self.seconds if self.seconds > 0 else 0.0
        where = self.partial if self.interrupted else self.out
        out = [
            f"{'interrupted' if self.interrupted else 'wrote'} {where}: "
            f"{self.total_videos} videos, {self.resumed_frames + self.frames} frames "
            f"({self.height}×{self.width}, {self.codec}) of {self.listed} listed",
            f"this run: {self.written} videos, {self.frames} frames in {self.seconds:.1f} s "
            f"({rate:.2f} videos/s, {fps:.0f} frames/s)",
        ]
        if self.resumed_videos:
            out.append(
                f"resumed: {self.resumed_videos} videos ({self.resumed_frames} frames) were "
                "already in the database and were not redone"
            )
        if self.skipped:
            out.append(f"skipped {len(self.skipped)} videos:")
            for reason, group in self.by_reason().items():
                out.append(f"  {reason} ({len(group)}):")
                out.extend(
                    f"    {s.source}" + (f"  ({s.detail})" if s.detail else "") for s in group
                )
        else:
            out.append("skipped: none")
        return out


def _reason_rank(reason: str) -> int:
    return SKIP_REASONS.index(reason) if reason in SKIP_REASONS else len(SKIP_REASONS)


def canonical_command(opts: PrepareOptions, layout: Layout, out: Path) -> str:
    """The command that (re)makes this database, with absolute paths."""
    if opts.source_layout == "folder":
        parts = [f"ndevgan data prepare videos --root {shlex.quote(str(layout.root))}"]
        if opts.split_file is not None:
            parts.append(f"--split-file {shlex.quote(str(layout.splits))}")
        parts.append(
            f"--size {opts.size} --fit {opts.fit} --resize {opts.resize} "
            f"--min-frames {opts.min_frames} --codec {opts.codec}"
        )
        if opts.codec == "zlib":
            parts.append(f"--level {opts.level}")
        if opts.limit:
            parts.append(f"--limit {opts.limit}")
        parts.append(f"--out {shlex.quote(str(out))}")
        return " ".join(parts)
    parts = [
        "ndevgan data prepare ucf101",
        f"--root {shlex.quote(str(layout.root))}",
        f"--splits {shlex.quote(str(layout.splits))}",
        f"--split {opts.split} --subset {opts.subset} --size {opts.size} --resize {opts.resize}",
        f"--min-frames {opts.min_frames} --codec {opts.codec}",
    ]
    if opts.codec == "zlib":
        parts.append(f"--level {opts.level}")
    if opts.limit:
        parts.append(f"--limit {opts.limit}")
    parts.append(f"--out {shlex.quote(str(out))}")
    return " ".join(parts)


_IDENTITY = (
    "source_layout",
    "fit",
    "split",
    "subset",
    "height",
    "width",
    "codec",
    "level",
    "min_frames",
    "limit",
    "resize",
)


_IDENTITY_BEFORE_FOLDERS = {"source_layout": "ucf101", "fit": "none"}
"""What a partial database started before folder layouts existed was made with."""


def partial_path(out: str | Path) -> Path:
    """Where ``prepare`` builds the database for ``out`` until it is complete."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def _check_destination(out: Path, partial: Path, opts: PrepareOptions) -> None:
    if out.exists():
        if not opts.overwrite:
            raise _config_error(
                f"--out {out} already exists; pass --overwrite to replace it (the old database "
                "stays in place until the new one is complete)"
            )
        meta = read_meta(out) if _is_database(out) else None
        if not meta or meta.get("format") != FORMAT:
            raise _config_error(
                f"--out {out} exists and is not an ndevgan UCF101 database; refusing to "
                "replace it, even with --overwrite. Choose another --out."
            )
    if partial.exists() and not opts.resume:
        if not opts.overwrite:
            raise _config_error(
                f"{partial} holds an interrupted prepare; continue it with --resume, or start "
                "again with --overwrite"
            )
        shutil.rmtree(partial)


def _already_finished(
    opts: PrepareOptions, layout: Layout, out: Path, partial: Path
) -> PrepareReport | None:
    """``--resume`` of a prepare that had already finished (killed after its rename, say):
    the report of the complete database this very command made, with nothing to redo."""
    if not opts.resume or partial.exists() or not _is_database(out):
        return None
    try:
        meta = read_meta(out)
    except Exception:  # an unreadable database is _check_destination's to report
        return None
    if (
        not meta
        or not meta.get("complete")
        or meta.get("command") != canonical_command(opts, layout, out)
    ):
        return None
    return PrepareReport(
        out=out,
        resumed_videos=int(meta.get("videos", 0)),
        resumed_frames=int(meta.get("frames", 0)),
        height=int(meta.get("height", 0)),
        width=int(meta.get("width", 0)),
        codec=str(meta.get("codec", "raw")),
        listed=int(meta.get("listed", 0)),
    )


def prepare(opts: PrepareOptions, argv: Iterable[str] | None = None) -> PrepareReport:
    """Turn the official UCF101 tree into one LMDB database (``ndevgan data prepare ucf101``).

    The database is built at ``<out>.partial`` and renamed to ``out`` once complete. Each video
    is written in its own transaction, so an interrupted run (Ctrl-C, or a killed process)
    leaves a partial database that ``resume=True`` continues
    without redoing the videos it holds; videos skipped before are tried again. Returns the
    report; ``report.interrupted`` says the run stopped early. Bad videos are skipped and
    listed, never fatal; a wrong ``root``/``splits`` raises a ConfigError at once.
    """
    if opts.codec not in CODECS:
        raise _config_error(f"--codec: expected one of {', '.join(CODECS)}, got {opts.codec!r}")
    if opts.size < 8:
        raise _config_error(f"--size: expected a height of at least 8 pixels, got {opts.size}")
    if opts.min_frames < 1:
        raise _config_error(f"--min-frames: expected at least 1, got {opts.min_frames}")
    if opts.source_layout not in SOURCE_LAYOUTS:
        raise _config_error(f"source layout: expected ucf101 or folder, got {opts.source_layout!r}")
    folder = opts.source_layout == "folder"
    if folder and opts.fit not in FITS:
        raise _config_error(f"--fit: expected crop or pad, got {opts.fit!r}")
    if folder:
        layout = find_folder_layout(opts.root, opts.split_file)
    else:
        layout = find_layout(opts.root, opts.splits, opts.split, opts.subset)
    out = Path(opts.out).expanduser().absolute()
    partial = partial_path(out)
    finished = _already_finished(opts, layout, out, partial)
    if finished is not None:
        return finished
    _check_destination(out, partial, opts)
    height, width = opts.size, opts.size if folder else stored_width(opts.size)
    items = list(layout.items[: opts.limit] if opts.limit else layout.items)
    identity = {
        "source_layout": opts.source_layout,
        "fit": opts.fit if folder else "none",
        "split": 0 if folder else opts.split,
        "subset": "all" if folder else opts.subset,
        "height": height,
        "width": width,
        "codec": opts.codec,
        "level": opts.level if opts.codec == "zlib" else 0,
        "min_frames": opts.min_frames,
        "limit": opts.limit,
        "resize": RESIZES[opts.resize],
    }
    frame_bytes = height * width * 3
    map_size = opts.map_size or max(1 << 30, len(items) * 400 * frame_bytes)
    resumed = opts.resume and partial.exists()
    if resumed:
        meta = read_meta(partial) if _is_database(partial) else None
        if not meta or meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise _config_error(
                f"{partial} is not a partial database this ndevgan can resume; start again "
                "with --overwrite"
            )
        changed = [
            k for k in _IDENTITY if meta.get(k, _IDENTITY_BEFORE_FOLDERS.get(k)) != identity[k]
        ]
        if changed or meta.get("source_root") != str(layout.root):
            what = ", ".join(f"{k} {meta.get(k)!r} → {identity[k]!r}" for k in changed) or (
                f"root {meta.get('source_root')} → {layout.root}"
            )
            raise _config_error(
                f"cannot resume {partial}: it was started with other options ({what}); "
                "rerun with the options it was started with, or start again with --overwrite"
            )
    with worker_pool(opts.workers) as pool:
        return _prepare_into(opts, layout, identity, partial, out, map_size, resumed, pool, argv)


def _prepare_into(
    opts: PrepareOptions,
    layout: Layout,
    identity: dict[str, Any],
    partial: Path,
    out: Path,
    map_size: int,
    resumed: bool,
    pool: Any,
    argv: Iterable[str] | None,
) -> PrepareReport:
    from ndevgan_core import __version__, progress_bar

    height, width = identity["height"], identity["width"]
    items = list(layout.items[: opts.limit] if opts.limit else layout.items)
    listed = len(layout.items) + len(layout.problems)
    report = PrepareReport(out=out, height=height, width=width, codec=opts.codec, listed=listed)
    writer = _Writer(partial, map_size)
    try:
        done: dict[str, dict[str, Any]] = {}
        if resumed:
            done = {v["source"]: v for v in writer.videos()}
            report.resumed_videos = len(done)
            report.resumed_frames = sum(v["frames"] for v in done.values())
        else:
            meta = {
                "format": FORMAT,
                "version": VERSION,
                "complete": False,
                "dataset": "videos" if opts.source_layout == "folder" else "ucf101",
                **identity,
                "pixel_format": "rgb24",
                "layout": "uint8 rows×cols×RGB, row-major",
                "class_names": list(layout.class_names),
                "source_root": str(layout.root),
                "splits_dir": str(layout.splits),
                "command": canonical_command(opts, layout, out),
                "argv": list(argv) if argv is not None else list(sys.argv),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "ndevgan": __version__,
                "keys": {"meta": "__meta__", "video": "v/%08d", "frame": "f/%08d/%05d"},
                "resumes": [],
            }
            writer.put_meta(meta)
        meta = _read_meta_from(writer.env) or {}
        if resumed:
            meta["resumes"] = [*meta.get("resumes", []), " ".join(argv or sys.argv)]
            writer.put_meta(meta)
        report.skipped.extend(layout.problems)
        listing: dict[Path, dict[str, str]] = {}
        todo: list[tuple[Item, Path]] = []
        for item in items:
            if item.source in done:
                continue
            path = resolve_source(layout.root, item.source, listing)
            if path is None:
                report.skipped.append(Skip(item.source, "missing", "listed but not on disk"))
            else:
                todo.append((item, path))
        next_id = len(done)
        start = time.perf_counter()
        tasks = (
            Task(
                i,
                str(p),
                height,
                width,
                opts.codec,
                opts.level,
                opts.min_frames,
                opts.resize,
                identity["fit"],
            )
            for i, (_, p) in enumerate(todo)
        )
        try:
            with (
                progress_bar(
                    total=len(todo), disable=not opts.progress, desc="prepare", unit="video"
                ) as bar,
                contextlib.closing(run_tasks(tasks, pool, opts.workers)) as results,
            ):
                for position, frames, reason, detail in results:
                    item = todo[position][0]
                    if frames is None:
                        report.skipped.append(Skip(item.source, reason, detail))
                    else:
                        record = {
                            "label": item.label,
                            "class": item.class_name,
                            "frames": len(frames),
                            "source": item.source,
                        }
                        writer.add_video(next_id, record, frames)
                        next_id += 1
                        report.written += 1
                        report.frames += len(frames)
                        if report.written % 200 == 0:
                            writer.sync()
                    bar.update(1)
                    bar.set_postfix(frames=report.frames, skipped=len(report.skipped))
        except KeyboardInterrupt:
            report.interrupted = True
        report.seconds = time.perf_counter() - start
        if report.interrupted:
            report.partial = partial
            return report
        total_videos = report.total_videos
        counts: dict[str, int] = {}
        files: dict[str, list[str]] = {}
        for reason, group in report.by_reason().items():
            counts[reason] = len(group)
            files[reason] = [s.source for s in group]
        meta.update(
            complete=True,
            listed=listed,
            considered=len(items),
            videos=total_videos,
            frames=report.resumed_frames + report.frames,
            skipped=counts,
            skipped_files=files,
            finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        if total_videos:
            writer.put_meta(meta)
    finally:
        writer.close()
    if not report.total_videos:
        shutil.rmtree(partial, ignore_errors=True)
        return report
    _move_into_place(partial, out)
    return report


def _move_into_place(partial: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.replaced-{secrets.token_hex(4)}")
        os.replace(out, old)
    os.replace(partial, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Reading


@attrs.frozen
class VideoRecord:
    """A stored video: its id, label, class, number of frames and source file."""

    id: int
    label: int
    class_name: str
    frames: int
    source: str


class Database:
    """Read access to a prepared database, safe across processes.

    The constructor reads the meta record and the video records and lets go of the
    environment. Frames are read through a handle opened lazily in whichever process asks (a
    DataLoader worker, a torchrun rank): the PID is remembered, a handle inherited through
    fork is closed and reopened (lmdb 3.x refuses a second open of one environment in a
    process; readers of one database in one process share a handle), and pickling (spawn)
    drops the handle. Opened read-only with ``lock=False, readahead=False``;
    ``max_readers`` covers the workers × ranks that may read at once.
    """

    def __init__(self, path: str | Path, what: str = "database") -> None:
        self.path = Path(path).expanduser().absolute()
        self._key: tuple[int, int] | None = None
        self._txn: lmdb.Transaction | None = None
        self._pid = 0
        self.meta = self._validate(what)
        self.checksums = int(self.meta["version"]) >= 2
        """Whether records carry checksums (version 2 on), verified on the first read of each
        frame in a process (see :meth:`read_frames`)."""
        self._verified: dict[int, bytearray] = {}
        self.height = int(self.meta["height"])
        self.width = int(self.meta["width"])
        self.codec = str(self.meta["codec"])
        self.class_names: tuple[str, ...] = tuple(self.meta["class_names"])
        self.videos = self._read_videos()

    def _validate(self, what: str) -> dict[str, Any]:
        path = self.path
        partial = partial_path(path)
        if not path.exists():
            if partial.exists():
                raise _config_error(
                    f"{what} {path}: only an interrupted prepare ({partial}) is there; finish "
                    "it by rerunning `ndevgan data prepare ucf101` with --resume"
                )
            raise _config_error(
                f"{what} {path}: no such database; make one with `ndevgan data prepare "
                f"ucf101 --root UCF-101 --splits ucfTrainTestlist --out {path}`"
            )
        if not _is_database(path):
            raise _config_error(
                f"{what} {path}: not an LMDB database (expected a directory holding data.mdb, "
                "as `ndevgan data prepare ucf101 --out` writes)"
            )
        try:
            meta = read_meta(path)
        except lmdb.Error as exc:
            raise _config_error(f"{what} {path}: cannot open the LMDB database: {exc}") from None
        if not meta or meta.get("format") != FORMAT:
            raise _config_error(
                f"{what} {path}: not an ndevgan video database (no '{FORMAT}' meta record)"
            )
        if meta.get("version") not in READABLE_VERSIONS:
            command = meta.get("command") or "ndevgan data prepare ucf101 … --out " + str(path)
            raise _config_error(
                f"{what} {path} is format version {meta.get('version')}; this ndevgan reads "
                f"versions {', '.join(map(str, READABLE_VERSIONS))}. Prepare it again: "
                f"{command} --overwrite"
            )
        if not meta.get("complete"):
            raise _config_error(
                f"{what} {path}: the database is incomplete; rerun the prepare command with "
                "--resume"
            )
        return meta

    def _read_videos(self) -> tuple[VideoRecord, ...]:
        key, env = _acquire(self.path)
        try:
            with env.begin() as txn:
                out = []
                for i in range(int(self.meta["videos"])):
                    raw = txn.get(video_key(i))
                    if raw is None:
                        raise _config_error(
                            f"{self.path}: video record {i} is missing; the database is damaged"
                        )
                    try:
                        rec = json.loads(bytes(unseal(raw)) if self.checksums else bytes(raw))
                        out.append(
                            VideoRecord(i, rec["label"], rec["class"], rec["frames"], rec["source"])
                        )
                    except (DamagedRecordError, ValueError, KeyError, TypeError) as exc:
                        raise _config_error(
                            f"{self.path}: the record of video {i} is damaged ({exc}); "
                            "prepare the database again"
                        ) from None
        finally:
            _release(key)
        return tuple(out)

    @staticmethod
    def max_readers() -> int:
        """Readers to allow: 2 × DataLoader workers (of this process) × WORLD_SIZE, ≥ 126."""
        workers = 1
        with contextlib.suppress(Exception):
            from torch.utils.data import get_worker_info

            info = get_worker_info()
            if info is not None:
                workers = info.num_workers
        ranks = int(os.environ.get("WORLD_SIZE", "1") or 1)
        return max(126, 2 * workers * ranks)

    @property
    def is_open(self) -> bool:
        """Whether this process holds a read handle (opened by a read, dropped by close)."""
        return self._txn is not None and self._pid == os.getpid()

    def txn(self) -> lmdb.Transaction:
        """This process's read transaction (opening the environment on first use)."""
        pid = os.getpid()
        if self._txn is None or self._pid != pid:
            self._txn = None  # one inherited through fork is never touched
            self._key, env = _acquire(self.path, self.max_readers())
            self._txn = env.begin(buffers=True)
            self._pid = pid
        return self._txn

    def close(self) -> None:
        """Let go of this process's handle (reopened on the next read). Call it before
        starting DataLoader workers if this process has read frames."""
        if self._txn is not None and self._pid == os.getpid() and self._key is not None:
            with contextlib.suppress(lmdb.Error):
                self._txn.abort()
            _release(self._key)
        self._txn = None
        self._key = None
        self._pid = 0

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_key=None, _txn=None, _pid=0, _verified={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def read_frames(
        self,
        video: int,
        frames: Iterable[int],
        x0: int = 0,
        x1: int | None = None,
        flip: bool = False,
    ) -> np.ndarray:
        """Frames of a video, columns ``x0:x1`` (mirrored left-right if ``flip``): ``uint8``
        (T, height, x1 - x0, 3). Each frame's checksum is verified the first time this process
        reads it (a bit per frame remembers it: the CRC would otherwise cost a fifth of the
        reader's throughput, tools/bench_data.py); a damaged frame is a ConfigError naming
        the video and frame."""
        frames = list(frames)
        x1 = self.width if x1 is None else x1
        txn = self.txn()
        verified = None
        if self.checksums:
            verified = self._verified.get(video)
            if verified is None:
                verified = self._verified[video] = bytearray(self.videos[video].frames)
        out = np.empty((len(frames), self.height, x1 - x0, 3), dtype=np.uint8)
        shape = (self.height, self.width, 3)
        size = shape[0] * shape[1] * shape[2]
        offset = _CRC.size if verified is not None else 0
        fast = self.codec == "raw"
        for t, f in enumerate(frames):
            data = txn.get(frame_key(video, f))
            if data is None:
                raise _config_error(
                    f"{self.path}: frame {f} of video {video} is missing; the database is damaged"
                )
            if fast and (verified is None or verified[f]) and len(data) == offset + size:
                # the hot path: a raw frame already verified (or without a checksum)
                image = np.frombuffer(data, np.uint8, size, offset).reshape(shape)
                out[t] = image[:, x0:x1][:, ::-1] if flip else image[:, x0:x1]
                continue
            try:
                out[t] = self._decode(data, video, f, shape, x0, x1, flip)
            except DamagedRecordError as exc:
                raise _config_error(
                    f"{self.path}: {exc}; `ndevgan data verify {self.path}` lists every "
                    "damaged record"
                ) from None
            if verified is not None:
                verified[f] = 1
        return out

    def _decode(
        self,
        data: Any,
        video: int,
        frame: int,
        shape: tuple[int, int, int],
        x0: int,
        x1: int,
        flip: bool,
    ) -> np.ndarray:
        """A stored frame as an image, its checksum verified."""
        try:
            payload = unseal(data) if self.checksums else data
            image = np.frombuffer(decode_frame(payload, self.codec), dtype=np.uint8)
            image = image.reshape(shape)
        except (DamagedRecordError, zlib.error, ValueError) as exc:
            source = self.videos[video].source if video < len(self.videos) else "?"
            raise DamagedRecordError(
                f"frame {frame} of video {video} ({source}) is damaged ({exc})"
            ) from None
        return image[:, x0:x1][:, ::-1] if flip else image[:, x0:x1]

    def verify(self, progress: Any = None) -> list[str]:
        """Read and check every video's frames (checksums, sizes, presence): one line per
        damaged record, empty when the database is intact. ``progress(n)`` is called after
        each video."""
        problems: list[str] = []
        shape = (self.height, self.width, 3)
        txn = self.txn()
        for record in self.videos:
            for f in range(record.frames):
                data = txn.get(frame_key(record.id, f))
                if data is None:
                    problems.append(f"frame {f} of video {record.id} ({record.source}) is missing")
                    continue
                try:
                    self._decode(data, record.id, f, shape, 0, self.width, False)
                except DamagedRecordError as exc:
                    problems.append(str(exc))
            if progress is not None:
                progress(1)
        return problems

    def read_video(self, video: int) -> np.ndarray:
        """Every frame of a video: ``uint8`` (T, height, width, 3)."""
        return self.read_frames(video, range(self.videos[video].frames))

    def size_bytes(self) -> int:
        """Bytes on disk of the database files."""
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())
