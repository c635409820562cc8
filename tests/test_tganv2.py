"""backbone.tganv2 and temporal.clstm: the authors' counts, shapes, protocol, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ndevgan_core as nd
from ndevgan_core import media
from ndevgan_core.config import build_config
from ndevgan_core.errors import ConfigError
from ndevgan_core.losses import r1_penalty
from ndevgan_core.runconfig import resolve
from ndevgan_core.training.checkpoint import load_checkpoint
from ndevgan_plugins.ode import ODEConfig, ODETemporal
from ndevgan_plugins.sde import SDEConfig, SDETemporal
from ndevgan_plugins.tganv2 import (
    ConvLSTMTemporal,
    ConvLSTMTemporalConfig,
    TGANv2Backbone,
    TGANv2Config,
    VideoDiscriminator,
    _halve,
    subsample_frames,
)

from .conftest import ndevgan

SECTION = "backbone.tganv2"

# The tiny networks run hundreds of small ops per step, where thread start-up costs more than
# it saves, and two threads on a busy 2-core machine can slow a step 50-fold. One thread keeps
# these tests fast and their timing stable (the subprocesses get the same through the env).
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def backbone(**options) -> TGANv2Backbone:
    return TGANv2Backbone(build_config(TGANv2Config, options, SECTION))


def build_gan(bb: TGANv2Backbone, temporal: nd.TemporalGenerator | None = None):
    if temporal is None:
        temporal = ConvLSTMTemporal(ConvLSTMTemporalConfig(), bb.temporal_spec())
    return bb.build(temporal)


def conv(c_in, c_out, k):  # a convolution with bias; k = number of kernel elements
    return c_in * c_out * k + c_out


def bn(c):
    return 2 * c


def up(c_in, c_out):  # BN, conv3, BN, conv3 and the 1×1 skip
    return (
        bn(c_in) + conv(c_in, c_out, 9) + bn(c_out) + conv(c_out, c_out, 9) + conv(c_in, c_out, 1)
    )


def head(c):  # BN, conv3 to RGB
    return bn(c) + conv(c, 3, 9)


def d_block(c_in, c_out, first=False):  # two 3³ convs (hidden = out if first else in), 1³ skip
    hidden = c_out if first else c_in
    return conv(c_in, hidden, 27) + conv(hidden, c_out, 27) + conv(c_in, c_out, 1)


# ------------------------------------------------------------------------------------------
# parameter counts


def test_paper_parameter_counts_match_reference_architecture():
    bb = backbone()
    spec = bb.temporal_spec()
    assert (spec.input_shape, spec.latent_shape, spec.frames) == ((256,), (1024, 3, 3), 16)
    with torch.device("meta"):
        gan = build_gan(bb)
    fc = 256 * 1024 * 9 + 1024 * 9
    clstm = 4 * 1024 * (2048 * 9) + 4 * 1024
    image = (
        up(1024, 512)
        + up(512, 256)
        + up(256, 128)
        + head(128)  # 24 px
        + up(128, 64)
        + head(64)  # 48 px
        + up(64, 32)
        + head(32)  # 96 px
        + up(32, 32)
        + head(32)  # 192 px
    )
    disc = (
        d_block(3, 64, first=True)
        + d_block(64, 128)
        + d_block(128, 256)
        + d_block(256, 512)
        + d_block(512, 1024)
        + (1024 + 1)
    )
    expected = {
        "generator.temporal": fc + clstm,
        "generator.image": image,
        **{f"discriminator.level{k}": disc for k in range(4)},
    }
    assert gan.module_parameter_counts() == expected
    assert (fc + clstm, image, disc) == (77_870_080, 10_162_380, 29_019_265)
    assert spec.reference_params == fc + clstm


@pytest.mark.parametrize(
    ("preset", "temporal", "image", "levels"),
    [
        ("128px", 79_712_256, 10_141_769, 3),
        ("64px", 79_712_256, 10_110_854, 2),
        ("tiny", 83_360, 30_030, 2),
    ],
)
def test_other_presets_parameter_counts(preset, temporal, image, levels):
    bb = backbone(preset=preset)
    c = bb.config
    with torch.device("meta"):
        counts = build_gan(bb).module_parameter_counts()
    assert counts["generator.temporal"] == temporal == bb.temporal_spec().reference_params
    assert counts["generator.temporal"] == (
        conv(c.z_dim, c.clstm_channels * c.base_size**2, 1)
        + conv(2 * c.clstm_channels, 4 * c.clstm_channels, 9)
    )
    assert counts["generator.image"] == image
    d = c.d_channels
    disc = d_block(3, d, True) + sum(d_block(d * 2**i, d * 2 ** (i + 1)) for i in range(4))
    disc += 16 * d + 1
    assert [counts[f"discriminator.level{k}"] for k in range(levels)] == [disc] * levels
    assert len(counts) == 2 + levels


# ------------------------------------------------------------------------------------------
# shapes at full size


def check_full_geometry(bb: TGANv2Backbone) -> None:
    """Test-time video, the four training levels and one score per video, at batch 1."""
    gan = build_gan(bb)
    g = gan.generator
    rng = torch.Generator().manual_seed(0)
    z = g.sample_z(1, rng)
    assert z.min() >= -1 and z.max() <= 1
    with torch.no_grad():
        video = g.eval()(z)
        assert video.shape == (1, 3, 16, 192, 192)
        assert video.abs().max() <= 1 and torch.isfinite(video).all()
        levels = gan.train().generate_levels(z, rng)
        # the paper's code keeps 1 frame in 4 per level: 16 → 4 → 1 → 1
        assert [tuple(v.shape) for v in levels] == [
            (1, 3, 16, 24, 24),
            (1, 3, 4, 48, 48),
            (1, 3, 1, 96, 96),
            (1, 3, 1, 192, 192),
        ]
        for d, v in zip(gan.discriminators.values(), levels, strict=True):
            assert d(v).shape == (1,)


@pytest.mark.slow
def test_full_size_forward_on_cpu():
    check_full_geometry(backbone())  # ~20 s on 2 cores: 204M parameters, 192 px


def test_paper_geometry_with_narrow_networks():
    # The paper's sizes, levels and frame counts with narrow channels: fast on a CPU.
    check_full_geometry(backbone(clstm_channels=16, g_channels=2, d_channels=2, z_dim=8))


def test_discriminator_reduces_every_input_size_to_one_score():
    d = VideoDiscriminator(2)
    for shape in [(3, 3, 16, 24, 24), (2, 3, 2, 192, 192), (1, 3, 5, 7, 9), (2, 3, 1, 1, 1)]:
        assert d(torch.randn(shape)).shape == (shape[0],)
    features = d.blocks(torch.randn(1, 3, 16, 24, 24))
    assert features.shape == (1, 32, 1, 1, 1)
    assert d.blocks(torch.randn(1, 3, 2, 192, 192)).shape == (1, 32, 1, 6, 6)


# ------------------------------------------------------------------------------------------
# temporal.clstm


def test_clstm_is_discrete_deterministic_and_a_convlstm():
    torch.manual_seed(0)
    spec = nd.TemporalSpec((5,), (4, 3, 3), 6)
    temporal = ConvLSTMTemporal(ConvLSTMTemporalConfig(), spec)
    assert not temporal.continuous and not temporal.stochastic
    z = torch.rand(2, 5) * 2 - 1
    out = temporal(z, spec.times())
    assert out.shape == (2, 6, 4, 3, 3)
    assert torch.equal(out, temporal(z, spec.times()))
    with pytest.raises(ConfigError, match="temporal.clstm is a discrete.*exactly 6 frames"):
        temporal(z, torch.linspace(0, 1, 11))
    with pytest.raises(ConfigError, match="discrete"):
        temporal.check_times(torch.linspace(-1, 1, 6))

    # the recurrence by hand: fc(z) at step 0, zeros afterwards; h, c start at 0
    w, b = temporal.cells[0].gates.weight, temporal.cells[0].gates.bias
    x0 = (z @ temporal.fc.weight.T + temporal.fc.bias).view(2, 4, 3, 3)
    h = c = torch.zeros_like(x0)
    for k in range(6):
        x = x0 if k == 0 else torch.zeros_like(x0)
        i, f, o, g = F.conv2d(torch.cat([x, h], 1), w, b, padding=1).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        torch.testing.assert_close(out[:, k], h)

    with pytest.raises(ConfigError, match="feature-map latents"):
        ConvLSTMTemporal(ConvLSTMTemporalConfig(), nd.TemporalSpec((5,), (5,), 6))
    deep = ConvLSTMTemporal(ConvLSTMTemporalConfig(layers=2, kernel_size=1), spec)
    assert deep(z, spec.times()).shape == (2, 6, 4, 3, 3)
    with pytest.raises(ConfigError, match="kernel_size: expected an odd number"):
        build_config(ConvLSTMTemporalConfig, {"kernel_size": 2}, "temporal.clstm")


# ------------------------------------------------------------------------------------------
# multi-level training data


def test_frames_and_videos_are_subsampled_with_per_video_offsets():
    bb = backbone(preset="tiny", levels=3, size=96, frame_subsample=[2, 4], batch_reduction=False)
    gan = build_gan(bb)
    # every pixel of frame t holds t, so each level shows which frames it kept
    t = torch.arange(16.0).view(1, 1, 16, 1, 1)
    real = t.expand(6, 3, 16, 96, 96).clone()
    seen = set()
    for seed in range(6):
        levels = gan.real_levels(real, torch.Generator().manual_seed(seed))
        assert [tuple(v.shape) for v in levels] == [
            (6, 3, 16, 24, 24),
            (6, 3, 8, 48, 48),
            (6, 3, 2, 96, 96),
        ]
        torch.testing.assert_close(levels[0][:, :, :, 0, 0], t.view(1, 1, 16).expand(6, 3, 16))
        for video in levels[2][:, 0, :, 0, 0]:
            first, second = video.tolist()
            assert second - first == 8 and 0 <= first < 8  # strides 2 then 4
            seen.add(first)
        for video in levels[1][:, 0, :, 0, 0]:
            assert (video.diff() == 2).all()
    assert len(seen) > 2  # offsets differ between videos and draws

    reduced = build_gan(backbone(preset="tiny"))  # tiny reduces the batch between levels
    levels = reduced.real_levels(torch.randn(5, 3, 16, 48, 48), torch.Generator())
    assert [tuple(v.shape) for v in levels] == [(5, 3, 16, 24, 24), (3, 3, 8, 48, 48)]
    fakes = reduced.generate_levels(torch.rand(5, 32) * 2 - 1, torch.Generator())
    assert [tuple(v.shape) for v in fakes] == [(5, 3, 16, 24, 24), (3, 3, 8, 48, 48)]


def test_real_levels_are_area_downsampled():
    gan = build_gan(backbone(preset="tiny", frame_subsample=[1], batch_reduction=False))
    real = torch.rand(2, 3, 16, 48, 48)
    low, top = gan.real_levels(real, torch.Generator())
    assert torch.equal(top, real)
    torch.testing.assert_close(low, real.view(2, 3, 16, 24, 2, 24, 2).mean((4, 6)))


def test_subsample_frames_keeps_a_stride():
    x = torch.arange(8.0).expand(4, 8)
    out = subsample_frames(x, 4, torch.Generator().manual_seed(0))
    assert out.shape == (4, 2) and ((out[:, 1] - out[:, 0]) == 4).all()
    assert torch.equal(subsample_frames(x, 1, None), x)


# ------------------------------------------------------------------------------------------
# the training step


def tiny_gan(temporal: str = "clstm", **options):
    bb = backbone(preset="tiny", **options)
    spec = bb.temporal_spec()
    if temporal == "ode":
        t = ODETemporal(build_config(ODEConfig, {}, "temporal.ode"), spec)
    elif temporal == "sde":
        t = SDETemporal(build_config(SDEConfig, {}, "temporal.sde"), spec)
    else:
        t = ConvLSTMTemporal(ConvLSTMTemporalConfig(), spec)
    return bb.build(t)


def snapshot(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(module: nn.Module, before: list[torch.Tensor]) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


@pytest.mark.parametrize("temporal", ["clstm", "ode", "sde"])
def test_training_step_updates_generator_and_every_discriminator(temporal):
    torch.manual_seed(0)
    gan = tiny_gan(temporal, decay_iterations=10)
    opts = gan.configure_optimizers()
    assert set(opts) == {"generator", "discriminator"}
    parts = {
        "temporal": gan.generator.temporal,
        "image": gan.generator.image,
        **{name: d for name, d in gan.discriminators.items()},
    }
    assert set(parts) == {"temporal", "image", "level0", "level1"}
    before = {name: snapshot(m) for name, m in parts.items()}
    real = torch.rand(4, 3, 16, 48, 48) * 2 - 1
    rng = torch.Generator().manual_seed(1)
    metrics = gan.training_step(real, 4, opts, rng)
    assert {"loss_d", "loss_g", "r1", "d_real", "d_fake", "lr", "d_real_1"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())
    assert metrics["r1"] > 0
    for name, module in parts.items():
        assert changed(module, before[name]), name
    # the learning rate decays linearly to 0 over decay_iterations (10 here), set from step
    assert metrics["lr"] == pytest.approx(2e-4 * 0.6)
    for opt in opts.values():
        assert all(g["lr"] == pytest.approx(2e-4 * 0.6) for g in opt.param_groups)
    assert gan.training_step(real, 12, opts, rng)["lr"] == 0.0
    assert all(g["lr"] == 0.0 for opt in opts.values() for g in opt.param_groups)
    assert gan.learning_rate(0) == 2e-4
    assert tiny_gan(decay_iterations=0).learning_rate(10**6) == 2e-4


def test_training_step_is_reproducible_from_the_rng():
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        gan = tiny_gan()
        opts = gan.configure_optimizers()
        rng = torch.Generator().manual_seed(3)
        real = torch.rand(4, 3, 16, 48, 48, generator=torch.Generator().manual_seed(4))
        gan.training_step(real * 2 - 1, 0, opts, rng)
        results.append(gan.state_dict())
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])


class LinearD(nn.Module):
    """D(x) = <w, x> + b per video: ∇_x D = w for every video."""

    def __init__(self, shape):
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape))
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1) + self.b


@pytest.mark.parametrize(("reduction", "every"), [("sum", 1), ("mean", 1), ("sum", 3)])
def test_r1_is_the_gradient_penalty_on_real_videos(reduction, every):
    torch.manual_seed(0)
    gan = tiny_gan(r1_reduction=reduction, r1_every=every, r1_weight=0.5)
    shapes = [(3, 16, 24, 24), (3, 8, 48, 48)]
    gan.discriminators = nn.ModuleDict({f"level{k}": LinearD(s) for k, s in enumerate(shapes)})
    norms = [d.w.detach().pow(2).sum().item() for d in gan.discriminators.values()]
    opts = gan.configure_optimizers()
    real = torch.rand(4, 3, 16, 48, 48) * 2 - 1
    batches = [4, 2] if reduction == "sum" else [1, 1]  # tiny halves the batch at level 1
    expected = 0.5 * sum(b * n for b, n in zip(batches, norms, strict=True)) * every
    metrics = gan.training_step(real, 0, opts, torch.Generator())
    assert metrics["r1"] == pytest.approx(expected, rel=1e-5)
    if every > 1:
        assert gan.training_step(real, 1, opts, torch.Generator())["r1"] == 0.0

    # the function itself, with two levels of different batch sizes
    x = [torch.randn(4, 3, 2, 2, 2, requires_grad=True), torch.randn(2, 3, 1, 4, 4)]
    x[1].requires_grad_(True)
    ds = [LinearD(v.shape[1:]) for v in x]
    scores = [d(v) for d, v in zip(ds, x, strict=True)]
    penalty = r1_penalty(scores, x, 0.5, "sum")
    want = 0.5 * (4 * ds[0].w.pow(2).sum() + 2 * ds[1].w.pow(2).sum())
    torch.testing.assert_close(penalty, want)
    penalty.backward()  # differentiable: its gradient wrt w is 2·λ·B·w
    torch.testing.assert_close(ds[0].w.grad, 0.5 * 4 * 2 * ds[0].w.detach())


def test_temporal_ode_and_sde_fit_the_feature_map_latent():
    gan = tiny_gan("ode")
    ode = gan.generator.temporal
    assert ode.feature_map and isinstance(ode.field[0], nn.Conv2d)
    assert ode.input.encoder.in_features == 32 and ode.input.encoder.out_features == 32 * 9
    with torch.no_grad():
        video = gan.generator.eval()(gan.generator.sample_z(2), torch.linspace(-0.5, 1.5, 5))
    assert video.shape == (2, 3, 5, 48, 48)
    sde = tiny_gan("sde").generator.eval()
    with torch.no_grad():
        video = sde(sde.sample_z(2), generator=torch.Generator().manual_seed(0))
    assert video.shape == (2, 3, 16, 48, 48) and torch.isfinite(video).all()


# ------------------------------------------------------------------------------------------
# configuration


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": 128}, r"backbone.tganv2.size: with base_size 3 and 4 levels .* = 192 px"),
        ({"frame_subsample": [2, 2]}, r"frame_subsample: expected 3 factors"),
        ({"frames": 12, "frame_subsample": [2, 2, 2]}, r"frames: a level of 3 frames cannot"),
        ({"frame_subsample": [2, 0, 2]}, r"frame_subsample: expected a list of integers >= 1"),
        ({"preset": "huge"}, r"preset: expected one of 'paper', '128px', '64px', 'tiny'"),
        ({"r1_reduction": "max"}, r"r1_reduction: expected one of 'sum', 'mean'"),
        ({"beta2": 1.0}, r"beta1/beta2"),
    ],
)
def test_config_errors_name_the_option(options, message):
    with pytest.raises(ConfigError, match=message):
        build_config(TGANv2Config, options, SECTION)


def test_presets():
    sizes = {
        p: (c.size, c.level_sizes, c.level_frames, c.batch_size)
        for p in ("paper", "128px", "64px", "tiny")
        for c in [build_config(TGANv2Config, {"preset": p}, SECTION)]
    }
    assert sizes == {
        "paper": (192, (24, 48, 96, 192), (16, 4, 1, 1), 32),
        "128px": (128, (32, 64, 128), (16, 8, 4), 32),
        "64px": (64, (32, 64), (16, 8), 32),
        "tiny": (48, (24, 48), (16, 8), 4),
    }


def test_resumed_run_is_bit_identical(tmp_path):
    registry = nd.Registry(entry_points=False, disabled=())
    raw = {
        "run": {"iterations": 4, "checkpoint_every": 2, "sample_every": 100, "samples": 2},
        "plugins": {"backbone": "backbone.tganv2"},
        "backbone": {"tganv2": {"preset": "tiny", "decay_iterations": 6}},
        "dataset": {"shapes": {"videos": 8}},
    }
    raw["run"] |= {"progress": False, "out": str(tmp_path)}
    config = resolve(raw, registry)
    straight = nd.train(config, registry, run_dir=tmp_path / "a")
    partial = tmp_path / "b" / "checkpoints"
    partial.mkdir(parents=True)
    shutil.copy(straight / "checkpoints" / "step-00000002.pt", partial)
    resumed = nd.train(config, registry, resume=partial / "step-00000002.pt")
    a, b = load_checkpoint(straight)["model"], load_checkpoint(resumed)["model"]
    assert load_checkpoint(resumed)["step"] == 4 and a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------
# the command line


def test_cli_trains_tiny_end_to_end_and_samples(tmp_path):
    ndevgan(
        "run", "--plugin", "backbone.tganv2",
        "--set", "backbone.tganv2.preset=tiny",
        "--set", "run.iterations=2",
        "--set", "dataset.shapes.videos=64",
        "--set", "run.samples=4",
        "--set", "run.progress=false",
        "--set", f"run.out={tmp_path}",
        "--set", "run.name=v",
        "--set", "run.log_every=1",
        env=ONE_THREAD,
    )  # fmt: skip
    run_dir = tmp_path / "v"
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    assert all(np.isfinite([r["loss_d"], r["loss_g"], r["r1"]]).all() for r in log)
    out = tmp_path / "s.mp4"
    proc = ndevgan("sample", str(run_dir), "--n", "2", "--out", str(out), env=ONE_THREAD)
    assert "from step 2" in proc.stdout
    video = media.read_video(out)
    assert video.shape[0] == 16 and video.shape[1] > 48  # 16 frames of 48 px videos in a grid


def test_cli_info_prints_counts_and_temporal_variants():
    out = ndevgan("info", "--plugin", "backbone.tganv2", env=ONE_THREAD).stdout
    assert "backbone backbone.tganv2 (paper preset), temporal temporal.clstm" in out
    assert "generator.temporal" in out and "77,870,080" in out
    assert "generator.image" in out and "10,162,380" in out
    assert out.count("29,019,265") == 4  # one 3-D ResNet per level
    assert "its original has 77,870,080" in out
    assert "temporal.ode order=1 design=single" in out
    assert "temporal.clstm" in out


def test_odd_extents_are_zero_padded_before_pooling():
    x = torch.arange(1.0, 4.0).view(1, 1, 1, 1, 3).expand(1, 1, 3, 3, 3).contiguous()
    out = _halve(x, time=True)
    assert out.shape == (1, 1, 2, 2, 2)
    # per axis: windows (0, x0) and (x1, x2); along W with x = 1, 2, 3: 0.5 and 2.5, scaled
    # by the halves of the other two axes (1/2 and 1)
    expected_w = torch.tensor([0.5, 2.5])
    profile = torch.tensor([0.5, 1.0])
    want = profile.view(2, 1, 1) * profile.view(1, 2, 1) * expected_w.view(1, 1, 2)
    torch.testing.assert_close(out[0, 0], want)
    even = torch.rand(1, 2, 4, 4, 4)
    torch.testing.assert_close(_halve(even, time=True), F.avg_pool3d(even, 2))


def test_discriminator_final_relu_is_an_option():
    torch.manual_seed(0)
    plain, relu = VideoDiscriminator(4), VideoDiscriminator(4, final_relu=True)
    relu.load_state_dict(plain.state_dict())
    video = torch.randn(2, 3, 4, 24, 24)
    h = plain.blocks(video)
    torch.testing.assert_close(plain(video), plain.linear(h.sum(dim=(2, 3, 4))).squeeze(1))
    torch.testing.assert_close(relu(video), plain.linear(F.relu(h).sum(dim=(2, 3, 4))).squeeze(1))


@pytest.mark.parametrize(("update", "generator_passes"), [("alternating", 2), ("simultaneous", 1)])
def test_update_order(update, generator_passes):
    torch.manual_seed(0)
    bb = backbone(preset="tiny", update=update)
    gan = build_gan(bb)
    calls = []
    gan.generator.temporal.register_forward_hook(lambda *a: calls.append(1))
    opts = gan.configure_optimizers()
    real = torch.rand(4, 3, 16, 48, 48) * 2 - 1
    gan.training_step(real, 0, opts, torch.Generator().manual_seed(1))
    assert len(calls) == generator_passes


def test_published_init_leaves_torch_defaults_and_chainer_zeroes_biases():
    torch.manual_seed(0)
    published = build_gan(backbone(preset="tiny"))
    chainer = build_gan(backbone(preset="tiny", init="chainer"))
    head = published.generator.image.heads[0].conv
    bound = 1 / (head.weight[0].numel() ** 0.5)  # torch's default U(±1/√fan_in)
    assert head.weight.abs().max() <= bound and torch.count_nonzero(head.bias) == 3
    assert torch.count_nonzero(chainer.generator.image.heads[0].conv.bias) == 0
    block = published.discriminators["level0"].blocks[1].conv1
    assert torch.count_nonzero(block.bias) == block.bias.numel()
    assert torch.count_nonzero(chainer.discriminators["level0"].blocks[1].conv1.bias) == 0
    # at the paper preset the ConvLSTM takes torch's default init too
    registry = nd.Registry(entry_points=False, disabled=())
    config = resolve({"plugins": {"backbone": "backbone.tganv2"}}, registry)
    assert config.components["temporal.clstm"].init == "torch_default"
    tiny = resolve(
        {"plugins": {"backbone": "backbone.tganv2"}, "backbone": {"tganv2": {"preset": "tiny"}}},
        registry,
    )
    assert tiny.components["temporal.clstm"].init == "lecun_normal"
