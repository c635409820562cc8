"""Tests for the built-in moving-shapes dataset renderer (ndevgan_plugins.shapes_render)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from ndevgan_plugins import shapes_render as sr

SEED = 1234
BG_MAX = 60  # every background pixel (dark or noise) has all channels below this
FG_MIN = 200  # the brightest channel of a fully covered shape pixel is at least this


@functools.cache
def _labels(n: int = 2000, seed: int = SEED) -> np.ndarray:
    return np.array([sr.render_video(i, seed, 1, 8)[1] for i in range(n)])


def _indices(motion: str, shape: str | None = None, count: int = 5) -> list[int]:
    """First ``count`` indices whose label has the given motion (and shape, if given)."""
    labels = _labels()
    m = labels % len(sr.MOTIONS) == sr.MOTIONS.index(motion)
    if shape is not None:
        m &= labels // len(sr.MOTIONS) == sr.SHAPES.index(shape)
    found = np.flatnonzero(m)[:count].tolist()
    assert len(found) == count
    return found


def _weights(video: np.ndarray) -> np.ndarray:
    """Per-pixel shape weight in [0, 1] (roughly the coverage), shape (T, H, W)."""
    bright = video.max(axis=-1).astype(np.float64)
    return np.clip((bright - BG_MAX) / (FG_MIN - BG_MAX), 0.0, 1.0)


def _centroids(video: np.ndarray) -> np.ndarray:
    """Weighted centroid (x, y) of the shape pixels of every frame, shape (T, 2)."""
    w = _weights(video)
    ys, xs = np.mgrid[: video.shape[1], : video.shape[2]]
    total = w.sum(axis=(1, 2))
    assert (total > 0).all(), "a frame has no shape pixels"
    return np.stack([(w * xs).sum(axis=(1, 2)) / total, (w * ys).sum(axis=(1, 2)) / total], 1)


# ------------------------------------------------------------------ API and basic contract


def test_constants_and_class_names() -> None:
    assert len(sr.SHAPES) >= 4 and len(sr.MOTIONS) >= 4
    assert {"circle", "square", "triangle", "cross"} <= set(sr.SHAPES)
    assert {"bounce", "rotate", "orbit", "zoom"} <= set(sr.MOTIONS)
    assert len(sr.SHAPES) * len(sr.MOTIONS) == sr.NUM_CLASSES
    names = [sr.class_name(k) for k in range(sr.NUM_CLASSES)]
    assert len(set(names)) == sr.NUM_CLASSES
    assert sr.class_name(0) == f"{sr.SHAPES[0]}-{sr.MOTIONS[0]}"
    sq, bo = sr.SHAPES.index("square"), sr.MOTIONS.index("bounce")
    assert sr.class_name(sq * len(sr.MOTIONS) + bo) == "square-bounce"
    for bad in (-1, sr.NUM_CLASSES):
        with pytest.raises(ValueError, match="label"):
            sr.class_name(bad)


@pytest.mark.parametrize("frames,size", [(16, 64), (1, 8), (5, 33)])
def test_shape_dtype_label(frames: int, size: int) -> None:
    video, label = sr.render_video(7, SEED, frames, size)
    assert video.shape == (frames, size, size, 3)
    assert video.dtype == np.uint8
    assert isinstance(label, int) and 0 <= label < sr.NUM_CLASSES


def test_determinism_and_independence() -> None:
    a, la = sr.render_video(3, SEED, 8, 32, num_shapes=2, background="noise")
    b, lb = sr.render_video(3, SEED, 8, 32, num_shapes=2, background="noise")
    np.testing.assert_array_equal(a, b)
    assert la == lb
    c, _ = sr.render_video(4, SEED, 8, 32, num_shapes=2, background="noise")
    d, _ = sr.render_video(3, SEED + 1, 8, 32, num_shapes=2, background="noise")
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, d)

    idx = [11, 3, 0, 42]
    videos, labels = sr.render_batch(idx, SEED, 6, 24, num_shapes=2)
    assert videos.shape == (4, 6, 24, 24, 3) and videos.dtype == np.uint8
    assert labels.shape == (4,)
    for n, i in enumerate(idx):
        v, lab = sr.render_video(i, SEED, 6, 24, num_shapes=2)
        np.testing.assert_array_equal(videos[n], v)
        assert labels[n] == lab
    empty, empty_labels = sr.render_batch([], SEED, 6, 24)
    assert empty.shape == (0, 6, 24, 24, 3) and empty_labels.shape == (0,)


def test_labels_uniform_over_classes() -> None:
    labels = _labels()
    counts = np.bincount(labels, minlength=sr.NUM_CLASSES)
    expected = len(labels) / sr.NUM_CLASSES
    assert len(counts) == sr.NUM_CLASSES
    assert counts.min() > 0.5 * expected
    assert counts.max() < 1.6 * expected


def test_label_and_primary_shape_independent_of_distractors_and_background() -> None:
    for i in range(10):
        _, l1 = sr.render_video(i, SEED, 4, 32)
        _, l3 = sr.render_video(i, SEED, 4, 32, num_shapes=3)
        _, ln = sr.render_video(i, SEED, 4, 32, background="noise")
        assert l1 == l3 == ln


def test_distractors_add_shapes() -> None:
    more = 0
    for i in range(10):
        one, _ = sr.render_video(i, SEED, 4, 48)
        three, _ = sr.render_video(i, SEED, 4, 48, num_shapes=3)
        if _weights(three).sum() > 1.2 * _weights(one).sum():
            more += 1
    assert more >= 7


def test_labelled_shape_drawn_on_top() -> None:
    """Distractors pass underneath: the labelled shape's solid pixels never change."""
    for i in range(20):
        one, _ = sr.render_video(i, SEED, 8, 48)
        three, _ = sr.render_video(i, SEED, 8, 48, num_shapes=3)
        bright = one[one.max(axis=-1) >= FG_MIN]
        colours, counts = np.unique(bright, axis=0, return_counts=True)
        colour = colours[counts.argmax()]  # the fully covered pixels all have the shape colour
        solid = (one == colour).all(axis=-1)
        assert solid.sum() >= 8 * 10
        assert np.abs(three[solid].astype(int) - one[solid].astype(int)).max() <= 1


