"""Every temporal plugin trains with backbone.tgan; continuous ones sample at any time grid.

Training goes through the real trainer (a few steps of a very small TGAN); sampling at other
grids goes through the real ``ndevgan sample`` subprocess and the files it writes are read back.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ndevgan_core as nd
from ndevgan_core import media
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import resolve
from ndevgan_core.training.api import load_generator, sample_videos, time_grid

from .conftest import fast_raw, ndevgan

VARIANTS = {
    "conv1d": ("temporal.conv1d", {}),
    "ode-1": ("temporal.ode", {}),
    "ode-2-composed": ("temporal.ode", {"order": 2, "design": "composed", "hidden": 32}),
    "ode-3-matched": ("temporal.ode", {"order": 3, "design": "matched"}),
    "ode-2-chain-unrolled": (
        "temporal.ode",
        {"order": 2, "form": "chain", "backend": "unrolled", "method": "midpoint"},
    ),
    "ode-dopri5-adjoint": ("temporal.ode", {"method": "dopri5", "rtol": 1e-5, "adjoint": True}),
    "sde": ("temporal.sde", {}),
    "sde-unrolled-milstein": ("temporal.sde", {"backend": "unrolled", "method": "milstein"}),
    "sde-general": ("temporal.sde", {"noise_type": "general", "brownian_size": 4}),
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(entry_points=False, disabled=())


def train_variant(tmp_path, registry, key: str, iterations: int = 2):
    plugin, options = VARIANTS[key]
    raw = fast_raw(iterations=iterations, out=str(tmp_path), name=key, log_every=1)
    raw["plugins"]["temporal"] = plugin
    raw["temporal"] = {plugin.split(".")[1]: options}
    return nd.train(resolve(raw, registry), registry)


@pytest.mark.parametrize("key", list(VARIANTS))
def test_every_temporal_plugin_trains_with_tgan(tmp_path, registry, key):
    run_dir = train_variant(tmp_path, registry, key)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "loss_d" in r]
    assert len(steps) == 2 and all(np.isfinite([r["loss_d"], r["loss_g"]]).all() for r in steps)
    loaded = load_generator(run_dir, registry)
    assert loaded.step == 2
    initial = loaded.generator.temporal
    assert initial.plugin_name == VARIANTS[key][0]
    grid = torch.linspace(-0.25, 1.25, 7)
    if initial.continuous:
        videos = sample_videos(loaded.generator, 2, seed=1, times=grid)
        assert videos.shape == (2, 3, 7, 32, 32) and torch.isfinite(videos).all()
    else:
        with pytest.raises(nd.ConfigError, match="discrete temporal generator"):
            sample_videos(loaded.generator, 2, seed=1, times=grid)


def test_sde_shares_noise_between_frame_rates_so_the_refined_video_passes_through_the_base(
    tmp_path, registry
):
    run_dir = train_variant(tmp_path, registry, "sde", iterations=1)
    generator = load_generator(run_dir, registry).generator
    grid = time_grid(generator.spec, fps_multiplier=3)
    fine = sample_videos(generator, 3, seed=5, times=grid.times)
    base = sample_videos(generator, 3, seed=5, times=grid.base)
    assert fine.shape[2] == 46 and base.shape[2] == 16
    assert (fine[:, :, ::3] - base).abs().max() < 1e-4
    other = sample_videos(generator, 3, seed=6, times=grid.base)
    assert (other - base).abs().max() > 1e-2


def test_sample_cli_writes_rate_comparison_and_marked_timeline(tmp_path, registry):
    run_dir = train_variant(tmp_path, registry, "ode-1")
    out = tmp_path / "fast.mp4"
    proc = ndevgan("sample", str(run_dir), "--n", "2", "--fps-multiplier", "4", "--out", str(out))
    assert "61 frames" in proc.stdout and "4×" in proc.stdout
    video = media.read_video(out)
    pad, size = 2, 32
    # one grid cell per sample holds the 1× (held) and the 4× video side by side
    assert video.shape[0] == 61
    assert video.shape[2] == 2 * (2 * size + pad) + 3 * pad
    strip = media.read_png(out.with_suffix(".png"))
    band = max(3, size // 8)
    assert strip.shape[0] == 2 * (2 * (size + pad) + band + pad) + pad
    assert strip.shape[1] == 61 * (size + pad) + pad

    out = tmp_path / "around.mp4"
    proc = ndevgan(
        "sample", str(run_dir), "--n", "1", "--t-start", "-0.5", "--t-end", "1.5",
        "--frames", "21", "--out", str(out),
    )  # fmt: skip
    assert "frames outside it are marked" in proc.stdout
    video = media.read_video(out)
    assert video.shape[0] == 21
    strip = media.read_png(out.with_suffix(".png"))
    band_row = pad + size + band // 2
    colour = [
        tuple(int(c) for c in strip[band_row, pad + j * (size + pad) + size // 2])
        for j in (0, 5, 10, 15, 20)
    ]
    assert colour == [
        media.OUTSIDE_COLOUR,  # t = -0.5: before the first trained frame
        media.START_COLOUR,  # t = 0: z itself
        media.INSIDE_COLOUR,
        media.INSIDE_COLOUR,  # t = 1
        media.OUTSIDE_COLOUR,  # t = 1.5: extrapolated
    ]
    # frames outside [0, 1] carry an orange border in the video (lossy codec: approximately)
    corner = video[0, 3, 3].astype(int)  # first frame: the tile starts at (2, 2)
    assert np.abs(corner - np.array(media.OUTSIDE_COLOUR)).max() < 40


def test_discrete_generators_refuse_other_grids_on_the_command_line(tmp_path, registry):
    run_dir = train_variant(tmp_path, registry, "conv1d", iterations=1)
    proc = ndevgan(
        "sample", str(run_dir), "--fps-multiplier", "2", "--out", str(tmp_path / "x.mp4"),
        check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "temporal.conv1d is a discrete temporal generator" in proc.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_noise_given_to_a_deterministic_generator_is_refused(registry):
    from ndevgan_core.runconfig import assemble

    generator = assemble(resolve(fast_raw(), registry), registry).gan.generator
    z = generator.sample_z(2, torch.Generator().manual_seed(0))
    with pytest.raises(nd.ConfigError, match="temporal.ode is deterministic; it takes no noise"):
        generator(z, noise=torch.zeros(2, 15, 16))
