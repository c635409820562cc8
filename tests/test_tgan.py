"""backbone.tgan and temporal.conv1d: shapes, the authors' parameter counts and inits, protocol."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import ndevgan_core as nd
from ndevgan_core.config import build_config
from ndevgan_core.errors import ConfigError
from ndevgan_core.losses import singular_value_clip
from ndevgan_core.runconfig import resolve
from ndevgan_plugins import shapes_render
from ndevgan_plugins.tgan import (
    Conv1dTemporal,
    Conv1dTemporalConfig,
    Critic,
    TGANBackbone,
    TGANConfig,
    augment_videos,
    contrastive_loss,
    mmd_squared,
    pixel_differences,
    shape_code_of,
)


def paper() -> TGANBackbone:
    return TGANBackbone(build_config(TGANConfig, {}, "backbone.tgan"))


def conv_params(c_in, c_out, k, bias):  # k = number of kernel elements
    return c_in * c_out * k + (c_out if bias else 0)


def test_paper_parameter_counts_match_reference_architecture():
    backbone = paper()
    spec = backbone.temporal_spec()
    temporal = Conv1dTemporal(Conv1dTemporalConfig(bias=True), spec)  # the paper preset's
    gan = backbone.build(temporal)
    counts = gan.module_parameter_counts()
    bn = 2  # gamma and beta per channel
    # G0 as the paper's code: a bias on every ConvTranspose1d (the authors' 826,468)
    g0 = (
        conv_params(100, 512, 1, True)
        + bn * 512
        + conv_params(512, 256, 4, True)
        + bn * 256
        + conv_params(256, 128, 4, True)
        + bn * 128
        + conv_params(128, 128, 4, True)
        + bn * 128
        + conv_params(128, 100, 4, True)
    )
    g1 = (
        2 * (100 * 256 * 16 + bn * 256 * 16)
        + conv_params(512, 256, 16, False)
        + bn * 256
        + conv_params(256, 128, 16, False)
        + bn * 128
        + conv_params(128, 64, 16, False)
        + bn * 64
        + conv_params(64, 32, 16, False)
        + bn * 32
        + conv_params(32, 3, 9, True)
    )
    # the critic as the paper's code: a bias on every Conv3d (the authors' 11,033,281)
    d = (
        conv_params(3, 64, 64, True)
        + conv_params(64, 128, 64, True)
        + bn * 128
        + conv_params(128, 256, 64, True)
        + bn * 256
        + conv_params(256, 512, 64, True)
        + bn * 512
        + conv_params(512, 1, 16, True)
    )
    assert counts == {"generator.temporal": g0, "generator.image": g1, "discriminator.video": d}
    assert (g0, g1, d) == (826_468, 3_622_691, 11_033_281)
    assert spec.reference_params == g0


def test_bias_options_give_ndevgan_0_1_counts():
    config = build_config(TGANConfig, {"critic_bias": False}, "backbone.tgan")
    spec = TGANBackbone(config).temporal_spec()
    temporal = Conv1dTemporal(build_config(Conv1dTemporalConfig, {"bias": False}), spec)
    counts = TGANBackbone(config).build(temporal).module_parameter_counts()
    assert counts["generator.temporal"] == 826_468 - (512 + 256 + 128 + 128)
    assert counts["discriminator.video"] == 11_033_281 - (128 + 256 + 512)


def test_paper_preset_publishes_the_biased_g0_and_tiny_keeps_none():
    registry = nd.Registry(entry_points=False, disabled=())
    paper_run = resolve({"plugins": {"backbone": "backbone.tgan"}}, registry)
    assert paper_run.components["temporal.conv1d"].bias
    assert paper_run.components["temporal.conv1d"].init == "xavier_uniform"
    tiny = {"plugins": {"backbone": "backbone.tgan"}, "backbone": {"tgan": {"preset": "tiny"}}}
    tiny_run = resolve(tiny, registry)
    assert not tiny_run.components["temporal.conv1d"].bias
    assert tiny_run.components["temporal.conv1d"].init == "torch_default"
    assert not tiny_run.components["backbone.tgan"].critic_bias


def test_published_init_statistics():
    torch.manual_seed(0)
    backbone = paper()
    g0 = Conv1dTemporal(
        Conv1dTemporalConfig(bias=True, init="xavier_uniform"), backbone.temporal_spec()
    )
    gan = backbone.build(g0)
    g1 = gan.generator.image
    weights = [m.weight for m in g1.modules() if isinstance(m, (nn.Linear, nn.ConvTranspose2d))]
    for w in weights:  # U(-0.01, 0.01): bounded, std 0.01/sqrt(3)
        assert w.abs().max() <= 0.01
        assert w.std().item() == pytest.approx(0.01 / math.sqrt(3), rel=0.05)
    critic = gan.discriminators["video"]
    for m in critic.modules():
        if isinstance(m, nn.Conv3d):
            fan_in = m.weight[0].numel()
            fan_out = m.weight.shape[0] * m.weight[0, 0].numel()
            expected = math.sqrt(2) * math.sqrt(2 / (fan_in + fan_out))  # xavier normal, gain √2
            assert m.weight.std().item() == pytest.approx(expected, rel=0.1)
    g0 = gan.generator.temporal
    for m in g0.modules():
        if isinstance(m, nn.ConvTranspose1d):
            w = m.weight
            fan_in, fan_out = w.shape[1] * w.shape[2], w.shape[0] * w.shape[2]
            bound = math.sqrt(2) * math.sqrt(6 / (fan_in + fan_out))  # xavier uniform, gain √2
            assert w.abs().max() <= bound
            assert w.abs().max() > 0.9 * bound


def test_gamma_clip_keeps_gamma_between_a_hundredth_of_sigma_and_sigma():
    bn = nn.BatchNorm3d(4)
    bn.running_var.copy_(torch.tensor([4.0, 4.0, 4.0, 0.25]))
    bn.weight.data = torch.tensor([5.0, -1.0, 0.001, 0.3])
    singular_value_clip(bn)  # the published rule: σ = √running_var, no eps
    assert bn.weight.tolist() == pytest.approx([2.0, 0.02, 0.02, 0.3])
    bn.weight.data = torch.tensor([5.0, -5.0, 0.001, 0.3])
    singular_value_clip(bn, gamma_floor=None)  # symmetric: |γ| <= √(var + eps)
    eps = bn.eps
    assert bn.weight.tolist() == pytest.approx(
        [math.sqrt(4 + eps), -math.sqrt(4 + eps), 0.001, 0.3]
    )


def test_paper_shapes_and_critic_any_batch_size():
    backbone = paper()
    gan = backbone.build(Conv1dTemporal(Conv1dTemporalConfig(), backbone.temporal_spec()))
    g = gan.generator.eval()
    z = g.sample_z(2, torch.Generator().manual_seed(0))
    assert z.min() >= -1 and z.max() <= 1  # TGAN's z ~ U(-1, 1)
    with torch.no_grad():
        video = g(z)
        assert video.shape == (2, 3, 16, 64, 64)
        assert video.abs().max() <= 1
        critic = gan.discriminators["video"].eval()
        for b in (1, 3):
            assert critic(torch.zeros(b, 3, 16, 64, 64)).shape == (b,)
        feats = critic.features(torch.zeros(1, 3, 16, 64, 64))
        assert feats.shape == (1, 512, 1, 4, 4)


def test_conv1d_is_discrete_and_refuses_other_grids():
    spec = nd.TemporalSpec((8,), (8,), 16)
    temporal = Conv1dTemporal(Conv1dTemporalConfig(channels=16), spec)
    assert not temporal.continuous
    temporal.check_times(spec.times())
    with pytest.raises(ConfigError, match="temporal.conv1d is a discrete.*exactly 16 frames"):
        temporal.check_times(torch.linspace(0, 1, 31))
    with pytest.raises(ConfigError, match="discrete"):
        temporal.check_times(torch.linspace(-1, 1, 16))
    with pytest.raises(ConfigError, match="power-of-two"):
        Conv1dTemporal(Conv1dTemporalConfig(), nd.TemporalSpec((8,), (8,), 12))


def test_singular_value_clipping_bounds_every_layer():
    torch.manual_seed(0)
    critic = Critic(build_config(TGANConfig, {"preset": "tiny"}, "backbone.tgan"))
    with torch.no_grad():
        for p in critic.parameters():
            p.mul_(5)
        for m in critic.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_var.fill_(0.25)
    convs = [m for m in critic.modules() if isinstance(m, torch.nn.Conv3d)]
    before = [torch.linalg.matrix_norm(c.weight.flatten(1), ord=2).item() for c in convs]
    assert max(before) > 1.5
    singular_value_clip(critic)
    for c in convs:
        s = torch.linalg.svdvals(c.weight.flatten(1))
        assert s.max() <= 1 + 1e-5
    for m in critic.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            ratio = m.weight.abs() / torch.sqrt(m.running_var + m.eps)
            assert ratio.max() <= 1 + 1e-5


def test_training_step_updates_both_networks_and_reports_scores():
    torch.manual_seed(0)
    cfg = build_config(
        TGANConfig,
        {"preset": "tiny", "g_channels": 4, "d_channels": 4, "batch_size": 2, "latent_dim": 8},
        "backbone.tgan",
    )
    backbone = TGANBackbone(cfg)
    gan = backbone.build(Conv1dTemporal(Conv1dTemporalConfig(channels=8), backbone.temporal_spec()))
    opts = gan.configure_optimizers()
    g_before = [p.detach().clone() for p in gan.generator.parameters()]
    d_before = [p.detach().clone() for p in gan.discriminators.parameters()]
    real = torch.rand(2, 3, 16, 32, 32) * 2 - 1
    metrics = gan.training_step(real, 0, opts, torch.Generator().manual_seed(1))
    assert set(metrics) >= {"loss_d", "loss_g", "d_real", "d_fake"}
    assert metrics["loss_d"] == pytest.approx(metrics["d_fake"] - metrics["d_real"], abs=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(g_before, gan.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d_before, gan.discriminators.parameters()))
    assert all(p.requires_grad for p in gan.discriminators.parameters())


def test_cli_trains_the_tiny_preset_from_the_backbone_defaults(tmp_path):
    from ndevgan_core.training.checkpoint import load_checkpoint

    from .conftest import ndevgan

    ndevgan(
        "run", "--plugin", "backbone.tgan", "--set", "backbone.tgan.preset=tiny",
        "--set", "backbone.tgan.batch_size=4", "--set", "run.iterations=2",
        "--set", "dataset.shapes.videos=64", "--set", "run.samples=4",
        "--set", "run.progress=false", "--set", f"run.out={tmp_path}", "--set", "run.name=t",
    )  # fmt: skip
    state = load_checkpoint(tmp_path / "t")
    assert state["step"] == 2
    # the backbone's defaults: its original temporal generator, the tiny preset's sizes
    assert state["config"]["plugins"]["temporal"] in ("", "temporal.conv1d")
    assert state["config"]["backbone"]["tgan"]["size"] == 32


def test_recipe_options_hinge_spectral_norm_and_adam():
    config = build_config(
        TGANConfig,
        {
            "preset": "tiny",
            "loss": "hinge",
            "critic_norm": "spectral",
            "clip_every": 0,
            "optimizer": "adam",
            "beta1": 0.0,
            "beta2": 0.9,
        },
        "backbone.tgan",
    )
    backbone = TGANBackbone(config)
    torch.manual_seed(0)
    gan = backbone.build(Conv1dTemporal(Conv1dTemporalConfig(), backbone.temporal_spec()))
    critic = gan.discriminators["video"]
    assert not any(isinstance(m, nn.BatchNorm3d) for m in critic.modules())
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv3d)]
    assert all(nn.utils.parametrize.is_parametrized(c, "weight") for c in convs)
    opts = gan.configure_optimizers()
    assert all(isinstance(o, torch.optim.Adam) for o in opts.values())
    assert opts["generator"].param_groups[0]["betas"] == (0.0, 0.9)
    real = torch.rand(4, 3, 16, 32, 32) * 2 - 1
    metrics = gan.training_step(real, 0, opts, torch.Generator().manual_seed(1))
    # the critic's loss is the hinge of the scores it logged (its weights changed after)
    assert metrics["loss_d"] >= 0
    with torch.no_grad():
        sigma = torch.linalg.matrix_norm(convs[1].weight.flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=0.05)  # spectral normalisation
    with pytest.raises(ConfigError, match="beta2: expected a number in"):
        build_config(TGANConfig, {"beta2": 1.0}, "backbone.tgan")


def test_nonsaturating_loss_r1_no_norm_and_a_critic_learning_rate():
    config = build_config(
        TGANConfig,
        {
            "preset": "tiny", "g_channels": 4, "d_channels": 4, "latent_dim": 8,
            "loss": "nonsaturating", "critic_norm": "none", "r1": 2.0, "clip_every": 0,
            "optimizer": "adam", "lr": 1e-4, "d_lr": 4e-4,
        },
        "backbone.tgan",
    )  # fmt: skip
    backbone = TGANBackbone(config)
    torch.manual_seed(0)
    gan = backbone.build(Conv1dTemporal(Conv1dTemporalConfig(channels=8), backbone.temporal_spec()))
    critic = gan.discriminators["video"]
    assert not any(isinstance(m, nn.BatchNorm3d) for m in critic.modules())
    assert all(m.bias is not None for m in critic.modules() if isinstance(m, nn.Conv3d))
    opts = gan.configure_optimizers()
    assert opts["generator"].param_groups[0]["lr"] == 1e-4
    assert opts["discriminator"].param_groups[0]["lr"] == 4e-4
    real = torch.rand(2, 3, 16, 32, 32) * 2 - 1
    # the critic's logged loss = softplus terms of its logged means' inputs + λ E‖∇D(real)‖²
    x = real.clone().requires_grad_(True)
    scores = critic(x)
    (grad,) = torch.autograd.grad(scores.sum(), x)
    penalty = 2.0 * grad.pow(2).flatten(1).sum(1).mean()
    metrics = gan.training_step(real, 0, opts, torch.Generator().manual_seed(1))
    assert metrics["d_real"] == pytest.approx(scores.mean().item(), abs=1e-5)
    assert metrics["loss_d"] > penalty.item() > 0
    assert metrics["loss_g"] > 0  # softplus(-D(fake)) is positive


def _small_tgan(**options):
    config = build_config(
        TGANConfig,
        {"preset": "tiny", "g_channels": 4, "d_channels": 4, "latent_dim": 8, **options},
        "backbone.tgan",
    )
    backbone = TGANBackbone(config)
    torch.manual_seed(0)
    return backbone.build(
        Conv1dTemporal(Conv1dTemporalConfig(channels=8), backbone.temporal_spec())
    )


def test_minibatch_std_lets_the_critic_score_a_video_by_its_batch():
    plain = _small_tgan(critic_norm="none").discriminators["video"]
    spread = _small_tgan(critic_norm="none", minibatch_std=True).discriminators["video"]
    # One more input channel of the score convolution: one more kernel of (T/8)×4×4 = 2×4×4.
    params = [sum(p.numel() for p in c.score.parameters()) for c in (plain, spread)]
    assert params[1] - params[0] == 2 * 4 * 4
    torch.manual_seed(1)
    video, others = torch.randn(1, 3, 16, 32, 32), torch.randn(3, 3, 16, 32, 32)
    copies = video.expand(4, -1, -1, -1, -1)
    with torch.no_grad():
        alone = plain(torch.cat([video, others]))[0], plain(copies)[0]
        torch.testing.assert_close(alone[0], alone[1])  # without it, companions do not matter
        varied, same = spread(torch.cat([video, others]))[0], spread(copies)[0]
        assert (varied - same).abs() > 1e-4
        # A batch of copies has spread 0: its score is the convolution with a zero channel.
        weight = spread.score.weight[:, :-1]
        expected = F.conv3d(spread.features(video), weight, spread.score.bias).flatten()
        torch.testing.assert_close(same, expected[0])


def test_frame_critic_is_the_video_critic_in_two_dimensions_and_joins_both_losses():
    gan = _small_tgan(frame_critic=3)
    video, frame = gan.discriminators["video"], gan.discriminators["frame"]
    # 3→4→8→16 channels by 4×4 convolutions (no bias after the first: batch norm follows),
    # BN γ/β on the second and third, then a 4×4 score: the video critic's counts with k² not k³
    convs = 3 * 4 * 16 + 4 + 4 * 8 * 16 + 8 * 16 * 16
    assert nd.count_parameters(frame) == convs + 2 * (8 + 16) + 16 * 16 + 1
    video_convs = 3 * 4 * 64 + 4 + 4 * 8 * 64 + 8 * 16 * 64  # 4×4×4 kernels
    assert nd.count_parameters(video) == video_convs + 2 * (8 + 16) + 16 * 2 * 16 + 1
    real = torch.rand(2, 3, 16, 32, 32) * 2 - 1
    seen = []
    frame.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    opts = gan.configure_optimizers()
    before = {k: v.clone() for k, v in frame.state_dict().items()}
    metrics = gan.training_step(real, 1, opts, torch.Generator().manual_seed(1))
    # critic step: 3 frames of each of 2 real and 2 fake videos; generator step: the fakes'
    assert seen == [torch.Size([6, 3, 32, 32])] * 3
    assert any(not torch.equal(before[k], v) for k, v in frame.state_dict().items())
    # the WGAN critic loss sums both critics': the video critic's alone is d_fake - d_real
    assert metrics["loss_d"] != pytest.approx(metrics["d_fake"] - metrics["d_real"])
    assert "frame" not in _small_tgan().discriminators
    with pytest.raises(ConfigError, match="frame_critic: expected at most the 16 frames"):
        build_config(TGANConfig, {"frame_critic": 17}, "backbone.tgan")


def test_max_pooled_critic_convolves_at_full_resolution_then_halves_by_a_max():
    gan = _small_tgan(critic_downsample="maxpool", frame_critic=3)
    video, frame = gan.discriminators["video"], gan.discriminators["frame"]
    # the strided critics' counts above with 3×3(×3) kernels instead of 4×4(×4)
    video_convs = 3 * 4 * 27 + 4 + 4 * 8 * 27 + 8 * 16 * 27
    assert nd.count_parameters(video) == video_convs + 2 * (8 + 16) + 16 * 2 * 16 + 1
    frame_convs = 3 * 4 * 9 + 4 + 4 * 8 * 9 + 8 * 16 * 9
    assert nd.count_parameters(frame) == frame_convs + 2 * (8 + 16) + 16 * 16 + 1
    clips = torch.rand(2, 3, 16, 32, 32) * 2 - 1
    shapes = []
    for layer in video.features:
        if isinstance(layer, (nn.Conv3d, nn.MaxPool3d)):
            layer.register_forward_hook(lambda m, a, out: shapes.append(tuple(out.shape[1:])))
    video(clips)
    # each convolution keeps its input's extent, each max-pool halves it; the score sees the
    # strided critic's 16 × 2 × 4 × 4
    assert shapes == [
        (4, 16, 32, 32), (4, 8, 16, 16),
        (8, 8, 16, 16), (8, 4, 8, 8),
        (16, 4, 8, 8), (16, 2, 4, 4),
    ]  # fmt: skip
    first = video.features[0]
    with torch.no_grad():
        expected = F.max_pool3d(F.leaky_relu(first(clips), 0.2), 2)
        torch.testing.assert_close(video.features[:3](clips), expected)
    opts = gan.configure_optimizers()
    before = [p.clone() for p in video.parameters()]
    metrics = gan.training_step(clips, 0, opts, torch.Generator().manual_seed(1))
    assert all(math.isfinite(v) for v in metrics.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, video.parameters()))
    # singular value clipping ran on the 3×3×3 kernels too (iteration 0 clips)
    for layer in video.features:
        if isinstance(layer, nn.Conv3d):
            assert torch.linalg.svdvals(layer.weight.flatten(1)).max() <= 1 + 1e-5


def test_critic_max_score_adds_a_linear_function_of_each_channels_peak():
    gan = _small_tgan(critic_downsample="maxpool", critic_max_score=True)
    critic = gan.discriminators["video"]
    plain = _small_tgan(critic_downsample="maxpool").discriminators["video"]
    # one weight per last feature channel (16), no bias
    assert nd.count_parameters(critic) == nd.count_parameters(plain) + 16
    clips = torch.rand(3, 3, 16, 32, 32) * 2 - 1
    critic.eval()
    with torch.no_grad():
        for p in critic.parameters():
            p.normal_(0, 0.3)
        features = critic.features(clips)
        extent = critic.score(features).flatten()
        peaks = features.amax((2, 3, 4))  # (3, 16): each channel's maximum over t, h, w
        torch.testing.assert_close(critic(clips), extent + peaks @ critic.max_score.weight[0])
        assert (critic(clips) - extent).abs().min() > 1e-3
    opts = gan.configure_optimizers()
    critic.train()
    gan.training_step(torch.rand(2, 3, 16, 32, 32) * 2 - 1, 0, opts, torch.Generator())
    # singular value clipping bounds the new Linear as every other layer
    assert torch.linalg.svdvals(critic.max_score.weight).max() <= 1 + 1e-5


def test_translation_shifts_every_frame_of_a_video_by_its_own_whole_pixel_offset():
    # One white pixel per frame, at a different place in each frame, on black.
    video = -torch.ones(64, 3, 4, 32, 32)
    places = [(10, 20), (3, 5), (28, 30), (16, 16)]
    for t, (y, x) in enumerate(places):
        video[:, :, t, y, x] = 1.0
    video.requires_grad_(True)
    shifted = augment_videos(video, "translation", torch.Generator().manual_seed(0))
    offsets = set()
    for i in range(64):
        lit = [(shifted[i, 0, t] == 1).nonzero().tolist() for t in range(4)]
        # Each frame's pixel moved by the same (dy, dx), at most 32 / 8 = 4 pixels each way;
        # a pixel shifted out of the frame is gone, and black fills what was uncovered.
        moved = {(p[0][0] - y, p[0][1] - x) for p, (y, x) in zip(lit, places, strict=True) if p}
        assert len(moved) == 1
        dy, dx = moved.pop()
        assert max(abs(dy), abs(dx)) <= 4
        assert all(
            bool(p) == (0 <= y + dy < 32 and 0 <= x + dx < 32)
            for p, (y, x) in zip(lit, places, strict=True)
        )
        assert ((shifted[i] == 1) | (shifted[i] == -1)).all()
        offsets.add((dy, dx))
    assert len(offsets) > 20  # drawn per video
    # The generator learns through it: each input pixel's gradient is 1 where it stays in view.
    shifted.sum().backward()
    assert set(video.grad.unique().tolist()) == {0.0, 1.0}
    assert video.grad[:, :, :, 12:20, 12:20].eq(1).all()  # the middle never leaves the frame


def test_cutout_hides_the_same_half_width_square_in_every_frame_and_colour_keeps_grey_grey():
    video = torch.rand(32, 3, 4, 32, 32) * 0.5 + 0.5  # nothing is 0 before
    hidden = augment_videos(video, "cutout", torch.Generator().manual_seed(0))
    for i in range(32):
        mask = hidden[i] == 0
        assert torch.equal(mask, mask[:1, :1].expand_as(mask))  # all channels, all frames
        rows, cols = mask[0, 0].nonzero().unbind(1)
        # a 16×16 square, cut where it overhangs the frame's edge
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert mask[0, 0].sum() == height * width
        assert (
            height <= 16 and width <= 16 and (height == 16 or rows.min() == 0 or rows.max() == 31)
        )
        assert width == 16 or cols.min() == 0 or cols.max() == 31
        assert torch.equal(hidden[i][~mask], video[i][~mask])
    # A uniform grey video stays uniform and grey: saturation and contrast scale distances
    # from grey and from the mean, which are 0; only the brightness moves it, by at most 0.5.
    grey = torch.full((16, 3, 2, 8, 8), 0.2)
    coloured = augment_videos(grey, "colour", torch.Generator().manual_seed(0))
    for i in range(16):
        assert torch.allclose(coloured[i], coloured[i, 0, 0, 0, 0].expand_as(coloured[i]))
    brightness = coloured[:, 0, 0, 0, 0] - 0.2
    assert brightness.abs().max() <= 0.5 and brightness.std() > 0.1


def test_critic_augment_none_draws_nothing_and_the_critics_score_augmented_videos():
    rng = torch.Generator().manual_seed(5)
    state = rng.get_state()
    video = torch.rand(2, 3, 16, 32, 32)
    assert augment_videos(video, "none", rng) is video
    assert torch.equal(rng.get_state(), state)
    gan = _small_tgan(critic_augment="translation,cutout", frame_critic=2)
    seen = {"video": [], "frame": []}
    for name, critic in gan.discriminators.items():
        critic.register_forward_hook(lambda m, args, out, name=name: seen[name].append(args[0]))
    real = torch.rand(4, 3, 16, 32, 32) * 0.5 + 0.5  # no black and no grey pixels
    gan.training_step(real, 1, gan.configure_optimizers(), torch.Generator().manual_seed(1))
    # real, fake, then the generator step's fake: each with black edges or a grey square
    # somewhere in most videos (a draw of no shift and a square off the frame is possible)
    assert len(seen["video"]) == 3 and len(seen["frame"]) == 3
    changed = (seen["video"][0] == -1) | (seen["video"][0] == 0)
    assert changed.flatten(1).any(1).sum() >= 3
    with pytest.raises(ConfigError, match="critic_augment: expected none or a comma-separated"):
        build_config(TGANConfig, {"critic_augment": "colour,colour"}, "backbone.tgan")
    with pytest.raises(ConfigError, match="critic_augment: expected none"):
        build_config(TGANConfig, {"critic_augment": "blur"}, "backbone.tgan")


def test_pixel_differences_of_a_ramp_and_a_critic_that_weighs_edges_by_its_gain():
    # A ramp rising 0.1 per column and 0.3 per row: differences 0.1 right and 0.3 below,
    # 0 past the last column and row; frames and videos alike.
    rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    ramp = (0.1 * cols + 0.3 * rows).expand(2, 3, 4, 8, 8)
    for images in (ramp, ramp[:, :, 0]):
        diffs = pixel_differences(images)
        assert diffs.shape[1] == 6 and diffs.shape[2:] == images.shape[2:]
        right, below = diffs[:, :3], diffs[:, 3:]
        torch.testing.assert_close(right[..., :-1], torch.full_like(right[..., :-1], 0.1))
        torch.testing.assert_close(below[..., :-1, :], torch.full_like(below[..., :-1, :], 0.3))
        assert right[..., -1].eq(0).all() and below[..., -1, :].eq(0).all()
    plain = _small_tgan(critic_norm="none").discriminators["video"]
    edges = {
        k: _small_tgan(critic_norm="none", critic_edges=k).discriminators["video"] for k in (1, 2)
    }
    # Only the first layer changes: 9 input channels instead of 3 (4×4×4 kernels, 4 outputs).
    assert nd.count_parameters(edges[1]) - nd.count_parameters(plain) == 6 * 4 * 64
    # Gain 2 is gain 1 with the first layer's weights on the differences doubled.
    edges[2].load_state_dict(edges[1].state_dict())
    with torch.no_grad():
        edges[1].features[0].weight[:, 3:] *= 2
    video = torch.rand(3, 3, 16, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(edges[2](video), edges[1](video))
        # A video with no edges (each frame one colour) scores as the colour weights alone say.
        flat = video[:, :, :, :1, :1].expand_as(video).contiguous()
        plain.load_state_dict(
            {
                k: (v[:, :3] if k == "features.0.weight" else v)
                for k, v in edges[2].state_dict().items()
            }
        )
        torch.testing.assert_close(edges[2](flat), plain(flat))
    frame = _small_tgan(critic_edges=1, frame_critic=2).discriminators["frame"]
    assert frame.features[0].in_channels == 9


def test_frame_encoder_and_feature_critic_shapes_and_parameter_counts():
    gan = _small_tgan(feature_critic=2)
    encoder, head = gan.frame_encoder, gan.discriminators["features"]
    # 3×3 convolutions 3→32→64→64 with biases, each halving by a max-pool: 32×32 → 4×4
    assert sum(p.numel() for p in encoder.parameters()) == (
        conv_params(3, 32, 9, True) + conv_params(32, 64, 9, True) + conv_params(64, 64, 9, True)
    )
    assert encoder(torch.zeros(5, 3, 32, 32)).shape == (5, 64, 4, 4)
    # the head: a 3×3 convolution 64→64, then a 4×4 one to the score
    assert nd.count_parameters(head) == conv_params(64, 64, 9, True) + conv_params(64, 1, 16, True)
    assert head(torch.zeros(5, 64, 4, 4)).shape == (5,)
    # the encoder learns only in its own step: no optimiser but its own holds its weights
    opts = gan.configure_optimizers()
    owners = {
        name: {id(p) for g in o.param_groups for p in g["params"]} for name, o in opts.items()
    }
    assert owners["encoder"] == {id(p) for p in encoder.parameters()}
    assert not owners["encoder"] & (owners["generator"] | owners["discriminator"])
    assert "features" not in _small_tgan().discriminators
    assert not hasattr(_small_tgan(), "frame_encoder")
    with pytest.raises(ConfigError, match="feature_critic: expected at most the 16 frames"):
        build_config(TGANConfig, {"feature_critic": 17}, "backbone.tgan")
    with pytest.raises(ConfigError, match="feature_encoder_steps: 5 needs a feature critic"):
        build_config(TGANConfig, {"feature_encoder_steps": 5}, "backbone.tgan")


class _Constant(nn.Module):
    def forward(self, frames):
        return torch.ones(frames.shape[0], 64, 4, 4) + 0 * frames.sum()


def test_contrastive_loss_is_log_batch_for_a_blind_encoder_and_falls_as_the_encoder_learns():
    videos, _ = shapes_render.render_batch(range(16), 0, 16, 32)
    frames = torch.from_numpy(videos[:, 8].transpose(0, 3, 1, 2).astype("float32") / 127.5 - 1)
    rng = torch.Generator().manual_seed(0)
    # every view alike: each of the 16 candidates equally likely, the loss is ln 16
    assert contrastive_loss(_Constant(), frames, rng).item() == pytest.approx(math.log(16))
    gan = _small_tgan(feature_critic=1)
    encoder = gan.frame_encoder.requires_grad_(True)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = contrastive_loss(encoder, frames, rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5])


class _Brightness(nn.Module):
    """Features that say only whether a frame is brighter than mid-grey."""

    def forward(self, frames):
        bright = (frames.mean((1, 2, 3)) > 0).float()
        return torch.stack([bright, 1 - bright], 1)[:, :, None, None].expand(-1, -1, 4, 4)


def test_contrastive_loss_with_fakes_adds_the_supervised_term_that_holds_fakes_together():
    rng = torch.Generator().manual_seed(0)
    reals, fakes = -torch.ones(16, 3, 32, 32), torch.ones(4, 3, 32, 32)
    # a blind encoder: each of the 16 real candidates equally likely (ln 16), and each fake view
    # one of 2 × 20 − 1 equally likely candidates (ln 39)
    blind = contrastive_loss(_Constant(), reals, rng, fakes=fakes)
    assert blind.item() == pytest.approx(math.log(16) + math.log(39))
    # an encoder that holds the fakes together, apart from the reals: for each fake view the 7
    # other fake views have similarity 1/τ and the 32 real views 0
    tau = 0.2
    apart = contrastive_loss(_Brightness(), reals, rng, temperature=tau, fakes=fakes)
    expected = math.log(16) + math.log(7 + 32 * math.exp(-1 / tau))
    assert apart.item() == pytest.approx(expected, rel=1e-5)
    assert apart < blind
    # without fakes it is SimCLR's loss alone
    assert contrastive_loss(_Brightness(), reals, rng).item() == pytest.approx(math.log(16))
    with pytest.raises(ConfigError, match="feature_encoder_fakes: true needs a feature critic"):
        build_config(TGANConfig, {"feature_encoder_fakes": True}, "backbone.tgan")


def test_feature_critic_encoder_with_fakes_learns_from_one_frame_of_each_fake():
    gan = _small_tgan(feature_critic=2, feature_encoder_fakes=True)
    opts = gan.configure_optimizers()
    rng = torch.Generator().manual_seed(3)
    seen = []
    gan.frame_encoder.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    for step in range(8):
        gan.training_step(torch.rand(8, 3, 16, 32, 32) * 2 - 1, step, opts, rng)
    # at the 8th step 64 real frames are kept: two views of them and of one frame of each of
    # the 8 fakes (72 frames), then 64 for the standardisation, then the feature critic's
    # 2 frames of 8 videos, real, fake, and fake again for the generator
    assert seen[-6:] == [72, 72, 64, 16, 16, 16]


def _mmd_by_sums(x, y, bandwidths=(0.25, 1.0, 4.0)):
    points = [*x.tolist(), *y.tolist()]
    n = len(x)
    distance = [
        [sum((a - b) ** 2 for a, b in zip(p, q, strict=True)) for q in points] for p in points
    ]
    off = sorted(distance[i][j] for i in range(len(points)) for j in range(len(points)) if i != j)
    median = off[(len(off) - 1) // 2]

    def k(i, j):
        return sum(math.exp(-distance[i][j] / (2 * b * median)) for b in bandwidths) / 3

    xs, ys = range(n), range(n, len(points))
    within_x = sum(k(i, j) for i in xs for j in xs if i != j) / (n * (n - 1))
    within_y = sum(k(i, j) for i in ys for j in ys if i != j) / (len(ys) * (len(ys) - 1))
    across = sum(k(i, j) for i in xs for j in ys) / (n * len(ys))
    return within_x + within_y - 2 * across


def test_mmd_squared_matches_its_closed_form_and_the_sums_it_stands_for():
    # two copies of p against two of q: the median squared distance is |p − q|², so every
    # kernel across is exp(−1 / 2b) and every kernel within is 1
    p, q = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])
    value = mmd_squared(torch.cat([p, p]), torch.cat([q, q]))
    expected = 2 - 2 * sum(math.exp(-1 / (2 * b)) for b in (0.25, 1.0, 4.0)) / 3
    assert value.item() == pytest.approx(expected, rel=1e-6)
    torch.manual_seed(0)
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64) + 1
    assert mmd_squared(x, y).item() == pytest.approx(_mmd_by_sums(x, y), rel=1e-9)
    # unbiased: near 0 for two samples of one distribution, not for a shifted one
    same = mmd_squared(torch.randn(400, 4), torch.randn(400, 4))
    shifted = mmd_squared(torch.randn(400, 4), torch.randn(400, 4) + 0.5)
    assert abs(same.item()) < 0.01 < shifted.item()
    # the gradient moves the first sample towards the second
    moving = torch.randn(64, 2, requires_grad=True)
    target = torch.randn(64, 2) + 3
    before = mmd_squared(moving, target)
    (grad,) = torch.autograd.grad(before, moving)
    assert mmd_squared(moving.detach() - 0.5 * grad, target) < before
    with pytest.raises(ValueError, match="at least 2 points in each sample, got 1 and 4"):
        mmd_squared(x[:1], y)


def test_feature_mmd_adds_its_weighted_discrepancy_to_the_generator_loss():
    runs = {}
    for weight in (0.0, 2.0):
        gan = (
            _small_tgan(feature_critic=2, feature_mmd=weight)
            if weight
            else _small_tgan(feature_critic=2)
        )
        opts = gan.configure_optimizers()
        rng = torch.Generator().manual_seed(4)
        data = torch.Generator().manual_seed(5)
        metrics = [
            gan.training_step(torch.rand(8, 3, 16, 32, 32, generator=data) * 2 - 1, s, opts, rng)
            for s in range(8)
        ]
        runs[weight] = (gan, metrics)
    (plain, plain_metrics), (matched, matched_metrics) = runs[0.0], runs[2.0]
    # until 64 real frames are kept (the 8th step) there is nothing to match and the runs agree
    assert all("mmd" not in m for m in plain_metrics + matched_metrics[:7])
    for a, b in zip(plain_metrics[:7], matched_metrics[:7], strict=True):
        assert a["loss_g"] == pytest.approx(b["loss_g"], abs=1e-6)
    mmd = matched_metrics[7]["mmd"]
    assert mmd > 0
    assert matched_metrics[7]["loss_g"] == pytest.approx(
        plain_metrics[7]["loss_g"] + 2.0 * mmd, abs=1e-5
    )
    # and its gradient reaches the generator's weights
    assert any(
        not torch.allclose(a, b)
        for a, b in zip(plain.generator.parameters(), matched.generator.parameters(), strict=True)
    )
    with pytest.raises(ConfigError, match="feature_mmd: 1.0 needs a feature critic"):
        build_config(TGANConfig, {"feature_mmd": 1.0}, "backbone.tgan")
    with pytest.raises(ConfigError, match="feature_mmd"):
        build_config(TGANConfig, {"feature_critic": 1, "feature_mmd": -1.0}, "backbone.tgan")


def test_video_mmd_adds_the_discrepancy_of_the_video_critics_features_to_the_generator_loss():
    real = torch.rand(8, 3, 16, 32, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
    gans, metrics = {}, {}
    for weight in (0.0, 3.0):
        gan = _small_tgan(video_mmd=weight) if weight else _small_tgan()
        opts = gan.configure_optimizers()
        metrics[weight] = gan.training_step(real, 0, opts, torch.Generator().manual_seed(4))
        gans[weight] = gan
    assert "video_mmd" not in metrics[0.0]
    mmd = metrics[3.0]["video_mmd"]
    # the fakes' and the real batch's last features of the (updated) video critic
    critic = gans[3.0].discriminators["video"]
    with torch.no_grad():
        real_features = critic.last_features(real).flatten(1)
        scores, logits, returned = critic(real, with_features=True)
    assert real_features.shape == (8, 16 * 2 * 4 * 4)
    assert logits is None
    assert torch.equal(returned.flatten(1), real_features)
    assert torch.equal(scores, critic(real))
    assert mmd > 0
    assert metrics[3.0]["loss_g"] == pytest.approx(metrics[0.0]["loss_g"] + 3.0 * mmd, abs=1e-5)
    assert metrics[3.0]["loss_d"] == metrics[0.0]["loss_d"]
    assert any(
        not torch.allclose(a, b)
        for a, b in zip(
            gans[0.0].generator.parameters(), gans[3.0].generator.parameters(), strict=True
        )
    )
    with pytest.raises(ConfigError, match="video_mmd"):
        build_config(TGANConfig, {"video_mmd": -1.0}, "backbone.tgan")


def test_feature_encoder_every_learns_at_every_nth_step_and_keeps_frames_at_each():
    gan = _small_tgan(feature_critic=1, feature_encoder_steps=14, feature_encoder_every=2)
    opts = gan.configure_optimizers()
    rng = torch.Generator().manual_seed(2)
    weights = lambda: [p.detach().clone() for p in gan.frame_encoder.parameters()]  # noqa: E731
    history, metrics = [weights()], []
    for step in range(16):
        metrics.append(gan.training_step(torch.rand(8, 3, 16, 32, 32) * 2 - 1, step, opts, rng))
        history.append(weights())
    changed = [
        any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
        for before, after in itertools.pairwise(history)
    ]
    # 64 frames kept by the 8th step (step 7); it learns at the even steps 8, 10 and 12 only
    assert changed == [False] * 8 + [True, False] * 3 + [False] * 2
    assert [s for s, m in enumerate(metrics) if "encoder" in m] == list(range(0, 14, 2))
    assert int(gan.real_frames_seen) == 14 * 8
    with pytest.raises(ConfigError, match="feature_encoder_every: 2 needs a feature critic"):
        build_config(TGANConfig, {"feature_encoder_every": 2}, "backbone.tgan")


def test_feature_critic_encoder_learns_from_kept_real_frames_then_stays_and_the_head_trains():
    gan = _small_tgan(feature_critic=3, feature_encoder_steps=10)
    opts = gan.configure_optimizers()
    rng = torch.Generator().manual_seed(1)
    seen = []
    gan.discriminators["features"].register_forward_hook(
        lambda m, args, out: seen.append((args[0].shape, args[0].requires_grad))
    )
    reals = [torch.rand(8, 3, 16, 32, 32) * 2 - 1 for _ in range(12)]
    weights = lambda module: [p.detach().clone() for p in module.parameters()]  # noqa: E731
    history, metrics = [weights(gan.frame_encoder)], []
    head_before = weights(gan.discriminators["features"])
    for step, real in enumerate(reals):
        metrics.append(gan.training_step(real, step, opts, rng))
        history.append(weights(gan.frame_encoder))
    changed = [
        any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
        for before, after in itertools.pairwise(history)
    ]
    # 8 frames kept a step: the encoder first learns at the 8th (64 kept), stops after the 10th
    assert changed == [False] * 7 + [True] * 3 + [False] * 2
    assert [math.isnan(m["encoder"]) for m in metrics[:10]] == [True] * 7 + [False] * 3
    assert all("encoder" not in m for m in metrics[10:])
    assert int(gan.real_frames_seen) == 80
    # every kept frame is one of the frames of the video it was kept from
    for slot in range(80):
        video = reals[slot // 8][slot % 8]
        kept = gan.real_frames[slot % gan.REAL_FRAMES]
        assert any(torch.equal(kept, video[:, t]) for t in range(16))
    # the head scores 3 standardised frames of each of 8 videos: real and fake (no gradient
    # to the video), then the fakes again with the gradient that reaches the generator
    assert seen[:3] == [(torch.Size([24, 64, 4, 4]), False)] * 2 + [
        (torch.Size([24, 64, 4, 4]), True)
    ]
    assert any(
        not torch.equal(a, b)
        for a, b in zip(head_before, weights(gan.discriminators["features"]), strict=True)
    )
    # the GAN's losses do not reach the encoder's weights, only the videos through it
    for p in gan.frame_encoder.parameters():
        p.grad = None
    gan.training_step(reals[0], 12, opts, rng)
    assert all(p.grad is None for p in gan.frame_encoder.parameters())
    # the standardisation is that of the encoder's last batch of kept frames
    with torch.no_grad():
        features = gan.frame_encoder(gan.real_frames)
    spread = features.std(dim=(0, 2, 3))
    assert spread.mean() == pytest.approx(gan.feature_std.mean().item(), rel=0.5)
    assert not torch.equal(gan.feature_std, torch.ones_like(gan.feature_std))


def test_generator_fakes_reuse_renders_one_batch_per_iteration():
    counts = {}
    for mode in ("fresh", "reuse"):
        gan = _small_tgan(generator_fakes=mode)
        calls = []
        gan.generator.image.register_forward_hook(lambda m, args, out, calls=calls: calls.append(1))
        opts = gan.configure_optimizers()
        weights = [p.clone() for p in gan.generator.parameters()]
        gan.training_step(torch.rand(2, 3, 16, 32, 32) * 2 - 1, 1, opts, torch.Generator())
        assert any(not torch.equal(a, b) for a, b in zip(weights, gan.generator.parameters()))
        counts[mode] = len(calls)
    assert counts == {"fresh": 2, "reuse": 1}


def test_nearest_upsampling_has_no_transposed_convolution_but_the_last():
    gan = _small_tgan(upsample="nearest")
    up = gan.generator.image.up
    assert sum(isinstance(m, nn.Upsample) for m in up) == 3
    assert [type(m) for m in up if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))] == [
        nn.Conv2d, nn.Conv2d, nn.Conv2d, nn.ConvTranspose2d
    ]  # fmt: skip
    z = gan.generator.sample_z(2, torch.Generator().manual_seed(0), "cpu")
    assert gan.generator(z).shape == (2, 3, 16, 32, 32)
    with pytest.raises(ConfigError, match="upsample: expected one of"):
        build_config(TGANConfig, {"upsample": "bilinear"}, "backbone.tgan")


class _FixedSprite(nn.Module):
    """Stands in for the sprite generator's convolution stack: always this sprite."""

    def __init__(self, sprite: torch.Tensor) -> None:
        super().__init__()
        self.sprite = sprite

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.sprite.expand(h.shape[0], -1, -1, -1)


