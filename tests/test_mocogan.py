"""backbone.mocogan and temporal.gru: the official parameter counts, shapes, the content /
motion split, the GRU's noise, the training protocol, and the CLI end to end."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

import ndevgan_core as nd
from ndevgan_core import media
from ndevgan_core.config import build_config
from ndevgan_core.errors import ConfigError
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import resolve
from ndevgan_core.training.api import load_generator, sample_videos
from ndevgan_core.training.checkpoint import load_checkpoint
from ndevgan_plugins.mocogan import (
    GRUTemporal,
    GRUTemporalConfig,
    MoCoGAN,
    MoCoGANBackbone,
    MoCoGANConfig,
)
from ndevgan_plugins.ode import ODEConfig, ODETemporal
from ndevgan_plugins.sde import SDEConfig, SDETemporal

from .conftest import ndevgan


def backbone(**options) -> MoCoGANBackbone:
    return MoCoGANBackbone(build_config(MoCoGANConfig, options, "backbone.mocogan"))


def gru_gan(**options) -> MoCoGAN:
    bb = backbone(**options)
    return bb.build(GRUTemporal(GRUTemporalConfig(), bb.temporal_spec()))


def conv(c_in: int, c_out: int, kernel_elements: int) -> int:  # every convolution: no bias
    return c_in * c_out * kernel_elements


BN = 2  # gamma and beta per channel


def test_paper_parameter_counts_match_reference_architecture():
    gan = gru_gan()
    gru = 3 * (16 * 16 + 16 * 16 + 16 + 16)  # GRUCell(16, 16): 3 gates × (W_ih, W_hh, b_ih, b_hh)
    g = (
        conv(66, 512, 16)
        + BN * 512
        + conv(512, 256, 16)
        + BN * 256
        + conv(256, 128, 16)
        + BN * 128
        + conv(128, 64, 16)
        + BN * 64
        + conv(64, 3, 16)
    )
    d_v = (
        conv(3, 64, 64)
        + conv(64, 128, 64)
        + BN * 128
        + conv(128, 256, 64)
        + BN * 256
        + conv(256, 512, 64)
        + BN * 512
        + conv(512, 1, 64)
    )
    d_i = conv(3, 64, 16) + conv(64, 128, 16) + BN * 128 + conv(128, 256, 16) + BN * 256
    d_i += conv(256, 1, 16)
    assert gan.module_parameter_counts() == {
        "generator.temporal": gru,
        "generator.image": g,
        "discriminator.image": d_i,
        "discriminator.video": d_v,
    }
    assert (gru, g, d_i, d_v) == (1_632, 3_298_176, 663_296, 11_056_896)
    assert gan.generator.spec.reference_params == 1_632
    assert gan.generator.spec.input_shape == gan.generator.spec.latent_shape == (16,)


def test_tiny_parameter_counts():
    gan = gru_gan(preset="tiny")  # 32 px: one level fewer, 16 channels
    g = conv(66, 64, 16) + BN * 64 + conv(64, 32, 16) + BN * 32 + conv(32, 16, 16) + BN * 16
    g += conv(16, 3, 16)
    d_v = conv(3, 16, 64) + conv(16, 32, 64) + BN * 32 + conv(32, 64, 64) + BN * 64
    d_v += conv(64, 1, 7 * 4 * 4)  # the last kernel spans the 7 frames that remain
    d_i = conv(3, 16, 16) + conv(16, 32, 16) + BN * 32 + conv(32, 1, 16)
    assert gan.module_parameter_counts() == {
        "generator.temporal": 1_632,
        "generator.image": g,
        "discriminator.image": d_i,
        "discriminator.video": d_v,
    }
    assert (g, d_i, d_v) == (109_536, 9_536, 174_272)


def test_paper_shapes_one_score_per_video_and_a_patch_map():
    gan = gru_gan().eval()
    g = gan.generator
    assert g.z_shape == (66,) and g.temporal_slice == (50, 66) and g.z_distribution == "normal"
    z = g.sample_z(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        video = g(z, generator=torch.Generator().manual_seed(1))
        assert video.shape == (2, 3, 16, 64, 64) and video.abs().max() <= 1
        d_v, d_i = gan.discriminators["video"], gan.discriminators["image"]
        assert d_v.features(video).shape == (2, 512, 4, 4, 4)  # then Conv3d(512, 1, 4)
        assert d_v.score.kernel_size == (4, 4, 4)
        for b in (1, 3):
            assert d_v(torch.zeros(b, 3, 16, 64, 64)).shape == (b,)
        assert d_i(video[:, :, 0]).shape == (2, 4, 4)
    tiny = gru_gan(preset="tiny").eval()
    with torch.no_grad():
        assert tiny.discriminators["video"].features(torch.zeros(1, 3, 16, 32, 32)).shape == (
            1,
            64,
            7,
            4,
            4,
        )
        assert tiny.discriminators["video"](torch.zeros(3, 3, 16, 32, 32)).shape == (3,)
        assert tiny.discriminators["image"](torch.zeros(3, 3, 32, 32)).shape == (3, 4, 4)


def test_content_is_shared_by_every_frame_and_motion_changes_the_video():
    gan = gru_gan(preset="tiny").eval()
    g = gan.generator
    codes = []
    first = g.image.net[0]
    handle = first.register_forward_pre_hook(lambda m, args: codes.append(args[0]))
    z = g.sample_z(2, torch.Generator().manual_seed(0))
    noise = torch.randn(2, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        video = g(z, noise=noise)
        latents = g.temporal(z[:, 50:], g.spec.times(), noise=noise)
    handle.remove()
    per_frame = codes[0].view(2, 16, 66)
    assert torch.equal(per_frame[:, :, :50], z[:, None, :50].expand(2, 16, 50))
    assert torch.equal(per_frame[:, :, 50:], latents)
    with torch.no_grad():
        moved = z.clone()
        moved[:, 50:] += 1  # same content, other motion
        other_motion = g(moved, noise=noise)
        recontent = z.clone()
        recontent[:, :50] += 1  # same motion, other content
        other_content = g(recontent, noise=noise)
        # a constant motion latent renders the same frame T times
        still = g.image(latents[:, :1].expand(2, 16, 16), z)
    assert (video - other_motion).abs().max() > 1e-3
    assert (video - other_content).abs().max() > 1e-3
    assert torch.allclose(still, still[:, :1].expand_as(still))


def test_gru_is_discrete_stochastic_and_uses_h1_to_hT():
    spec = backbone().temporal_spec()
    gru = GRUTemporal(GRUTemporalConfig(), spec)
    assert not gru.continuous and gru.stochastic
    t = spec.times()
    with pytest.raises(ConfigError, match="temporal.gru is a discrete.*exactly 16 frames"):
        gru.check_times(torch.linspace(0, 1, 31))
    with pytest.raises(ConfigError, match="discrete"):
        gru(torch.zeros(2, 16), torch.linspace(0, 1, 31))
    assert gru.noise_shape(3, t) == (3, 16, 16)
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = gru(z, t, generator=torch.Generator().manual_seed(5))
        b = gru(z, t, generator=torch.Generator().manual_seed(5))
        c = gru(z, t, generator=torch.Generator().manual_seed(6))
        noise = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(5))
        explicit = gru(z, t, noise=noise)
        h, states = z, []
        for k in range(16):  # h_0 = z_motion, frames are h_1 … h_16
            h = gru.cell(noise[:, k], h)
            states.append(h)
    assert a.shape == (3, 16, 16)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, explicit)  # the generator draws exactly noise_shape on the CPU
    assert torch.equal(explicit, torch.stack(states, 1))
    assert not torch.allclose(a[:, 0], z)
    with pytest.raises(ConfigError, match=r"noise must have shape \(3, 16, 16\)"):
        gru(z, t, noise=noise[:, :8])
    wide = GRUTemporal(GRUTemporalConfig(noise_dim=4), spec)
    assert wide.noise_shape(2, t) == (2, 16, 4) and tuple(wide.cell.weight_ih.shape) == (48, 4)
    with pytest.raises(ConfigError, match="vector latents"):
        GRUTemporal(GRUTemporalConfig(), nd.TemporalSpec((8, 3, 3), (8, 3, 3), 16))


def test_sampling_through_the_core_is_reproducible_with_the_gru():
    g = gru_gan(preset="tiny").generator.eval()
    a = sample_videos(g, 3, seed=4, batch_size=2)
    b = sample_videos(g, 3, seed=4)
    assert a.shape == (3, 3, 16, 32, 32) and torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, sample_videos(g, 3, seed=5))


def test_ode_and_sde_as_motion_path_and_matched_width():
    spec = backbone().temporal_spec()
    matched = ODETemporal(build_config(ODEConfig, {"design": "matched"}, "temporal.ode"), spec)
    assert matched.hidden == 49 and nd.count_parameters(matched) == 33 * 49 + 16  # ≈ 1,632
    sde = SDETemporal(build_config(SDEConfig, {"design": "matched"}, "temporal.sde"), spec)
    assert sde.hidden == 24  # drift and diffusion 16 → 24 → 16 each
    ode = ODETemporal(build_config(ODEConfig, {}, "temporal.ode"), spec)
    with torch.no_grad():
        z = torch.randn(2, 66)
        latents = ode(z[:, 50:], spec.times())
    assert torch.allclose(latents[:, 0], z[:, 50:])  # the ODE's frame 0 is z_motion


def tiny_gan(temporal: str) -> MoCoGAN:
    bb = backbone(preset="tiny", batch_size=4)
    spec = bb.temporal_spec()
    if temporal == "gru":
        module = GRUTemporal(GRUTemporalConfig(), spec)
    elif temporal == "ode":
        module = ODETemporal(build_config(ODEConfig, {}, "temporal.ode"), spec)
    else:
        module = SDETemporal(build_config(SDEConfig, {}, "temporal.sde"), spec)
    return bb.build(module)


@pytest.mark.parametrize("temporal", ["gru", "ode", "sde"])
def test_training_step_updates_all_three_networks(temporal):
    torch.manual_seed(0)
    gan = tiny_gan(temporal)
    opts = gan.configure_optimizers()
    assert set(opts) == {"generator", "image_discriminator", "video_discriminator"}
    for opt in opts.values():
        group = opt.param_groups[0]
        assert isinstance(opt, torch.optim.Adam)
        assert (group["lr"], group["betas"], group["weight_decay"]) == (2e-4, (0.5, 0.999), 1e-5)
    nets = {
        "generator": gan.generator,
        "temporal": gan.generator.temporal,
        "image": gan.discriminators["image"],
        "video": gan.discriminators["video"],
    }
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in nets.items()}
    real = torch.rand(4, 3, 16, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    metrics = gan.training_step(real, 0, opts, torch.Generator().manual_seed(1))
    for name, module in nets.items():
        changed = [not torch.equal(a, b) for a, b in zip(before[name], module.parameters())]
        assert any(changed), name
    keys = {"loss_d", "loss_d_image", "loss_d_video", "loss_g", "d_real_image", "d_fake_video"}
    assert keys <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["loss_d"] == pytest.approx(metrics["loss_d_image"] + metrics["loss_d_video"])
    assert all(p.requires_grad for p in gan.discriminators.parameters())


def test_training_step_is_determined_by_the_rng():
    real = torch.rand(4, 3, 16, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    runs = []
    for seed in (1, 1, 2):
        torch.manual_seed(0)
        gan = tiny_gan("gru")
        opts = gan.configure_optimizers()
        rng = torch.Generator().manual_seed(seed)
        metrics = [gan.training_step(real, s, opts, rng) for s in range(2)]
        runs.append((metrics, [p.detach().clone() for p in gan.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    assert runs[0][0] != runs[2][0]


def test_config_errors_name_the_option():
    opt = r"^backbone\.mocogan\."
    with pytest.raises(ConfigError, match=opt + r"frames: .*at least 13 frames; got 12"):
        backbone(frames=12)
    backbone(preset="tiny", frames=10)  # 3 layers at 32 px: 10 frames are enough
    with pytest.raises(ConfigError, match=opt + r"size: expected a power of two >= 16, got 8"):
        backbone(size=8)
    with pytest.raises(ConfigError, match=opt + r"size: expected a power of two"):
        backbone(size=48)
    with pytest.raises(ConfigError, match=opt + r"beta2: expected a number in \[0, 1\)"):
        backbone(beta2=1.0)
    with pytest.raises(ConfigError, match=opt + r"preset: expected one of"):
        backbone(preset="huge")


def raw(tmp_path, name: str, **run: object) -> dict:
    return {
        "run": {"progress": False, "samples": 4, "out": str(tmp_path), "name": name, **run},
        "plugins": {"backbone": "backbone.mocogan"},
        "backbone": {
            "mocogan": {"preset": "tiny", "g_channels": 4, "d_channels": 4, "batch_size": 4}
        },
        "dataset": {"shapes": {"videos": 16}},
    }


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    registry = Registry(entry_points=False, disabled=())
    cfg = resolve(raw(tmp_path, "a", iterations=4, checkpoint_every=2, sample_every=100), registry)
    assert cfg.plugins.temporal == "temporal.gru"
    run_dir = nd.train(cfg, registry)
    straight = load_checkpoint(run_dir)["model"]
    halfway = load_checkpoint(run_dir / "checkpoints" / "step-00000002.pt")["model"]
    assert any(not torch.equal(straight[k], halfway[k]) for k in straight)
    resumed_dir = nd.train(cfg, registry, resume=run_dir / "checkpoints" / "step-00000002.pt")
    assert resumed_dir == run_dir
    resumed = load_checkpoint(run_dir)
    assert resumed["step"] == 4
    assert straight.keys() == resumed["model"].keys()
    for k in straight:
        assert torch.equal(straight[k], resumed["model"][k]), k


def test_cli_run_and_sample(tmp_path):
    ndevgan(
        "run",
        "--plugin",
        "backbone.mocogan",
        "--set",
        "backbone.mocogan.preset=tiny",
        "--set",
        "run.iterations=2",
        "--set",
        "dataset.shapes.videos=64",
        "--set",
        "run.samples=4",
        "--set",
        "run.progress=false",
        "--set",
        f"run.out={tmp_path}",
        "--set",
        "run.name=m",
    )
    run_dir = tmp_path / "m"
    assert load_checkpoint(run_dir)["step"] == 2
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 2 and math.isfinite(log[-1]["loss_g"])
    target = tmp_path / "out" / "s.mp4"
    out = ndevgan("sample", str(run_dir), "--n", "3", "--out", str(target), "--seed", "1")
    assert "from step 2" in out.stdout
    assert media.read_video(target).shape[0] == 16
    loaded = load_generator(run_dir, Registry(entry_points=False, disabled=()))
    assert loaded.generator.temporal.plugin_name == "temporal.gru"
    proc = ndevgan(
        "sample", str(run_dir), "--frames", "31", "--out", str(tmp_path / "x.mp4"), check=False
    )
    assert proc.returncode != 0 and "temporal.gru is a discrete" in proc.stderr


def test_cli_info_lists_modules_and_temporal_variants():
    out = ndevgan("info", "--plugin", "backbone.mocogan").stdout
    assert "backbone backbone.mocogan (paper preset), temporal temporal.gru" in out
    for count in ("1,632", "3,298,176", "663,296", "11,056,896"):
        assert count in out
    assert "its original has 1,632" in out
    rows = dict(re.findall(r"^  (temporal\.\S+(?: \w+=\w+)*)\s+([\d,]+.*)$", out, re.MULTILINE))
    assert rows["temporal.gru"].strip() == "1,632"
    assert re.fullmatch(r"1,633\s+hidden 49", rows["temporal.ode order=1 design=matched"])
    # the authors' matched width 49 for the SDE's drift and diffusion too: 2 × 1,633
    assert re.fullmatch(r"3,266\s+hidden 49", rows["temporal.sde design=matched"])


def _record_inputs(module: torch.nn.Module) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    module.register_forward_hook(lambda m, args, out: seen.append(args[0].detach().clone()))
    return seen


def test_published_sampling_gives_each_network_its_own_fakes_and_independent_frames():
    assert backbone(preset="tiny", batch_size=4).batch_size == 8  # the trainer loads 2 batches
    assert backbone(preset="tiny", batch_size=4, sampling="shared").batch_size == 4
    torch.manual_seed(0)
    gan = tiny_gan("ode")
    opts = gan.configure_optimizers()
    image_in = _record_inputs(gan.discriminators["image"])
    video_in = _record_inputs(gan.discriminators["video"])
    rendered = _record_inputs(gan.generator.image)  # latents (B, T, D) per image-G call
    real = torch.ones(8, 3, 16, 32, 32)
    real[4:] = -1  # the second batch: D_I's real frames come only from these videos
    gan.training_step(real, 0, opts, torch.Generator().manual_seed(1))
    assert image_in[0].shape == (4, 3, 32, 32) and bool((image_in[0] == -1).all())
    assert video_in[0].shape == (4, 3, 16, 32, 32) and bool((video_in[0] == 1).all())
    # the image-G renders: D_I's fake frames (one frame of each of 4 new videos), D_V's fake
    # videos, then for G a batch of videos and single frames of 4 more videos
    assert [tuple(x.shape[:2]) for x in rendered] == [(4, 1), (4, 16), (4, 16), (4, 1)]
    assert not torch.equal(rendered[0][:, 0], rendered[1][:, 0])


def test_shared_sampling_uses_one_fake_batch_for_both_discriminators():
    torch.manual_seed(0)
    bb = backbone(preset="tiny", batch_size=4, sampling="shared")
    gan = bb.build(GRUTemporal(GRUTemporalConfig(), bb.temporal_spec()))
    opts = gan.configure_optimizers()
    rendered = _record_inputs(gan.generator.image)
    real = torch.rand(4, 3, 16, 32, 32) * 2 - 1
    gan.training_step(real, 0, opts, torch.Generator().manual_seed(1))
    assert [tuple(x.shape[:2]) for x in rendered] == [(4, 16), (4, 16)]


def test_paper_preset_publishes_the_authors_mocogan_dynamics():
    registry = Registry(entry_points=False, disabled=())

    def temporal(plugin: str, **options):
        raw = {"plugins": {"backbone": "backbone.mocogan", "temporal": plugin}}
        raw[plugin.split(".")[0]] = {plugin.split(".")[1]: options}
        return resolve(raw, registry).components[plugin]

    first = temporal("temporal.ode")
    assert (first.pre_mlp, first.pre_mlp_final_activation, first.init) == (
        (64,),
        True,
        "torch_default",
    )
    second = temporal("temporal.ode", order=2)
    assert (second.design, second.hidden, second.pre_mlp, second.form) == (
        "matched",
        49,
        (),
        "chain",
    )
    chosen = temporal("temporal.ode", order=2, design="single")  # an explicit choice stands
    assert chosen.design == "single"
    sde = temporal("temporal.sde")
    assert (sde.design, sde.hidden, sde.dt, sde.adjoint) == ("matched", 49, 2.5e-2, True)
