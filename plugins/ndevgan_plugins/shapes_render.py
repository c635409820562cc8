"""Procedural "moving shapes" videos: the built-in synthetic dataset of ndevgan.

Every video shows one labelled shape (plus optional distractor shapes) moving over a dark
background.  The label encodes the shape class and the motion class of the first shape::

    label = shape_index * len(MOTIONS) + motion_index

Rendering is pure numpy, vectorised over frames and pixels, and anti-aliased: each shape is
described by a signed distance function (in pixels) and its coverage is ``clip(0.5 - d, 0, 1)``,
a soft edge about one pixel wide, so shapes stay recognisable even at 16x16 or 32x32.  Each
shape is evaluated only on a small per-frame window around it (a strided view of the video), so
a 16-frame 64x64 video takes well under a millisecond on one CPU core.

Determinism: a video depends only on ``(index, seed, frames, size, num_shapes, background)``;
its random generator is ``np.random.default_rng(np.random.SeedSequence([seed, index]))``, so a
video never depends on which other videos are rendered.  All random parameters are drawn in
normalised units and independently of ``frames``, so a clip of the same index rendered with
more frames shows the same motion sampled more densely (frame ``k`` is at normalised time
``k / (frames - 1)``), and the same index at another ``size`` shows the same scene rescaled.
The random draws for the labelled shape come first, then the distractors, then the background,
so the labelled shape does not change with ``num_shapes`` or ``background``.

Shapes (``SHAPES``): ``circle``, ``square``, ``triangle`` (equilateral), ``cross`` (plus sign)
and ``star`` (six-pointed hexagram).  The circle carries a small hole off its centre as an
orientation marker, so that a rotating circle visibly rotates; the hole is part of the circle
class in every motion.

Motions (``MOTIONS``):

* ``bounce``: constant velocity (1-2 frame widths per clip), reflecting elastically off the
  frame borders; the shape always stays fully inside the frame.  Fixed orientation.
* ``rotate``: spinning in place about its centre (0.4-1 turn per clip, either direction).
* ``orbit``: moving on a circle around a fixed point (0.75-1.25 turns per clip).
* ``zoom``: fixed position, size oscillating sinusoidally (+-30-45 %, 1-2 cycles per clip).
* ``oscillate``: harmonic back-and-forth translation along a random axis (1-2 cycles per
  clip); unlike ``bounce`` it slows down at the turning points and never touches the border.
"""

from __future__ import annotations

import colorsys
import functools
import math
import operator
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "BACKGROUNDS",
    "MOTIONS",
    "NUM_CLASSES",
    "SHAPES",
    "class_name",
    "render_batch",
    "render_video",
]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "star")
"""Shape classes, in label order."""

MOTIONS: tuple[str, ...] = ("bounce", "rotate", "orbit", "zoom", "oscillate")
"""Motion classes, in label order."""

NUM_CLASSES: int = len(SHAPES) * len(MOTIONS)
"""Number of labels: ``label = shape_index * len(MOTIONS) + motion_index``."""

BACKGROUNDS: tuple[str, ...] = ("dark", "noise")
"""Allowed ``background`` values: ``dark`` is near-black with a faint fixed gradient; ``noise``
adds low-amplitude grey noise drawn from the video's generator, frozen over time (static)."""

# Shape geometry in units of the shape scale r (pixels).
_CIRCLE_HOLE_OFFSET = 0.5  # centre of the orientation-marker hole
_CIRCLE_HOLE_RADIUS = 0.3
_SQUARE_HALF_SIDE = 0.82
_TRIANGLE_INRADIUS = 0.6  # circumradius 1.2
_CROSS_HALF_LENGTH = 1.0
_CROSS_HALF_WIDTH = 0.32
_STAR_INRADIUS = 0.575  # each of the two triangles has circumradius 1.15

# Circumscribed radius of each shape, in units of r: it bounds the shape for every orientation.
_BOUND: dict[str, float] = {
    "circle": 1.0,
    "square": _SQUARE_HALF_SIDE * math.sqrt(2.0),
    "triangle": 2.0 * _TRIANGLE_INRADIUS,
    "cross": math.hypot(_CROSS_HALF_LENGTH, _CROSS_HALF_WIDTH),
    "star": 2.0 * _STAR_INRADIUS,
}

# Shape scale r as a fraction of the frame size (circumscribed diameter about 0.2-0.4).
_SCALE_RANGE = (0.10, 0.17)
# Pixels kept free between a shape's circumscribed circle and the frame border.  The coverage
# is positive up to 0.5 px outside a shape, and up to 1 px at the 60-degree corners of the
# polygon distance functions, so 1.5 px keeps the border pixels pure background.
_MARGIN = 1.5
_NUM_UNIFORMS = 12  # uniform draws per shape; fixed so the RNG stream is motion-independent