def _posed_sprite_generator(pose: list[float], sprite: torch.Tensor, **options):
    """The tiny sprite G1 at 32×32 with a fixed sprite, a −1 background and a constant pose
    (the pose network's raw outputs: centre x, y before tanh, angle / π, log-scale code)."""
    image = _small_tgan(image_generator="sprite", **options).generator.image
    image.up = _FixedSprite(sprite)
    with torch.no_grad():
        image.background.weight.zero_()
        image.background.bias.fill_(-20.0)
        image.pose[-1].weight.zero_()
        image.pose[-1].bias.copy_(torch.tensor(pose))
    return image.eval()


def test_sprite_generator_draws_its_sprite_where_the_pose_says():
    size = 32
    torch.manual_seed(1)
    logits = torch.randn(1, 4, size // 2, size // 2) * 3
    rgb = torch.tanh(logits[:, :3])
    latents, z = torch.zeros(1, 2, 8), torch.zeros(1, 8)

    def frame(pose):
        return _posed_sprite_generator(pose, logits)(latents, z)[0, 0]

    image = _posed_sprite_generator([0.0, 0.0, 0.0, 0.0], logits)
    alpha = torch.sigmoid(logits[0, 3:]) * image.window
    expected = rgb[0] * alpha + (1 - alpha) * -1.0
    centred = frame([0.0, 0.0, 0.0, 0.0])
    # Scale code 0 is half the frame: the sprite's pixels land 1:1 on the middle 16×16 pixels.
    torch.testing.assert_close(centred[:, 8:24, 8:24], expected, atol=1e-5, rtol=0)
    outside = torch.ones(size, size, dtype=torch.bool)
    outside[8:24, 8:24] = False
    torch.testing.assert_close(centred[:, outside], torch.full((3, int(outside.sum())), -1.0))
    # A centre at x = atanh(0.25) is 4 pixels right; an angle of π/2 is a quarter turn.
    right = frame([math.atanh(0.25), 0.0, 0.0, 0.0])
    torch.testing.assert_close(right[:, 8:24, 12:28], expected, atol=1e-5, rtol=0)
    turned = frame([0.0, 0.0, 0.5, 0.0])
    torch.testing.assert_close(
        turned[:, 8:24, 8:24], torch.rot90(expected, 1, dims=(1, 2)), atol=1e-5, rtol=0
    )
    # Scale code +∞ is a quarter of the frame: the sprite shrinks to the middle 8×8 pixels.
    small = frame([0.0, 0.0, 0.0, 20.0])
    assert (small[:, 12:20, 12:20] > -1.0 + 1e-3).any()
    shrunk = torch.ones(size, size, dtype=torch.bool)
    shrunk[12:20, 12:20] = False
    assert (small[:, shrunk] + 1.0).abs().max() < 1e-6


def test_sprite_gains_scale_the_pose_codes_into_shift_and_turn():
    torch.manual_seed(1)
    logits = torch.randn(1, 4, 16, 16) * 3
    latents, z = torch.zeros(1, 2, 8), torch.zeros(1, 8)
    gains = {"sprite_shift_gain": 2.0, "sprite_turn_gain": 0.25}
    plain = _posed_sprite_generator([math.atanh(0.25), 0.0, 0.5, 0.0], logits)(latents, z)
    # Half the centre code at shift gain 2 and four times the angle code at turn gain 1/4 draw
    # the same frame: 4 pixels right, a quarter turn.
    scaled = _posed_sprite_generator([math.atanh(0.25) / 2, 0.0, 2.0, 0.0], logits, **gains)
    torch.testing.assert_close(scaled(latents, z), plain, atol=1e-5, rtol=0)
    unscaled = _posed_sprite_generator([math.atanh(0.25) / 2, 0.0, 2.0, 0.0], logits)
    assert (unscaled(latents, z) - plain).abs().max() > 0.5
    for name in gains:
        with pytest.raises(ConfigError, match=f"{name}: 2.0 needs image_generator"):
            build_config(TGANConfig, {name: 2.0}, "backbone.tgan")
        with pytest.raises(ConfigError, match=f"{name}: expected"):
            build_config(TGANConfig, {"image_generator": "sprite", name: 0.0}, "backbone.tgan")


def test_a_full_size_sprite_spans_the_frame_one_to_one_and_half_of_it_averaged():
    torch.manual_seed(2)
    logits = torch.randn(1, 4, 32, 32) * 3
    latents, z = torch.zeros(1, 2, 8), torch.zeros(1, 8)
    image = _posed_sprite_generator([0.0, 0.0, 0.0, 0.0], logits, sprite_size="full")
    assert image.window.shape == (32, 32)
    alpha = torch.sigmoid(logits[0, 3:]) * image.window
    premultiplied = torch.tanh(logits[0, :3]) * alpha
    # Scale code −∞ is the whole frame: the sprite's 32×32 pixels land 1:1.
    whole = _posed_sprite_generator([0.0, 0.0, 0.0, -20.0], logits, sprite_size="full")
    torch.testing.assert_close(
        whole(latents, z)[0, 0], premultiplied - (1 - alpha), atol=1e-5, rtol=0
    )
    # Scale code 0 is half the frame: each output pixel is the mean of a 2×2 block of the sprite.
    half = image(latents, z)[0, 0, :, 8:24, 8:24]
    pooled_colour = F.avg_pool2d(premultiplied, 2)
    pooled_alpha = F.avg_pool2d(alpha, 2)
    torch.testing.assert_close(half, pooled_colour - (1 - pooled_alpha), atol=1e-5, rtol=0)

    # The full sprite takes one more up-sampling level than the half one.
    def convolutions(**options):
        up = _small_tgan(image_generator="sprite", **options).generator.image.up
        return sum(isinstance(m, nn.Conv2d) for m in up)

    assert convolutions(sprite_size="full") == convolutions() + 1 == 3 + 1
    with pytest.raises(ConfigError, match='sprite_size: .full. needs image_generator = "sprite"'):
        build_config(TGANConfig, {"sprite_size": "full"}, "backbone.tgan")


def test_supersampled_sprite_averages_every_sprite_pixel_under_a_frame_pixel():
    torch.manual_seed(3)
    logits = torch.randn(1, 4, 32, 32) * 3
    latents, z = torch.zeros(1, 2, 8), torch.zeros(1, 8)
    quarter = [0.0, 0.0, 0.0, 20.0]  # scale code +∞: the 32×32 sprite on the middle 8×8 pixels

    def middle(supersample):
        options = {"sprite_size": "full", "sprite_supersample": supersample}
        image = _posed_sprite_generator(quarter, logits, **options)
        return image, image(latents, z)[0, 0]

    image, fine = middle(4)
    alpha = torch.sigmoid(logits[0, 3:]) * image.window
    premultiplied = torch.tanh(logits[0, :3]) * alpha
    # 4×4 samples per pixel at a quarter of the frame: each pixel is the mean of a 4×4 block.
    expected = F.avg_pool2d(premultiplied, 4) - (1 - F.avg_pool2d(alpha, 4))
    torch.testing.assert_close(fine[:, 12:20, 12:20], expected, atol=1e-5, rtol=0)
    assert (fine[:, :12] + 1).abs().max() < 1e-6  # nothing outside the sprite's square
    # One sample per pixel reads only the middle 2×2 of each block: it aliases.
    _, coarse = middle(1)
    assert (coarse[:, 12:20, 12:20] - expected).abs().max() > 0.1
    with pytest.raises(ConfigError, match="sprite_supersample: 2 needs image_generator"):
        build_config(TGANConfig, {"sprite_supersample": 2}, "backbone.tgan")
    with pytest.raises(ConfigError, match="sprite_supersample: expected one of"):
        build_config(TGANConfig, {"sprite_supersample": 3}, "backbone.tgan")


def test_sprite_opacity_fades_to_nothing_outside_its_inscribed_circle():
    image = _small_tgan(image_generator="sprite").generator.image
    window = image.window
    assert window.shape == (16, 16)
    ramp = (torch.arange(16) + 0.5) / 16 * 2 - 1
    radius = torch.hypot(ramp[:, None], ramp[None, :])
    assert (window[radius >= 1] == 0).all() and (window[radius <= 0.85] == 1).all()
    z = torch.rand(3, 8) * 2 - 1
    frames = image(torch.randn(3, 4, 8), z)
    assert frames.shape == (3, 4, 3, 32, 32) and frames.abs().max() <= 1


def test_dark_sprite_background_starts_every_video_near_black_and_still_learns():
    random = _small_tgan(image_generator="sprite").generator.image
    dark = _small_tgan(image_generator="sprite", sprite_background="dark").generator.image
    latents, z = torch.randn(4, 3, 8), torch.rand(4, 8) * 2 - 1
    corner = (slice(None), slice(None), slice(None), slice(0, 3), slice(0, 3))  # off the sprite
    torch.testing.assert_close(dark(latents, z)[corner], torch.full((4, 3, 3, 3, 3), -0.9))
    assert random(latents, z)[corner].std() > 0.05  # torch's default: z-dependent colours
    # The background's weights start at zero, not frozen: a loss on it reaches them.
    dark(latents, z)[corner].sum().backward()
    assert dark.background.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="sprite_background: .dark. needs image_generator"):
        build_config(TGANConfig, {"sprite_background": "dark"}, "backbone.tgan")


