"""``dataset.ucf101`` and the ``ndevgan data`` commands: UCF101 from one LMDB database.

Prepare once, from the official archive unpacked (``UCF-101/<Class>/v_*.avi`` and
``ucfTrainTestlist/``)::

    ndevgan data prepare ucf101 --root UCF-101 --splits ucfTrainTestlist \\
        --split 1 --subset train --size 64 --out ucf101-64.lmdb
    ndevgan data info ucf101-64.lmdb
    ndevgan data show ucf101-64.lmdb --video 0 --out v0.mp4

then train from it: ``ndevgan run --plugin dataset.ucf101 --set dataset.ucf101.path=…``.
The format and the prepare pipeline live in :mod:`ndevgan_plugins.ucf101_store`.

**Items.** An epoch holds ``clips_per_video`` draws of each stored video (long enough for a
clip): item ``i`` is video ``i mod V``. With ``offsets = "fresh"`` (the default, as the paper's
code) every draw starts at a uniformly random frame, new in every epoch (the trainer passes the
epoch with the index: :attr:`~ndevgan_core.contracts.VideoDataset.epoch_indices`); with
``"fixed"``, variant ``r = i // V`` starts at a random offset inside the ``r``-th of
``clips_per_video`` equal strata and item ``i`` is the same clip in every epoch. Offsets,
flips and (``crop = "random"``) x offsets come from a hash of (``seed``, ``i``, epoch), so a
draw is the same in every process: with 0 or N DataLoader workers, fork or spawn, across
torchrun ranks and after a resume.

**Protocol.** Clips are ``frames`` consecutive frames (every ``stride``-th), the width
centre-cropped to the backbone's (64×85 → columns [10:74]; 192×256 → [32:224]), normalised
as (x − 128)/128. A backbone smaller than the stored height by an integer factor k gets
the k× wider crop box-averaged down (stored 192 → TGANv2's 64 px preset); any other size is
refused, naming the fix. MoCoGAN's image discriminator takes single random frames:
:meth:`UCF101Dataset.frame`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import attrs
import click
import numpy as np
import torch

import ndevgan_core as nd
from ndevgan_core import non_negative, one_of, option, positive

from . import ucf101_store as store

_MASK = (1 << 64) - 1


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _mix(*values: int) -> int:
    """A 64-bit hash of integers (SplitMix64 chained): cheap, stable, well spread."""
    h = 0
    for v in values:
        h = _splitmix(h ^ (v & _MASK))
    return h


@attrs.frozen
class UCF101Config:
    """Options of ``dataset.ucf101``."""

    path: str = option("", "the LMDB database `ndevgan data prepare ucf101 --out` made (required)")
    stride: int = option(
        1, "take every stride-th frame: a clip spans (frames-1)·stride+1", positive
    )
    flip: bool = option(False, "mirror half of the clips left-right (TGANv2)")
    crop: str = option(
        "protocol",
        "protocol: centre crop to the backbone's width ([10:74] of 85 at 64 px, [32:224] of "
        "256 at 192 px); random: a random x offset per clip (TGANv2)",
        one_of("protocol", "random"),
    )
    offsets: str = option(
        "fresh",
        "fresh (the paper's code: every draw of a video takes a new uniformly random first "
        "frame, a new one each epoch) or fixed (item i is always the same clip; offsets "
        "stratified over clips_per_video variants)",
        one_of("fresh", "fixed"),
    )
    clips_per_video: int = option(
        32, "draws of each video per epoch (len = videos × this)", positive
    )
    seed: int = option(0, "seed of offsets, flips and crops (item i is a fixed clip)", non_negative)
    uint8: bool = option(
        True,
        "hand clips to the trainer as uint8 (T, H, W, 3), normalised on the device: a quarter "
        "of the bytes between worker processes (docs/BENCH_DATA.md); false: float (C, T, H, W)",
    )

    def __attrs_post_init__(self) -> None:
        if not self.path:
            raise nd.ConfigError(
                "path: required — the LMDB database made by `ndevgan data prepare ucf101 … "
                "--out DB`; set it with --set dataset.ucf101.path=DB"
            )


class UCF101Dataset(nd.VideoDataset):
    """UCF101 clips from a prepared LMDB database, shaped for a backbone's :class:`VideoSpec`.

    Items are ``{"video": float (3, T, H, W) in [-1, 1], "label": int}`` (see the module
    docstring for which clip item ``i`` is); ``video`` is a channels-last view — batches from a
    DataLoader are contiguous, call ``.contiguous()`` on a single item if you need it. With
    ``as_uint8=True`` (Python API, for training loops that normalise on the device) ``video``
    is ``uint8`` (T, H, W, 3) instead: a quarter of the bytes to move between processes. The
    LMDB handle is opened lazily in each process that reads (see
    :class:`~ndevgan_plugins.ucf101_store.Database`).
    """

    plugin_name = "dataset.ucf101"
    prepare_command = "ndevgan data prepare ucf101"

    def __init__(self, config: UCF101Config, spec: nd.VideoSpec, *, as_uint8: bool = False) -> None:
        self.config = config
        self.epoch_indices = config.offsets == "fresh"
        self.as_uint8 = as_uint8
        where = f"{self.plugin_name}.path"
        self.db = store.Database(config.path, what=where)
        height, width = self.db.height, self.db.width
        if spec.channels != 3:
            raise nd.ConfigError(f"{self.plugin_name} has RGB frames; the backbone asks for {spec}")
        factor = height // spec.height if spec.height else 0
        if factor < 1 or height != factor * spec.height or spec.width * factor > width:
            multiples = ", ".join(str(spec.height * k) for k in (1, 2, 3))
            raise nd.ConfigError(
                f"{where}: {self.db.path} was prepared at {height}×{width} (rows×cols) but the "
                f"backbone needs {spec.height}×{spec.width} frames; the stored height must be "
                f"{spec.height} or an integer multiple of it ({multiples}, …) and wide enough. "
                f"Prepare one with `{self.prepare_command} … --size {spec.height}`"
            )
        self.factor = factor
        self.crop_width = spec.width * factor
        self.center_x = (width - self.crop_width) // 2
        self.span = (spec.frames - 1) * config.stride + 1
        usable = [v for v in self.db.videos if v.frames >= self.span]
        if not usable:
            longest = max((v.frames for v in self.db.videos), default=0)
            raise nd.ConfigError(
                f"{self.plugin_name}: no video in {self.db.path} has the {self.span} frames a clip "
                f"of {spec.frames} frames at stride {config.stride} needs (longest: {longest})"
            )
        self.excluded = len(self.db.videos) - len(usable)  # too short at this stride
        self.video_ids = np.array([v.id for v in usable], dtype=np.int64)
        self.video_frames = np.array([v.frames for v in usable], dtype=np.int64)
        self.labels = np.array([v.label for v in usable], dtype=np.int64)
        self.spec = nd.VideoSpec(spec.frames, spec.height, spec.width, 3)
        self.class_names = self.db.class_names

    def __len__(self) -> int:
        return len(self.video_ids) * self.config.clips_per_video

    def video_of(self, index: int) -> int:
        """The database video id of item ``index``."""
        return int(self.video_ids[self._position(index)])

    def _position(self, index: int) -> int:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.plugin_name} has {len(self)} clips; asked for {index}")
        return index % len(self.video_ids)

    def placement(self, index: int, draw: int = 0) -> tuple[int, int, bool]:
        """(first frame, crop x offset, flip) of item ``index`` (``draw`` > 0: another clip)."""
        pos = self._position(index)
        variant = index // len(self.video_ids)
        h = _mix(self.config.seed, index, draw)
        offsets = int(self.video_frames[pos]) - self.span + 1
        if self.config.offsets == "fresh":
            first = h % offsets  # uniform over every start, new for each (index, draw)
        else:
            per = self.config.clips_per_video
            lo = variant * offsets // per  # variant r draws from the r-th of `per` strata
            hi = max((variant + 1) * offsets // per, lo + 1)
            first = min(lo + h % (hi - lo), offsets - 1)
        h = _splitmix(h)
        if self.config.crop == "random":
            x0 = int(h % (self.db.width - self.crop_width + 1))
        else:
            x0 = self.center_x
        flip = self.config.flip and bool(_splitmix(h) & 1)
        return first, x0, flip

    def clip_uint8(self, index: int, draw: int = 0) -> np.ndarray:
        """Item ``index`` as ``uint8`` (T, H, W, 3), cropped, flipped and downsampled."""
        first, x0, flip = self.placement(index, draw)
        frames = range(first, first + self.span, self.config.stride)
        raw = self.db.read_frames(self.video_of(index), frames, x0, x0 + self.crop_width, flip)
        if self.factor == 1:
            return raw
        return np.rint(self._downsample(raw)).astype(np.uint8)

    def _downsample(self, raw: np.ndarray) -> np.ndarray:
        k, s = self.factor, self.spec
        blocks = raw.reshape(raw.shape[0], s.height, k, s.width, k, 3)
        return blocks.mean(axis=(2, 4), dtype=np.float32)

    def clip(self, index: int, draw: int = 0) -> dict[str, Any]:
        """Item ``index`` (``draw`` > 0 picks another offset, flip and crop of the same video)."""
        label = int(self.labels[self._position(index)])
        if self.as_uint8:
            return {"video": torch.from_numpy(self.clip_uint8(index, draw)), "label": label}
        first, x0, flip = self.placement(index, draw)
        frames = range(first, first + self.span, self.config.stride)
        raw = self.db.read_frames(self.video_of(index), frames, x0, x0 + self.crop_width, flip)
        if self.factor == 1:
            video = torch.from_numpy(raw).to(torch.float32)
        else:
            video = torch.from_numpy(self._downsample(raw))
        # Normalised in (T, H, W, C) order, where it vectorises, and returned as a (C, T, H, W)
        # view: the DataLoader's collation makes the one layout copy every batch needs anyway.
        video.sub_(128.0).mul_(1.0 / 128.0)
        return {"video": video.permute(3, 0, 1, 2), "label": label}

    def __getitem__(self, index: int) -> dict[str, Any]:
        # with fresh offsets the trainer passes i + epoch·len: item i, draw `epoch`
        draw, index = divmod(int(index), len(self)) if self.epoch_indices else (0, int(index))
        return self.clip(index, draw)

    def frame(self, index: int, draw: int = 0) -> torch.Tensor:
        """One random frame of item ``index``'s video, float (3, H, W) in [-1, 1].

        For image discriminators that see single real frames (MoCoGAN's D_I): the same
        reader, crop, flip and normalisation as the clips, the frame drawn from (seed, index,
        draw) anywhere in the video.
        """
        pos = self._position(index)
        h = _mix(self.config.seed, index, draw, 0x46524D)
        f = int(h % int(self.video_frames[pos]))
        x0 = self.center_x
        if self.config.crop == "random":
            x0 = int(_splitmix(h) % (self.db.width - self.crop_width + 1))
        flip = self.config.flip and bool(_splitmix(h ^ 1) & 1)
        raw = self.db.read_frames(self.video_of(index), [f], x0, x0 + self.crop_width, flip)
        source = torch.from_numpy(raw if self.factor == 1 else self._downsample(raw))[0]
        image = source.permute(2, 0, 1).to(torch.float32, copy=True)
        return image.sub_(128.0).mul_(1.0 / 128.0)

    def close(self) -> None:
        """Close this process's LMDB handle (e.g. before starting DataLoader workers)."""
        self.db.close()


def build(config: UCF101Config, spec: nd.VideoSpec) -> UCF101Dataset:
    """Factory of ``dataset.ucf101``."""
    return UCF101Dataset(config, spec, as_uint8=config.uint8)


@attrs.frozen
class VideosConfig(UCF101Config):
    """Options of ``dataset.videos`` (those of ``dataset.ucf101``; its frames are square)."""

    path: str = option("", "the LMDB database `ndevgan data prepare videos --out` made (required)")

    def __attrs_post_init__(self) -> None:
        if not self.path:
            raise nd.ConfigError(
                "path: required — the LMDB database made by `ndevgan data prepare videos "
                "--root DIR --out DB`; set it with --set dataset.videos.path=DB"
            )


class VideosDataset(UCF101Dataset):
    """Clips of your own videos from a database ``ndevgan data prepare videos`` made: the
    reader, offsets, stride and flips of ``dataset.ucf101`` on square frames."""

    plugin_name = "dataset.videos"
    prepare_command = "ndevgan data prepare videos"


def build_videos(config: VideosConfig, spec: nd.VideoSpec) -> VideosDataset:
    """Factory of ``dataset.videos``."""
    return VideosDataset(config, spec, as_uint8=config.uint8)


@nd.hookimpl
def register_components(register: Any) -> None:
    """Register ``dataset.ucf101`` and ``dataset.videos``."""
    register("dataset.ucf101", build, UCF101Config)
    register("dataset.videos", build_videos, VideosConfig)


# --------------------------------------------------------------------------------------------
# ndevgan data …


@click.group("data")
def data_group() -> None:
    """Prepare and inspect datasets: UCF101 or a folder of videos → one LMDB database."""


@data_group.group("prepare")
def prepare_group() -> None:
    """Turn a data set's official files into one LMDB database."""


def _common_prepare_options(fn: Any) -> Any:
    """The options every ``data prepare`` layout shares (after its own ones)."""
    options = [
        click.option(
            "--out",
            required=True,
            type=nd.OutputPath(directory=True),
            help="The database directory to write.",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=0),
            default=os.cpu_count() or 1,
            show_default="CPU count",
            help="Decode processes (0: decode in this process).",
        ),
        click.option(
            "--min-frames",
            type=click.IntRange(min=1),
            default=16,
            show_default=True,
            help="Skip videos with fewer frames (too short for a clip).",
        ),
        click.option(
            "--codec",
            type=click.Choice(store.CODECS),
            default="raw",
            show_default=True,
            help="How frames are stored, both lossless: raw bytes (fastest to read) or zlib.",
        ),
        click.option(
            "--level", type=click.IntRange(1, 9), default=1, show_default=True, help="zlib level."
        ),
        click.option(
            "--resize",
            type=click.Choice(tuple(store.RESIZES)),
            default="cv2-cubic",
            show_default=True,
            help="cv2-cubic: OpenCV's INTER_CUBIC, not antialiased, as the paper's code prepared "
            "UCF101; antialiased: libswscale bicubic (less aliasing, not the authors' data).",
        ),
        click.option("--resume", is_flag=True, help="Continue an interrupted run (<out>.partial)."),
        click.option("--overwrite", is_flag=True, help="Replace an existing database at --out."),
        click.option(
            "--map-size",
            type=click.IntRange(min=0),
            default=0,
            help="LMDB map size in GiB (0: from the video count; grows when full).",
        ),
        click.option(
            "--limit", type=click.IntRange(min=0), default=0, help="Only the first N listed videos."
        ),
        nd.progress_option,
    ]
    for option_decorator in reversed(options):
        fn = option_decorator(fn)
    return fn


