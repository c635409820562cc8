"""Benchmark UCF101 data loading: the LMDB reader against decoding the AVI files directly.

Builds (or reuses) a fixture tree of realistic-size clips (320×240 XviD-tagged mpeg4 AVI at a
UCF101-like bit rate, textured content; ``tools/make_ucf101_fixture.py --style natural``),
prepares it into 64-px databases with ``ndevgan_plugins.ucf101_store.prepare`` (timed: videos/s,
frames/s, bytes per stored frame), then measures training clips per second — 16×64×64 float
clips in [-1, 1], batches of 32 through ``torch.utils.data.DataLoader`` with 0 and 2 workers —
for these readers, in interleaved blocks (each block visits every reader once, in rotated
order, so machine noise hits all of them alike):

* ``lmdb raw``: ``dataset.ucf101`` on the raw-frame database (the default codec);
* ``lmdb zlib``: the same on a zlib-level-1 database;
* ``lmdb raw uint8``: ``dataset.ucf101`` with ``as_uint8=True`` (uint8 (T, H, W, 3) clips, to be
  normalised on the device: a quarter of the bytes between processes);
* ``direct decode``: open the AVI with PyAV, seek to the keyframe before a random offset,
  decode 16 frames, resize each bicubic to 64×85 with the same function as prepare, crop
  columns [10:74], normalise;
* ``no-op``: a dataset returning one constant float clip — the DataLoader's own ceiling (batch
  collation and, with workers, the shared-memory transfer), no reading at all.

    python tools/bench_data.py                    # 8 classes × 4 videos × 100 frames, 3 blocks
    python tools/bench_data.py --quick            # smoke run
    python tools/bench_data.py --work /tmp/bench --videos-per-class 8 --frames 150
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

import ndevgan_core as nd
from ndevgan_plugins import ucf101_store as store
from ndevgan_plugins.ucf101 import UCF101Config, UCF101Dataset

HERE = Path(__file__).resolve().parent


def _fixture_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "make_ucf101_fixture", HERE / "make_ucf101_fixture.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def ensure_fixture(work: Path, classes: int, per_class: int, frames: int) -> Path:
    """The natural-style fixture under ``work/tree``, rebuilt only when its parameters change."""
    tree = work / "tree"
    stamp = work / "tree.json"
    params = {"classes": classes, "videos_per_class": per_class, "frames": frames, "v": 1}
    if stamp.is_file() and json.loads(stamp.read_text()) == params and tree.is_dir():
        return tree
    t0 = time.perf_counter()
    _fixture_module().make_fixture(
        tree, classes, per_class, frames, seed=0, style="natural", bit_rate=500_000
    )
    stamp.write_text(json.dumps(params))
    took = time.perf_counter() - t0
    print(f"fixture: {classes * per_class} videos × {frames} frames in {took:.1f} s")
    return tree


def prepare_db(
    tree: Path, out: Path, codec: str, workers: int, resize: str = "cv2-cubic"
) -> dict[str, Any]:
    """Prepare ``tree`` (split 1, all videos, 64 px) into ``out``; return the timing row."""
    opts = store.PrepareOptions(
        root=str(tree / "UCF-101"),
        splits=str(tree / "ucfTrainTestlist"),
        out=str(out),
        subset="all",
        size=64,
        resize=resize,
        workers=workers,
        codec=codec,
        overwrite=True,
        progress=False,
    )
    t0 = time.perf_counter()
    report = store.prepare(opts, argv=["bench_data"])
    wall = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    return {
        "codec": codec,
        "resize": resize,
        "workers": workers,
        "videos": report.written,
        "frames": report.frames,
        "seconds": wall,
        "videos_s": report.written / wall,
        "frames_s": report.frames / wall,
        "bytes_per_frame": size / report.frames,
    }


class DirectDecode(Dataset):
    """Training clips decoded straight from the AVI files for every item."""

    def __init__(self, tree: Path, frames: int = 16, size: int = 64, seed: int = 0) -> None:
        lists = tree / "ucfTrainTestlist"
        names = [line.split()[1] for line in (lists / "classInd.txt").read_text().splitlines()]
        rows = [
            line.split()[0]
            for name in ("trainlist01.txt", "testlist01.txt")
            for line in (lists / name).read_text().splitlines()
            if line.strip()
        ]
        self.videos = [str(tree / "UCF-101" / r) for r in rows]
        self.labels = [names.index(r.split("/")[0]) for r in rows]
        self.lengths = [self._count(p) for p in self.videos]
        self.frames, self.size, self.seed = frames, size, seed
        self.width = store.stored_width(size)
        self.x0 = (self.width - size) // 2

    @staticmethod
    def _count(path: str) -> int:
        import av

        with av.open(path) as c:
            return int(c.streams.video[0].frames)

    def __len__(self) -> int:
        return len(self.videos) * 32

    def raw_clip(self, index: int) -> np.ndarray:
        """uint8 (T, H, W, 3): seek, decode, resize, crop."""
        import av

        v = index % len(self.videos)
        rng = np.random.default_rng([self.seed, index])
        offset = int(rng.integers(0, self.lengths[v] - self.frames + 1))
        out = []
        with av.open(self.videos[v]) as container:
            stream = container.streams.video[0]
            container.seek(offset, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None or frame.pts < offset:
                    continue
                image = store.resize_frame(frame, self.size, self.width)
                out.append(image[:, self.x0 : self.x0 + self.size])
                if len(out) == self.frames:
                    break
        return np.stack(out)

    def __getitem__(self, index: int) -> dict[str, Any]:
        raw = torch.from_numpy(self.raw_clip(index))
        video = torch.empty((3, *raw.shape[:3]))
        video.copy_(raw.permute(3, 0, 1, 2))
        return {
            "video": video.sub_(128.0).mul_(1.0 / 128.0),
            "label": self.labels[index % len(self.videos)],
        }


class NoOp(Dataset):
    """One constant clip for every item: what the DataLoader costs by itself."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.clip = torch.zeros(3, 16, 64, 64)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"video": self.clip, "label": 0}