def test_still_sprite_pose_starts_every_video_still_and_centred_and_still_learns():
    random = _small_tgan(image_generator="sprite").generator.image
    still = _small_tgan(image_generator="sprite", sprite_pose_init="still").generator.image
    latents, z = torch.randn(2, 5, 8), torch.rand(2, 8) * 2 - 1
    frames = still(latents, z)
    torch.testing.assert_close(frames, frames[:, :1].expand_as(frames))  # no motion at all
    assert (random(latents, z) - random(latents, z)[:, :1]).abs().max() > 1e-3
    # Centred and unrotated at half the frame's width: the sprite's 16×16 pixels lie one to
    # one on the middle 16×16 frame pixels, so the sprite shows as it is drawn.
    with torch.no_grad():
        still.background.weight.zero_()
        still.background.bias.fill_(-20.0)  # background −1
        logits = still.up(still.fc(z).view(2, still.top, 4, 4))
    alpha = torch.sigmoid(logits[:, 3:]) * still.window
    expected = torch.tanh(logits[:, :3]) * alpha - (1 - alpha)
    torch.testing.assert_close(still(latents, z)[:, 0, :, 8:24, 8:24], expected, atol=1e-5, rtol=0)
    still(latents, z).sum().backward()
    assert still.pose[-1].weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="sprite_pose_init: .still. needs image_generator"):
        build_config(TGANConfig, {"sprite_pose_init": "still"}, "backbone.tgan")


