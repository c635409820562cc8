"""UCF101 in LMDB: the fixture tree, ``ndevgan data prepare/info/show``, and ``dataset.ucf101``.

Everything runs on the miniature official-layout tree that ``tools/make_ucf101_fixture.py``
writes (3 classes × 4 videos × 40 frames, XviD-tagged mpeg4 AVI at 320×240, 25 fps).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import lmdb
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import ndevgan_core as nd
from ndevgan_core import media
from ndevgan_core.cli import cli
from ndevgan_core.config import build_config
from ndevgan_core.errors import ConfigError
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import raw_config, resolve
from ndevgan_core.training.checkpoint import load_checkpoint
from ndevgan_plugins import ucf101_store as store
from ndevgan_plugins.ucf101 import UCF101Config, UCF101Dataset

from .conftest import FAST_MODEL, ROOT, ndevgan


def _load_fixture_tool():
    path = ROOT / "tools" / "make_ucf101_fixture.py"
    spec = importlib.util.spec_from_file_location("make_ucf101_fixture", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fixture_tool = _load_fixture_tool()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """The default fixture tree (12 videos, 40 frames each)."""
    return fixture_tool.make_fixture(tmp_path_factory.mktemp("ucf") / "data")


def prepare(tree: Path, out: Path, **kw) -> store.PrepareReport:
    """In-process prepare with test-friendly defaults (no workers, no progress bar)."""
    opts = {
        "root": str(tree / "UCF-101"),
        "splits": str(tree / "ucfTrainTestlist"),
        "out": str(out),
        "subset": "all",
        "workers": 0,
        "progress": False,
        **kw,
    }
    return store.prepare(store.PrepareOptions(**opts), argv=["test"])


@pytest.fixture(scope="module")
def db64(tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("db") / "ucf64.lmdb"
    report = prepare(tree, out)
    assert report.written == 12 and not report.skipped
    return out


def run_cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def cli_prepare(tree: Path, out: Path, *extra: str, env: dict[str, str] | None = None):
    return run_cli(
        "data",
        "prepare",
        "ucf101",
        "--root",
        str(tree / "UCF-101"),
        "--splits",
        str(tree / "ucfTrainTestlist"),
        "--subset",
        "all",
        "--workers",
        "0",
        "--no-progress",
        "--out",
        str(out),
        *extra,
        env=env,
    )


def contents(path: Path) -> dict[bytes, bytes]:
    """Every record but the meta one (frames and video records)."""
    env = lmdb.open(str(path), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return {k: v for k, v in txn.cursor() if k != store.META_KEY}
    finally:
        env.close()


def spec(frames: int = 16, size: int = 64) -> nd.VideoSpec:
    return nd.VideoSpec(frames, size, size, 3)


def to_uint8(clip: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) in [-1, 1] with (x - 128)/128 → uint8 (T, H, W, 3), exactly."""
    return (clip.permute(1, 2, 3, 0) * 128 + 128).round().to(torch.uint8).numpy()


# ---------------------------------------------------------------------------- the fixture