def test_edges_are_anti_aliased() -> None:
    for i in range(10):
        video, _ = sr.render_video(i, SEED, 4, 48)
        w = _weights(video)
        solid = (w >= 1.0).sum()
        partial = ((w > 0.1) & (w < 0.9)).sum()
        assert partial > 0.15 * solid, (i, partial, solid)


def test_frame_rate_consistency() -> None:
    """Frame 2k of a 31-frame clip shows the same instant as frame k of a 16-frame clip."""
    for motion in sr.MOTIONS:
        for i in _indices(motion, count=2):
            for kw in ({}, {"num_shapes": 2, "background": "noise"}):
                fine, lf = sr.render_video(i, SEED, 31, 40, **kw)
                coarse, lc = sr.render_video(i, SEED, 16, 40, **kw)
                assert lf == lc
                diff = np.abs(fine[::2].astype(int) - coarse.astype(int))
                assert diff.max() <= 2, (motion, i, kw)
                # the clip really moves, so this is not trivially satisfied
                assert np.abs(coarse[0].astype(int) - coarse[-1].astype(int)).max() > 50


def test_shape_much_brighter_than_background() -> None:
    for background in sr.BACKGROUNDS:
        for i in range(20):
            video, _ = sr.render_video(i, SEED, 4, 48, background=background)
            bright = video.max(axis=-1)
            assert bright.max() >= FG_MIN
            fg = bright[bright >= FG_MIN]
            bg = bright[bright < BG_MAX]
            assert fg.size >= 4 * 10  # at least ~10 fully covered pixels per frame
            assert bg.size > 0.5 * bright.size  # the shape does not fill the frame
            assert float(fg.mean()) > float(bg.mean()) + 150


def _far_from_shapes(video: np.ndarray, radius: int = 2) -> np.ndarray:
    """Pixels (T, H, W) at least ``radius`` pixels away from any clearly visible shape pixel."""
    near = np.pad(video.max(axis=-1) >= 30, ((0, 0), (radius, radius), (radius, radius)))
    h, w = video.shape[1:3]
    out = np.zeros(video.shape[:3], dtype=bool)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= near[:, dy : dy + h, dx : dx + w]
    return ~out


def test_backgrounds() -> None:
    i = _indices("bounce", count=1)[0]
    dark, _ = sr.render_video(i, SEED, 8, 32)
    noise, _ = sr.render_video(i, SEED, 8, 32, background="noise")
    background = _far_from_shapes(dark)
    assert background.mean() > 0.5
    assert dark[background].max() < 30  # near-black
    assert noise[background].max() < BG_MAX
    assert not np.array_equal(dark, noise)
    # the dark background is a fixed gradient: identical for all videos, and not flat
    other, _ = sr.render_video(i + 1, SEED + 5, 8, 32)
    both = background & _far_from_shapes(other)
    np.testing.assert_array_equal(dark[both], other[both])
    assert np.ptp(dark[both].astype(int).sum(axis=-1)) > 10
    # noise is static: the same in every frame where no shape passes
    static = noise[:, background.all(axis=0)]
    assert static.shape[1] > 100
    np.testing.assert_array_equal(static, np.broadcast_to(static[0], static.shape))
    assert static[0].std() > 2.0


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"frames": 0}, "frames"),
        ({"size": 7}, "size"),
        ({"num_shapes": 0}, "num_shapes"),
        ({"background": "white"}, "background"),
        ({"index": -1}, "index"),
        ({"seed": -3}, "seed"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, name: str) -> None:
    args = {"index": 0, "seed": 0, "frames": 4, "size": 16}
    args.update(kwargs)
    index, seed, frames, size = (args.pop(k) for k in ("index", "seed", "frames", "size"))
    with pytest.raises(ValueError, match=name) as exc:
        sr.render_video(index, seed, frames, size, **args)
    assert repr(kwargs[name]) in str(exc.value)
    if name in ("frames", "size", "background"):
        with pytest.raises(ValueError, match=name):
            sr.render_batch([0, 1], seed, frames, size, **args)