def test_flat_sprite_colour_is_one_colour_per_video():
    gan = _small_tgan(image_generator="sprite", sprite_colour="flat")
    image = gan.generator.image
    assert image.up[-1].out_channels == 1 and image.colour.out_features == 3
    with torch.no_grad():
        image.background.weight.zero_()
        image.background.bias.fill_(-20.0)  # background −1
    frames = image(torch.randn(2, 3, 8), torch.rand(2, 8) * 2 - 1)
    for video in range(2):
        shown = frames[video] + 1  # = (colour + 1) · opacity
        channel_sum = shown.sum(dim=1)
        lit = channel_sum > 1e-3
        assert lit.any()
        share = shown / channel_sum.clamp_min(1e-12).unsqueeze(1)
        colour = share.permute(1, 0, 2, 3)[:, lit]
        assert (colour - colour[:, :1]).abs().max() < 1e-4  # the same hue at every lit pixel
    with pytest.raises(ConfigError, match='sprite_colour: .flat. needs image_generator = "sprite"'):
        build_config(TGANConfig, {"sprite_colour": "flat"}, "backbone.tgan")
    with pytest.raises(ConfigError, match="image_generator: expected one of"):
        build_config(TGANConfig, {"image_generator": "sprites"}, "backbone.tgan")


def _polar_sprite(radius_of_angle, colour, hole=(0.0, 0.0, 0.0)):
    """The demo's size of polar sprite generator with its outline set to ``radius_of_angle``
    (a function of the angle in radians, in units of the sprite's half-width) and its hole to
    ``hole`` (centre x, y and radius in the same units; radius 0: none) for every z."""
    image = _small_tgan(
        image_generator="sprite", sprite_size="full", sprite_shape="polar", size=32
    ).generator.image
    angles = torch.arange(image.outline_angles) / image.outline_angles * 2 * math.pi
    radii = radius_of_angle(angles) / image.OUTLINE_MAX_RADIUS
    with torch.no_grad():
        image.outline[-1].weight.zero_()
        x, y, r = hole
        hole_codes = torch.tensor(
            [
                math.atanh(x / image.HOLE_MAX_OFFSET),
                math.atanh(y / image.HOLE_MAX_OFFSET),
                math.log(r / (image.HOLE_MAX_RADIUS - r)) if r > 0 else -40.0,
            ]
        )
        image.outline[-1].bias.copy_(
            torch.cat([torch.logit(radii), torch.atanh(colour), hole_codes])
        )
    return image


