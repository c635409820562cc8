"""dataset.videos: any folder of videos → `data prepare videos` → one LMDB database → training."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from ndevgan_plugins import ucf101_store as store

from .conftest import FAST_MODEL, ndevgan

CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9",
          ".avi": "mpeg4"}  # fmt: skip


def write_video(path: Path, width: int, height: int, frames: int = 18) -> None:
    """A white square moving right over a grey field, in the container of ``path``'s suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODECS[path.suffix], rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(frames):
            image = np.full((height, width, 3), 90, dtype=np.uint8)
            x = 2 + t * (width - 12) // frames
            image[height // 2 - 4 : height // 2 + 4, x : x + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    write_video(root / "a" / "wide.mp4", 80, 48)  # landscape
    write_video(root / "a" / "tall.webm", 48, 80)  # portrait
    write_video(root / "b" / "square.avi", 64, 64)
    write_video(root / "b" / "clip.mov", 64, 48)
    write_video(root / "top.mkv", 64, 48)  # at the top: class "videos"
    write_video(root / "a" / "short.mp4", 64, 48, frames=4)
    (root / "b" / "broken.mp4").write_bytes(b"not a video at all" * 50)
    (root / "b" / "notes.txt").write_text("not a video file: ignored")
    return root


def test_fit_makes_any_aspect_square_by_cropping_or_padding():
    wide = np.arange(48 * 80 * 3, dtype=np.uint32).astype(np.uint8).reshape(48, 80, 3)
    cropped = store.fit_aspect(wide, 32, 32, "crop")
    np.testing.assert_array_equal(cropped, wide[:, 16:64])
    padded = store.fit_aspect(wide, 32, 32, "pad")
    assert padded.shape == (80, 80, 3)
    np.testing.assert_array_equal(padded[16:64], wide)
    assert not padded[:16].any() and not padded[64:].any()
    tall = wide.transpose(1, 0, 2)
    np.testing.assert_array_equal(store.fit_aspect(tall, 32, 32, "crop"), tall[16:64])
    assert store.fit_aspect(tall, 32, 32, "pad").shape == (80, 80, 3)


def test_prepare_a_folder_in_parallel_then_resume_verify_and_train(folder, tmp_path):
    db = tmp_path / "mine.lmdb"
    proc = ndevgan("data", "prepare", "videos", "--root", str(folder), "--size", "32",
                   "--min-frames", "8", "--workers", "2", "--out", str(db),
                   "--no-progress")  # fmt: skip
    assert "unreadable" in proc.stdout and "too short" in proc.stdout
    database = store.Database(db)
    assert (database.height, database.width) == (32, 32)
    assert database.class_names == ("a", "b", "videos")
    by_source = {v.source: v for v in database.videos}
    assert set(by_source) == {"a/wide.mp4", "a/tall.webm", "b/square.avi", "b/clip.mov",
                              "top.mkv"}  # fmt: skip
    assert by_source["top.mkv"].class_name == "videos" and by_source["b/clip.mov"].label == 1
    assert all(v.frames == 18 for v in database.videos)
    # mid-clip the square has moved into the centre that crop keeps, over the grey field
    frame = database.read_frames(by_source["a/wide.mp4"].id, [9], 0, 32, False)[0]
    assert frame.shape == (32, 32, 3) and frame[16].max() > 200 and frame[0].min() > 60
    meta = store.read_meta(db)
    assert meta["dataset"] == "videos" and meta["fit"] == "crop" and meta["complete"]
    assert meta["command"].startswith(f"ndevgan data prepare videos --root {folder}")
    database.close()

    again = ndevgan("data", "prepare", "videos", "--root", str(folder), "--size", "32",
                    "--min-frames", "8", "--workers", "2", "--out", str(db), "--resume",
                    "--no-progress")  # fmt: skip
    assert again.returncode == 0
    assert ndevgan("data", "verify", str(db)).returncode == 0

    out = tmp_path / "runs"
    ndevgan("run", "--plugin", "dataset.videos", "--set", f"dataset.videos.path={db}",
            *FAST_MODEL, "--set", "backbone.tgan.preset=tiny", "--set", "run.iterations=2",
            "--set", "run.workers=0", "--set", f"run.out={out}",
            "--set", "run.name=mine")  # fmt: skip
    log = [json.loads(x) for x in (out / "mine" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log][-1] == 2


def test_pad_keeps_the_whole_frame_with_black_bars_and_a_split_file_picks_videos(folder, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("a/wide.mp4\n# a comment\nb/missing.mp4\n")
    db = tmp_path / "pad.lmdb"
    proc = ndevgan("data", "prepare", "videos", "--root", str(folder), "--size", "32",
                   "--fit", "pad", "--split-file", str(listing), "--workers", "0",
                   "--min-frames", "8", "--out", str(db), "--no-progress")  # fmt: skip
    assert "bad split line" in proc.stdout and "b/missing.mp4" in proc.stdout
    database = store.Database(db)
    assert [v.source for v in database.videos] == ["a/wide.mp4"]
    frame = database.read_frames(0, [0], 0, 32, False)[0]
    assert frame[:4].max() < 20 and frame[-4:].max() < 20  # black bars above and below
    assert frame[16].max() > 200  # the square, still there
    database.close()


def test_bad_folders_and_options_are_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = ndevgan("data", "prepare", "videos", "--root", str(empty), "--out",
                   str(tmp_path / "x.lmdb"), check=False)  # fmt: skip
    assert proc.returncode == 1 and "no video files" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = ndevgan("run", "--plugin", "dataset.videos", "--set", "run.iterations=1", check=False)
    assert proc.returncode == 1 and "dataset.videos.path=DB" in proc.stderr