def _run_prepare(opts: store.PrepareOptions) -> None:
    report = store.prepare(opts, argv=["ndevgan", *sys.argv[1:]])
    for line in report.lines():
        click.echo(line)
    if report.interrupted:
        click.echo(
            f"stopped early; continue with the same command plus --resume ({report.partial} "
            "keeps the videos written so far)",
            err=True,
        )
        sys.exit(130)
    if not report.total_videos:
        raise click.ClickException(
            f"no video could be written, so no database was made at {report.out} (see the "
            "skipped list above)"
        )


@prepare_group.command("ucf101")
@click.option(
    "--root",
    required=True,
    type=click.Path(),
    help="The unpacked UCF-101 folder (one sub-folder of .avi files per class).",
)
@click.option(
    "--splits",
    type=click.Path(),
    default=None,
    help="The unpacked ucfTrainTestlist folder (default: beside or inside --root).",
)
@click.option(
    "--split",
    type=click.IntRange(1, 3),
    default=1,
    show_default=True,
    help="Which official split (trainlist0N/testlist0N).",
)
@click.option(
    "--subset",
    type=click.Choice(store.SUBSETS),
    default="train",
    show_default=True,
    help="The split's train list, its test list, or both.",
)
@click.option(
    "--size",
    type=click.IntRange(min=8),
    default=64,
    show_default=True,
    help="Stored frame height; the width is round(size·4/3): 64 → 64×85, 192 → 192×256.",
)
@_common_prepare_options
def prepare_ucf101(
    root: str,
    splits: str | None,
    split: int,
    subset: str,
    size: int,
    **common: Any,
) -> None:
    """Decode UCF101 once into an LMDB database of resized frames.

    Videos are decoded in parallel, resized bicubic (--resize) to SIZE×round(SIZE·4/3) and stored
    losslessly, each frame once. A missing, unreadable, truncated or too short video is
    skipped and listed at the end; the run succeeds if at least one video was written. The
    database appears at --out only when complete; Ctrl-C leaves OUT.partial, which --resume
    continues without redoing the videos it holds.
    """
    common["map_size"] <<= 30
    opts = store.PrepareOptions(
        root=root, splits=splits, split=split, subset=subset, size=size, **common
    )
    _run_prepare(opts)