def test_non_integer_arguments_raise_type_error() -> None:
    with pytest.raises(TypeError, match="frames"):
        sr.render_video(0, 0, 4.0, 16)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="size"):
        sr.render_video(0, 0, 4, True)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ motions


def test_bounce_stays_inside_and_reverses() -> None:
    reversed_any = 0
    for i in _indices("bounce", count=8):
        video, _ = sr.render_video(i, SEED, 32, 48)
        bright = video.max(axis=-1)
        ring = np.concatenate(
            [bright[:, 0, :], bright[:, -1, :], bright[:, :, 0], bright[:, :, -1]], axis=1
        )
        assert ring.max() < BG_MAX, f"index {i} touches the border"
        assert (_weights(video) > 0.9).sum(axis=(1, 2)).min() >= 10  # never clipped away
        c = _centroids(video)
        step = np.diff(c, axis=0)
        for axis in (0, 1):
            v = step[:, axis]
            # a clear reversal: fast one way, later fast the other way
            fast = v[np.abs(v) > 0.5]
            if len(fast) >= 2 and np.any(np.sign(fast[1:]) != np.sign(fast[:-1])):
                reversed_any += 1
        # constant speed: apart from the steps that contain a bounce, all steps are as long
        speed = np.linalg.norm(step, axis=1)
        typical = np.median(speed)
        assert typical > 1.0
        assert (np.abs(speed - typical) < 0.1 * typical).mean() > 0.6, (i, speed)
    assert reversed_any >= 3


def test_rotate_spins_in_place() -> None:
    for shape in sr.SHAPES:
        for i in _indices("rotate", shape=shape, count=2):
            video, _ = sr.render_video(i, SEED, 16, 64)
            c = _centroids(video)
            assert np.abs(c - c.mean(axis=0)).max() < 1.0, (shape, i)
            # the pixels change between frames (also for the circle, thanks to its marker)
            w = _weights(video)
            changed = (np.abs(w[1:] - w[:-1]) > 0.5).sum(axis=(1, 2))
            assert changed.min() >= 3, (shape, i, changed)


def test_orbit_traces_a_circle() -> None:
    for i in _indices("orbit", count=6):
        video, _ = sr.render_video(i, SEED, 32, 64)
        c = _centroids(video)
        # algebraic circle fit: x^2 + y^2 + D x + E y + F = 0
        a = np.column_stack([c[:, 0], c[:, 1], np.ones(len(c))])
        b = -(c**2).sum(axis=1)
        (dd, ee, ff), *_ = np.linalg.lstsq(a, b, rcond=None)
        centre = np.array([-dd / 2.0, -ee / 2.0])
        radius = np.sqrt(centre @ centre - ff)
        dist = np.linalg.norm(c - centre, axis=1)
        assert radius > 4.0, (i, radius)
        assert np.abs(dist - radius).max() < 0.1 * radius + 0.5, (i, dist, radius)
        # it goes a good way around (at least ~3/4 of a turn)
        ang = np.unwrap(np.arctan2(c[:, 1] - centre[1], c[:, 0] - centre[0]))
        assert abs(ang[-1] - ang[0]) > 1.4 * np.pi


def test_zoom_changes_area_not_position() -> None:
    for i in _indices("zoom", count=6):
        video, _ = sr.render_video(i, SEED, 32, 64)
        area = _weights(video).sum(axis=(1, 2))
        assert area.max() > 2.0 * area.min(), (i, area.min(), area.max())
        c = _centroids(video)
        assert np.abs(c - c.mean(axis=0)).max() < 1.5


def test_oscillate_moves_along_a_line() -> None:
    for i in _indices("oscillate", count=6):
        video, _ = sr.render_video(i, SEED, 32, 64)
        c = _centroids(video)
        centred = c - c.mean(axis=0)
        s = np.linalg.svd(centred, compute_uv=False)
        assert s[0] / np.sqrt(len(c)) > 3.0  # it moves (rms extent in pixels)
        assert s[1] / np.sqrt(len(c)) < 0.5  # ... along a straight line
