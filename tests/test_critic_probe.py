"""tools/critic_probe.py: the linear probe that says whether a critic's features tell shapes."""

import pytest
import torch

from ndevgan_core.config import build_config
from ndevgan_plugins.tgan import (
    Conv1dTemporal,
    Conv1dTemporalConfig,
    Critic,
    TGANBackbone,
    TGANConfig,
    pixel_differences,
)

from .conftest import load_tool


@pytest.fixture(scope="module")
def tool():
    """tools/critic_probe.py as a module."""
    return load_tool("critic_probe")


def test_the_probe_reads_features_that_carry_the_label_and_not_those_that_do_not(tool):
    rng = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (600,), generator=rng)
    noise = torch.randn(600, 40, generator=rng)
    carrying = noise.clone()
    carrying[:, :5] += 6 * torch.nn.functional.one_hot(labels, 5)
    assert tool.probe_accuracy(carrying, labels, train=400) > 0.95
    assert tool.probe_accuracy(noise, labels, train=400) < 0.35  # chance is 0.2


def test_critic_features_are_the_flattened_layer_before_the_score(tool):
    config = build_config(TGANConfig, {"preset": "tiny", "d_channels": 4}, "backbone.tgan")
    critic = Critic(config)
    clips = torch.rand(150, 3, 16, 32, 32) * 2 - 1
    features = tool.critic_features(critic, clips)
    # 4 → 8 → 16 channels, 16 frames and 32 pixels halved three times: 16 × 2 × 4 × 4
    assert features.shape == (150, 16 * 2 * 4 * 4)
    with torch.no_grad():
        critic.train()
        torch.testing.assert_close(features[:100], critic.features(clips[:100]).flatten(1))
    peaks = tool.critic_features(critic, clips, peaks=True)
    assert peaks.shape == (150, 16)
    torch.testing.assert_close(peaks, features.view(150, 16, 32).amax(2))


def test_the_probe_and_its_controls_give_an_edge_critic_its_pixel_differences(tool):
    config = build_config(
        TGANConfig, {"preset": "tiny", "d_channels": 4, "critic_edges": 2}, "backbone.tgan"
    )
    critic = Critic(config)
    clips = torch.rand(100, 3, 16, 32, 32) * 2 - 1
    features = tool.critic_features(critic, clips)
    with torch.no_grad():
        edges = 2 * pixel_differences(clips)
        expected = critic.features(torch.cat([clips, edges], dim=1)).flatten(1)
        torch.testing.assert_close(features, expected)
        # each fresh critic of the supervised control takes clips as they are
        for name, network, _ in tool.controls(config)[:4]:
            assert network(clips[:2]).shape[:2] == (2, 16), name


def test_the_encoder_probe_reads_a_runs_trained_frame_encoder(tool):
    config = {"preset": "tiny", "d_channels": 4, "g_channels": 4, "feature_critic": 2}
    backbone = TGANBackbone(build_config(TGANConfig, config, "backbone.tgan"))
    gan = backbone.build(Conv1dTemporal(Conv1dTemporalConfig(), backbone.temporal_spec()))
    with torch.no_grad():
        for p in gan.frame_encoder.parameters():
            p.add_(0.1)
    weights = tool.weights_under(gan.state_dict(), "frame_encoder.")
    assert set(weights) == {k for k, _ in gan.frame_encoder.named_parameters()}
    frames = torch.rand(150, 3, 32, 32) * 2 - 1
    features = tool.encoder_features(weights, 32, frames)
    with torch.no_grad():
        torch.testing.assert_close(features, gan.frame_encoder(frames))
        assert not torch.allclose(tool.encoder_features(None, 32, frames), features)


@pytest.mark.slow
def test_a_max_pooled_critic_learns_the_shapes_that_a_strided_one_cannot(tool, monkeypatch):
    """The probe's control, small: each critic architecture trained 300 steps on the shape
    labels of 1,500 real clips, scored on 400 held out (chance 0.20)."""
    from ndevgan_plugins import shapes_render

    monkeypatch.setattr(tool, "TRAIN_CLIPS", 1500)
    videos, labels = shapes_render.render_batch(range(20_000, 21_900), 0, 16, 32)
    clips = torch.from_numpy(videos.transpose(0, 4, 1, 2, 3).astype("float32") / 127.5 - 1)
    shapes = torch.as_tensor(labels) // len(shapes_render.MOTIONS)
    accuracy = {}
    for downsample in ("strided", "maxpool"):
        config = build_config(
            TGANConfig,
            {"preset": "tiny", "critic_downsample": downsample},
            "backbone.tgan",
        )
        torch.manual_seed(0)
        names = [name for name, _, pooled in tool.controls(config) if not pooled]
        # the run's own architecture first, then the other, then the classifier's
        assert names[0].startswith(f"video critic, {downsample},") and len(names) == 3
        accuracy[downsample] = tool.supervised_accuracy(
            Critic(config).features, clips, shapes, 300, pooled=False
        )
    assert accuracy["strided"] < 0.36 < 0.42 < accuracy["maxpool"]
