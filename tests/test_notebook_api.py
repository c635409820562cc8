"""The Python API for notebooks (nd.load, nd.dataset), `sample --interpolate` and
`data show --dataset`, on a real (tiny) trained run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ndevgan_core as nd
from ndevgan_core import media
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import resolve
from ndevgan_core.training.api import slerp

from .conftest import ROOT, fast_raw, ndevgan


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    registry = Registry(entry_points=False, disabled=())
    cfg = resolve(fast_raw(iterations=2, sample_every=100), registry)
    return nd.train(cfg, registry, run_dir=tmp_path_factory.mktemp("api") / "run")


def test_generate_has_the_onnx_layout_and_the_sample_commands_videos(run_dir, tmp_path):
    trained = nd.load(run_dir)
    videos = trained.generate(5, seed=3)
    assert videos.shape == (5, 16, 3, 32, 32) and videos.dtype == np.float32
    reference = nd.sample_videos(trained.generator, 5, seed=3).transpose(1, 2).numpy()
    np.testing.assert_array_equal(videos, reference)
    as_bytes = trained.generate(5, seed=3, dtype="uint8")
    assert as_bytes.dtype == np.uint8
    written = media.to_uint8(torch.from_numpy(videos).transpose(1, 2))  # as sample writes
    np.testing.assert_array_equal(as_bytes, written.transpose(0, 1, 4, 2, 3))
    # the exported file gives the same videos for the same seed, in the same layout
    nd.export_onnx(run_dir, tmp_path / "g.onnx")
    onnx = nd.OnnxVideoGenerator(tmp_path / "g.onnx", "cpu").generate(5, seed=3)
    assert onnx.shape == videos.shape
    np.testing.assert_allclose(onnx, videos, atol=1e-4)
    # any grid for a continuous generator: twice the frames over the trained interval
    denser = trained.generate(2, seed=3, times=torch.linspace(0, 1, 31))
    np.testing.assert_allclose(denser[:, ::2], videos[:2], atol=1e-5)
    with pytest.raises(nd.ConfigError, match="dtype: expected 'float' or 'uint8'"):
        trained.generate(1, dtype="int8")


def test_interpolation_runs_from_one_latent_to_the_other(run_dir):
    trained = nd.load(run_dir)
    z = trained.latents(2, seed=7)
    path = trained.interpolate(z[0], z[1], 5)
    ends = trained.generate(2, seed=7)
    assert path.shape == (5, *ends.shape[1:])
    np.testing.assert_allclose(path[0], ends[0], atol=1e-5)
    np.testing.assert_allclose(path[-1], ends[1], atol=1e-5)
    assert not np.allclose(path[2], path[0]) and not np.allclose(path[2], path[-1])
    with pytest.raises(nd.ConfigError, match="z0 and z1 must each have shape"):
        trained.interpolate(z[0][:3], z[1], 3)


def test_slerp_keeps_the_angle_even_and_ends_exact():
    a, b = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 2.0])
    rows = slerp(a, b, torch.linspace(0, 1, 5))
    assert torch.allclose(rows[0], a) and torch.allclose(rows[-1], b)
    angles = torch.atan2(rows[:, 1], rows[:, 0])
    assert torch.allclose(angles.diff(), torch.full((4,), torch.pi / 8), atol=1e-6)
    assert torch.allclose(rows.norm(dim=1), torch.full((5,), 2.0))  # on the sphere, not inside
    far = slerp(a, torch.tensor([0.0, 5.0]), torch.linspace(0, 1, 3))
    assert torch.allclose(far[-1], torch.tensor([0.0, 5.0]))


def test_dataset_gives_real_clips_in_the_same_layout():
    clips = nd.dataset("shapes", (8, 32, 32), videos=10)
    assert len(clips) == 10 and clips.name == "dataset.shapes"
    videos = clips.videos(3, start=2)
    assert videos.shape == (3, 8, 3, 32, 32)
    np.testing.assert_array_equal(videos[0], clips.dataset[2]["video"].transpose(0, 1).numpy())
    assert clips.labels(3, start=2) == [clips.dataset[i]["label"] for i in (2, 3, 4)]
    with pytest.raises(nd.ConfigError, match="dataset.shapes has 10 clips; asked for 3 from"):
        clips.videos(3, start=8)


def test_sample_interpolate_and_data_show_of_a_dataset_plugin(run_dir, tmp_path):
    out = tmp_path / "path.gif"
    proc = ndevgan("sample", str(run_dir), "--interpolate", "4", "--seed", "7", "--out", str(out))
    assert "wrote 4 videos from z₀ to z₁ of seed 7" in proc.stdout
    strip = media.read_png(out.with_suffix(".png"))
    trained = nd.load(run_dir)
    path = trained.interpolate(*trained.latents(2, seed=7), 4, dtype="uint8")
    expected = media.frame_strip(np.ascontiguousarray(path.transpose(0, 1, 3, 4, 2)))
    np.testing.assert_array_equal(strip, expected)

    png = tmp_path / "clip.png"
    proc = ndevgan("data", "show", "--dataset", "dataset.shapes", "--video", "3", "--size", "32",
                   "--set", "videos=8", "--out", str(png))  # fmt: skip
    assert "clip 3 of dataset.shapes: label" in proc.stdout
    real = nd.dataset("shapes", (16, 32, 32), videos=8).videos(1, 3, dtype="uint8")
    np.testing.assert_array_equal(
        media.read_png(png), media.frame_strip(real.transpose(0, 1, 3, 4, 2))
    )
    proc = ndevgan("data", "show", "--video", "0", "--out", str(png), check=False)
    assert proc.returncode == 2 and "give a database DB or --dataset NAME" in proc.stderr


def test_the_example_script_writes_real_beside_generated(run_dir, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "pair.gif"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "real_vs_generated.py"), str(run_dir),
         "--n", "2", "--out", str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "real (left) and generated (right)" in proc.stdout
    assert out.stat().st_size > 0 and media.read_png(out.with_suffix(".png")).shape[0] > 0