def test_fixture_has_the_official_layout_and_codec(tree, tmp_path):
    lists = tree / "ucfTrainTestlist"
    assert lists.joinpath("classInd.txt").read_bytes().startswith(b"1 ApplyEyeMakeup\r\n")
    train = lists.joinpath("trainlist01.txt").read_text().splitlines()
    test = lists.joinpath("testlist01.txt").read_text().splitlines()
    assert train[0] == "ApplyEyeMakeup/v_ApplyEyeMakeup_g13_c01.avi 1"
    assert test[0] == "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"  # no label
    assert len(train) + len(test) == 12
    for n in (2, 3):
        assert (lists / f"trainlist0{n}.txt").is_file() and (lists / f"testlist0{n}.txt").is_file()
    videos = sorted((tree / "UCF-101").glob("*/v_*_g*_c*.avi"))
    assert len(videos) == 12

    import av

    with av.open(str(videos[0])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "mpeg4"
        assert stream.codec_context.codec_tag == "XVID"
        assert (stream.width, stream.height) == (320, 240)
        assert stream.average_rate == 25
        assert sum(1 for _ in container.decode(stream)) == 40
    again = fixture_tool.make_fixture(tmp_path / "again")
    assert fixture_tool.fixture_digest(again) == fixture_tool.fixture_digest(tree)


# ---------------------------------------------------------------------------- prepare, info, show


def test_cli_prepare_info_show(tree, tmp_path):
    db = tmp_path / "db"
    # the command exactly as documented, in a real subprocess (workers: the CPU count)
    proc = ndevgan(
        "data",
        "prepare",
        "ucf101",
        "--root",
        str(tree / "UCF-101"),
        "--splits",
        str(tree / "ucfTrainTestlist"),
        "--split",
        "1",
        "--subset",
        "train",
        "--size",
        "64",
        "--out",
        str(db),
    )
    assert f"wrote {db}: 6 videos, 240 frames (64×85, raw) of 6 listed" in proc.stdout
    assert "videos/s" in proc.stdout and "skipped: none" in proc.stdout
    assert "video/s" in proc.stderr  # the progress bar's rate
    assert not store.partial_path(db).exists()

    out = ndevgan("data", "info", str(db)).stdout
    assert "ndevgan.ucf101-lmdb version 2" in out
    assert "64×85 (rows×cols)" in out and "split       1, subset train" in out
    assert "6 of 6 listed; 240 frames" in out
    assert "ndevgan data prepare ucf101 --root" in out

    summary = json.loads(run_cli("data", "info", str(db), "--json").output)
    meta = summary["meta"]
    assert meta["format"] == store.FORMAT and meta["version"] == store.VERSION
    assert (meta["split"], meta["subset"], meta["height"], meta["width"]) == (1, "train", 64, 85)
    assert meta["class_names"] == ["ApplyEyeMakeup", "ApplyLipstick", "Archery"]
    assert (meta["videos"], meta["frames"], meta["skipped"]) == (6, 240, {})
    assert meta["complete"] is True and "--size 64" in meta["command"]
    assert summary["bytes_per_frame"] < 64 * 85 * 3 * 1.1

    png, mp4 = tmp_path / "v.png", tmp_path / "v.mp4"
    result = run_cli("data", "show", str(db), "--video", "2", "--out", str(png))
    assert result.exit_code == 0 and "ApplyLipstick/v_ApplyLipstick_g13_c01.avi" in result.output
    strip = media.read_png(png)
    assert strip.shape == (64 + 4, 16 * (85 + 2) + 2, 3)
    run_cli("data", "show", str(db), "--video", "0", "--out", str(mp4), "--fps", "25")
    assert media.read_video(mp4).shape == (40, 64, 86, 3)  # mp4 pads odd widths
    bad = run_cli("data", "show", str(db), "--video", "6", "--out", str(png))
    assert bad.exit_code == 1 and "holds videos 0-5" in bad.output


def test_records_follow_the_split_files(db64, tree):
    meta = store.read_meta(db64)
    assert meta["videos"] == 12 and meta["frames"] == 480 and meta["listed"] == 12
    db = store.Database(db64)
    train = (tree / "ucfTrainTestlist" / "trainlist01.txt").read_text().split()
    listed = train[0::2] + (tree / "ucfTrainTestlist" / "testlist01.txt").read_text().split()
    assert [v.source for v in db.videos] == listed  # split-file order, train then test
    for v in db.videos:
        assert db.class_names[v.label] == v.class_name == v.source.split("/")[0]
        assert v.frames == 40


def test_stored_frames_equal_the_resized_decode(db64, tree):
    db = store.Database(db64)
    for vid in (0, 7):
        source = tree / "UCF-101" / db.videos[vid].source
        expected = store.decode_video(source, 64, 85)
        assert np.array_equal(db.read_video(vid), expected)  # lossless storage
    assert store.read_meta(db64)["resize"] == store.RESIZES["cv2-cubic"]


def test_cv2_cubic_matches_opencv_inter_cubic_on_decoded_frames(db64, tree):
    import av
    import cv2  # the dev extra's reference (opencv-python-headless)

    db = store.Database(db64)
    with av.open(str(tree / "UCF-101" / db.videos[0].source)) as c:
        frames = [f for _, f in zip(range(4), c.decode(video=0))]
    worst = 0
    for frame in frames:
        rgb = frame.to_ndarray(format="rgb24")
        for height, width in ((64, 85), (192, 256), (100, 30)):
            ours = store.resize_frame(frame, height, width)
            ref = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
            worst = max(worst, int(np.abs(ours.astype(int) - ref.astype(int)).max()))
    assert worst <= 1
    # antialiased is another filter: on fine detail it is far from OpenCV's
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(noise, format="rgb24")
    sharp = store.resize_frame(frame, 64, 85, "cv2-cubic")
    smooth = store.resize_frame(frame, 64, 85, "antialiased")
    ref = cv2.resize(noise, (85, 64), interpolation=cv2.INTER_CUBIC)
    assert np.abs(sharp.astype(int) - ref.astype(int)).max() <= 1
    assert np.abs(smooth.astype(float) - ref).mean() > 10
    assert smooth.std() < 0.5 * sharp.std()  # antialiasing removes the high frequencies


def test_zlib_codec_stores_the_same_frames(tree, db64, tmp_path):
    out = tmp_path / "z"
    report = prepare(tree, out, codec="zlib", limit=3)
    assert report.written == 3 and store.read_meta(out)["codec"] == "zlib"
    a, b = store.Database(out), store.Database(db64)
    for vid in range(3):
        assert np.array_equal(a.read_video(vid), b.read_video(vid))


def test_worker_pool_gives_the_same_database(tree, db64, tmp_path):
    out = tmp_path / "pool"
    report = prepare(tree, out, workers=2)
    assert report.written == 12
    assert contents(out) == contents(db64)


def test_decode_tasks_run_in_a_spawn_pool_by_default(tree):
    # a forked worker inherits the locks the parent's threads hold at that moment and can wait
    # on one forever (seen in this test suite: a worker of prepare(workers=2) stuck on a futex)
    assert store._pool_context().get_start_method() == "spawn"
    path = next((tree / "UCF-101").glob("Archery/*.avi"))
    tasks = [store.Task(i, str(path), 32, 43, "raw", 1, 16) for i in range(3)]
    with store.worker_pool(2) as pool:
        results = list(store.run_tasks(tasks, pool, 2))
    assert [r[0] for r in results] == [0, 1, 2]
    assert all(len(r[1]) == 40 and len(r[1][0]) == 4 + 32 * 43 * 3 for r in results)  # + CRC


def _bad_tree(tree: Path, where: Path) -> Path:
    """A copy of the fixture with one of each bad input."""
    bad = where / "bad"
    shutil.copytree(tree, bad)
    videos = bad / "UCF-101"
    truncated = videos / "ApplyEyeMakeup/v_ApplyEyeMakeup_g13_c01.avi"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (videos / "ApplyLipstick/v_ApplyLipstick_g13_c01.avi").write_bytes(
        bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8))
    )
    (videos / "Archery/v_Archery_g13_c01.avi").unlink()
    short = fixture_tool.render_frames(0, 2, 3, 5)
    fixture_tool.write_avi(videos / "Archery/v_Archery_g19_c01.avi", short)
    lists = bad / "ucfTrainTestlist"
    with open(lists / "trainlist01.txt", "ab") as fh:
        fh.write(b"Archery/v_Archery_g25_c07.avi 3\r\n")  # listed, never existed
        fh.write(b"Bowling/v_Bowling_g01_c01.avi 4\r\n")  # a class classInd does not have
    return bad