def test_polar_sprite_draws_a_filled_single_coloured_disc_and_square_of_the_right_area():
    z = torch.rand(3, 8) * 2 - 1
    colour = torch.tensor([0.2, 0.9, -0.5])
    disc = _polar_sprite(lambda a: torch.full_like(a, 0.5), colour).draw_sprite(z)
    assert disc.shape == (3, 4, 32, 32)
    alpha = disc[:, 3]
    # A radius of half the half-width is 8 sprite pixels: area π · 8², the soft edge symmetric.
    torch.testing.assert_close(
        alpha.sum(dim=(1, 2)), torch.full((3,), math.pi * 64), rtol=0.02, atol=0
    )
    assert alpha[:, 13:19, 13:19].min() == 1 and alpha[:, :4, :4].max() == 0
    torch.testing.assert_close(disc[:, :3], colour.view(1, 3, 1, 1) * alpha.unsqueeze(1))
    # A square of half-side 0.4 (6.4 sprite pixels): radius 0.4 / max(|cos|, |sin|).
    square = _polar_sprite(lambda a: 0.4 / torch.maximum(a.cos().abs(), a.sin().abs()), colour)
    alpha = square.draw_sprite(z)[:, 3]
    torch.testing.assert_close(alpha.sum(dim=(1, 2)), torch.full((3,), 12.8**2), rtol=0.03, atol=0)
    assert alpha[:, 11:21, 11:21].min() == 1  # filled to within a pixel of its sides
    assert alpha[:, 16, 24:].max() == 0 and alpha[:, 24:, 16].max() == 0
    # A disc of radius 0.8 (12.8 px) with a hole of radius 0.3 (4.8 px) a quarter right of
    # its centre: the area is the difference, and the hole's middle (pixel 20, 16) is empty.
    holed = _polar_sprite(lambda a: torch.full_like(a, 0.8), colour, hole=(0.25, 0.0, 0.29999))
    alpha = holed.draw_sprite(z)[:, 3]
    expected = math.pi * (12.8**2 - 4.8**2)
    torch.testing.assert_close(alpha.sum(dim=(1, 2)), torch.full((3,), expected), rtol=0.02, atol=0)
    assert alpha[:, 15:17, 19:21].max() == 0 and alpha[:, 15:17, 8:12].min() == 1