def _check_int(name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as an int, raising if it is not an integer ``>= minimum``."""
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        ivalue = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if ivalue < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return ivalue


def class_name(label: int) -> str:
    """Return the human-readable name of ``label``, e.g. ``"square-bounce"``.

    Raises ``ValueError`` if ``label`` is not in ``range(NUM_CLASSES)``.
    """
    lab = _check_int("label", label, 0)
    if lab >= NUM_CLASSES:
        raise ValueError(f"label must be in range(0, {NUM_CLASSES}), got {label!r}")
    return f"{SHAPES[lab // len(MOTIONS)]}-{MOTIONS[lab % len(MOTIONS)]}"


@functools.lru_cache(maxsize=16)
def _dark_background(size: int) -> np.ndarray:
    """Near-black (size, size, 3) uint8 background with a faint fixed diagonal gradient."""
    ramp = (np.arange(size, dtype=np.float32) + 0.5) / size
    grad = 0.65 * ramp[:, None] + 0.35 * ramp[None, :]  # (H, W) in [0, 1]
    base = np.array([7.0, 8.0, 12.0], dtype=np.float32)
    tint = np.array([8.0, 10.0, 16.0], dtype=np.float32)
    bg = np.rint(base + grad[:, :, None] * tint).astype(np.uint8)
    bg.setflags(write=False)
    return bg


def _windows(video: np.ndarray, box: int) -> np.ndarray:
    """Writable view ``w`` of a (T, H, W, C) array with ``w[t, y, x] == video[t, y:y+box,
    x:x+box]``, shape (T, H-box+1, W-box+1, box, box, C).

    Writing through it is safe as long as each frame ``t`` is addressed at most once per
    assignment, as in :func:`render_video`.
    """
    t, h, w, c = video.shape
    st, sy, sx, sc = video.strides
    return np.lib.stride_tricks.as_strided(
        video,
        shape=(t, h - box + 1, w - box + 1, box, box, c),
        strides=(st, sy, sx, sy, sx, sc),
        writeable=True,
    )


def _tri_wave(x: np.ndarray, length: float) -> np.ndarray:
    """Fold ``x`` into ``[0, length]`` by reflecting at both ends (elastic bounce)."""
    if length <= 0.0:
        return np.zeros_like(x)
    return length - np.abs(np.mod(x, 2.0 * length) - length)


def _trajectory(
    motion: str, u: np.ndarray, bound: float, size: int, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame centre x, centre y, angle and scale factor of one shape.

    ``u`` holds the shape's uniform draws, ``bound`` its circumscribed radius in pixels at
    scale factor 1, ``t`` the normalised frame times in ``[0, 1]``.
    """
    s = float(size)
    two_pi = 2.0 * math.pi
    angle0 = two_pi * u[1]
    ones = np.ones_like(t)
    lo = min(bound + _MARGIN, 0.5 * s)  # lowest allowed centre coordinate
    span = s - 2.0 * lo  # range of allowed centre coordinates
    angle = angle0 * ones
    scale = ones
    if motion == "bounce":
        speed = (1.0 + 1.0 * u[5]) * s  # pixels per clip
        heading = two_pi * u[6]
        cx = lo + _tri_wave(u[7] * span + speed * math.cos(heading) * t, span)
        cy = lo + _tri_wave(u[8] * span + speed * math.sin(heading) * t, span)
    elif motion == "rotate":
        cx = (lo + u[5] * span) * ones
        cy = (lo + u[6] * span) * ones
        omega = two_pi * (0.4 + 0.6 * u[7]) * (1.0 if u[8] < 0.5 else -1.0)
        angle = angle0 + omega * t
    elif motion == "orbit":
        radius = min((0.12 + 0.10 * u[5]) * s, 0.45 * span)
        cx0 = lo + radius + u[6] * (span - 2.0 * radius)
        cy0 = lo + radius + u[7] * (span - 2.0 * radius)
        omega = two_pi * (0.75 + 0.5 * u[8]) * (1.0 if u[9] < 0.5 else -1.0)
        phase = two_pi * u[10] + omega * t
        cx = cx0 + radius * np.cos(phase)
        cy = cy0 + radius * np.sin(phase)
    elif motion == "zoom":
        amp = 0.30 + 0.15 * u[5]
        scale = 1.0 + amp * np.sin(two_pi * ((1.0 + u[6]) * t + u[7]))
        lo_z = min(bound * (1.0 + amp) + _MARGIN, 0.5 * s)
        span_z = s - 2.0 * lo_z
        cx = (lo_z + u[8] * span_z) * ones
        cy = (lo_z + u[9] * span_z) * ones
    elif motion == "oscillate":
        amp = min((0.15 + 0.10 * u[5]) * s, 0.475 * span)
        axis = two_pi * u[6]
        ax, ay = amp * math.cos(axis), amp * math.sin(axis)
        cx0 = lo + abs(ax) + u[8] * (span - 2.0 * abs(ax))
        cy0 = lo + abs(ay) + u[9] * (span - 2.0 * abs(ay))
        wave = np.sin(two_pi * ((1.0 + u[7]) * t + u[10]))
        cx = cx0 + ax * wave
        cy = cy0 + ay * wave
    else:  # pragma: no cover - MOTIONS is closed
        raise AssertionError(motion)
    return cx, cy, angle, scale


def _coverage(
    shape: str,
    cx: np.ndarray,
    cy: np.ndarray,
    angle: np.ndarray,
    r: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
) -> np.ndarray:
    """Anti-aliased coverage in ``[0, 1]`` of one shape on a per-frame pixel window.

    ``cx``, ``cy``, ``angle``, ``r`` are per-frame arrays of shape (T,); ``xs`` (T, W) and
    ``ys`` (T, H) hold the pixel-centre coordinates of each frame's window.  Returns float32
    (T, H, W).
    """
    f32 = np.float32
    dx = xs.astype(f32)[:, None, :] - cx.astype(f32)[:, None, None]  # (T, 1, W)
    dy = ys.astype(f32)[:, :, None] - cy.astype(f32)[:, None, None]  # (T, H, 1)
    rr = r.astype(f32)[:, None, None]

    def along(theta: np.ndarray) -> np.ndarray:
        """Signed distance along the unit direction ``theta`` (per frame): (T, H, W)."""
        c = np.cos(theta).astype(f32)[:, None, None]
        s = np.sin(theta).astype(f32)[:, None, None]
        return dx * c + dy * s

    if shape == "circle":
        d = np.sqrt(dx * dx + dy * dy) - rr
        off = _CIRCLE_HOLE_OFFSET * rr
        hx = dx - off * np.cos(angle).astype(f32)[:, None, None]
        hy = dy - off * np.sin(angle).astype(f32)[:, None, None]
        hole = np.sqrt(hx * hx + hy * hy) - _CIRCLE_HOLE_RADIUS * rr
        np.maximum(d, -hole, out=d)
    elif shape in ("square", "cross"):
        u = np.abs(along(angle))
        v = np.abs(along(angle + 0.5 * math.pi))
        if shape == "square":
            d = np.maximum(u, v) - _SQUARE_HALF_SIDE * rr
        else:
            a = _CROSS_HALF_LENGTH * rr
            b = _CROSS_HALF_WIDTH * rr
            d = np.minimum(np.maximum(u - a, v - b), np.maximum(u - b, v - a))
    elif shape in ("triangle", "star"):
        # Equilateral triangle centred on its centroid: max over its three edge half-planes.
        normals = [angle + (0.5 + 2.0 * k / 3.0) * math.pi for k in range(3)]
        d = along(normals[0])
        for theta in normals[1:]:
            np.maximum(d, along(theta), out=d)
        if shape == "star":  # hexagram = union of the triangle and its point reflection
            d2 = along(normals[0] + math.pi)
            for theta in normals[1:]:
                np.maximum(d2, along(theta + math.pi), out=d2)
            np.minimum(d, d2, out=d)
            d -= _STAR_INRADIUS * rr
        else:
            d -= _TRIANGLE_INRADIUS * rr
    else:  # pragma: no cover - SHAPES is closed
        raise AssertionError(shape)
    # coverage = clip(0.5 - d, 0, 1), computed in place
    np.subtract(f32(0.5), d, out=d)
    return np.clip(d, 0.0, 1.0, out=d)


def _draw_shape(
    rng: np.random.Generator, label: int, hue: float | None
) -> tuple[str, str, np.ndarray, np.ndarray]:
    """Draw one shape's uniforms and colour; ``hue`` (if given) is avoided by the colour."""
    shape = SHAPES[label // len(MOTIONS)]
    motion = MOTIONS[label % len(MOTIONS)]
    u = rng.random(_NUM_UNIFORMS)
    h = u[2] if hue is None else (hue + 0.2 + 0.6 * u[2]) % 1.0
    rgb = colorsys.hsv_to_rgb(h, 0.7 + 0.3 * u[3], 0.9 + 0.1 * u[4])
    colour = np.asarray(rgb, dtype=np.float32) * np.float32(255.0)
    return shape, motion, u, colour


def render_video(
    index: int,
    seed: int,
    frames: int,
    size: int,
    *,
    num_shapes: int = 1,
    background: str = "dark",
) -> tuple[np.ndarray, int]:
    """Render video ``index`` of the synthetic moving-shapes dataset.

    Args:
        index: Video index, ``>= 0``; together with ``seed`` it fully determines the video.
        seed: Dataset seed, ``>= 0``.
        frames: Number of frames ``T >= 1``; frame ``k`` shows normalised time
            ``k / (frames - 1)`` (time 0 when ``frames == 1``).
        size: Frame height and width ``>= 8`` in pixels.
        num_shapes: Number of shapes ``>= 1``; shapes after the first are distractors with
            their own random shape, motion and colour, drawn underneath the labelled shape.
        background: One of ``BACKGROUNDS``.

    Returns:
        ``(video, label)``: a uint8 RGB array of shape ``(frames, size, size, 3)`` and the
        label ``shape_index * len(MOTIONS) + motion_index`` of the first shape, uniform over
        ``range(NUM_CLASSES)`` across indices.

    Raises:
        ValueError: if an argument is out of range or ``background`` is unknown.
        TypeError: if an integer argument is not an integer.
    """
    index = _check_int("index", index, 0)
    seed = _check_int("seed", seed, 0)
    frames = _check_int("frames", frames, 1)
    size = _check_int("size", size, 8)
    num_shapes = _check_int("num_shapes", num_shapes, 1)
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")

    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    label = int(rng.integers(NUM_CLASSES))
    specs = [_draw_shape(rng, label, None)]
    primary_hue = float(specs[0][2][2])
    for _ in range(num_shapes - 1):
        specs.append(_draw_shape(rng, int(rng.integers(NUM_CLASSES)), primary_hue))

    if background == "noise":
        noise = rng.random((size, size, 1), dtype=np.float32) - np.float32(0.5)
        bg = _dark_background(size).astype(np.float32) + noise * np.float32(24.0)
        bg = np.clip(bg + np.float32(0.5), 0.0, 255.0).astype(np.uint8)
    else:
        bg = _dark_background(size)
    video = np.empty((frames, size, size, 3), dtype=np.uint8)
    video[...] = bg

    # Each shape is rendered only on a per-frame square window around it and composited onto
    # the uint8 video; the labelled shape is drawn last, on top.
    t = np.arange(frames, dtype=np.float64) / max(frames - 1, 1)
    tk = np.arange(frames)
    for shape, motion, u, colour in reversed(specs):
        r = (_SCALE_RANGE[0] + (_SCALE_RANGE[1] - _SCALE_RANGE[0]) * u[0]) * size
        cx, cy, angle, scale = _trajectory(motion, u, _BOUND[shape] * r, size, t)
        # window side: the circumscribed diameter plus the 1 px anti-aliasing fringe and slack
        box = min(size, math.ceil(2.0 * _BOUND[shape] * r * float(scale.max())) + 4)
        x0 = np.clip(np.rint(cx - 0.5 * box), 0, size - box).astype(np.intp)
        y0 = np.clip(np.rint(cy - 0.5 * box), 0, size - box).astype(np.intp)
        offsets = np.arange(box) + 0.5
        xs = x0[:, None] + offsets
        ys = y0[:, None] + offsets
        alpha = _coverage(shape, cx, cy, angle, r * scale, xs, ys)[..., None]
        windows = _windows(video, box)  # windows[t, y, x] = video[t, y:y+box, x:x+box]
        under = windows[tk, y0, x0].astype(np.float32)  # (T, box, box, 3)
        under += alpha * (colour - under)
        under += np.float32(0.5)  # round to nearest; values stay within [0, 255.5]
        windows[tk, y0, x0] = under.astype(np.uint8)
    return video, label


def render_batch(
    indices: Iterable[int], seed: int, frames: int, size: int, **kw: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Render several videos with :func:`render_video` and stack them.

    Video ``i`` of the batch is identical to ``render_video(indices[i], seed, frames, size,
    **kw)``.  Returns ``(videos, labels)``: uint8 ``(N, frames, size, size, 3)`` and int64
    ``(N,)``.  ``kw`` accepts ``num_shapes`` and ``background``.
    """
    idx = [_check_int(f"indices[{n}]", i, 0) for n, i in enumerate(indices)]
    frames = _check_int("frames", frames, 1)
    size = _check_int("size", size, 8)
    videos = np.empty((len(idx), frames, size, size, 3), dtype=np.uint8)
    labels = np.empty((len(idx),), dtype=np.int64)
    for n, i in enumerate(idx):
        videos[n], labels[n] = render_video(i, seed, frames, size, **kw)
    if not idx:  # still validate the remaining arguments
        render_video(0, seed, 1, 8, **kw)
    return videos, labels
