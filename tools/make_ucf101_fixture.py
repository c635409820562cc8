"""Make a miniature UCF101 tree in exactly the official layout, for tests and benchmarks.

The real data set cannot be downloaded here, so ``ndevgan data prepare ucf101`` is tested on
this stand-in::

    OUT/UCF-101/<Class>/v_<Class>_gGG_cCC.avi      mpeg4 tagged XVID, 320×240, 25 fps
    OUT/ucfTrainTestlist/classInd.txt               "1 ApplyEyeMakeup" (1-based, CRLF)
    OUT/ucfTrainTestlist/trainlist0N.txt            "ApplyEyeMakeup/v_…_g08_c01.avi 1"
    OUT/ucfTrainTestlist/testlist0N.txt             "ApplyEyeMakeup/v_…_g01_c01.avi"

Groups follow the official rule: split N tests on groups 7N-6 … 7N and trains on the other
groups (1-25). Video ``j`` of a class gets group ``1 + j·25 // videos_per_class`` and clip
``c01``, so with 4 videos per class split 1 tests g01 and g07. Content is deterministic from
(seed, class, video): ``squares`` is a coloured square bouncing over a class-tinted gradient
(tiny files, frames easy to tell apart); ``natural`` pans a 1/f-noise texture (the spectrum of
natural images) under the square and is encoded at a UCF101-like bit rate, for benchmarks.

    python tools/make_ucf101_fixture.py OUT [--classes 3 --videos-per-class 4 --frames 40]
"""

from __future__ import annotations

import argparse
import zlib
from pathlib import Path

import numpy as np

#: The first classes of the official classInd.txt, in its order.
UCF101_CLASSES = (
    "ApplyEyeMakeup",
    "ApplyLipstick",
    "Archery",
    "BabyCrawling",
    "BalanceBeam",
    "BandMarching",
    "BaseballPitch",
    "Basketball",
    "BasketballDunk",
    "BenchPress",
)

WIDTH, HEIGHT, FPS = 320, 240, 25
GROUPS = 25


def class_names(n: int) -> list[str]:
    """``n`` class names: the official first ones, then ``ExtraClassNN``."""
    return [
        UCF101_CLASSES[i] if i < len(UCF101_CLASSES) else f"ExtraClass{i + 1:02d}" for i in range(n)
    ]


def group_of(video: int, videos_per_class: int) -> int:
    """The group (1-25) of a class's ``video``-th clip, spread over all 25 groups."""
    return 1 + video * GROUPS // videos_per_class


def test_split_groups(split: int) -> range:
    """Groups that split ``split`` (1-3) holds out for testing: 7N-6 … 7N."""
    return range(7 * split - 6, 7 * split + 1)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _pink_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A colour texture with a 1/f amplitude spectrum (natural-image statistics), uint8."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(height, width))
    channels = []
    for _ in range(3):
        phase = rng.uniform(0, 2 * np.pi, amplitude.shape)
        img = np.fft.irfft2(amplitude * np.exp(1j * phase), s=(height, width))
        img = (img - img.mean()) / (img.std() + 1e-9)
        channels.append(img)
    tex = np.stack(channels, axis=-1)
    tex = tex @ np.array([[0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6]])  # correlated RGB
    return np.clip(128 + 40 * tex, 0, 255).astype(np.uint8)


def render_frames(
    seed: int, label: int, video: int, frames: int, style: str = "squares"
) -> np.ndarray:
    """The RGB frames ``(frames, 240, 320, 3)`` uint8 of one fixture video."""
    rng = _rng(seed, label, video)
    colour = rng.integers(80, 256, 3).astype(np.uint8)
    box = int(rng.integers(36, 60))
    x0, y0 = rng.uniform(0, WIDTH - box), rng.uniform(0, HEIGHT - box)
    vx, vy = rng.uniform(4, 9) * rng.choice([-1, 1]), rng.uniform(3, 7) * rng.choice([-1, 1])
    out = np.empty((frames, HEIGHT, WIDTH, 3), dtype=np.uint8)
    if style == "natural":
        pad = 64
        tex = _pink_texture(rng, HEIGHT + 2 * pad, WIDTH + 2 * pad)
        px, py = (float(v) for v in rng.uniform(-1.5, 1.5, 2))
    else:
        hue = np.array([(label * 67) % 256, (label * 151 + 60) % 256, (label * 29 + 120) % 256])
        ramp = (
            np.linspace(0.25, 0.6, WIDTH)[None, :, None]
            * np.linspace(0.7, 1.0, HEIGHT)[:, None, None]
        )
        background = (ramp * hue).astype(np.uint8)
    for t in range(frames):
        if style == "natural":
            ox = round(pad + px * t) % (2 * pad)
            oy = round(pad + py * t) % (2 * pad)
            out[t] = tex[oy : oy + HEIGHT, ox : ox + WIDTH]
        else:
            out[t] = background
        x = _bounce(x0 + vx * t, WIDTH - box)
        y = _bounce(y0 + vy * t, HEIGHT - box)
        out[t, y : y + box, x : x + box] = colour
        # a frame counter in the corner: a bar whose length is t, so frames never repeat
        out[t, 4:8, 4 : 4 + 2 * (t % 150)] = 255
    return out