def test_bad_inputs_are_skipped_counted_and_listed(tree, tmp_path):
    bad = _bad_tree(tree, tmp_path)
    db = tmp_path / "db"
    result = cli_prepare(bad, db)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"wrote {db}: 8 videos" in out and "skipped 6 videos:" in out
    expected = {
        "missing (2)": ["Archery/v_Archery_g13_c01.avi", "Archery/v_Archery_g25_c07.avi"],
        "unreadable (1)": ["ApplyLipstick/v_ApplyLipstick_g13_c01.avi"],
        "truncated (1)": ["ApplyEyeMakeup/v_ApplyEyeMakeup_g13_c01.avi"],
        "too short (1)": ["Archery/v_Archery_g19_c01.avi"],
        "unknown class (1)": ["Bowling/v_Bowling_g01_c01.avi"],
    }
    for header, files in expected.items():
        assert f"  {header}:" in out
        for f in files:
            assert f"    {f}" in out
    assert "(5 frames, fewer than 16)" in out and "(Invalid data found when processing" in out
    meta = store.read_meta(db)
    assert meta["skipped"] == {
        "missing": 2,
        "unreadable": 1,
        "truncated": 1,
        "too short": 1,
        "unknown class": 1,
    }
    assert meta["skipped_files"]["truncated"] == ["ApplyEyeMakeup/v_ApplyEyeMakeup_g13_c01.avi"]
    assert meta["videos"] == 8 and meta["listed"] == 14
    info = run_cli("data", "info", str(db)).output
    assert "skipped     6: missing 2, unreadable 1, truncated 1, too short 1" in info