def clips_per_second(ds: Dataset, workers: int, batch: int, seconds: float, seed: int) -> float:
    """Clips/s of one DataLoader pass after warm-up: ≥ ``seconds`` and ≥ 4 timed batches."""
    sampler = RandomSampler(ds, replacement=True, num_samples=10**9,
                            generator=torch.Generator().manual_seed(seed))  # fmt: skip
    loader = DataLoader(
        ds,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
    )
    it = iter(loader)
    for _ in range(2 * workers + 1):  # start-up and the prefetched batches are not timed
        next(it)
    n = 0
    t0 = time.perf_counter()
    while True:
        n += len(next(it)["label"])
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and n >= 4 * batch:
            break
    del it
    return n / elapsed


def resize_ms_per_frame(tree: Path, blocks: int) -> dict[str, list[float]]:
    """Milliseconds per 320×240 → 64×85 frame for each ``--resize`` method of prepare, timed
    on the same decoded frames in interleaved blocks."""
    import av

    source = next(iter(sorted((tree / "UCF-101").rglob("*.avi"))))
    with av.open(str(source)) as container:
        frames = [f for _, f in zip(range(50), container.decode(video=0))]
    times: dict[str, list[float]] = {method: [] for method in store.RESIZES}
    for _ in range(blocks):
        for method in store.RESIZES:
            start = time.perf_counter()
            for frame in frames:
                store.resize_frame(frame, 64, 85, method)
            times[method].append((time.perf_counter() - start) / len(frames) * 1e3)
    return times