def _bounce(pos: float, limit: int) -> int:
    period = 2 * limit
    p = pos % period
    return int(p if p <= limit else period - p)


def write_avi(path: Path, frames: np.ndarray, bit_rate: int | None = None, gop: int = 12) -> Path:
    """Encode ``frames`` (T, 240, 320, 3) as MPEG-4 Part 2 tagged XVID in AVI at 25 fps."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="avi") as out:
        stream = out.add_stream("mpeg4", rate=FPS)
        stream.codec_tag = "XVID"
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        if bit_rate:
            stream.bit_rate = bit_rate
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_fixture(
    out: str | Path,
    classes: int = 3,
    videos_per_class: int = 4,
    frames: int = 40,
    seed: int = 0,
    style: str = "squares",
    bit_rate: int | None = None,
    gop: int = 12,
) -> Path:
    """Write the fixture tree under ``out``; return ``out``. Existing files are overwritten.

    ``style`` is ``squares`` (small, fast; the tests) or ``natural`` (textured, encoded at
    ``bit_rate`` bits/s, default 500 kb/s like UCF101's files; the benchmark).
    """
    if style not in ("squares", "natural"):
        raise ValueError(f"style must be 'squares' or 'natural', got {style!r}")
    if classes < 1 or videos_per_class < 1 or frames < 1:
        raise ValueError("classes, videos_per_class and frames must be >= 1")
    out = Path(out)
    names = class_names(classes)
    lists = out / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    if style == "natural" and bit_rate is None:
        bit_rate = 500_000
    entries: list[tuple[str, int, int]] = []  # (relative path, 1-based label, group)
    for label, name in enumerate(names):
        for j in range(videos_per_class):
            group = group_of(j, videos_per_class)
            rel = f"{name}/v_{name}_g{group:02d}_c01.avi"
            pixels = render_frames(seed, label, j, frames, style)
            write_avi(out / "UCF-101" / rel, pixels, bit_rate=bit_rate, gop=gop)
            entries.append((rel, label + 1, group))
    crlf = "\r\n"  # the official lists use DOS line endings
    (lists / "classInd.txt").write_bytes(
        "".join(f"{i + 1} {n}{crlf}" for i, n in enumerate(names)).encode()
    )
    for split in (1, 2, 3):
        held_out = test_split_groups(split)
        train = [f"{rel} {label}{crlf}" for rel, label, g in entries if g not in held_out]
        test = [f"{rel}{crlf}" for rel, _, g in entries if g in held_out]
        (lists / f"trainlist{split:02d}.txt").write_bytes("".join(train).encode())
        (lists / f"testlist{split:02d}.txt").write_bytes("".join(test).encode())
    return out


def fixture_digest(out: str | Path) -> int:
    """A CRC of every file under ``out`` (names and bytes), to check determinism."""
    crc = 0
    for path in sorted(Path(out).rglob("*")):
        if path.is_file():
            crc = zlib.crc32(path.relative_to(out).as_posix().encode(), crc)
            crc = zlib.crc32(path.read_bytes(), crc)
    return crc


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory to create the tree in")
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--videos-per-class", type=int, default=4)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--style", choices=("squares", "natural"), default="squares")
    parser.add_argument("--bit-rate", type=int, default=None, help="bits/s (natural: 500000)")
    parser.add_argument("--gop", type=int, default=12, help="frames between keyframes")
    args = parser.parse_args(argv)
    make_fixture(
        args.out,
        args.classes,
        args.videos_per_class,
        args.frames,
        args.seed,
        args.style,
        args.bit_rate,
        args.gop,
    )
    n = args.classes * args.videos_per_class
    print(f"wrote {n} videos of {args.frames} frames under {args.out}")


if __name__ == "__main__":
    main()