def test_a_run_that_writes_nothing_fails_and_leaves_nothing(tree, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tree / "ucfTrainTestlist", bad / "ucfTrainTestlist")
    for cls in ("ApplyEyeMakeup", "ApplyLipstick", "Archery"):
        (bad / "UCF-101" / cls).mkdir(parents=True)
    (bad / "UCF-101/Archery/v_Archery_g01_c01.avi").write_bytes(b"not a video")
    db = tmp_path / "db"
    result = cli_prepare(bad, db)
    assert result.exit_code == 1
    assert "no video could be written" in result.output and "missing (11)" in result.output
    assert "unreadable (1)" in result.output
    assert not db.exists() and not store.partial_path(db).exists()


def test_wrong_root_or_splits_fail_at_once_saying_what_was_expected(tree, tmp_path):
    result = cli_prepare(tmp_path / "nowhere", tmp_path / "db")
    assert result.exit_code == 1 and "--root" in result.output
    assert "expected the unpacked UCF-101 folder" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli(
        "data", "prepare", "ucf101", "--root", str(empty), "--splits",
        str(tree / "ucfTrainTestlist"), "--out", str(tmp_path / "db"),
    )  # fmt: skip
    assert result.exit_code == 1
    assert "none of the 3 class folders that classInd.txt lists (ApplyEyeMakeup" in result.output
    result = run_cli(
        "data", "prepare", "ucf101", "--root", str(tree / "UCF-101"), "--splits", str(empty),
        "--out", str(tmp_path / "db"),
    )  # fmt: skip
    assert result.exit_code == 1
    assert "missing classInd.txt, trainlist01.txt" in result.output
    assert "expected the ucfTrainTestlist folder" in result.output
    assert "Traceback" not in result.output
    # the parent of UCF-101 works as --root, and --splits is then found beside it
    db = tmp_path / "db"
    assert run_cli("data", "prepare", "ucf101", "--root", str(tree), "--workers", "0",
                   "--limit", "2", "--no-progress", "--out", str(db)).exit_code == 0  # fmt: skip
    assert store.read_meta(db)["videos"] == 2


