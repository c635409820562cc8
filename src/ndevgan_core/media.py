"""Writing and reading the results people look at: frames, grids, PNGs, MP4s and GIFs.

Everything here works on plain ``uint8`` numpy arrays laid out as ``(T, H, W, 3)`` RGB
videos or ``(H, W, 3)`` RGB images; :func:`to_uint8` converts a model's float output in
``[-1, 1]`` (a torch tensor or numpy array shaped ``(B, C, T, H, W)``) into that layout.

Writers are atomic: they write a temporary file next to the target and ``os.replace`` it
into place, so a reader never sees a half-written file, and a failed write leaves neither
a partial file nor a temporary one behind (an existing file at the target is kept).

PNGs are written and read with ``zlib`` + ``struct`` only; videos go through PyAV, which
is imported lazily so that the image helpers work without it.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "INSIDE_COLOUR",
    "OUTSIDE_COLOUR",
    "START_COLOUR",
    "VIDEO_SUFFIXES",
    "frame_strip",
    "hold_frames",
    "mark_frames",
    "read_png",
    "read_video",
    "side_by_side",
    "timeline_strip",
    "to_uint8",
    "video_grid",
    "write_png",
    "write_video",
]

#: Suffixes :func:`write_video` understands (compared case-insensitively).
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".gif")

#: Colours of the time band under :func:`timeline_strip` frames and of :func:`mark_frames`
#: borders: inside the trained interval, outside it (extrapolated or before the first frame),
#: and the frame at the interval's start (the latent z itself).
INSIDE_COLOUR = (60, 170, 60)
OUTSIDE_COLOUR = (235, 135, 30)
START_COLOUR = (40, 90, 220)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MP4_CRF = 18


# --------------------------------------------------------------------------- conversion


def to_uint8(video: Any) -> np.ndarray:
    """Convert a float video batch in ``[-1, 1]`` to displayable ``uint8`` frames.

    ``video`` is a torch tensor (anything with ``.detach().cpu().numpy()``) or a numpy
    array shaped ``(B, C, T, H, W)`` with ``C`` equal to 1 (grey, replicated to three
    channels) or 3 (RGB). Values map linearly with -1 -> 0 and 1 -> 255, rounded to the
    nearest level (0 -> 128) and clipped; NaNs become 128. Returns ``(B, T, H, W, 3)``
    ``uint8``.
    """
    if hasattr(video, "detach"):
        tensor = video.detach().cpu()
        if hasattr(tensor, "float"):  # bfloat16 and friends have no numpy equivalent
            tensor = tensor.float()
        array = np.asarray(tensor.numpy())
    else:
        array = np.asarray(video)
    if array.ndim != 5 or array.shape[1] not in (1, 3):
        raise ValueError(
            "to_uint8 expects a video batch shaped (B, C, T, H, W) with C in (1, 3), "
            f"got shape {tuple(array.shape)}"
        )
    scaled = (np.nan_to_num(array.astype(np.float64), nan=0.0) + 1.0) * 127.5
    out = np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)
    out = np.ascontiguousarray(out.transpose(0, 2, 3, 4, 1))  # (B, T, H, W, C)
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    return out


def _check_videos(videos: np.ndarray, func: str) -> np.ndarray:
    array = np.asarray(videos)
    if array.ndim != 5 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(
            f"{func} expects uint8 videos shaped (N, T, H, W, 3), "
            f"got {array.dtype} with shape {tuple(array.shape)}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{func} needs at least one video, got N=0")
    return array


def _check_pad(pad: int, pad_value: int) -> None:
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    if not 0 <= pad_value <= 255:
        raise ValueError(f"pad_value must be in [0, 255], got {pad_value}")


def video_grid(
    videos: np.ndarray, ncols: int | None = None, pad: int = 2, pad_value: int = 255
) -> np.ndarray:
    """Tile ``N`` videos into one video, for looking at a batch of samples at once.

    ``videos`` is ``uint8`` ``(N, T, H, W, 3)``. Tiles go row by row, ``ncols`` per row
    (default ``ceil(sqrt(N))``, capped at ``N``), with ``pad`` pixels of ``pad_value``
    between tiles and around the border; unused cells in the last row stay padding.
    Video ``i`` occupies rows ``pad + r * (H + pad)`` onwards and columns
    ``pad + c * (W + pad)`` onwards, where ``r, c = divmod(i, ncols)``.
    Returns ``uint8`` ``(T, rows * (H + pad) + pad, ncols * (W + pad) + pad, 3)``.
    """
    videos = _check_videos(videos, "video_grid")
    _check_pad(pad, pad_value)
    n, t, h, w, _ = videos.shape
    if ncols is None:
        ncols = math.ceil(math.sqrt(n))
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    grid = np.full(
        (t, nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), pad_value, dtype=np.uint8
    )
    for i in range(n):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[:, y : y + h, x : x + w] = videos[i]
    return grid


def frame_strip(
    videos: np.ndarray, max_frames: int = 16, pad: int = 2, pad_value: int = 255
) -> np.ndarray:
    """Lay videos out as one still image: a row per video, a column per chosen frame.

    Useful where a moving picture cannot be shown (papers, PNG logs). ``videos`` is
    ``uint8`` ``(N, T, H, W, 3)``; all ``T`` frames are shown when ``T <= max_frames``,
    otherwise ``max_frames`` frames at evenly spaced indices including the first and
    last. Tiles are separated and surrounded by ``pad`` pixels of ``pad_value`` as in
    :func:`video_grid`. Returns ``uint8`` ``(N * (H + pad) + pad, K * (W + pad) + pad, 3)``
    with ``K`` the number of frames shown.
    """
    videos = _check_videos(videos, "frame_strip")
    _check_pad(pad, pad_value)
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    n, t, h, w, _ = videos.shape
    indices = _strip_indices(t, max_frames)
    k = len(indices)
    image = np.full((n * (h + pad) + pad, k * (w + pad) + pad, 3), pad_value, dtype=np.uint8)
    for i in range(n):
        y = pad + i * (h + pad)
        for j, f in enumerate(indices):
            x = pad + j * (w + pad)
            image[y : y + h, x : x + w] = videos[i, f]
    return image


def _strip_indices(num_frames: int, max_frames: int) -> list[int]:
    """Frame indices :func:`frame_strip` shows: all of them, or ``max_frames`` evenly spaced."""
    if num_frames <= max_frames:
        return list(range(num_frames))
    if max_frames == 1:
        return [0]
    return [int(i) for i in np.linspace(0, num_frames - 1, max_frames).round().astype(int)]


# --------------------------------------------------------------------------- time layouts


def hold_frames(videos: np.ndarray, factor: int) -> np.ndarray:
    """Repeat every frame but the last ``factor`` times: a video at 1× frame rate, stretched
    to play in step with the same interval sampled at ``factor``× (``(T-1)·factor + 1`` frames).
    """
    videos = _check_videos(videos, "hold_frames")
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    if factor == 1 or videos.shape[1] == 1:
        return videos
    held = np.repeat(videos[:, :-1], factor, axis=1)
    return np.concatenate([held, videos[:, -1:]], axis=1)


def side_by_side(
    left: np.ndarray, right: np.ndarray, gap: int = 2, pad_value: int = 255
) -> np.ndarray:
    """Join video ``i`` of ``left`` and of ``right`` into one wider video (a ``gap`` between)."""
    left, right = _check_videos(left, "side_by_side"), _check_videos(right, "side_by_side")
    _check_pad(gap, pad_value)
    if left.shape != right.shape:
        raise ValueError(f"side_by_side needs equal shapes, got {left.shape} and {right.shape}")
    n, t, h, _, _ = left.shape
    spacer = np.full((n, t, h, gap, 3), pad_value, dtype=np.uint8)
    return np.concatenate([left, spacer, right], axis=3)


def _in_interval(times: np.ndarray, interval: tuple[float, float]) -> np.ndarray:
    lo, hi = min(interval), max(interval)
    eps = 1e-6 * max(1.0, hi - lo)
    return (times >= lo - eps) & (times <= hi + eps)


def mark_frames(
    videos: np.ndarray, times: Any, interval: tuple[float, float], width: int = 2
) -> np.ndarray:
    """Frame every frame whose time lies outside ``interval`` with an orange border (a copy).

    For videos sampled past the trained interval: a viewer sees at once which frames are
    extrapolated (or come from before the first trained frame).
    """
    videos = _check_videos(videos, "mark_frames").copy()
    times = np.asarray(times, dtype=np.float64)
    if times.shape != (videos.shape[1],):
        raise ValueError(f"mark_frames: {videos.shape[1]} frames but {times.shape} times")
    outside = ~_in_interval(times, interval)
    w = max(1, min(width, videos.shape[2] // 4, videos.shape[3] // 4))
    for f in np.flatnonzero(outside):
        frame = videos[:, f]
        frame[:, :w], frame[:, -w:] = OUTSIDE_COLOUR, OUTSIDE_COLOUR
        frame[:, :, :w], frame[:, :, -w:] = OUTSIDE_COLOUR, OUTSIDE_COLOUR
    return videos


def timeline_strip(
    videos: np.ndarray,
    times: Any,
    interval: tuple[float, float],
    *,
    reference: np.ndarray | None = None,
    reference_times: Any = None,
    max_frames: int = 64,
    pad: int = 2,
    pad_value: int = 255,
) -> np.ndarray:
    """A still image of videos over time, with the trained interval marked.

    One row of frames per video (at most ``max_frames`` columns, evenly chosen), and under it a
    band coloured per frame: green inside ``interval``, orange outside, blue at the frame
    nearest the interval's start (where the latent z sits). With ``reference`` (the same
    latents at a coarser grid ``reference_times``, e.g. 1× against K× frame rate), each video's
    row is preceded by a row holding the reference frames in the columns of equal time, so the
    added intermediate frames stand out as the gaps in the row above.
    """
    videos = _check_videos(videos, "timeline_strip")
    _check_pad(pad, pad_value)
    n, t, h, w, _ = videos.shape
    times = np.asarray(times, dtype=np.float64)
    if times.shape != (t,):
        raise ValueError(f"timeline_strip: {t} frames but {times.shape} times")
    columns = _strip_indices(t, max_frames)
    band = max(3, h // 8)
    ref_columns: dict[int, int] = {}
    if reference is not None:
        reference = _check_videos(reference, "timeline_strip")
        ref_times = np.asarray(reference_times, dtype=np.float64)
        if reference.shape[0] != n or ref_times.shape != (reference.shape[1],):
            raise ValueError("timeline_strip: reference must match videos in N and its times")
        tol = 1e-6 * max(1.0, float(np.ptp(times)))
        for j, f in enumerate(columns):
            match = np.flatnonzero(np.abs(ref_times - times[f]) <= tol)
            if match.size:
                ref_columns[j] = int(match[0])
    rows_per_video = 2 if reference is not None else 1
    block = rows_per_video * (h + pad) + band + pad
    image = np.full((n * block + pad, len(columns) * (w + pad) + pad, 3), pad_value, np.uint8)
    inside = _in_interval(times, interval)
    start = int(np.argmin(np.abs(times - interval[0])))
    for i in range(n):
        y = pad + i * block
        if reference is not None:
            for j, r in ref_columns.items():
                x = pad + j * (w + pad)
                image[y : y + h, x : x + w] = reference[i, r]
            y += h + pad
        for j, f in enumerate(columns):
            x = pad + j * (w + pad)
            image[y : y + h, x : x + w] = videos[i, f]
            colour = START_COLOUR if f == start else INSIDE_COLOUR if inside[f] else OUTSIDE_COLOUR
            image[y + h : y + h + band, x : x + w] = colour
    return image


# --------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def _atomic_target(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; move it into place on success.

    The temporary name is ``.<name>.tmp-<random><suffix>`` so tools that infer a format
    from the suffix still see the real one. On any exception the temporary file is removed
    and the exception re-raised.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = final.with_name(f".{final.name}.tmp-{secrets.token_hex(6)}{final.suffix}")
        try:
            # O_EXCL reserves the name; mode 0o666 lets the umask decide permissions.
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        break
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# --------------------------------------------------------------------------- PNG


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write a ``uint8`` ``(H, W, 3)`` RGB image as an 8-bit PNG; return the path.

    Uses only ``zlib`` and ``struct`` (filter type 0 on every row). Atomic: the file
    appears complete or not at all; parent directories are created.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            "write_png expects a uint8 image shaped (H, W, 3), "
            f"got {image.dtype} with shape {tuple(image.shape)}"
        )
    height, width, _ = image.shape
    if height == 0 or width == 0:
        raise ValueError(f"write_png cannot write an empty image of shape {image.shape}")
    raw = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # column 0: filter type 0
    raw[:, 1:] = image.reshape(height, 3 * width)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"".join(
        [
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", ihdr),
            _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)),
            _png_chunk(b"IEND", b""),
        ]
    )
    final = Path(path)
    with _atomic_target(final) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return final


# Channels per pixel for 8-bit PNG colour types: grey, RGB, palette, grey+alpha, RGBA.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(data: bytes, height: int, stride: int, bpp: int, name: str) -> np.ndarray:
    """Undo PNG scanline filters 0-4; returns ``(height, stride)`` uint8."""
    if len(data) < height * (stride + 1):
        raise ValueError(f"{name}: PNG image data is truncated")
    rows = np.frombuffer(data, dtype=np.uint8, count=height * (stride + 1))
    rows = rows.reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        ftype = int(rows[y, 0])
        line = rows[y, 1:]
        if ftype == 0:
            cur = line.copy()
        elif ftype == 1:  # Sub: running sum per channel, modulo 256
            padded = np.zeros(-(-stride // bpp) * bpp, dtype=np.int64)
            padded[:stride] = line
            cur = (np.cumsum(padded.reshape(-1, bpp), axis=0) % 256).astype(np.uint8)
            cur = cur.reshape(-1)[:stride]
        elif ftype == 2:  # Up
            cur = line + prior  # uint8 arithmetic wraps modulo 256
        elif ftype in (3, 4):  # Average / Paeth: inherently sequential
            buf = bytearray(line.tobytes())
            up = prior.tobytes()
            for i in range(stride):
                left = buf[i - bpp] if i >= bpp else 0
                if ftype == 3:
                    pred = (left + up[i]) >> 1
                else:
                    pred = _paeth(left, up[i], up[i - bpp] if i >= bpp else 0)
                buf[i] = (buf[i] + pred) & 0xFF
            cur = np.frombuffer(bytes(buf), dtype=np.uint8)
        else:
            raise ValueError(f"{name}: invalid PNG filter type {ftype} on row {y}")
        out[y] = cur
        prior = out[y]
    return out


def read_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a PNG as ``uint8`` ``(H, W, 3)`` RGB, e.g. to check or reuse saved results.

    Handles the files :func:`write_png` writes and, more generally, any non-interlaced
    8-bit greyscale, RGB, palette, grey+alpha or RGBA PNG using filters 0-4. Greyscale is
    replicated to three channels and alpha is dropped (not composited). Raises
    ``ValueError`` naming the file if it is not a PNG, is corrupt (bad CRC, truncated) or
    uses an unsupported feature.
    """
    path = Path(path)
    blob = path.read_bytes()
    name = str(path)
    if not blob.startswith(_PNG_SIGNATURE):
        raise ValueError(f"{name} is not a PNG file (missing PNG signature)")
    pos = len(_PNG_SIGNATURE)
    header: tuple[int, ...] | None = None
    palette: np.ndarray | None = None
    idat: list[bytes] = []
    while True:
        if pos + 8 > len(blob):
            raise ValueError(f"{name}: PNG file is truncated (no IEND chunk)")
        length, kind = struct.unpack(">I4s", blob[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > len(blob):
            raise ValueError(f"{name}: PNG chunk {kind!r} is truncated")
        body = blob[pos + 8 : end]
        (crc,) = struct.unpack(">I", blob[end : end + 4])
        if zlib.crc32(body, zlib.crc32(kind)) & 0xFFFFFFFF != crc:
            raise ValueError(f"{name}: CRC mismatch in PNG chunk {kind!r}")
        pos = end + 4
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError(f"{name}: PNG file has no IHDR chunk")
    width, height, depth, ctype, compression, filter_method, interlace = header
    if depth != 8 or ctype not in _PNG_CHANNELS:
        raise ValueError(
            f"{name}: only 8-bit PNGs are supported, got bit depth {depth}, colour type {ctype}"
        )
    if compression != 0 or filter_method != 0 or interlace != 0:
        raise ValueError(f"{name}: interlaced or non-standard PNGs are not supported")
    try:
        data = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise ValueError(f"{name}: corrupt PNG image data ({exc})") from exc
    channels = _PNG_CHANNELS[ctype]
    pixels = _unfilter(data, height, width * channels, channels, name)
    pixels = pixels.reshape(height, width, channels)
    if ctype == 3:
        if palette is None:
            raise ValueError(f"{name}: palette PNG has no PLTE chunk")
        index = pixels[..., 0]
        if int(index.max(initial=0)) >= len(palette):
            raise ValueError(f"{name}: PNG palette index out of range")
        return palette[index].copy()
    if ctype in (0, 4):
        return np.repeat(pixels[..., :1], 3, axis=-1)
    return np.ascontiguousarray(pixels[..., :3])


# --------------------------------------------------------------------------- video


def _check_video(video: np.ndarray) -> np.ndarray:
    array = np.asarray(video)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(
            "write_video expects a uint8 video shaped (T, H, W, 3), "
            f"got {array.dtype} with shape {tuple(array.shape)}"
        )
    if min(array.shape[:3]) == 0:
        raise ValueError(f"write_video cannot write an empty video of shape {array.shape}")
    return array


def _median_cut_palette(pixels: np.ndarray, size: int = 256) -> np.ndarray:
    """Up to ``size`` representative colours of ``pixels`` (``(P, 3)`` uint8) by median cut."""

    def span(box: np.ndarray) -> tuple[int, int]:
        return int(np.ptp(box, axis=0).max()), len(box)

    boxes = [pixels]
    spans = [span(pixels)]
    while len(boxes) < size:
        # Split the box with the largest colour range (ties: the most populated one).
        best = max(range(len(boxes)), key=spans.__getitem__)
        if spans[best][0] == 0:
            break
        box = boxes.pop(best)
        spans.pop(best)
        axis = int(np.argmax(np.ptp(box, axis=0)))
        box = box[np.argsort(box[:, axis], kind="stable")]
        half = len(box) // 2
        for part in (box[:half], box[half:]):
            boxes.append(part)
            spans.append(span(part))
    return np.stack([np.rint(b.mean(axis=0)) for b in boxes]).astype(np.uint8)


def _quantize(video: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map a ``(T, H, W, 3)`` video onto one shared palette of at most 256 colours.

    Exact when the video has at most 256 distinct colours; otherwise a median-cut palette
    of a pixel sample and nearest-colour mapping. Returns ``(indices, palette_argb)`` with
    indices ``uint8`` ``(T, H, W)`` and the palette ``uint8`` ``(256, 4)`` ARGB as PyAV's
    ``pal8`` frames want it.
    """
    flat = video.reshape(-1, 3)
    packed = (flat[:, 0].astype(np.int32) << 16) | (flat[:, 1].astype(np.int32) << 8) | flat[:, 2]
    colours, inverse = np.unique(packed, return_inverse=True)
    rgb = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1)
    rgb = rgb.astype(np.uint8)
    if len(colours) <= 256:
        palette, lookup = rgb, np.arange(len(colours))
    else:
        step = max(1, len(flat) // 65536)
        palette = _median_cut_palette(flat[::step])
        # Nearest palette colour via |c - p|^2 = |p|^2 - 2 c.p + const (a matrix product).
        pal = palette.astype(np.float32)
        pal_sq = (pal**2).sum(axis=1)
        lookup = np.empty(len(rgb), dtype=np.int64)
        chunk = 65536
        for start in range(0, len(rgb), chunk):
            part = rgb[start : start + chunk].astype(np.float32)
            lookup[start : start + chunk] = (pal_sq - 2.0 * part @ pal.T).argmin(axis=1)
    indices = lookup[inverse.reshape(-1)].astype(np.uint8).reshape(video.shape[:3])
    argb = np.zeros((256, 4), dtype=np.uint8)
    argb[:, 0] = 255  # fully opaque: no entry doubles as the GIF transparent colour
    argb[: len(palette), 1:] = palette
    return indices, argb


def _write_mp4(av: Any, container: Any, video: np.ndarray, fps: int) -> None:
    pad_h, pad_w = video.shape[1] % 2, video.shape[2] % 2
    if pad_h or pad_w:  # yuv420p needs even sizes: replicate the last row / column
        video = np.pad(video, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    _, height, width, _ = video.shape
    try:
        av.codec.Codec("libx264", "w")
        stream = container.add_stream("libx264", rate=fps)
        stream.options = {"crf": str(_MP4_CRF), "preset": "medium"}
    except (ValueError, av.error.FFmpegError):  # libx264 missing from this FFmpeg build
        stream = container.add_stream("mpeg4", rate=fps)
        stream.bit_rate = max(2_000_000, int(height * width * fps * 2))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    for frame in video:
        av_frame = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
        container.mux(stream.encode(av_frame))
    container.mux(stream.encode(None))


def _write_gif(av: Any, container: Any, video: np.ndarray, fps: int) -> None:
    _, height, width, _ = video.shape
    stream = container.add_stream("gif", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "pal8"
    indices, palette = _quantize(video)
    for frame in indices:
        av_frame = av.VideoFrame.from_ndarray((frame, palette), format="pal8")
        container.mux(stream.encode(av_frame))
    container.mux(stream.encode(None))


def write_video(path: str | os.PathLike[str], video: np.ndarray, fps: int = 8) -> Path:
    """Write a ``uint8`` ``(T, H, W, 3)`` RGB video to watch; the suffix picks the format.

    * ``.mp4``: H.264 (libx264, ``crf`` 18, yuv420p), or MPEG-4 Part 2 at a high bit rate
      where libx264 is unavailable. Odd heights/widths are padded up to even numbers by
      replicating the last row/column, so :func:`read_video` returns the padded size
      (e.g. 33x31 comes back as 34x32).
    * ``.gif``: ffmpeg's GIF encoder on ``pal8`` frames sharing one palette, exact for
      videos with at most 256 colours, median-cut otherwise. GIF timing is in
      hundredths of a second, so ``fps`` is approximated.

    Any other suffix raises ``ValueError``. Atomic: the file appears complete or not at
    all; parent directories are created. Returns the path.
    """
    final = Path(path)
    suffix = final.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(
            f"write_video cannot write {final.name!r}: suffix must be one of "
            f"{', '.join(VIDEO_SUFFIXES)}"
        )
    if isinstance(fps, bool) or not isinstance(fps, int | np.integer) or fps < 1:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")
    video = _check_video(video)
    import av

    fmt = suffix.lstrip(".")
    with _atomic_target(final) as tmp, av.open(str(tmp), mode="w", format=fmt) as out:
        if fmt == "mp4":
            _write_mp4(av, out, video, int(fps))
        else:
            _write_gif(av, out, video, int(fps))
    return final


def read_video(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode any video PyAV can open (its first video stream) to ``uint8`` ``(T, H, W, 3)`` RGB.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file if
    it cannot be decoded or holds no video frames.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such video file: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path} has no video stream")
            stream = container.streams.video[0]
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except av.error.FFmpegError as exc:
        raise ValueError(f"cannot decode video {path}: {exc}") from exc
    if not frames:
        raise ValueError(f"{path} contains no video frames")
    return np.stack(frames)