def test_polar_sprite_learns_its_outline_and_is_only_for_the_free_colour_sprite():
    gan = _small_tgan(image_generator="sprite", sprite_shape="polar")
    image = gan.generator.image
    assert image.up is None and image.fc is None
    frames = image(torch.randn(2, 3, 8), torch.rand(2, 8) * 2 - 1)
    assert frames.shape == (2, 3, 3, 32, 32)
    frames.square().sum().backward()
    assert image.outline[0].weight.grad.abs().sum() > 0
    assert image.outline[-1].weight.grad[: image.outline_angles].abs().sum() > 0
    with pytest.raises(
        ConfigError, match='sprite_colour: .flat. applies to sprite_shape = "drawn"'
    ):
        build_config(
            TGANConfig,
            {"image_generator": "sprite", "sprite_shape": "polar", "sprite_colour": "flat"},
            "backbone.tgan",
        )
    with pytest.raises(ConfigError, match="sprite_outline_angles: expected at least 3 angles"):
        build_config(
            TGANConfig,
            {"image_generator": "sprite", "sprite_shape": "polar", "sprite_outline_angles": 2},
            "backbone.tgan",
        )
    with pytest.raises(ConfigError, match='sprite_outline_angles: 24 needs sprite_shape = "polar"'):
        build_config(
            TGANConfig,
            {"image_generator": "sprite", "sprite_outline_angles": 24},
            "backbone.tgan",
        )
    with pytest.raises(ConfigError, match='sprite_shape: .polar. needs image_generator = "sprite"'):
        build_config(TGANConfig, {"sprite_shape": "polar"}, "backbone.tgan")