def test_existing_database_needs_overwrite(tree, tmp_path):
    db = tmp_path / "db"
    assert cli_prepare(tree, db, "--limit", "2").exit_code == 0
    before = contents(db)
    result = cli_prepare(tree, db, "--limit", "3")
    assert result.exit_code == 1 and "already exists; pass --overwrite" in result.output
    assert contents(db) == before
    assert cli_prepare(tree, db, "--limit", "3", "--overwrite").exit_code == 0
    assert store.read_meta(db)["videos"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["db"]  # no temporary left behind
    other = tmp_path / "notes"
    other.mkdir()
    result = cli_prepare(tree, other, "--overwrite")
    assert result.exit_code == 1 and "is not an ndevgan UCF101 database; refusing" in result.output


def _ctrl_c_after(monkeypatch, videos: int) -> None:
    """Make prepare's writer raise KeyboardInterrupt (as Ctrl-C) when asked to write video
    number ``videos`` + 1, so exactly ``videos`` videos are stored."""
    original = store._Writer.add_video

    def add_video(self, video, record, frames):
        if video >= videos:
            raise KeyboardInterrupt
        original(self, video, record, frames)

    monkeypatch.setattr(store._Writer, "add_video", add_video)


def test_interrupted_prepare_resumes_without_redoing_videos(tree, db64, tmp_path, monkeypatch):
    db = tmp_path / "db"
    with monkeypatch.context() as patch:
        _ctrl_c_after(patch, 5)
        result = cli_prepare(tree, db)
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output and "--resume" in result.output
    partial = store.partial_path(db)
    assert partial.is_dir() and not db.exists()
    with pytest.raises(nd.ConfigError, match="only an interrupted prepare"):
        store.Database(db)
    result = cli_prepare(tree, db)
    assert result.exit_code == 1
    assert "holds an interrupted prepare; continue it with --resume" in result.output
    result = cli_prepare(tree, db, "--size", "32", "--resume")
    assert result.exit_code == 1 and "started with other options (height 64 → 32" in result.output
    result = cli_prepare(tree, db, "--resize", "antialiased", "--resume")
    assert result.exit_code == 1 and "started with other options (resize" in result.output

    result = cli_prepare(tree, db, "--resume")
    assert result.exit_code == 0, result.output
    assert "resumed: 5 videos (200 frames) were already in the database" in result.output
    assert "this run: 7 videos, 280 frames" in result.output
    assert f"wrote {db}: 12 videos, 480 frames" in result.output
    assert not partial.exists()
    assert contents(db) == contents(db64)  # the same database as one uninterrupted run
    meta, ref = store.read_meta(db), store.read_meta(db64)
    for key in ("videos", "frames", "skipped", "class_names", "height", "width", "codec"):
        assert meta[key] == ref[key]
    assert len(meta["resumes"]) == 1


# ---------------------------------------------------------------------------- dataset.ucf101


def test_clips_are_the_protocol_crop_of_the_decoded_frames(db64, tree):
    ds = UCF101Dataset(UCF101Config(path=str(db64)), spec())
    assert len(ds) == 12 * 32 and ds.excluded == 0
    assert ds.class_names == ("ApplyEyeMakeup", "ApplyLipstick", "Archery")
    assert (ds.center_x, ds.crop_width) == (10, 64)  # TGAN's width [10:74] of 85
    decoded = {}
    for index in (0, 5, 17, 12 * 31 + 11):
        item = ds[index]
        video = item["video"]
        assert video.shape == (3, 16, 64, 64) and video.dtype == torch.float32
        assert video.min() >= -1 and video.max() < 1
        vid = ds.video_of(index)
        rec = ds.db.videos[vid]
        assert item["label"] == rec.label
        first, x0, flip = ds.placement(index)
        assert (x0, flip) == (10, False) and 0 <= first <= 40 - 16
        if vid not in decoded:
            decoded[vid] = store.decode_video(tree / "UCF-101" / rec.source, 64, 85)
        expected = decoded[vid][first : first + 16, :, 10:74]
        assert np.array_equal(to_uint8(video), expected)
    # fresh offsets (the default, as the paper's code): the trainer passes i + epoch·len, and
    # each epoch draws a new uniformly random start of the same video; a draw is repeatable
    assert ds.epoch_indices
    assert torch.equal(ds[5]["video"], ds[5]["video"])
    assert ds.video_of(5) == ds.video_of(5 % len(ds))
    firsts = {ds.placement(3, draw=e)[0] for e in range(64)}
    assert len(firsts) >= 20 and min(firsts) <= 1 and max(firsts) >= 23
    assert torch.equal(ds[3 + 2 * len(ds)]["video"], ds.clip(3, draw=2)["video"])
    # fixed offsets: item i is a fixed clip; variants of one video cover its offsets
    fixed = UCF101Dataset(UCF101Config(path=str(db64), offsets="fixed"), spec())
    assert not fixed.epoch_indices
    firsts = {fixed.placement(3 + 12 * r)[0] for r in range(32)}
    assert len(firsts) >= 20 and min(firsts) <= 1 and max(firsts) >= 23


def test_stride_flip_random_crop_and_single_frames(db64, tree):
    cfg = build_config(
        UCF101Config,
        {"path": str(db64), "stride": 2, "flip": True, "crop": "random", "seed": 7},
        "dataset.ucf101",
    )
    ds = UCF101Dataset(cfg, spec(8))
    assert ds.span == 15
    flips, xs = set(), set()
    for index in range(0, 60, 7):
        first, x0, flip = ds.placement(index)
        flips.add(flip)
        xs.add(x0)
        rec = ds.db.videos[ds.video_of(index)]
        full = store.decode_video(tree / "UCF-101" / rec.source, 64, 85)
        expected = full[first : first + 15 : 2, :, x0 : x0 + 64]
        if flip:
            expected = expected[:, :, ::-1]
        assert np.array_equal(to_uint8(ds[index]["video"]), expected)
        assert np.array_equal(ds.clip_uint8(index), expected)
    assert flips == {True, False} and len(xs) > 2 and all(0 <= x <= 21 for x in xs)
    image = ds.frame(3)
    assert image.shape == (3, 64, 64) and image.min() >= -1 and image.max() < 1
    assert torch.equal(ds.frame(3), ds.frame(3))
    raw = UCF101Dataset(UCF101Config(path=str(db64)), spec(), as_uint8=True)[4]["video"]
    assert raw.dtype == torch.uint8 and raw.shape == (16, 64, 64, 3)


def test_integer_downsample_and_size_errors(db64):
    small = UCF101Dataset(UCF101Config(path=str(db64)), spec(16, 32))
    assert (small.factor, small.crop_width, small.center_x) == (2, 64, 10)
    full = UCF101Dataset(UCF101Config(path=str(db64)), spec())
    first, _, _ = small.placement(9)
    big = full.db.read_frames(full.video_of(9), range(first, first + 16), 10, 74)
    expected = big.reshape(16, 32, 2, 32, 2, 3).astype(np.float32).mean(axis=(2, 4))
    got = small[9]["video"].permute(1, 2, 3, 0).numpy() * 128 + 128
    assert np.allclose(got, expected, atol=1e-4)
    for size in (48, 128, 192):
        with pytest.raises(nd.ConfigError) as err:
            UCF101Dataset(UCF101Config(path=str(db64)), spec(16, size))
        message = str(err.value)
        assert "prepared at 64×85 (rows×cols)" in message
        assert f"needs {size}×{size} frames" in message and f"--size {size}" in message
    with pytest.raises(nd.ConfigError, match="no video .* has the 61 frames a clip of 16"):
        UCF101Dataset(UCF101Config(path=str(db64), stride=4), spec())


def test_protocol_crop_at_32_pixels(tree, tmp_path):
    db = tmp_path / "db32"
    prepare(tree, db, size=32, limit=2)
    ds = UCF101Dataset(UCF101Config(path=str(db)), spec(16, 32))
    assert (ds.db.height, ds.db.width) == (32, 43)
    assert (ds.factor, ds.center_x, ds.crop_width) == (1, 5, 32)  # columns [5:37]


def test_database_errors_name_the_problem(db64, tmp_path):
    with pytest.raises(nd.ConfigError, match="dataset.ucf101.path .*: no such database; make"):
        UCF101Dataset(UCF101Config(path=str(tmp_path / "none")), spec())
    (tmp_path / "dir").mkdir()
    with pytest.raises(nd.ConfigError, match="not an LMDB database"):
        store.Database(tmp_path / "dir")
    old = tmp_path / "old"
    shutil.copytree(db64, old)
    env = lmdb.open(str(old))
    with env.begin(write=True) as txn:
        meta = json.loads(txn.get(store.META_KEY))
        meta["version"] = 0
        txn.put(store.META_KEY, json.dumps(meta).encode())
    env.close()
    with pytest.raises(nd.ConfigError) as err:
        UCF101Dataset(UCF101Config(path=str(old)), spec())
    message = str(err.value)
    assert "is format version 0; this ndevgan reads versions 1, 2" in message
    assert "Prepare it again: ndevgan data prepare ucf101 --root" in message
    assert message.endswith("--overwrite")
    with pytest.raises(nd.ConfigError, match="dataset.ucf101.path: required"):
        resolve(raw_config(None, ["dataset.ucf101"]), Registry(entry_points=False))


def _batches(ds, workers: int, context: str | None = None) -> list[torch.Tensor]:
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=4,
        sampler=[7, 2, 30, 11, 5, 200, 41, 9, 0, 333, 64, 18],
        num_workers=workers,
        multiprocessing_context=context,
        persistent_workers=workers > 0,
    )
    return [torch.cat([b["video"].flatten(), b["label"].float()]) for b in loader]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_two_workers_read_the_same_clips_as_none(db64, context):
    ds = UCF101Dataset(UCF101Config(path=str(db64), flip=True), spec())
    reference = _batches(ds, 0)  # also leaves a handle open in this process
    assert ds.db.is_open
    state = pickle.loads(pickle.dumps(ds))
    assert not state.db.is_open and state.db._txn is None  # spawn pickles no handle
    got = _batches(ds, 2, context)
    assert len(got) == 3 and all(torch.equal(a, b) for a, b in zip(reference, got))
    assert torch.equal(ds[7]["video"], reference[0][: 3 * 16 * 64 * 64].view(3, 16, 64, 64))


