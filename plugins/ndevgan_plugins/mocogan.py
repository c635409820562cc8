"""MoCoGAN (Tulyakov, Liu, Yang & Kautz, CVPR 2018) as ndevgan's ``backbone.mocogan``.

Also registers MoCoGAN's original temporal generator as ``temporal.gru``. Architecture and
protocol as the official release and the paper's code (docs/FIDELITY.md):

- the latent is ``z = [z_content (50), z_motion (16)]``, both N(0, 1), one vector of 66;
- the temporal generator maps ``z_motion`` to one motion latent per frame (the GRU:
  h_0 = z_motion, h_t = GRUCell(ε_t, h_{t-1}) with fresh noise ε_t ~ N(0, 1), frames use
  h_1 … h_16); a neural ODE/SDE can take its place (then frame 0 is z_motion itself);
- the image generator G renders each frame from [z_content, motion latent], so the content
  is constant over time;
- an image discriminator D_I (patch logits on one random frame per video) and a video
  discriminator D_V (one logit per video); BCE-with-logits losses; Adam (2e-4, β = (0.5,
  0.999), weight decay 1e-5) for all three networks; per iteration one D_I step, one D_V step
  and one G step; batch 32.

Biases: none in any convolution, generator or discriminators. The official generator has "no bias"
for G; MoCoGAN's official discriminators (and DCGAN's convention it follows) are bias-free
too, so D_I and D_V follow it (every hidden convolution is followed by batch norm, which
would cancel a bias anyway, except the first).

The ``tiny`` preset (32×32, narrow, batch 8) trains on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import torch
import torch.nn.functional as F
from torch import nn

import ndevgan_core as nd
from ndevgan_core import ConfigError, non_negative, one_of, option, positive, power_of_two

# ------------------------------------------------------------------------------------------
# temporal.gru — MoCoGAN's recurrent motion generator


@attrs.frozen
class GRUTemporalConfig:
    """Options of MoCoGAN's GRU temporal generator."""

    noise_dim: int = option(
        0,
        "size of the per-step noise ε_t fed to the GRU (0: the latent size, as MoCoGAN)",
        non_negative,
    )


