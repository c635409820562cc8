"""Writing and reading the results people look at: frames, grids, PNGs, MP4s and GIFs.

Everything here works on plain ``uint8`` numpy arrays laid out as ``(T, H, W, 3)`` RGB
videos or ``(H, W, 3)`` RGB images; :func:`to_uint8` converts a model's float output in
``[-1, 1]`` (a torch tensor or numpy array shaped ``(B, C, T, H, W)``) into that layout.

Writers are atomic: they write a temporary file next to the target and ``os.replace`` it
into place, so a reader never sees a half-written file, and a failed write leaves neither
a partial file nor a temporary one behind (an existing file at the target is kept).

PNGs are written and read with Pillow; videos go through PyAV. Both are imported lazily.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ndevgan_core.files import atomic_path

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
    at the interval's start (where the latent z sits), when the grid has one. With
    ``reference`` (the same latents at a coarser grid ``reference_times``, e.g. 1× against K×
    frame rate), each video's row is preceded by a row holding the reference frames in the
    columns of equal time, so the added intermediate frames stand out as the gaps in the row
    above.
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
    gaps = np.abs(times - interval[0])
    tolerance = 1e-6 * max(1.0, abs(interval[1] - interval[0]))
    start = int(np.argmin(gaps)) if gaps.min() <= tolerance else -1  # z's frame, if rendered
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


# --------------------------------------------------------------------------- PNG


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write a ``uint8`` ``(H, W, 3)`` RGB image as an 8-bit PNG (Pillow); return the path.

    Atomic: the file appears complete or not at all; parent directories are created.
    """
    from PIL import Image

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            "write_png expects a uint8 image shaped (H, W, 3), "
            f"got {image.dtype} with shape {tuple(image.shape)}"
        )
    height, width, _ = image.shape
    if height == 0 or width == 0:
        raise ValueError(f"write_png cannot write an empty image of shape {image.shape}")
    final = Path(path)
    with atomic_path(final) as tmp:
        Image.fromarray(np.ascontiguousarray(image), mode="RGB").save(tmp, format="PNG")
    return final


def read_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a PNG as ``uint8`` ``(H, W, 3)`` RGB, e.g. to check or reuse saved results.

    Any PNG Pillow reads (greyscale is replicated to three channels, a palette expanded,
    alpha dropped, not composited). Raises ``ValueError`` naming the file if it is not a PNG
    or is corrupt (bad CRC, truncated).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                raise ValueError(f"{path} is not a PNG file (it is {image.format})")
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, SyntaxError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not a readable PNG file ({exc})") from exc
    return np.asarray(rgb, dtype=np.uint8).copy()


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
    """Up to ``size`` representative colours of ``pixels`` (``(P, 3)`` uint8), by Pillow's
    median cut."""
    from PIL import Image

    strip = Image.fromarray(np.ascontiguousarray(pixels.reshape(1, -1, 3)), mode="RGB")
    quantized = strip.quantize(colors=size, method=Image.Quantize.MEDIANCUT)
    palette = np.asarray(quantized.getpalette()[: 3 * size], dtype=np.uint8).reshape(-1, 3)
    return np.unique(palette, axis=0)


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
    with atomic_path(final) as tmp, av.open(str(tmp), mode="w", format=fmt) as out:
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