def check_readers_agree(tree: Path, db: Path) -> None:
    """Sanity: the direct decoder and the database give the same pixels for a clip."""
    direct = DirectDecode(tree)
    ds = store.Database(db)
    src = {v.source: v.id for v in ds.videos}
    for index in (0, 5):
        clip = direct.raw_clip(index)
        v = index % len(direct.videos)
        rel = Path(direct.videos[v]).relative_to(tree / "UCF-101").as_posix()
        rng = np.random.default_rng([0, index])
        offset = int(rng.integers(0, direct.lengths[v] - 16 + 1))
        stored = ds.read_frames(src[rel], range(offset, offset + 16), 10, 74)
        if not np.array_equal(clip, stored):
            raise SystemExit("direct decode and database disagree: the benchmark is not fair")
    ds.close()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/ndevgan-bench-data"))
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--videos-per-class", type=int, default=4)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--workers", default="0,2", help="worker counts, comma separated")
    parser.add_argument("--quick", action="store_true", help="1 block of 0.5 s: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.blocks, args.seconds = 1, 0.5
    worker_counts = [int(w) for w in args.workers.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    tree = ensure_fixture(args.work, args.classes, args.videos_per_class, args.frames)
    cores = os.cpu_count() or 1

    print(f"# ndevgan data benchmark — {time.strftime('%Y-%m-%d')}")
    print(
        f"\nmachine: {cores} CPU cores ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
        f"Python {platform.python_version()}"
    )
    print(
        f"fixture: {args.classes} classes × {args.videos_per_class} videos × {args.frames} "
        "frames, 320×240 mpeg4/XVID AVI, 25 fps, 500 kb/s, keyframe every 12 frames\n"
    )

    rows = []
    for codec in ("raw", "zlib"):
        for workers in (cores, 0):
            rows.append(prepare_db(tree, args.work / f"db-{codec}", codec, workers))
    rows.append(prepare_db(tree, args.work / "db-aa", "raw", cores, "antialiased"))
    print("## Prepare (split 1, all videos, 64×85 stored)\n")
    print(
        "| codec | resize | workers | videos | frames | seconds | videos/s | frames/s | "
        "bytes/frame |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['codec']} | {r['resize']} | {r['workers']} | {r['videos']} | {r['frames']} | "
            f"{r['seconds']:.2f} | {r['videos_s']:.1f} | {r['frames_s']:.0f} | "
            f"{r['bytes_per_frame']:.0f} |"
        )
    print(
        f"\n(raw frame: 64×85×3 = {64 * 85 * 3} bytes; bytes/frame = database files ÷ stored "
        "frames, LMDB pages and records included)\n"
    )

    resize = resize_ms_per_frame(tree, args.blocks)
    cubic, smooth = (statistics.median(resize[m]) for m in ("cv2-cubic", "antialiased"))
    print("## Resize (one 320×240 frame → 64×85, per `--resize` method)\n")
    print("| method | ms/frame | × antialiased |\n|---|---:|---:|")
    print(f"| cv2-cubic (default, the authors') | {cubic:.2f} | {cubic / smooth:.1f} |")
    print(f"| antialiased (libswscale) | {smooth:.2f} | 1.0 |\n")

    check_readers_agree(tree, args.work / "db-raw")
    unchecked = without_checksums(args.work / "db-raw", args.work / "db-raw-v1")
    spec = nd.VideoSpec(16, 64, 64, 3)
    readers: dict[str, Dataset] = {
        "lmdb raw": UCF101Dataset(UCF101Config(path=str(args.work / "db-raw")), spec),
        "lmdb zlib": UCF101Dataset(UCF101Config(path=str(args.work / "db-zlib")), spec),
        "lmdb raw uint8": UCF101Dataset(
            UCF101Config(path=str(args.work / "db-raw")), spec, as_uint8=True
        ),
        "lmdb raw uint8, no checksums": UCF101Dataset(
            UCF101Config(path=str(unchecked)), spec, as_uint8=True
        ),
        "direct decode": DirectDecode(tree),
        "no-op": NoOp(10_000),
    }
    configs = [(name, w) for w in worker_counts for name in readers]
    results: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    t_start = time.perf_counter()
    for block in range(args.blocks):
        order = configs[block % len(configs) :] + configs[: block % len(configs)]
        for name, workers in order:
            rate = clips_per_second(readers[name], workers, args.batch, args.seconds, block)
            results[(name, workers)].append(rate)
    print(
        f"## Training clips: 16×64×64, batch {args.batch}, median of {args.blocks} interleaved "
        f"blocks of ≥ {args.seconds:g} s ({time.perf_counter() - t_start:.0f} s in all)\n"
    )
    print("| reader | workers | clips/s | min–max | × direct decode |")
    print("|---|---:|---:|---:|---:|")
    for workers in worker_counts:
        base = statistics.median(results[("direct decode", workers)])
        for name in readers:
            rates = results[(name, workers)]
            med = statistics.median(rates)
            print(
                f"| {name} | {workers} | {med:,.0f} | {min(rates):,.0f}–{max(rates):,.0f} | "
                f"{med / base:.1f}× |"
            )
    print("\n## Cost of the record checksums (CRC-32, verified on a frame's first read; uint8)\n")
    print("| workers | clips/s with | clips/s without (format 1) | cost |\n|---:|---:|---:|---:|")
    for workers in worker_counts:
        checked = statistics.median(results[("lmdb raw uint8", workers)])
        plain = statistics.median(results[("lmdb raw uint8, no checksums", workers)])
        print(
            f"| {workers} | {checked:,.0f} | {plain:,.0f} | {100 * (1 - checked / plain):+.1f}% |"
        )
    repeats = max(6, 2 * args.blocks)
    warm = reader_seconds(args.work / "db-raw", unchecked, repeats)
    print(
        f"\nThe reader alone (`Database.read_frames`, 3,000 random 16-frame crops, the two "
        f"databases alternating, median of {repeats}): {warm[0]:.3f} s with checksums, "
        f"{warm[1]:.3f} s without ({100 * (warm[0] / warm[1] - 1):+.1f}%)."
    )
    cold: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(max(3, args.blocks)):
        for label, path in (("with", args.work / "db-raw"), ("without", unchecked)):
            cold[label].append(read_everything_once(path))
    with_s, without_s = statistics.median(cold["with"]), statistics.median(cold["without"])
    print(
        f"First read of every frame (a fresh reader; median of {len(cold['with'])}): "
        f"{with_s:.3f} s with checksums, {without_s:.3f} s without "
        f"({100 * (with_s / without_s - 1):+.1f}%). A reader verifies each frame's checksum on "
        "its first read and remembers it, so the CRC is paid once per frame and process."
    )


def reader_seconds(checked: Path, unchecked: Path, repeats: int) -> tuple[float, float]:
    """Median seconds to read the same 3,000 random 16-frame crops from each database, the
    two alternating (after one warm-up pass each)."""
    rng = np.random.default_rng(0)
    readers = (store.Database(checked), store.Database(unchecked))
    clips = [
        (v, int(rng.integers(0, readers[0].videos[v].frames - 16)))
        for v in rng.integers(0, len(readers[0].videos), 3000).tolist()
    ]
    times: tuple[list[float], list[float]] = ([], [])
    for rep in range(repeats + 1):
        for k in (0, 1) if rep % 2 == 0 else (1, 0):
            start = time.perf_counter()
            for video, offset in clips:
                readers[k].read_frames(video, range(offset, offset + 16), 10, 74)
            if rep:  # the first pass warms the page cache and the verified bits
                times[k].append(time.perf_counter() - start)
    for reader in readers:
        reader.close()
    return statistics.median(times[0]), statistics.median(times[1])


def read_everything_once(db: Path) -> float:
    """Seconds for a fresh reader to read every frame of every video once."""
    database = store.Database(db)
    start = time.perf_counter()
    for video in database.videos:
        database.read_video(video.id)
    took = time.perf_counter() - start
    database.close()
    return took


def without_checksums(db: Path, out: Path) -> Path:
    """A copy of ``db`` in format version 1 (records without their CRC-32): the reader's
    throughput on it against the original is what verifying the checksums costs."""
    import lmdb

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(db, out)
    env = lmdb.open(str(out), map_size=1 << 34)
    with env.begin(write=True) as txn:
        for key, value in list(txn.cursor()):
            if key != store.META_KEY:
                txn.put(key, bytes(store.unseal(value)))
        meta = json.loads(txn.get(store.META_KEY))
        meta["version"] = 1
        txn.put(store.META_KEY, json.dumps(meta).encode())
    env.close()
    return out


if __name__ == "__main__":
    main()