@prepare_group.command("videos")
@click.option(
    "--root",
    required=True,
    type=click.Path(),
    help="A folder of videos (MP4, WebM, AVI, MOV, MKV; any codec PyAV decodes), optionally "
    "one sub-folder per class.",
)
@click.option(
    "--split-file",
    type=click.Path(),
    default=None,
    help="Take only the videos this file lists (one path relative to --root per line).",
)
@click.option(
    "--size",
    type=click.IntRange(min=8),
    default=64,
    show_default=True,
    help="Stored frames are SIZE×SIZE.",
)
@click.option(
    "--fit",
    type=click.Choice(store.FITS),
    default="crop",
    show_default=True,
    help="Frames of another aspect ratio: crop (the centred square) or pad (black bars).",
)
@_common_prepare_options
def prepare_videos(root: str, split_file: str | None, size: int, fit: str, **common: Any) -> None:
    """Decode a folder of your own videos once into an LMDB database for dataset.videos.

    Every video under --root (any resolution and aspect ratio) is decoded in parallel, made
    square (--fit), resized to SIZE×SIZE and stored losslessly; a video in a sub-folder is of
    that folder's class. The same guarantees as UCF101's prepare: bad files are skipped and
    listed, the database appears at --out only when complete, --resume continues OUT.partial.
    """
    common["map_size"] <<= 30
    opts = store.PrepareOptions(
        root=root,
        split_file=split_file,
        size=size,
        fit=fit,
        source_layout="folder",
        **common,
    )
    _run_prepare(opts)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def database_summary(db: store.Database) -> dict[str, Any]:
    """The meta record plus counts measured from the database (what ``data info`` prints)."""
    frames = [v.frames for v in db.videos]
    per_class: dict[str, int] = {}
    for v in db.videos:
        per_class[v.class_name] = per_class.get(v.class_name, 0) + 1
    size = db.size_bytes()
    stored = sum(frames)
    return {
        "path": str(db.path),
        "meta": db.meta,
        "videos": len(frames),
        "frames": stored,
        "frames_per_video": {
            "min": min(frames),
            "max": max(frames),
            "mean": round(stored / len(frames), 2),
        },
        "videos_per_class": per_class,
        "bytes": size,
        "bytes_per_frame": round(size / stored, 1),
    }