class GRUTemporal(nd.TemporalGenerator):
    """MoCoGAN's motion generator: a GRU cell driven by Gaussian noise (discrete time only).

    h_0 = z (the motion latent), h_k = GRUCell(ε_k, h_{k-1}) for k = 1 … T with ε_k ~ N(0, 1)
    of size ``noise_dim``; frame k's latent is h_{k+1}, so no frame shows z itself. Stochastic:
    :meth:`forward` takes the noise ``(B, T, noise_dim)`` explicitly (:meth:`noise_shape`), or
    draws it on the CPU from ``generator`` (then moves it), so a sample is reproducible on any
    device.
    """

    continuous = False
    stochastic = True

    def __init__(
        self, config: GRUTemporalConfig, spec: nd.TemporalSpec, name: str = "temporal.gru"
    ) -> None:
        super().__init__(spec, name)
        if len(spec.latent_shape) != 1 or tuple(spec.input_shape) != tuple(spec.latent_shape):
            raise ConfigError(
                f"{name} works on vector latents with input and output of one size (h_0 = z); "
                f"this backbone asks for {spec.input_shape} → {spec.latent_shape}"
            )
        self.dim = spec.latent_shape[0]
        self.noise_dim = config.noise_dim or self.dim
        self.cell = nn.GRUCell(self.noise_dim, self.dim)

    def noise_shape(self, batch: int, t: torch.Tensor) -> tuple[int, ...]:
        """The shape of the standard-normal ``noise`` :meth:`forward` takes for grid ``t``."""
        return (batch, len(t), self.noise_dim)

    def forward(
        self,
        z: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(B, D) → (B, T, D): the GRU states h_1 … h_T on the training grid ``t``."""
        self.check_times(t)
        shape = self.noise_shape(z.shape[0], t)
        if noise is None:
            noise = torch.randn(shape, generator=generator)
        elif tuple(noise.shape) != shape:
            raise ConfigError(
                f"{self.plugin_name}: noise must have shape {shape} (batch, frames, noise_dim), "
                f"got {tuple(noise.shape)}"
            )
        noise = noise.to(device=z.device, dtype=z.dtype)
        h = z
        states = []
        for k in range(shape[1]):
            h = self.cell(noise[:, k], h)
            states.append(h)
        return torch.stack(states, dim=1)


def build_gru(config: GRUTemporalConfig, spec: nd.TemporalSpec) -> GRUTemporal:
    """Factory of ``temporal.gru``."""
    return GRUTemporal(config, spec)


# ------------------------------------------------------------------------------------------
# backbone.mocogan


def _levels(size: int) -> int:
    """Resolution levels between 4×4 and ``size`` (4 at 64 px)."""
    return int(math.log2(size // 4))


@attrs.frozen
class MoCoGANConfig:
    """Options of the MoCoGAN backbone (defaults: the paper; ``preset = "tiny"`` for CPUs)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "tiny": {"size": 32, "g_channels": 16, "d_channels": 16, "batch_size": 8},
    }

    preset: str = option(
        "paper",
        "paper (64×64, batch 32; also gives the temporal plugin the authors' values of its unset "
        "options) or tiny (32×32, narrow, batch 8; the plugin's own lighter defaults)",
        one_of("paper", "tiny"),
    )
    size: int = option(64, "frame height and width in pixels", power_of_two)
    frames: int = option(16, "frames per video", positive)
    content_dim: int = option(50, "size of z_content (constant over the video)", positive)
    motion_dim: int = option(16, "size of z_motion and of each frame's motion latent", positive)
    g_channels: int = option(
        64, "image G: channels of the last hidden up-convolution (×2 per level)", positive
    )
    d_channels: int = option(
        64, "D_I and D_V: channels of the first convolution (×2 per layer)", positive
    )
    batch_size: int = option(32, "videos per batch", positive)
    lr: float = option(2e-4, "Adam learning rate of all three networks", positive)
    beta1: float = option(0.5, "Adam β1", non_negative)
    beta2: float = option(0.999, "Adam β2", non_negative)
    weight_decay: float = option(1e-5, "Adam weight decay", non_negative)
    sampling: str = option(
        "published",
        "published (the paper's code: D_I, D_V and G each get their own fakes; D_I sees single "
        "frames of independent videos, its real frames from a second batch of videos, so the "
        "trainer loads 2 × batch_size) or shared (one fake batch for both discriminators, D_I's "
        "frames taken from D_V's videos)",
        one_of("published", "shared"),
    )

    def __attrs_post_init__(self) -> None:
        if self.size < 16:
            raise ConfigError(f"size: expected a power of two >= 16, got {self.size}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not value < 1:
                raise ConfigError(f"{name}: expected a number in [0, 1), got {value!r}")
        layers = _levels(self.size)
        if self.frames < 3 * layers + 1:
            raise ConfigError(
                f"frames: at size {self.size} the video discriminator has {layers} "
                "convolutions with kernel 4 and no padding in time, each removing 3 frames, so "
                f"it needs at least {3 * layers + 1} frames; got {self.frames}"
            )


class ImageGenerator(nd.ImageGenerator):
    """G: [z_content, motion latent] (a 1×1 map) → a frame; DCGAN-style, no biases.

    ConvTranspose2d(k4, s1) to ``g_channels·2^(L-1)`` at 4×4, then L-1 up-convolutions (k4 s2
    p1) halving the channels, each with BN + ReLU, and a last up-convolution to RGB + tanh
    (L = log2(size/4)). At 64 px: 66 → 512 → 256 → 128 → 64 → 3.
    """

    def __init__(self, config: MoCoGANConfig) -> None:
        super().__init__()
        self.content_dim = config.content_dim
        levels = _levels(config.size)
        c = config.g_channels * 2 ** (levels - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(config.content_dim + config.motion_dim, c, 4, 1, 0, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
        ]
        for _ in range(levels - 1):
            layers += [
                nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c // 2),
                nn.ReLU(inplace=True),
            ]
            c //= 2
        layers += [nn.ConvTranspose2d(c, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, latents: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """latents (B, T, motion), z (B, content + motion) → frames (B, T, 3, H, W).

        Every frame gets the same ``z[:, :content_dim]`` (the content) before its own latent.
        """
        b, t = latents.shape[:2]
        content = z[:, : self.content_dim].unsqueeze(1).expand(b, t, -1)
        codes = torch.cat([content, latents], dim=2).reshape(b * t, -1, 1, 1)
        frames = self.net(codes)
        return frames.view(b, t, *frames.shape[1:])


class ImageDiscriminator(nn.Module):
    """D_I: a patch discriminator on single frames, no biases.

    L = log2(size/4) convolutions k4 s2 p1: ``d_channels``, ×2 per layer, then 1 channel; batch
    norm from the second layer on, LeakyReLU(0.2) after all but the last. At 64 px: 3 → 64 →
    128 → 256 → 1, a 4×4 map of logits (4×4 at every size).
    """

    def __init__(self, config: MoCoGANConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c = 3, config.d_channels
        n = _levels(config.size)
        for i in range(n - 1):
            layers.append(nn.Conv2d(c_in, c, 4, 2, 1, bias=False))
            if i > 0:
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in, c = c, c * 2
        layers.append(nn.Conv2d(c_in, 1, 4, 2, 1, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, 3, H, W) → patch logits (B, H/2^L, W/2^L)."""
        return self.net(frames).squeeze(1)


class VideoDiscriminator(nn.Module):
    """D_V: 3-D convolutions over whole videos, no biases; one logit per video.

    L = log2(size/4) layers Conv3d k4 stride (1, 2, 2) pad (0, 1, 1), ``d_channels`` ×2 per
    layer, BN from the second, LeakyReLU(0.2): space shrinks to 4×4 and time loses 3 frames per
    layer. A last Conv3d to 1 channel spans what remains — (T − 3L) × 4 × 4 — so every preset
    gives exactly one score per video. At 16×64×64 that is 3 → 64 → 128 → 256 → 512 (512 ×
    4×4×4) and the paper's Conv3d(512, 1, 4).
    """

    def __init__(self, config: MoCoGANConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c = 3, config.d_channels
        n = _levels(config.size)
        for i in range(n):
            layers.append(nn.Conv3d(c_in, c, 4, (1, 2, 2), (0, 1, 1), bias=False))
            if i > 0:
                layers.append(nn.BatchNorm3d(c))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in, c = c, c * 2
        self.features = nn.Sequential(*layers)
        self.score = nn.Conv3d(c_in, 1, (config.frames - 3 * n, 4, 4), bias=False)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, 3, T, H, W) → logits (B,)."""
        return self.score(self.features(video)).flatten()


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class MoCoGAN(nd.VideoGAN):
    """MoCoGAN's networks and its training step (D_I, then D_V, then G)."""

    def __init__(self, config: MoCoGANConfig, temporal: nd.TemporalGenerator) -> None:
        super().__init__()
        self.config = config
        c, m = config.content_dim, config.motion_dim
        self.generator = nd.VideoGenerator(
            temporal, ImageGenerator(config), (c + m,), "normal", temporal_slice=(c, c + m)
        )
        self.discriminators = nn.ModuleDict(
            {"image": ImageDiscriminator(config), "video": VideoDiscriminator(config)}
        )

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Adam with the same settings for the generator, D_I and D_V."""
        cfg = self.config
        kwargs = {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2), "weight_decay": cfg.weight_decay}
        return {
            "generator": torch.optim.Adam(self.generator.parameters(), **kwargs),
            "image_discriminator": torch.optim.Adam(
                self.discriminators["image"].parameters(), **kwargs
            ),
            "video_discriminator": torch.optim.Adam(
                self.discriminators["video"].parameters(), **kwargs
            ),
        }

    @staticmethod
    def random_frames(video: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """One frame per video, chosen uniformly with ``rng``: (B, C, T, H, W) → (B, C, H, W)."""
        b, t = video.shape[0], video.shape[2]
        index = torch.randint(t, (b,), generator=rng).to(video.device)
        return video[torch.arange(b, device=video.device), :, index]

    def _fake(self, b: int, rng: torch.Generator, device: torch.device) -> torch.Tensor:
        g = self.generator
        return g(g.sample_z(b, rng, device), generator=rng)

    def _fake_frames(self, b: int, rng: torch.Generator, device: torch.device) -> torch.Tensor:
        """One random frame of each of ``b`` new videos, (B, C, H, W): only those frames are
        rendered (as the paper's code does), so the image generator's batch is ``b``."""
        g = self.generator
        z = g.sample_z(b, rng, device)
        latents = g.frame_latents(z, generator=rng)
        index = torch.randint(latents.shape[1], (b,), generator=rng).to(device)
        chosen = latents[torch.arange(b, device=device), index].unsqueeze(1)
        return g.image(chosen, z)[:, 0]

    def _discriminator_step(
        self,
        disc: nn.Module,
        optimizer: torch.optim.Optimizer,
        real: torch.Tensor,
        fake: torch.Tensor,
    ) -> tuple[float, float, float]:
        d_real, d_fake = disc(real), disc(fake)
        loss = _bce(d_real, 1.0) + _bce(d_fake, 0.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item(), d_real.mean().item(), d_fake.mean().item()

    def training_step(
        self,
        real: torch.Tensor,
        step: int,
        optimizers: dict[str, torch.optim.Optimizer],
        rng: torch.Generator,
    ) -> dict[str, float]:
        """One D_I step, one D_V step and one G step (non-saturating BCE, as MoCoGAN).

        ``sampling = "published"``: ``real`` holds two batches; the first half are D_V's
        videos, one random frame of each video of the second half is D_I's real input; D_I,
        D_V and G each draw their own fakes (G a batch of videos for D_V and single frames of
        other videos for D_I). ``"shared"``: the discriminators share one batch of fakes and
        D_I takes one random frame of each of D_V's videos, real and fake. ``rng`` drives every
        random choice: z, the temporal noise and the frames.
        """
        d_image, d_video = self.discriminators["image"], self.discriminators["video"]
        device = real.device
        if self.config.sampling == "published":
            b = real.shape[0] // 2
            real_video, real_frames = real[:b], self.random_frames(real[b:], rng)
            with torch.no_grad():
                fake_frames = self._fake_frames(b, rng, device)
                fake_video = self._fake(b, rng, device)
        else:
            b = real.shape[0]
            real_video, real_frames = real, self.random_frames(real, rng)
            with torch.no_grad():
                fake_video = self._fake(b, rng, device)
            fake_frames = self.random_frames(fake_video, rng)
        loss_di, di_real, di_fake = self._discriminator_step(
            d_image, optimizers["image_discriminator"], real_frames, fake_frames
        )
        loss_dv, dv_real, dv_fake = self._discriminator_step(
            d_video, optimizers["video_discriminator"], real_video, fake_video
        )

        self.discriminators.requires_grad_(False)
        try:
            fake = self._fake(b, rng, device)
            if self.config.sampling == "published":
                frames = self._fake_frames(b, rng, device)
            else:
                frames = self.random_frames(fake, rng)
            loss_g = _bce(d_image(frames), 1.0) + _bce(d_video(fake), 1.0)
            optimizers["generator"].zero_grad(set_to_none=True)
            loss_g.backward()
            optimizers["generator"].step()
        finally:
            self.discriminators.requires_grad_(True)
        return {
            "loss_d": loss_di + loss_dv,
            "loss_d_image": loss_di,
            "loss_d_video": loss_dv,
            "loss_g": loss_g.item(),
            "d_real_image": di_real,
            "d_fake_image": di_fake,
            "d_real_video": dv_real,
            "d_fake_video": dv_fake,
        }


class MoCoGANBackbone(nd.Backbone):
    """The MoCoGAN backbone as the core sees it: specs, and the GAN around a temporal G."""

    default_temporal = "temporal.gru"

    def __init__(self, config: MoCoGANConfig) -> None:
        """Keep the config; with ``sampling = "published"`` the trainer loads two batches of
        videos per step (D_V's, and the independent videos D_I's real frames come from)."""
        super().__init__(config)
        if config.sampling == "published":
            self.batch_size = 2 * config.batch_size

    def temporal_spec(self) -> nd.TemporalSpec:
        """z_motion → one motion latent of the same size per frame; the paper's time grid."""
        shape = (self.config.motion_dim,)
        spec = nd.TemporalSpec(shape, shape, self.config.frames)
        return spec.with_reference(lambda s: GRUTemporal(GRUTemporalConfig(), s))

    def build(self, temporal: nd.TemporalGenerator) -> MoCoGAN:
        """MoCoGAN with ``temporal`` as its motion generator."""
        return MoCoGAN(self.config, temporal)

    def published_temporal_options(
        self, options: Mapping[str, Any], explicit: frozenset[str]
    ) -> dict[str, Any]:
        """At the ``paper`` preset, the paper's MoCoGAN dynamics: torch's default init
        throughout and tanh; first order: the pre-ODE MLP 16→64→16 (LeakyReLU(0.2) after both
        layers) for ``single`` and ``composed`` (hidden 16), no MLP and hidden 49 for
        ``matched``; orders 2 and 3 and the SDE: no MLP, ``matched`` f of hidden 49 unless
        another design is chosen, chain form, SDE step 2.5e-2; the adjoint."""
        if self.config.preset != "paper" or "pre_mlp" not in options:
            return {}
        out: dict[str, Any] = {
            "init": "torch_default",
            "pre_mlp_init": "torch_default",
            "encoder_init": "torch_default",
            "activation": "tanh",
            "form": "chain",
        }
        first_order = options.get("order") == 1
        design = options.get("design")
        if "design" not in explicit and not first_order:
            design = out["design"] = "matched"
        if first_order and design in ("single", "composed"):
            out.update(pre_mlp=(64,), pre_mlp_final_activation=True)
        else:
            out["pre_mlp"] = ()
        if design == "matched" and "pre_mlp" not in explicit:
            out["hidden"] = 49  # the authors' "EQ" width (with no MLP)
        if options.get("backend") in ("torchdiffeq", "torchsde"):
            out["adjoint"] = True
        if options.get("backend") == "torchsde":
            out["dt"] = 2.5e-2
        return out


@nd.hookimpl
def register_components(register: Any) -> None:
    """Register ``backbone.mocogan`` and ``temporal.gru``."""
    register("backbone.mocogan", MoCoGANBackbone, MoCoGANConfig)
    register("temporal.gru", build_gru, GRUTemporalConfig)