@pytest.mark.parametrize("angles", [64, 24])
def test_polar_sprite_generator_parameter_count(angles):
    options = {
        "image_generator": "sprite",
        "sprite_size": "full",
        "sprite_shape": "polar",
        "sprite_outline_angles": angles,
    }
    config = build_config(TGANConfig, {"preset": "tiny", **options}, "backbone.tgan")
    backbone = TGANBackbone(config)
    image = backbone.build(
        Conv1dTemporal(Conv1dTemporalConfig(), backbone.temporal_spec())
    ).generator.image
    expected = (
        100 * 128 + 128 + 128 * (angles + 6) + angles + 6  # outline MLP: radii, colour, hole
        + 100 * 48 + 48  # background 3×4×4
        + 200 * 64 + 64 + 64 * 4 + 4  # pose MLP
    )  # fmt: skip
    assert nd.count_parameters(image) == expected
    assert angles != 64 or expected == 39_930


@pytest.mark.parametrize(
    ("sprite_size", "g_channels", "levels"), [("half", 32, 2), ("full", 16, 3)]
)  # 16×16 or 32×32 sprites; the second is the demo's
def test_sprite_generator_parameter_count(sprite_size, g_channels, levels):
    options = {"image_generator": "sprite", "sprite_size": sprite_size, "g_channels": g_channels}
    config = build_config(TGANConfig, {"preset": "tiny", **options}, "backbone.tgan")
    image = (
        TGANBackbone(config)
        .build(Conv1dTemporal(Conv1dTemporalConfig(), TGANBackbone(config).temporal_spec()))
        .generator.image
    )
    top = g_channels * 2**levels  # ×2 levels from 4×4 up to the sprite's size
    expected = (
        100 * top * 16 + 2 * top * 16  # Linear (no bias) + BN
        + sum(conv_params(top >> i, top >> (i + 1), 9, False) + 2 * (top >> (i + 1))
              for i in range(levels))
        + conv_params(g_channels, 4, 9, True)  # RGB + opacity
        + 100 * 48 + 48  # background 3×4×4
        + 200 * 64 + 64 + 64 * 4 + 4  # pose MLP
    )  # fmt: skip
    assert nd.count_parameters(image) == expected