def test_training_from_the_database_through_the_cli(tree, tmp_path):
    db = tmp_path / "db32"
    prepare(tree, db, size=32)
    proc = ndevgan(
        "run",
        *FAST_MODEL,
        "--plugin",
        "dataset.ucf101",
        "--set",
        f"dataset.ucf101.path={db}",
        "--set",
        "backbone.tgan.preset=tiny",
        "--set",
        "run.iterations=2",
        "--set",
        "run.workers=2",
        "--set",
        f"run.out={tmp_path}",
        "--set",
        "run.name=r",
    )
    assert proc.returncode == 0
    state = load_checkpoint(tmp_path / "r")
    assert state["step"] == 2 and state["config"]["dataset"]["ucf101"]["path"] == str(db)
    proc = ndevgan(
        "run",
        *FAST_MODEL,
        "--plugin",
        "dataset.ucf101",
        "--set",
        f"dataset.ucf101.path={db}",
        "--set",
        "backbone.tgan.preset=paper",
        "--set",
        "run.iterations=1",
        "--set",
        f"run.out={tmp_path}",
        check=False,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "prepared at 32×43 (rows×cols) but the backbone needs 64×64" in proc.stderr


def test_torchrun_ranks_split_the_items_and_size_the_reader_table(db64, monkeypatch):
    ds = UCF101Dataset(UCF101Config(path=str(db64)), spec())
    seen = []
    for rank in (0, 1):
        sampler = torch.utils.data.distributed.DistributedSampler(
            ds, num_replicas=2, rank=rank, shuffle=True, seed=3
        )
        seen.append(list(sampler))
    assert not set(seen[0]) & set(seen[1]) and len(seen[0]) + len(seen[1]) == len(ds)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, sampler=seen[1][:16], num_workers=0)
    first = next(iter(loader))["video"]
    assert torch.equal(first[0], ds[seen[1][0]]["video"])
    monkeypatch.setenv("WORLD_SIZE", "100")
    assert store.Database.max_readers() == 200  # 2 × 1 process × 100 ranks
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert store.Database.max_readers() == 126