@data_group.command("info")
@click.argument("db", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON (meta record and counts).")
def info_command(db: str, as_json: bool) -> None:
    """Print a database's meta record and counts."""
    database = store.Database(db)
    summary = database_summary(database)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    meta = summary["meta"]
    fpv = summary["frames_per_video"]
    skipped = meta.get("skipped", {})
    names = meta["class_names"]
    rows = [
        ("database", summary["path"]),
        ("format", f"{meta['format']} version {meta['version']}"),
        ("split", f"{meta['split']}, subset {meta['subset']}"),
        (
            "frames",
            f"{meta['height']}×{meta['width']} (rows×cols) RGB uint8, codec {meta['codec']}"
            + (f" level {meta['level']}" if meta["codec"] == "zlib" else ""),
        ),
        ("resize", meta.get("resize", "")),
        ("classes", f"{len(names)}: " + ", ".join(names[:5]) + (", …" if len(names) > 5 else "")),
        (
            "videos",
            f"{summary['videos']} of {meta.get('listed', '?')} listed; {summary['frames']} "
            f"frames, {fpv['min']}-{fpv['max']} per video (mean {fpv['mean']})",
        ),
        (
            "skipped",
            f"{sum(skipped.values())}"
            + (": " + ", ".join(f"{k} {v}" for k, v in skipped.items()) if skipped else ""),
        ),
        (
            "size",
            f"{_human_bytes(summary['bytes'])} ({summary['bytes_per_frame']:.0f} bytes per "
            "stored frame)",
        ),
        ("min frames", str(meta.get("min_frames", ""))),
        (
            "checked",
            "file size against the LMDB header, every video record"
            + (" (checksums)" if database.checksums else " (version 1: no checksums)")
            + "; `ndevgan data verify` checks every frame",
        ),
        ("made by", meta.get("command", "")),
        ("created", f"{meta.get('created', '')} (ndevgan {meta.get('ndevgan', '?')})"),
    ]
    for resume in meta.get("resumes", []):
        rows.append(("resumed by", resume))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key.ljust(width)}  {value}")
    for reason, files in meta.get("skipped_files", {}).items():
        click.echo(f"  {reason}: " + ", ".join(files))