def test_shape_code_is_the_interval_of_the_first_latent_coordinate():
    z = torch.zeros(7, 3)
    z[:, 0] = torch.tensor([-1.0, -0.61, -0.59, 0.0, 0.19, 0.21, 1.0])
    # five intervals of width 0.4 from -1; z = 1 belongs to the last
    assert shape_code_of(z, 5).tolist() == [0, 0, 1, 2, 2, 3, 4]
    assert shape_code_of(z, 2).tolist() == [0, 0, 0, 1, 1, 1, 1]


def test_shape_code_feeds_the_sprite_drawing_and_a_critic_head_both_losses_train():
    gan = _small_tgan(image_generator="sprite", shape_code=5, batch_size=4)
    plain = _small_tgan(image_generator="sprite", batch_size=4)
    image, critic = gan.generator.image, gan.discriminators["video"]
    # one-hot inputs of the drawing network: 5 more inputs to its first Linear, whose outputs
    # are a 4×4 map of 4·2² channels (a half-size sprite of 16 pixels: two levels up)
    extra = nd.count_parameters(image) - nd.count_parameters(plain.generator.image)
    assert extra == 5 * 16 * 16
    # the code head reads the critic's last features: 16 channels × 2 frames × 4×4
    assert critic.code_head.in_features == 16 * 2 * 16
    extra = nd.count_parameters(critic) - nd.count_parameters(plain.discriminators["video"])
    assert extra == 16 * 2 * 16 * 5 + 5
    # the sprite depends on the code: the same z with its first coordinate in another interval
    z = torch.rand(1, 8) * 2 - 1
    z[0, 0] = -0.9
    other = z.clone()
    other[0, 0] = -0.85  # the same interval: only the continuous input moved
    far = z.clone()
    far[0, 0] = 0.9
    image.eval()
    with torch.no_grad():
        near_change = (image.draw_sprite(other) - image.draw_sprite(z)).abs().max()
        far_change = (image.draw_sprite(far) - image.draw_sprite(z)).abs().max()
    assert far_change > 10 * near_change
    image.train()
    # one iteration: the head learns in the critic step and the generator answers to it
    head_before = critic.code_head.weight.detach().clone()
    opts = gan.configure_optimizers()
    real = torch.rand(4, 3, 16, 32, 32) * 2 - 1
    metrics = gan.training_step(real, 1, opts, torch.Generator().manual_seed(1))
    assert {"code_d", "code_g"} <= set(metrics)
    assert not torch.equal(head_before, critic.code_head.weight)
    assert metrics["loss_d"] == pytest.approx(
        metrics["d_fake"] - metrics["d_real"] + metrics["code_d"], abs=1e-5
    )
    # the generator's gradient reaches the code's weights through the head alone
    fake_z = gan.generator.sample_z(4, torch.Generator().manual_seed(3))
    gan.zero_grad()
    _, logits = critic(gan.generator(fake_z), with_code=True)
    F.cross_entropy(logits, shape_code_of(fake_z, 5)).backward()
    first = image.fc[0].weight.grad
    assert first[:, 8:].abs().sum() > 0
    with pytest.raises(ValueError, match="no code head"):
        plain.discriminators["video"](real, with_code=True)
    with pytest.raises(ConfigError, match="shape_code: expected 0 .none. or at least 2"):
        build_config(TGANConfig, {"image_generator": "sprite", "shape_code": 1}, "backbone.tgan")
    with pytest.raises(ConfigError, match='shape_code: 5 needs image_generator = "sprite"'):
        build_config(TGANConfig, {"shape_code": 5}, "backbone.tgan")
    with pytest.raises(ConfigError, match="shape_code_weight: 3.0 needs a shape code"):
        build_config(
            TGANConfig,
            {"image_generator": "sprite", "shape_code_weight": 3.0},
            "backbone.tgan",
        )


def test_a_polar_sprite_with_a_shape_code_takes_its_colour_from_z_alone():
    gan = _small_tgan(image_generator="sprite", sprite_shape="polar", shape_code=5)
    image = gan.generator.image
    assert image.outline[0].in_features == 8 + 5
    assert image.outline[-1].out_features == image.outline_angles + 3  # radii, hole
    assert image.colour.in_features == 8
    torch.manual_seed(1)
    z = torch.rand(1, 8) * 2 - 1
    below, above = z.clone(), z.clone()
    below[0, 0], above[0, 0] = -0.6 - 1e-6, -0.6 + 1e-6  # codes 0 and 1
    with torch.no_grad():
        sprite_below, sprite_above = image.draw_sprite(below), image.draw_sprite(above)
    colour_below = sprite_below[:, :3].sum((2, 3)) / sprite_below[:, 3].sum()
    colour_above = sprite_above[:, :3].sum((2, 3)) / sprite_above[:, 3].sum()
    torch.testing.assert_close(colour_below, colour_above, atol=1e-4, rtol=0)
    assert (sprite_below[:, 3] - sprite_above[:, 3]).abs().max() > 0.05
