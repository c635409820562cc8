"""Tests for ndevgan_core.media: conversion, grids, PNG and video I/O, atomic writes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ndevgan_core import media

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def smooth_video(t: int = 16, h: int = 32, w: int = 48) -> np.ndarray:
    """Gradients plus a moving square: the kind of content lossy codecs keep well."""
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    video = np.empty((t, h, w, 3), dtype=np.uint8)
    for i in range(t):
        video[i, ..., 0] = (xx * 255 // max(w - 1, 1)).astype(np.uint8)
        video[i, ..., 1] = (yy * 255 // max(h - 1, 1)).astype(np.uint8)
        video[i, ..., 2] = (40 + 10 * i) % 256
        x0 = (2 * i) % max(w - 8, 1)
        video[i, 8:16, x0 : x0 + 8] = (230, 40, 40)
    return video


def dir_entries(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


# --------------------------------------------------------------------------- to_uint8


def test_to_uint8_endpoints_and_layout() -> None:
    video = np.zeros((2, 3, 4, 5, 6), dtype=np.float32)
    video[0, 0] = -1.0
    video[0, 1] = 1.0
    video[0, 2] = 0.0
    video[1] = np.linspace(-3.0, 3.0, 4 * 5 * 6 * 3).reshape(3, 4, 5, 6)
    out = media.to_uint8(video)
    assert out.shape == (2, 4, 5, 6, 3)
    assert out.dtype == np.uint8
    assert (out[0, ..., 0] == 0).all()
    assert (out[0, ..., 1] == 255).all()
    assert (out[0, ..., 2] == 128).all()
    # out-of-range values clip; channel c of the input becomes the last axis
    assert out[1].min() == 0 and out[1].max() == 255
    expected = np.clip(np.floor((video[1] + 1) * 127.5 + 0.5), 0, 255).transpose(1, 2, 3, 0)
    np.testing.assert_array_equal(out[1], expected.astype(np.uint8))


def test_to_uint8_rounds_to_nearest_level() -> None:
    levels = np.arange(256, dtype=np.float64)
    video = (levels / 127.5 - 1.0).reshape(1, 1, 1, 1, 256)
    np.testing.assert_array_equal(media.to_uint8(video)[0, 0, 0, :, 0], levels)
    # just below the midpoint between two levels rounds down, just above rounds up
    eps = 1e-4
    video = (np.array([10.5 - eps, 10.5 + eps]) / 127.5 - 1.0).reshape(1, 1, 1, 1, 2)
    assert media.to_uint8(video)[0, 0, 0, :, 0].tolist() == [10, 11]


def test_to_uint8_replicates_grey() -> None:
    video = np.random.default_rng(0).uniform(-1, 1, (2, 1, 3, 4, 5))
    out = media.to_uint8(video)
    assert out.shape == (2, 3, 4, 5, 3)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


@pytest.mark.parametrize(
    "shape", [(3, 4, 5, 6), (1, 2, 3, 4, 5), (1, 4, 2, 3, 3), (3, 1, 1, 1, 1, 1)]
)
def test_to_uint8_rejects_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        media.to_uint8(np.zeros(shape, dtype=np.float32))


def test_to_uint8_accepts_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    tensor = torch.zeros(1, 3, 2, 4, 4, requires_grad=True) + 1.0  # non-leaf with grad
    out = media.to_uint8(tensor)
    assert isinstance(out, np.ndarray)
    assert out.shape == (1, 2, 4, 4, 3) and (out == 255).all()
    out = media.to_uint8(torch.full((1, 1, 1, 2, 2), -1.0, dtype=torch.bfloat16))
    assert out.shape == (1, 1, 2, 2, 3) and (out == 0).all()


# --------------------------------------------------------------------------- grid and strip


def random_videos(n: int, t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, t, h, w, 3), dtype=np.uint8)


def test_video_grid_shape_and_tiles() -> None:
    n, t, h, w, pad = 5, 3, 6, 7, 2
    videos = random_videos(n, t, h, w)
    grid = media.video_grid(videos, pad=pad)  # ncols = ceil(sqrt(5)) = 3 -> 2 rows
    assert grid.dtype == np.uint8
    assert grid.shape == (t, 2 * h + 3 * pad, 3 * w + 4 * pad, 3)
    for i in range(n):
        r, c = divmod(i, 3)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        np.testing.assert_array_equal(grid[:, y : y + h, x : x + w], videos[i])
    # padding: the border, the gaps and the empty last cell are pad_value
    assert (grid[:, :pad] == 255).all() and (grid[:, :, :pad] == 255).all()
    assert (grid[:, :, pad + w : 2 * pad + w] == 255).all()
    y, x = pad + h + pad, pad + 2 * (w + pad)
    assert (grid[:, y : y + h, x : x + w] == 255).all()


def test_video_grid_ncols_pad_value_and_no_pad() -> None:
    videos = random_videos(4, 2, 3, 5, seed=1)
    grid = media.video_grid(videos, ncols=4, pad=1, pad_value=0)
    assert grid.shape == (2, 3 + 2, 4 * 5 + 5, 3)
    np.testing.assert_array_equal(grid[:, 1:4, 1 + 3 * 6 : 1 + 3 * 6 + 5], videos[3])
    assert (grid[:, 0] == 0).all()
    tight = media.video_grid(videos, ncols=2, pad=0)
    assert tight.shape == (2, 6, 10, 3)
    np.testing.assert_array_equal(tight[:, 3:, :5], videos[2])
    assert media.video_grid(videos[:1], pad=0).shape == (2, 3, 5, 3)


def test_video_grid_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(N, T, H, W, 3\)"):
        media.video_grid(np.zeros((2, 3, 4, 5, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(N, T, H, W, 3\)"):
        media.video_grid(np.zeros((3, 4, 5, 3), dtype=np.uint8))
    with pytest.raises(ValueError):
        media.video_grid(np.zeros((0, 3, 4, 5, 3), dtype=np.uint8))
    with pytest.raises(ValueError):
        media.video_grid(random_videos(2, 1, 2, 2), ncols=0)


def test_frame_strip_all_frames() -> None:
    n, t, h, w, pad = 3, 4, 5, 6, 2
    videos = random_videos(n, t, h, w, seed=2)
    strip = media.frame_strip(videos, max_frames=16, pad=pad)
    assert strip.shape == (n * (h + pad) + pad, t * (w + pad) + pad, 3)
    for i in range(n):
        for f in range(t):
            y, x = pad + i * (h + pad), pad + f * (w + pad)
            np.testing.assert_array_equal(strip[y : y + h, x : x + w], videos[i, f])
    assert (strip[:pad] == 255).all() and (strip[:, -pad:] == 255).all()


def test_frame_strip_subsamples_evenly() -> None:
    n, t, h, w, pad = 2, 31, 3, 4, 1
    videos = random_videos(n, t, h, w, seed=3)
    strip = media.frame_strip(videos, max_frames=4, pad=pad)
    assert strip.shape == (n * (h + pad) + pad, 4 * (w + pad) + pad, 3)
    for i in range(n):
        for j, f in enumerate([0, 10, 20, 30]):  # evenly spaced, first and last included
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            np.testing.assert_array_equal(strip[y : y + h, x : x + w], videos[i, f])
    one = media.frame_strip(videos, max_frames=1, pad=0)
    np.testing.assert_array_equal(one, np.concatenate([videos[0, 0], videos[1, 0]], axis=0))


# --------------------------------------------------------------------------- PNG


def test_png_round_trip_is_exact(tmp_path: Path) -> None:
    image = np.random.default_rng(4).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    path = media.write_png(tmp_path / "sub" / "dir" / "img.png", image)
    assert path == tmp_path / "sub" / "dir" / "img.png"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    np.testing.assert_array_equal(media.read_png(path), image)
    assert dir_entries(path.parent) == ["img.png"]  # no temporary file left behind


def test_png_chunks_have_valid_crcs(tmp_path: Path) -> None:
    path = media.write_png(tmp_path / "a.png", np.full((3, 4, 3), 7, dtype=np.uint8))
    data = path.read_bytes()
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc
        kinds.append(kind)
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds


def test_read_png_rejects_non_png(tmp_path: Path) -> None:
    path = tmp_path / "not_an_image.png"
    path.write_bytes(b"hello, this is text")
    with pytest.raises(ValueError, match=r"not_an_image\.png"):
        media.read_png(path)


def test_read_png_detects_corruption(tmp_path: Path) -> None:
    path = media.write_png(tmp_path / "c.png", np.zeros((4, 4, 3), dtype=np.uint8))
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF  # inside the IHDR body: the CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"c\.png"):
        media.read_png(path)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def encode_png(pixels: np.ndarray, color_type: int, filters: list[int], plte: bytes = b"") -> bytes:
    """Independent reference encoder using PNG filter types 0-4 as listed per row."""
    h, w = pixels.shape[:2]
    bpp = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = pixels.reshape(h, w * bpp).astype(int)
    raw = bytearray()
    prior = [0] * (w * bpp)
    for y in range(h):
        ftype, line = filters[y % len(filters)], rows[y].tolist()
        raw.append(ftype)
        for i, value in enumerate(line):
            a = line[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][ftype]
            raw.append((value - pred) % 256)
        prior = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    compressed = zlib.compress(bytes(raw))
    idats = [chunk(b"IDAT", compressed[:10]), chunk(b"IDAT", compressed[10:])]  # split data
    out = PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"tEXt", b"Comment\x00test")
    if plte:
        out += chunk(b"PLTE", plte)
    return out + b"".join(idats) + chunk(b"IEND", b"")


@pytest.mark.parametrize("color_type, channels", [(2, 3), (6, 4)])
def test_read_png_handles_all_filters(tmp_path: Path, color_type: int, channels: int) -> None:
    rng = np.random.default_rng(5)
    # smooth-ish content so the predictors matter, plus noise so values wrap modulo 256
    base = np.cumsum(rng.integers(-20, 21, (11, 9, channels)), axis=1) + 128
    pixels = (base + rng.integers(0, 256, base.shape) * (rng.random(base.shape) < 0.2)) % 256
    pixels = pixels.astype(np.uint8)
    path = tmp_path / "filters.png"
    path.write_bytes(encode_png(pixels, color_type, filters=[0, 1, 2, 3, 4, 4, 3, 2, 1]))
    np.testing.assert_array_equal(media.read_png(path), pixels[..., :3])


def test_read_png_grey_and_palette(tmp_path: Path) -> None:
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5) * 12
    (tmp_path / "g.png").write_bytes(encode_png(grey, 0, filters=[1, 4]))
    np.testing.assert_array_equal(media.read_png(tmp_path / "g.png"), np.stack([grey] * 3, -1))
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    index = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    (tmp_path / "p.png").write_bytes(encode_png(index, 3, filters=[2], plte=palette.tobytes()))
    np.testing.assert_array_equal(media.read_png(tmp_path / "p.png"), palette[index])


def test_write_png_rejects_bad_images_and_leaves_nothing(tmp_path: Path) -> None:
    for bad in (np.zeros((4, 4, 3), dtype=np.float32), np.zeros((4, 4), dtype=np.uint8)):
        with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
            media.write_png(tmp_path / "bad.png", bad)
    assert dir_entries(tmp_path) == []


# --------------------------------------------------------------------------- video


def test_mp4_round_trip(tmp_path: Path) -> None:
    video = smooth_video(16, 32, 48)
    path = media.write_video(tmp_path / "out" / "clip.mp4", video, fps=8)
    assert path.is_file() and path.suffix == ".mp4"
    assert path.read_bytes()[4:8] == b"ftyp"  # an MP4 container
    decoded = media.read_video(path)
    assert decoded.dtype == np.uint8
    assert decoded.shape == video.shape
    assert np.abs(decoded.astype(int) - video).mean() < 6
    # the moving square is still where it was, in red
    assert (decoded[5, 10:14, 12:16, 0] > 180).all() and (decoded[5, 10:14, 12:16, 2] < 120).all()
    assert dir_entries(path.parent) == ["clip.mp4"]


def test_mp4_odd_size_is_padded_by_edge_replication(tmp_path: Path) -> None:
    """Chosen behaviour: odd sizes are padded up to even and read back at the padded size."""
    video = smooth_video(6, 33, 31)
    decoded = media.read_video(media.write_video(tmp_path / "odd.mp4", video))
    assert decoded.shape == (6, 34, 32, 3)
    assert np.abs(decoded[:, :33, :31].astype(int) - video).mean() < 6
    # the extra row / column repeat the last ones
    assert np.abs(decoded[:, 33].astype(int) - decoded[:, 32]).mean() < 6
    assert np.abs(decoded[:, :, 31].astype(int) - decoded[:, :, 30]).mean() < 6


def test_mp4_falls_back_to_mpeg4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    av = pytest.importorskip("av")
    real_codec = av.codec.Codec

    def no_x264(name: str, mode: str = "r") -> object:
        if name == "libx264":
            raise ValueError("libx264 unavailable in this test")
        return real_codec(name, mode)

    monkeypatch.setattr(av.codec, "Codec", no_x264)
    video = smooth_video(8, 32, 48)
    path = media.write_video(tmp_path / "fallback.mp4", video)
    monkeypatch.undo()
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    decoded = media.read_video(path)
    assert decoded.shape == video.shape
    assert np.abs(decoded.astype(int) - video).mean() < 8


def test_gif_round_trip(tmp_path: Path) -> None:
    video = smooth_video(10, 32, 48)  # thousands of colours: quantised to 256
    path = media.write_video(tmp_path / "clip.gif", video, fps=5)
    assert path.read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    decoded = media.read_video(path)
    assert decoded.shape == video.shape
    error = np.abs(decoded.astype(int) - video)
    assert error.mean() < 16
    assert (decoded[3, 8:16, 6:14] == decoded[3, 8:16, 6:14][0, 0]).all()  # flat square
    assert np.abs(decoded[3, 10, 8].astype(int) - (230, 40, 40)).max() < 40
    assert dir_entries(tmp_path) == ["clip.gif"]


def test_gif_is_exact_for_few_colours(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    palette = rng.integers(0, 256, (200, 3), dtype=np.uint8)
    video = palette[rng.integers(0, 200, (5, 12, 17))]
    decoded = media.read_video(media.write_video(tmp_path / "few.gif", video))
    np.testing.assert_array_equal(decoded, video)


@pytest.mark.parametrize("name", ["clip.avi", "clip.png", "clip"])
def test_write_video_rejects_bad_suffix(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=r"\.mp4.*\.gif"):
        media.write_video(tmp_path / name, smooth_video(2, 8, 8))
    assert dir_entries(tmp_path) == []


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 8, 8, 3), dtype=np.float32), np.zeros((8, 8, 3), dtype=np.uint8)],
    ids=["float", "3d"],
)
def test_write_video_bad_input_leaves_nothing(tmp_path: Path, suffix: str, bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        media.write_video(tmp_path / f"clip{suffix}", bad)
    assert dir_entries(tmp_path) == []


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_failure_mid_write_keeps_old_file_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    av = pytest.importorskip("av")
    target = tmp_path / f"clip{suffix}"
    target.write_bytes(b"previous contents")
    calls = {"n": 0}
    real_from_ndarray = av.VideoFrame.from_ndarray

    def failing_from_ndarray(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:  # some frames are already encoded when this fails
            raise RuntimeError("simulated encoder failure")
        return real_from_ndarray(*args, **kwargs)

    monkeypatch.setattr(av.VideoFrame, "from_ndarray", staticmethod(failing_from_ndarray))
    with pytest.raises(RuntimeError, match="simulated"):
        media.write_video(target, smooth_video(6, 16, 16))
    assert calls["n"] == 3
    assert dir_entries(tmp_path) == [target.name]
    assert target.read_bytes() == b"previous contents"


def test_png_failure_mid_write_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = open
    seen: list[Path] = []

    class SimulatedDiskError(OSError):
        pass

    def failing_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode:
            seen.append(Path(file))
            handle = real_open(file, mode, *args, **kwargs)
            handle.write(b"partial")
            handle.close()
            raise SimulatedDiskError("disk full")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(SimulatedDiskError):
        media.write_png(tmp_path / "img.png", np.zeros((4, 4, 3), dtype=np.uint8))
    monkeypatch.undo()
    assert len(seen) == 1 and seen[0].parent == tmp_path
    assert seen[0].name.startswith(".img.png.") and seen[0].name.endswith(".tmp.png")
    assert dir_entries(tmp_path) == []


def test_video_temp_name_keeps_suffix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = media.os.replace
    moves: list[tuple[Path, Path]] = []

    def spy_replace(src: Any, dst: Any) -> None:
        moves.append((Path(src), Path(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(media.os, "replace", spy_replace)
    media.write_video(tmp_path / "v.mp4", smooth_video(2, 8, 8))
    ((src, dst),) = moves
    assert dst == tmp_path / "v.mp4" and src.parent == tmp_path
    assert src.name.startswith(".v.mp4.") and src.name.endswith(".tmp.mp4")


def test_read_video_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        media.read_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"junk\.mp4"):
        media.read_video(junk)


# --------------------------------------------------------------------------- time layouts


def _frames(n: int, t: int, h: int = 4, w: int = 5) -> np.ndarray:
    """Videos whose frame (i, k) is filled with the value 10·i + k (so each frame is known)."""
    values = (10 * np.arange(n)[:, None] + np.arange(t)[None, :]).astype(np.uint8)
    return np.broadcast_to(values[:, :, None, None, None], (n, t, h, w, 3)).copy()


def test_hold_frames_stretches_1x_to_kx_timing():
    held = media.hold_frames(_frames(2, 4), 3)
    assert held.shape[1] == (4 - 1) * 3 + 1
    assert held[1, :, 0, 0, 0].tolist() == [10, 10, 10, 11, 11, 11, 12, 12, 12, 13]


def test_side_by_side_joins_pairs_with_a_gap():
    a, b = _frames(2, 3), _frames(2, 3) + 100
    joined = media.side_by_side(a, b, gap=2, pad_value=7)
    assert joined.shape == (2, 3, 4, 5 + 2 + 5, 3)
    assert (joined[:, :, :, :5] == a).all() and (joined[:, :, :, 7:] == b).all()
    assert (joined[:, :, :, 5:7] == 7).all()
    with pytest.raises(ValueError, match="equal shapes"):
        media.side_by_side(a, _frames(2, 4))


def test_mark_frames_borders_only_frames_outside_the_interval():
    videos = _frames(1, 5, 8, 8)
    marked = media.mark_frames(videos, [-0.5, 0.0, 0.5, 1.0, 1.5], (0.0, 1.0))
    for k, outside in enumerate([True, False, False, False, True]):
        corner, centre = marked[0, k, 0, 0], marked[0, k, 4, 4]
        assert (tuple(corner) == media.OUTSIDE_COLOUR) == outside
        assert (centre == videos[0, k, 4, 4]).all()  # the picture itself is untouched
    assert (videos[0, 0, 0, 0] == 0).all()  # and the input is not modified


def test_timeline_strip_bands_and_reference_row():
    videos, base = _frames(2, 5, 8, 8), _frames(2, 3, 8, 8) + 50
    times = [-0.5, 0.0, 0.5, 1.0, 1.5]
    image = media.timeline_strip(
        videos, times, (0.0, 1.0), reference=base, reference_times=[-0.5, 0.5, 1.5], pad=2
    )
    h = w = 8
    band = 3
    block = 2 * (h + 2) + band + 2
    assert image.shape == (2 * block + 2, 5 * (w + 2) + 2, 3)
    ref_y, row_y = 2, 2 + h + 2
    for j, expected_ref in enumerate([50, None, 51, None, 52]):
        x = 2 + j * (w + 2)
        if expected_ref is None:
            assert (image[ref_y : ref_y + h, x : x + w] == 255).all()  # no 1× frame at this time
        else:
            assert (image[ref_y : ref_y + h, x : x + w] == expected_ref).all()
        assert (image[row_y : row_y + h, x : x + w] == j).all()
    colours = [tuple(image[row_y + h + 1, 2 + j * (w + 2)]) for j in range(5)]
    assert colours == [
        media.OUTSIDE_COLOUR,
        media.START_COLOUR,
        media.INSIDE_COLOUR,
        media.INSIDE_COLOUR,
        media.OUTSIDE_COLOUR,
    ]
    # a grid without a frame at z's time (t = -1/30 is nearest 0, but outside): nothing blue
    offset = media.timeline_strip(videos, [-1 / 30, 0.3, 0.6, 0.9, 1.2], (0.0, 1.0), pad=2)
    colours = [tuple(offset[2 + h + 1, 2 + j * (w + 2)]) for j in range(5)]
    assert colours[0] == media.OUTSIDE_COLOUR and media.START_COLOUR not in colours