@pytest.mark.slow
def test_ctrl_c_leaves_a_partial_database_that_resumes(tmp_path):
    """A real SIGINT to a real prepare, then --resume; the result equals an uninterrupted run."""
    import signal
    import subprocess
    import time

    from .conftest import BIN

    tree = fixture_tool.make_fixture(tmp_path / "t", classes=4, frames=150, style="natural")
    args = [
        str(BIN / "ndevgan"), "data", "prepare", "ucf101", "--root", str(tree / "UCF-101"),
        "--subset", "all", "--workers", "1", "--no-progress",
    ]  # fmt: skip
    db = tmp_path / "db"
    proc = subprocess.Popen([*args, "--out", str(db)], stdout=subprocess.PIPE, text=True)
    partial = store.partial_path(db)
    deadline = time.monotonic() + 60
    while not (partial / "data.mdb").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("prepare finished before the signal arrived")
    assert proc.returncode == 130 and "interrupted" in out
    assert partial.is_dir() and not db.exists()
    resumed = subprocess.run([*args, "--out", str(db), "--resume"], capture_output=True,
                             text=True, check=True)  # fmt: skip
    assert "wrote" in resumed.stdout and not partial.exists()
    ref = tmp_path / "ref"
    subprocess.run([*args, "--out", str(ref)], capture_output=True, check=True)
    assert contents(db) == contents(ref)


# ---------------------------------------------------------------------------- damaged databases


