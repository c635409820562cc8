"""Tests of the C3D network, its preprocessing, weight import and the IS / FID metrics."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from ndevgan_core.errors import ConfigError
from ndevgan_core.evaluation import FeatureStats
from ndevgan_plugins.c3d import (
    C3D,
    C3D_SHAPES,
    MEAN_SHAPE,
    frechet_distance,
    inception_score,
    load_c3d,
    load_chainer_npz,
    preprocess,
    save_c3d,
)

# --------------------------------------------------------------------------------------------
# network


@pytest.fixture(scope="module")
def net() -> C3D:
    torch.manual_seed(0)
    return C3D().eval()


def _published_param_count() -> int:
    # Worked out from the architecture, independently of C3D_SHAPES and the module.
    widths = [3, 64, 128, 256, 256, 512, 512, 512, 512]
    convs = sum(cin * cout * 27 + cout for cin, cout in itertools.pairwise(widths))
    fcs = (512 * 1 * 4 * 4) * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 101 + 101
    return convs + fcs


def test_parameter_count() -> None:
    with torch.device("meta"):
        model = C3D()
    count = sum(p.numel() for p in model.parameters())
    assert count == _published_param_count() == 78_409_573
    assert sum(int(np.prod(s)) for s in C3D_SHAPES.values()) == count


def test_module_names_match_chainer_keys() -> None:
    with torch.device("meta"):
        model = C3D()
    expected = {
        f"{k.split('/')[0]}.{'weight' if k.endswith('W') else 'bias'}": s
        for k, s in C3D_SHAPES.items()
    }
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected


def test_shapes_meta_and_cover_all_pooling() -> None:
    with torch.device("meta"):
        out = C3D()(torch.empty(2, 3, 16, 112, 112))
    assert tuple(out["pool5"].shape) == (2, 512, 1, 4, 4)
    assert tuple(out["fc7"].shape) == (2, 4096)
    assert tuple(out["logits"].shape) == (2, 101)
    # Chainer cover_all: pool5 takes 2×7×7 to 1×4×4 (floor pooling would give 1×3×3).
    assert tuple(C3D._pool(torch.zeros(1, 1, 2, 7, 7)).shape) == (1, 1, 1, 4, 4)


def test_forward_real(net: C3D) -> None:
    with torch.no_grad():
        out = net(torch.randn(1, 3, 16, 112, 112))
    assert tuple(out["pool5"].shape) == (1, 512, 1, 4, 4)
    assert tuple(out["fc7"].shape) == (1, 4096)
    assert tuple(out["probs"].shape) == (1, 101)
    assert (out["fc7"] >= 0).all()  # post-ReLU features
    torch.testing.assert_close(out["probs"].sum(1), torch.ones(1))


def test_dropout_off_in_eval_and_on_with_compat(net: C3D) -> None:
    pool5 = torch.rand(4, 512, 1, 4, 4)
    with torch.no_grad():
        a, b = net.head(pool5), net.head(pool5)
        torch.testing.assert_close(a["logits"], b["logits"], rtol=0, atol=0)
        net.dropout_compat = True
        try:
            c, d = net.head(pool5), net.head(pool5)
        finally:
            net.dropout_compat = False
    assert not net.training
    assert not torch.equal(c["logits"], d["logits"])
    assert not torch.equal(c["fc7"], d["fc7"])


# --------------------------------------------------------------------------------------------
# preprocessing


def test_preprocess_shape_bgr_and_range() -> None:
    zero_mean = torch.zeros(MEAN_SHAPE)
    red = -torch.ones(2, 3, 16, 64, 64)
    red[:, 0] = 1.0
    out = preprocess(red, zero_mean)
    assert tuple(out.shape) == (2, 3, 16, 112, 112)
    torch.testing.assert_close(out[:, 2], torch.full_like(out[:, 2], 256.0))  # red → BGR[2]
    torch.testing.assert_close(out[:, :2], torch.zeros_like(out[:, :2]))
    lo = preprocess(-torch.ones(1, 3, 16, 128, 128), zero_mean)
    hi = preprocess(torch.ones(1, 3, 16, 128, 128), zero_mean[..., 21:149])
    assert lo.min() == lo.max() == 0.0
    assert hi.min() == hi.max() == 256.0


def test_preprocess_mean_crop() -> None:
    mean = torch.arange(171, dtype=torch.float32).expand(MEAN_SHAPE).clone()
    out = preprocess(-torch.ones(1, 3, 16, 32, 32), mean)
    # width crop 21:149 of the mean, then the centre crop 8:120: columns 29 … 140.
    assert out[0, 0, 0, 0, 0] == -29.0
    assert out[0, 0, 0, 0, -1] == -140.0


def test_tganv2_preprocessing_is_tgan2s_pipeline() -> None:
    mean = torch.arange(171, dtype=torch.float32).expand(MEAN_SHAPE).clone()
    out = preprocess(-torch.ones(1, 3, 16, 64, 64), mean, "tganv2")
    assert tuple(out.shape) == (1, 3, 16, 112, 112)
    # x·128 (no +128 before the bias), then + 128 − mean[:, :, 8:120, 8:120]: columns 8 … 119
    assert out[0, 0, 0, 0, 0] == -8.0 and out[0, 0, 0, 0, -1] == -119.0
    # bilinear with aligned corners, straight to 112: a horizontal ramp stays a ramp whose ends
    # are the input's ends; red lands in BGR channel 2
    ramp = torch.linspace(-1, 1, 64).expand(1, 3, 16, 64, 64).clone()
    ramp[:, 1:] = -1
    out = preprocess(ramp, torch.zeros(MEAN_SHAPE), "tganv2")
    expected = torch.linspace(-128, 128, 112) + 128
    torch.testing.assert_close(out[0, 2, 0, 5], expected, atol=1e-3, rtol=0)
    torch.testing.assert_close(out[0, :2], torch.zeros_like(out[0, :2]))
    with pytest.raises(ConfigError, match="full mean clip"):
        preprocess(ramp, torch.zeros(3, 16, 128, 128), "tganv2")


def test_preprocess_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="16"):
        preprocess(torch.zeros(1, 3, 8, 64, 64), torch.zeros(MEAN_SHAPE))
    with pytest.raises(ConfigError, match="mean"):
        preprocess(torch.zeros(1, 3, 16, 64, 64), torch.zeros(3, 16, 112, 112))


# --------------------------------------------------------------------------------------------
# weights


def _write_mean(path: Path) -> np.ndarray:
    mean = np.random.default_rng(1).standard_normal(MEAN_SHAPE).astype(np.float32)
    np.savez(path, mean=mean)
    return mean


def test_npz_round_trip_and_torch_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {k: rng.standard_normal(s, dtype=np.float32) for k, s in C3D_SHAPES.items()}
    np.savez(tmp_path / "conv3d_deepnetA_ucf.npz", **arrays)
    mean = _write_mean(tmp_path / "mean2.npz")

    state, mean_t = load_chainer_npz(tmp_path / "conv3d_deepnetA_ucf.npz", tmp_path / "mean2.npz")
    with torch.device("meta"):
        model = C3D()
    model.load_state_dict(state, strict=True, assign=True)
    np.testing.assert_array_equal(model.fc6.weight.detach().numpy(), arrays["fc6/W"])
    np.testing.assert_array_equal(model.conv3b.bias.detach().numpy(), arrays["conv3b/b"])
    for key, value in arrays.items():
        layer, p = key.split("/")
        np.testing.assert_array_equal(state[f"{layer}.{'weight' if p == 'W' else 'bias'}"], value)
    np.testing.assert_array_equal(mean_t.numpy(), mean)

    save_c3d(tmp_path / "c3d.pt", state, mean_t)
    state2, mean2 = load_c3d(tmp_path / "c3d.pt")
    assert state2.keys() == state.keys()
    for k in state:
        assert torch.equal(state2[k], state[k])
    assert torch.equal(mean2, mean_t)
    # the file records its preprocessing, and the classifier built from it uses that
    from ndevgan_plugins.c3d import c3d_preprocessing
    from ndevgan_plugins.c3d_metrics import load_classifier

    save_c3d(tmp_path / "c3d_v2.pt", state, mean_t, preprocessing="tganv2")
    assert c3d_preprocessing(tmp_path / "c3d.pt") == "tgan"
    assert c3d_preprocessing(tmp_path / "c3d_v2.pt") == "tganv2"
    assert load_classifier(tmp_path / "c3d_v2.pt").preprocessing == "tganv2"


def test_npz_missing_key_and_wrong_shape(tmp_path: Path) -> None:
    _write_mean(tmp_path / "mean2.npz")
    small = {"conv1a/W": np.zeros((64, 3, 3, 3), np.float32), "conv1a/b": np.zeros(64)}
    np.savez(tmp_path / "bad.npz", **small)
    with pytest.raises(ConfigError) as info:
        load_chainer_npz(tmp_path / "bad.npz", tmp_path / "mean2.npz")
    msg = str(info.value)
    assert "bad.npz" in msg
    assert "fc6/W (4096, 8192)" in msg  # missing key with its expected shape
    assert "conv1a/W: got (64, 3, 3, 3), expected (64, 3, 3, 3, 3)" in msg
    assert "conv1a/b" not in msg.split("missing keys")[1].split(";")[0]

    np.savez(tmp_path / "badmean.npz", mean=np.zeros((3, 16, 128, 128), np.float32))
    expected = r"badmean\.npz.*mean: got .*expected \(3, 16, 128, 171\)"
    with pytest.raises(ConfigError, match=expected):
        load_chainer_npz(tmp_path / "bad.npz", tmp_path / "badmean.npz")  # small file first
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match=r"junk\.npz"):
        load_chainer_npz(tmp_path / "junk.npz", tmp_path / "mean2.npz")
    with pytest.raises(ConfigError, match="not found"):
        load_chainer_npz(tmp_path / "absent.npz", tmp_path / "mean2.npz")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match=r"other\.pt"):
        load_c3d(tmp_path / "other.pt")


# --------------------------------------------------------------------------------------------
# Inception Score


def test_is_one_hot_uniform_and_splits() -> None:
    k = 7
    one_hot = np.eye(k)[np.arange(5 * k) % k]
    assert inception_score(one_hot) == pytest.approx((k, 0.0), abs=1e-12)
    uniform = np.full((20, 101), 1 / 101)
    assert inception_score(torch.tensor(uniform)) == pytest.approx((1.0, 0.0), abs=1e-12)
    four = np.eye(4)[np.arange(16) % 4]
    mixed = np.concatenate([four, np.full((16, 4), 0.25)])
    assert inception_score(mixed, splits=2) == pytest.approx((2.5, 1.5))
    # one split over the mixture: p(y) uniform, half the rows contribute log 4.
    assert inception_score(mixed)[0] == pytest.approx(np.exp(0.5 * np.log(4)))
    with pytest.raises(ConfigError):
        inception_score(mixed, splits=0)


# --------------------------------------------------------------------------------------------
# FID


def _fid_scipy(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def fid_from_features(a, b) -> float:
    """FID as metric.fid computes it: statistics of each set, then the Fréchet distance."""
    one, two = (
        FeatureStats.from_features(np.asarray(a, np.float64)),
        FeatureStats.from_features(np.asarray(b, np.float64)),
    )
    return frechet_distance(one.mean, one.cov, two.mean, two.cov)


def test_fid_matches_scipy_and_self_is_zero() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((200, 64))
    b = rng.standard_normal((300, 64)) @ rng.standard_normal((64, 64)) * 0.3 + 0.5
    assert fid_from_features(a, b) == pytest.approx(_fid_scipy(a, b), rel=1e-6)
    assert fid_from_features(torch.tensor(a, dtype=torch.float32), b) == pytest.approx(
        _fid_scipy(a.astype(np.float32).astype(np.float64), b), rel=1e-6
    )
    stats = FeatureStats.from_features(a)
    mu, sigma = stats.mean, stats.cov
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * np.trace(sigma)
    assert abs(fid_from_features(b, b)) < 1e-6 * np.trace(np.cov(b, rowvar=False))


def test_fid_rank_deficient_is_finite() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((20, 64))  # fewer samples than dimensions: singular covariance
    fid = fid_from_features(a, a + 1.0)
    assert np.isfinite(fid)
    assert fid == pytest.approx(64.0, rel=1e-6)