@data_group.command("verify")
@click.argument("db", type=click.Path())
@nd.progress_option
def verify_command(db: str, progress: bool) -> None:
    """Check every record of a database: each frame present, of the stored size, and (version
    2 on) matching its checksum. Lists every damaged record; exits 1 if there is one."""
    database = store.Database(db)
    with nd.progress_bar(
        total=len(database.videos), disable=not progress, desc="verify", unit="video"
    ) as bar:
        problems = database.verify(bar.update)
    frames = sum(v.frames for v in database.videos)
    if not database.checksums:
        click.echo(f"{db}: format version 1 has no checksums; only presence and size checked")
    if problems:
        for line in problems:
            click.echo(f"damaged: {line}", err=True)
        raise click.ClickException(
            f"{db}: {len(problems)} of {frames} frame records are damaged or missing; prepare "
            "the database again"
        )
    click.echo(f"{db}: all {frames} frames of {len(database.videos)} videos are intact")


@data_group.command("show")
@click.argument("db", type=click.Path(), required=False)
@click.option("--video", "video", type=click.IntRange(min=0), required=True, help="Video id.")
@click.option(
    "--out",
    required=True,
    type=nd.OutputPath(),
    help="x.mp4 or x.gif (the video) or x.png (a strip of up to 16 frames).",
)
@click.option(
    "--fps",
    type=click.IntRange(min=1),
    default=25,
    show_default=True,
    help="Frames per second of the MP4 and GIF files.",
)
@click.option(
    "--dataset",
    "dataset_name",
    metavar="NAME",
    help="Instead of a database DB: a clip of any dataset plugin (e.g. dataset.shapes).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="With --dataset: an option of that plugin (e.g. videos=64).",
)
@click.option(
    "--size", type=click.IntRange(min=1), default=64, show_default=True, help="With --dataset."
)
@click.option(
    "--frames", type=click.IntRange(min=1), default=16, show_default=True, help="With --dataset."
)
def show_command(
    db: str | None,
    video: int,
    out: str,
    fps: int,
    dataset_name: str | None,
    overrides: tuple[str, ...],
    size: int,
    frames: int,
) -> None:
    """Write one stored video (of database DB, or clip --video of a dataset plugin) back out,
    to look at what training will see."""
    from ndevgan_core import media

    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in (*media.VIDEO_SUFFIXES, ".png"):
        raise click.BadParameter("expected a file ending in .mp4, .gif or .png", param_hint="--out")
    if (db is None) == (dataset_name is None):
        raise click.UsageError("give a database DB or --dataset NAME (one of them)")
    if dataset_name is not None:
        options = {}
        for expr in overrides:
            key, eq, value = expr.partition("=")
            if not eq:
                raise click.BadParameter(f"expected KEY=VALUE, got {expr!r}", param_hint="--set")
            options[key.strip()] = nd.parse_value(value)
        clips = nd.dataset(dataset_name, (frames, size, size), **options)
        if video >= len(clips):
            raise nd.ConfigError(f"--video {video}: {clips.name} has clips 0-{len(clips) - 1}")
        clip = clips.videos(1, video, dtype="uint8")  # (1, T, C, H, W)
        shown = np.ascontiguousarray(clip.transpose(0, 1, 3, 4, 2))
        label = clips.labels(1, video)[0]
        names = getattr(clips.dataset, "class_names", None)
        described = f"label {label}" + (f" ({names[label]})" if names and label is not None else "")
        if suffix == ".png":
            media.write_png(path, media.frame_strip(shown))
        else:
            media.write_video(path, shown[0], fps=fps)
        click.echo(
            f"clip {video} of {clips.name}: {described}, {frames} frames {size}×{size} → {path}"
        )
        return
    if overrides:
        raise click.UsageError("--set applies to --dataset")
    database = store.Database(db)
    if video >= len(database.videos):
        raise nd.ConfigError(
            f"--video {video}: {database.path} holds videos 0-{len(database.videos) - 1}"
        )
    frames_read = database.read_video(video)
    if suffix == ".png":
        media.write_png(path, media.frame_strip(frames_read[None]))
    else:
        media.write_video(path, frames_read, fps=fps)
    rec = database.videos[video]
    click.echo(
        f"video {video}: {rec.source} (class {rec.class_name}, label {rec.label}), "
        f"{rec.frames} frames {database.height}×{database.width} → {path}"
    )


@nd.hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``ndevgan data`` (prepare ucf101, info, show)."""
    cli.add_command(data_group)