def _copy_db(db: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy.lmdb"
    shutil.copytree(db, out)
    return out


def _rewrite_record(db: Path, key: bytes, change) -> None:
    env = lmdb.open(str(db), map_size=1 << 30)
    try:
        with env.begin(write=True) as txn:
            txn.put(key, change(bytes(txn.get(key))))
    finally:
        env.close()


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_database_is_one_line_naming_the_sizes_never_a_signal(db64, tmp_path, fraction):
    db = _copy_db(db64, tmp_path)
    data = db / "data.mdb"
    full = data.stat().st_size
    os.truncate(data, int(full * fraction))
    proc = ndevgan("data", "info", str(db), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{data} is truncated: {int(full * fraction):,} bytes" in proc.stderr
    assert f"records {full:,}" in proc.stderr
    proc = ndevgan(
        "run", *FAST_MODEL, "--plugin", "backbone.tgan", "--plugin", "dataset.ucf101",
        "--set", "backbone.tgan.preset=tiny", "--set", f"dataset.ucf101.path={db}",
        "--set", f"run.out={tmp_path / 'runs'}", "--set", "run.iterations=1",
        "--set", "run.workers=2", check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "is truncated" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_damaged_frame_is_an_error_naming_the_video_and_frame(db64, tmp_path):
    db = _copy_db(db64, tmp_path)
    flip = lambda value: value[:100] + bytes([value[100] ^ 0x01]) + value[101:]  # noqa: E731
    _rewrite_record(db, store.frame_key(3, 7), flip)
    database = store.Database(db)
    assert database.checksums
    database.read_frames(3, range(7))  # the intact frames still read
    with pytest.raises(ConfigError, match=r"frame 7 of video 3 \(.*\.avi\) is damaged"):
        database.read_frames(3, [7])
    database.close()
    proc = ndevgan("data", "verify", str(db), "--no-progress", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "damaged: frame 7 of video 3" in proc.stderr
    assert "1 of 480 frame records are damaged or missing" in proc.stderr
    assert "all 480 frames of 12 videos are intact" in ndevgan("data", "verify", str(db64)).stdout


def test_a_damaged_video_record_is_refused_when_the_database_opens(db64, tmp_path):
    db = _copy_db(db64, tmp_path)
    _rewrite_record(db, store.video_key(5), lambda v: v.replace(b'"frames": 40', b'"frames": 90'))
    with pytest.raises(ConfigError, match="the record of video 5 is damaged"):
        store.Database(db)


def test_version_1_databases_without_checksums_are_still_read(db64, tmp_path):
    db = _copy_db(db64, tmp_path)
    env = lmdb.open(str(db), map_size=1 << 30)
    with env.begin(write=True) as txn:
        for key, value in list(txn.cursor()):
            if key != store.META_KEY:
                txn.put(key, bytes(store.unseal(value)))  # strip the checksum: version 1
        meta = json.loads(txn.get(store.META_KEY))
        meta["version"] = 1
        txn.put(store.META_KEY, json.dumps(meta).encode())
    env.close()
    old, new = store.Database(db), store.Database(db64)
    assert not old.checksums
    np.testing.assert_array_equal(old.read_video(2), new.read_video(2))
    old.close()
    new.close()
    assert "format version 1 has no checksums" in ndevgan("data", "verify", str(db)).stdout


def test_lmdb_size_check_reads_the_real_header(db64):
    # the size the meta pages record is exactly the file LMDB wrote
    store.check_lmdb_size(db64)
    with pytest.raises(ConfigError, match="not an LMDB file"):
        bad = db64.parent / "not-lmdb"
        bad.mkdir(exist_ok=True)
        (bad / "data.mdb").write_bytes(b"\0" * 10000)
        store.check_lmdb_size(bad)


def test_resume_of_a_prepare_that_had_finished_is_a_no_op(tree, tmp_path):
    out = tmp_path / "done.lmdb"
    prepare(tree, out, limit=3)
    before = contents(out)
    report = prepare(tree, out, limit=3, resume=True)  # e.g. killed after its final rename
    assert (report.written, report.resumed_videos) == (0, 3) and not report.interrupted
    assert contents(out) == before
    with pytest.raises(ConfigError, match="already exists"):  # another command: refused
        prepare(tree, out, limit=2, resume=True)
