"""metric.fvd: Fréchet Video Distance with an I3D-interface TorchScript detector (StyleGAN-V's
protocol), checked against an independent Fréchet computation, through `evaluate` and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

import ndevgan_core as nd
from ndevgan_core.evaluation import evaluate, load_video_classifier
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import resolve
from ndevgan_plugins.fvd import FrechetVideoDistance, FVDConfig

from .conftest import fast_raw, ndevgan


class I3DStandIn(nn.Module):
    """StyleGAN-V's ``i3d_torchscript.pt`` interface: uint8 (B, 3, T, H, W); ``rescale`` maps
    [0, 255] to [-1, 1], ``resize`` to its input size; 400 Kinetics features or probabilities.
    It refuses to run without rescale and resize, as StyleGAN-V's FVD always passes them."""

    def __init__(self) -> None:
        super().__init__()
        self.project = nn.Linear(6 * 16, 400)

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
        return_features: bool = False,
    ) -> torch.Tensor:  # fmt: skip
        if not (rescale and resize):
            raise RuntimeError("called without rescale and resize")
        v = x.float() / 127.5 - 1.0
        per_frame = torch.cat([v.mean(dim=(3, 4)), v.std(dim=(3, 4))], dim=1)  # (B, 6, T)
        features = self.project(per_frame[:, :, :16].flatten(1))
        if return_features:
            return features
        return torch.softmax(features, dim=1)


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("i3d") / "i3d_torchscript.pt"
    torch.jit.script(I3DStandIn()).save(str(path))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    registry = Registry(entry_points=False, disabled=())
    cfg = resolve(fast_raw(iterations=2, sample_every=100), registry)
    return nd.train(cfg, registry, run_dir=tmp_path_factory.mktemp("fvd") / "run")


def frechet_scipy(a: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> float:
    """StyleGAN-V's formula, computed independently with scipy's sqrtm."""
    mu_a, sigma_a = a.mean(0), np.cov(a, rowvar=False)
    root = scipy.linalg.sqrtm(sigma_a @ sigma)
    return float(np.real(((mu_a - mu) ** 2).sum() + np.trace(sigma_a + sigma - 2 * root)))


def test_score_matches_an_independent_frechet_computation():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((300, 12))
    stats = nd.FeatureStats.from_features(real)
    loops = [rng.standard_normal((200, 12)) * 1.3 + 0.4 for _ in range(2)]
    fake = [nd.Features(features=f.astype(np.float32), probs=np.ones((200, 1))) for f in loops]
    result = FrechetVideoDistance(FVDConfig()).score(fake, stats)
    expected = [frechet_scipy(f.astype(np.float32).astype(np.float64), stats.mean, stats.cov)
                for f in loops]  # fmt: skip
    assert list(result.values) == pytest.approx(expected, rel=1e-6)
    assert result.mean == pytest.approx(np.mean(expected)) and result.std > 0
    assert result.protocol == "fvd: 200 samples x 2 loops vs 300 real clips"
    assert not FrechetVideoDistance.higher_is_better and nd.higher_is_better("fvd") is False


def test_i3d_interface_through_evaluate_and_the_cli(run_dir, i3d_file, tmp_path):
    registry = Registry(entry_points=False, disabled=())
    detector = load_video_classifier(i3d_file, registry=registry)
    assert (detector.num_classes, detector.feature_size) == (400, 400)
    trained = nd.load_generator(run_dir, registry)
    clips = nd.dataset("shapes", (16, 32, 32), videos=64)
    both = evaluate(trained.generator, ("fvd", "fid"), dataset=clips.dataset,
                    classifier=detector, samples=24, progress=False, registry=registry,
                    stats_cache=tmp_path)  # fmt: skip
    # the same features and the same Fréchet distance: FVD here is the FID of I3D features
    assert both["fvd"].mean == pytest.approx(both["fid"].mean) and both["fvd"].mean > 0

    out = tmp_path / "fvd.json"
    ndevgan("eval", str(run_dir), "--metric", "fvd", "--classifier", str(i3d_file), "--n", "24",
            "--stats-cache", str(tmp_path), "--out", str(out), "--no-progress")  # fmt: skip
    record = json.loads(out.read_text())
    assert record["results"][0]["metric"] == "fvd"
    assert record["results"][0]["mean"] == pytest.approx(both["fvd"].mean, rel=1e-6)
    # without a classifier file: the FVD-style distance on the shapes classifier's features
    ndevgan("eval", str(run_dir), "--metric", "fvd", "--n", "16", "--out", str(out),
            "--stats-cache", str(tmp_path), "--no-progress")  # fmt: skip
    assert json.loads(out.read_text())["results"][0]["mean"] > 0


def test_other_clip_lengths_are_refused_unless_asked(run_dir, i3d_file):
    registry = Registry(entry_points=False, disabled=())
    raw = fast_raw(iterations=1)
    raw["backbone"]["tgan"]["frames"] = 8
    raw["backbone"]["tgan"]["size"] = 8
    gan = nd.train(resolve(raw, registry), registry, run_dir=run_dir.parent / "short")
    generator = nd.load_generator(gan, registry).generator
    with pytest.raises(nd.ConfigError, match="metric.fvd scores 16-frame clips"):
        evaluate(generator, ("fvd",), dataset=nd.dataset("shapes", (8, 8, 8)).dataset,
                 classifier=i3d_file, samples=4, progress=False, registry=registry)  # fmt: skip
