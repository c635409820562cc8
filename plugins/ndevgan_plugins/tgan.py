"""TGAN (Saito, Matsumoto & Saito, ICCV 2017) as ndevgan's ``backbone.tgan``.

Also registers TGAN's original temporal generator as ``temporal.conv1d``. Architecture and
protocol as the paper's code (docs/FIDELITY.md): the temporal generator G0 turns
z ~ U(-1, 1)^100 into 16 frame latents with 1-D transposed convolutions; the image generator
G1 renders each frame from (z, z_t); a 3-D convolutional critic scores videos; WGAN loss with
singular value clipping every 5 iterations; RMSprop at 5e-5; batch 32. The ``tiny`` preset
(32×32, narrower; RMSprop at 1e-3, nearest-neighbour up-sampling, one rendering per iteration:
docs/TINY_RECIPE.md) trains on a CPU in minutes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import attrs
import torch
import torch.nn.functional as F
from torch import nn

import ndevgan_core as nd
from ndevgan_core import (
    ConfigError,
    non_negative,
    one_of,
    option,
    positive,
    power_of_two,
    r1_penalty,
    singular_value_clip,
    wgan_discriminator_loss,
    wgan_generator_loss,
)

# ------------------------------------------------------------------------------------------
# temporal.conv1d — TGAN's G0


@attrs.frozen
class Conv1dTemporalConfig:
    """Options of TGAN's 1-D convolutional temporal generator."""

    channels: int = option(512, "width of the first layer; later layers halve it twice", positive)
    bias: bool = option(
        False,
        "a bias on every ConvTranspose1d, as the paper's code (TGAN's paper preset sets it); "
        "false: on the last only — the others feed batch norm, which cancels them",
    )
    init: str = option(
        "torch_default",
        "weights: xavier_uniform with gain √2 (the paper's code; TGAN's paper preset sets it) "
        "or torch_default (ndevgan's default: far less sensitive at tiny scale)",
        one_of("xavier_uniform", "torch_default"),
    )


class Conv1dTemporal(nd.TemporalGenerator):
    """G0: one latent → T latents by 1-D transposed convolutions (discrete time only).

    z is a length-1 sequence; ConvTranspose1d(k=1) to ``channels``, then log2(T) layers of
    ConvTranspose1d(k4, s2, p1) that double the length (widths c, c/2, c/4, c/4, …), batch
    norm + ReLU after each but the last, which ends in tanh.
    """

    continuous = False

    def __init__(self, config: Conv1dTemporalConfig, spec: nd.TemporalSpec) -> None:
        super().__init__(spec, "temporal.conv1d")
        if len(spec.latent_shape) != 1 or spec.input_shape != spec.latent_shape:
            raise ConfigError(
                "temporal.conv1d works on vector latents with input and output of one size; "
                f"this backbone asks for {spec.input_shape} → {spec.latent_shape}"
            )
        frames = spec.frames
        if frames < 2 or frames & (frames - 1):
            raise ConfigError(f"temporal.conv1d needs a power-of-two frame count, got {frames}")
        dim = spec.latent_shape[0]
        c = config.channels
        widths = [max(c // 2 ** min(i, 2), 1) for i in range(int(math.log2(frames)))]
        layers: list[nn.Module] = [
            nn.ConvTranspose1d(dim, widths[0], 1, bias=config.bias),
            nn.BatchNorm1d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for i, width in enumerate(widths):
            last = i == len(widths) - 1
            out = dim if last else widths[i + 1]
            layers.append(nn.ConvTranspose1d(width, out, 4, 2, 1, bias=last or config.bias))
            layers += [nn.Tanh()] if last else [nn.BatchNorm1d(out), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers)
        if config.init == "xavier_uniform":
            for layer in self.net:
                if isinstance(layer, nn.ConvTranspose1d):
                    nn.init.xavier_uniform_(layer.weight, gain=math.sqrt(2))

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B, D) → (B, T, D) at the training grid."""
        return self.net(z.unsqueeze(-1)).transpose(1, 2)


def build_conv1d(config: Conv1dTemporalConfig, spec: nd.TemporalSpec) -> Conv1dTemporal:
    """Factory of ``temporal.conv1d``."""
    return Conv1dTemporal(config, spec)


# ------------------------------------------------------------------------------------------
# backbone.tgan


CRITIC_AUGMENTATIONS: tuple[str, ...] = ("colour", "translation", "cutout")
"""What ``critic_augment`` may list, in the order they are applied."""


def augment_kinds(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """Validator: ``none`` or a comma-separated list of distinct :data:`CRITIC_AUGMENTATIONS`."""
    kinds = value.split(",") if isinstance(value, str) and value != "none" else []
    distinct = len(set(kinds)) == len(kinds) and set(kinds) <= set(CRITIC_AUGMENTATIONS)
    if not (isinstance(value, str) and distinct):
        raise ConfigError(
            f"{attribute.name}: expected none or a comma-separated list of distinct "
            f"{', '.join(CRITIC_AUGMENTATIONS)}, got {value!r}"
        )


def augment_videos(videos: torch.Tensor, kinds: str, rng: torch.Generator) -> torch.Tensor:
    """Videos (B, C, T, H, W) in [-1, 1], each augmented by its own random draw from ``rng``
    (on the CPU), the same for all its frames, so the motion is kept: ``colour`` adds a
    brightness in [-0.5, 0.5], scales the distance from the pixel's grey by [0, 2]
    (saturation) and from the video's mean by [0.5, 1.5] (contrast); ``translation`` shifts by
    up to an eighth of the width and height (whole pixels), filling with black; ``cutout``
    sets a square of half the width, anywhere in the frame (clipped at its edges), to 0 (grey).
    Every operation is differentiable in ``videos``."""
    if kinds == "none":
        return videos
    b, _, _, h, w = videos.shape
    chosen = kinds.split(",")

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand((b, *shape), generator=rng).to(videos.device, videos.dtype)

    if "colour" in chosen:
        videos = videos + (uniform(1, 1, 1, 1) - 0.5)
        grey = videos.mean(dim=1, keepdim=True)
        videos = (videos - grey) * (2 * uniform(1, 1, 1, 1)) + grey
        mean = videos.mean(dim=(1, 2, 3, 4), keepdim=True)
        videos = (videos - mean) * (uniform(1, 1, 1, 1) + 0.5) + mean
    if "translation" in chosen:
        pad_y, pad_x = h // 8, w // 8
        shift_y = torch.randint(-pad_y, pad_y + 1, (b, 1), generator=rng).to(videos.device)
        shift_x = torch.randint(-pad_x, pad_x + 1, (b, 1), generator=rng).to(videos.device)
        padded = F.pad(videos, (pad_x, pad_x, pad_y, pad_y), value=-1.0)
        rows = torch.arange(h, device=videos.device) + pad_y - shift_y
        cols = torch.arange(w, device=videos.device) + pad_x - shift_x
        batch = torch.arange(b, device=videos.device)[:, None, None]
        # Advanced indices on both sides of the channel and time slices put (B, H, W) first.
        videos = padded[batch, :, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 4, 1, 2)
    if "cutout" in chosen:
        side_y, side_x = h // 2, w // 2
        top = torch.randint(0, h + 1 - side_y % 2, (b, 1), generator=rng) - side_y // 2
        left = torch.randint(0, w + 1 - side_x % 2, (b, 1), generator=rng) - side_x // 2
        ys = torch.arange(h)[None, :] - top
        xs = torch.arange(w)[None, :] - left
        inside = ((ys >= 0) & (ys < side_y))[:, :, None] & ((xs >= 0) & (xs < side_x))[:, None]
        keep = (~inside).to(videos.device, videos.dtype)
        videos = videos * keep[:, None, None]
    return videos


@attrs.frozen
class TGANConfig:
    """Options of the TGAN backbone (defaults: the paper; ``preset = "tiny"`` for CPUs)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "tiny": {
            "size": 32,
            "g_channels": 16,
            "d_channels": 16,
            "batch_size": 8,
            "lr": 1e-3,
            "init": "torch_default",
            "critic_bias": False,
            "gamma_clip": "symmetric",
            "upsample": "nearest",
            "generator_fakes": "reuse",
        },
    }

    preset: str = option(
        "paper",
        "paper (64×64, batch 32; also gives the temporal plugin the authors' values of its unset "
        "options) or tiny (32×32, narrow, batch 8, the recipe of docs/TINY_RECIPE.md; the "
        "plugin's own lighter defaults)",
        one_of("paper", "tiny"),
    )
    size: int = option(64, "frame height and width in pixels", power_of_two)
    frames: int = option(16, "frames per video", power_of_two)
    latent_dim: int = option(100, "size of z and of each frame latent", positive)
    g_channels: int = option(
        32, "image G: channels of the last up-convolution (×2 per level)", positive
    )
    d_channels: int = option(
        64, "critic: channels of the first 3-D convolution (×2 per layer)", positive
    )
    batch_size: int = option(32, "videos per batch", positive)
    lr: float = option(5e-5, "RMSprop learning rate of both networks", positive)
    clip_every: int = option(
        5,
        "singular value clipping of the critic every N iterations, after the generator step "
        "of iterations 0, N, 2N, … as the paper's code (0: never)",
        non_negative,
    )
    gamma_clip: str = option(
        "published",
        "critic batch-norm γ clip: published (γ in [0.01·σ, σ], σ = √running_var, Chainer's "
        "TGAN and the paper's code) or symmetric (|γ| ≤ √(running_var + eps))",
        one_of("published", "symmetric"),
    )
    init: str = option(
        "published",
        "published (image G weights U(−0.01, 0.01), critic weights xavier-normal gain √2: "
        "Chainer's TGAN and the paper's code) or torch_default",
        one_of("published", "torch_default"),
    )
    critic_bias: bool = option(
        True, "a bias on every Conv3d of the critic, as the paper's code (false: the first only)"
    )
    critic_downsample: str = option(
        "strided",
        "how each critic layer halves the video: strided (a 4×4(×4) convolution of stride 2, "
        "the paper) or maxpool (a 3×3(×3) convolution of stride 1, then a 2×2(×2) max-pool: "
        "a critic that can learn small shapes' outlines, at twice the tiny step's time)",
        one_of("strided", "maxpool"),
    )
    critic_max_score: bool = option(
        False,
        "critics: add to the score a linear function of each last feature channel's maximum "
        "over time and space, which reads what a video shows wherever it shows it (false: "
        "the score is one convolution over the last features' whole extent, the paper)",
    )
    critic_augment: str = option(
        "none",
        "augmentations of every video the critics score, real and fake alike, drawn afresh per "
        "video and differentiable so the generator learns through them (DiffAugment): none "
        "(the paper) or a comma-separated list of colour (brightness, saturation, contrast), "
        "translation (up to an eighth of the frame, the same for all frames) and cutout (a "
        "square of half the frame's width hidden in all frames)",
        augment_kinds,
    )
    critic_edges: float = option(
        0.0,
        "critics: also give the first layer each colour channel's differences to the next "
        "pixel right and below, times this gain, so edges and corners weigh more in what the "
        "critic can tell apart under its Lipschitz bound (a Sobolev-like norm, as the Banach "
        "Wasserstein GAN's; 0: RGB only, the paper)",
        non_negative,
    )
    feature_critic: int = option(
        0,
        "frames of each video also scored by a critic that reads a frame encoder's features "
        "(Projected GAN): the encoder learns by itself from real frames (SimCLR: two "
        "shifted, channel-swapped views of a frame are alike, other frames not; with "
        "feature_encoder_fakes also from fakes) during the first feature_encoder_steps "
        "iterations, then stays fixed; 0: none, the paper",
        non_negative,
    )
    feature_encoder_steps: int = option(
        800,
        "feature_critic: the iterations during which the frame encoder learns (one "
        "contrastive Adam step on 64 frames of recent real batches each)",
        positive,
    )
    feature_encoder_every: int = option(
        1,
        "feature_critic: the frame encoder learns at every this many iterations of its "
        "feature_encoder_steps (real frames are kept at every iteration)",
        positive,
    )
    feature_encoder_fakes: bool = option(
        False,
        "feature_critic: the encoder's contrastive step also sees one frame of each of the "
        "critic step's fakes and learns to hold them together, apart from the real frames "
        "(ContraD's supervised term), so that while it learns it keeps telling what the "
        "generator draws from the data; false: real frames only",
    )
    feature_mmd: float = option(
        0.0,
        "feature_critic: the generator's loss also adds this weight times the squared maximum "
        "mean discrepancy between its frames' and kept real frames' encoder features (their "
        "maximum over the frame, normalised: the contrastive space), so the fakes' shapes must "
        "be spread over that space as the data's are, not only be hard to tell from them; 0: "
        "none",
        non_negative,
    )
    video_mmd: float = option(
        0.0,
        "the generator's loss also adds this weight times the squared maximum mean "
        "discrepancy between its videos' and the batch's real videos' last features of the "
        "video critic (MMD-GAN's, with the critic's features as the kernel's space), so the "
        "fakes' motions must be spread as the data's are, not only be hard to tell from them; "
        "0: none, the paper",
        non_negative,
    )
    loss: str = option(
        "wgan",
        "wgan (the paper: critic E[D(fake)] − E[D(real)], G −E[D(fake)]), hinge (critic "
        "E[relu(1 − D(real))] + E[relu(1 + D(fake))], G −E[D(fake)]) or nonsaturating "
        "(critic E[softplus(−D(real))] + E[softplus(D(fake))], G E[softplus(−D(fake))])",
        one_of("wgan", "hinge", "nonsaturating"),
    )
    critic_norm: str = option(
        "batchnorm",
        "batchnorm (the paper), spectral (spectral normalisation of every critic convolution "
        "instead of batch norm) or none (neither; pair it with r1)",
        one_of("batchnorm", "spectral", "none"),
    )
    r1: float = option(
        0.0,
        "λ of the R1 penalty on real videos, λ · E‖∇ₓD(x)‖² added to the critic loss "
        "(0: none; the paper has none)",
        non_negative,
    )
    optimizer: str = option(
        "rmsprop", "rmsprop (the paper) or adam (with beta1, beta2)", one_of("rmsprop", "adam")
    )
    beta1: float = option(0.5, "adam: β1", non_negative)
    beta2: float = option(0.999, "adam: β2", non_negative)
    d_lr: float = option(
        0.0,
        "learning rate of the critic (0: the same as lr; the paper uses one rate)",
        non_negative,
    )
    upsample: str = option(
        "transposed",
        "image G up-sampling: transposed (4×4 stride-2 transposed convolutions, the paper) or "
        "nearest (nearest-neighbour ×2 then a 3×3 convolution: no checkerboard pattern)",
        one_of("transposed", "nearest"),
    )
    minibatch_std: bool = option(
        False,
        "critics: append one channel before the score, the standard deviation of the last "
        "features across the batch (averaged over channels and positions), so a batch of "
        "look-alike videos is told from a varied one (StyleGAN's minibatch standard deviation; "
        "false: none, the paper)",
    )
    frame_critic: int = option(
        0,
        "frames of each video also scored by a 2-D frame critic (MoCoGAN's image "
        "discriminator, same loss and normalisation as the video critic; 0: none, the paper)",
        non_negative,
    )
    image_generator: str = option(
        "convolutional",
        "convolutional (the paper: each frame up-sampled from a 4×4 map of (z, z_t)) or "
        "sprite (z draws one RGBA sprite (sprite_size) and a smooth background; each frame "
        "latent places the sprite with a translation, rotation and scale, warped by bilinear "
        "sampling: docs/TINY_RECIPE.md)",
        one_of("convolutional", "sprite"),
    )
    sprite_size: str = option(
        "half",
        "sprite image G: the sprite's pixels, half (half the frame's width) or full (the "
        "frame's width: one more up-sampling level, finer outlines)",
        one_of("half", "full"),
    )
    sprite_shape: str = option(
        "drawn",
        "sprite image G: drawn (up-convolutions paint the sprite's colour and opacity pixel by "
        "pixel) or polar (z gives one colour, a round hole and the outline's radius at "
        "sprite_outline_angles angles around the sprite's centre; the sprite is that "
        "star-shaped region, filled, less the hole, with an edge a frame pixel wide: every "
        "shape of dataset.shapes is star-shaped about its centre)",
        one_of("drawn", "polar"),
    )
    sprite_outline_angles: int = option(
        64,
        'sprite image G with sprite_shape = "polar": how many evenly spaced angles the outline '
        "has a radius at (fewer: coarser outlines, without the one-angle spikes of 64)",
        positive,
    )
    sprite_colour: str = option(
        "free",
        "sprite image G: free (a colour per sprite pixel) or flat (one colour per video from z; "
        "the sprite draws only its opacity)",
        one_of("free", "flat"),
    )
    sprite_supersample: int = option(
        1,
        "sprite image G: render each frame at this many times its size and average it down "
        "(1: one bilinear sample per pixel; 2 or 4: anti-aliased outlines at any scale)",
        one_of(1, 2, 4),
    )
    sprite_background: str = option(
        "random",
        "sprite image G: the background map's initialisation: random (torch's default Linear, "
        "a mid-grey, many-coloured background) or dark (weights 0 and bias atanh(−0.9): every "
        "video starts on a near-black background, so the sprite is not first spent masking it)",
        one_of("random", "dark"),
    )
    sprite_pose_init: str = option(
        "random",
        "sprite image G: the pose MLP's last layer: random (torch's default: every video starts "
        "moving, turning and changing size at random) or still (weights and bias 0: every video "
        "starts still, centred, unrotated, at half the frame's width, and moves as it learns to)",
        one_of("random", "still"),
    )
    sprite_turn_gain: float = option(
        1.0,
        "sprite image G: the sprite's angle is this × π × its pose code (1: the first sprite "
        "generator; smaller makes turning cost larger weights, so motion is learnt as movement)",
        positive,
    )
    sprite_shift_gain: float = option(
        1.0,
        "sprite image G: the sprite's centre is tanh(this × its pose code) (1: the first sprite "
        "generator; larger lets small weight changes move the sprite across the frame)",
        positive,
    )
    shape_code: int = option(
        0,
        "sprite image G: an InfoGAN categorical code of this many values (0: none, the paper). "
        "The first coordinate of z, cut into this many equal intervals, picks one; the network "
        "that draws the sprite gets it one-hot beside z (the image G sees that coordinate "
        "nowhere else), a linear head on the video critic's "
        "features learns to tell it from the video, and both networks minimise that head's "
        "cross-entropy (× shape_code_weight), so each value draws a sprite of its own",
        non_negative,
    )
    shape_code_weight: float = option(
        1.0, "the weight of the shape code's cross-entropy in both losses", positive
    )
    generator_fakes: str = option(
        "fresh",
        "videos the generator step scores: fresh (new latents, the paper's code) or reuse "
        "(the critic step's videos, so each iteration renders one batch instead of two)",
        one_of("fresh", "reuse"),
    )

    def __attrs_post_init__(self) -> None:
        for name in ("beta1", "beta2"):
            if not getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected a number in [0, 1), got {getattr(self, name)}")
        if self.size < 8:
            raise ConfigError(f"size: expected a power of two >= 8, got {self.size}")
        layers = int(math.log2(self.size // 4))
        if self.frames < 2**layers:
            raise ConfigError(
                f"frames: the critic halves time {layers} times at size {self.size}, so it "
                f"needs at least {2**layers} frames; got {self.frames}"
            )
        sprite_only = {
            "sprite_colour": "free",
            "sprite_size": "half",
            "sprite_supersample": 1,
            "sprite_background": "random",
            "sprite_pose_init": "random",
            "sprite_turn_gain": 1.0,
            "sprite_shift_gain": 1.0,
            "sprite_shape": "drawn",
            "sprite_outline_angles": 64,
            "shape_code": 0,
        }
        for name, default in sprite_only.items():
            if getattr(self, name) != default and self.image_generator != "sprite":
                raise ConfigError(
                    f'{name}: {getattr(self, name)!r} needs image_generator = "sprite", '
                    f"got image_generator = {self.image_generator!r}"
                )
        if self.sprite_outline_angles < 3:
            raise ConfigError(
                "sprite_outline_angles: expected at least 3 angles, got "
                f"{self.sprite_outline_angles}"
            )
        default_angles = attrs.fields(type(self)).sprite_outline_angles.default
        if self.sprite_outline_angles != default_angles and self.sprite_shape != "polar":
            raise ConfigError(
                f"sprite_outline_angles: {self.sprite_outline_angles} needs sprite_shape = "
                f'"polar", got sprite_shape = {self.sprite_shape!r}'
            )
        if self.sprite_shape == "polar" and self.sprite_colour != "free":
            raise ConfigError(
                f'sprite_colour: {self.sprite_colour!r} applies to sprite_shape = "drawn"; '
                'sprite_shape = "polar" always draws one colour per video'
            )
        if self.shape_code == 1:
            raise ConfigError("shape_code: expected 0 (none) or at least 2 values, got 1")
        default_weight = attrs.fields(type(self)).shape_code_weight.default
        if self.shape_code_weight != default_weight and not self.shape_code:
            raise ConfigError(
                f"shape_code_weight: {self.shape_code_weight} needs a shape code "
                "(shape_code of at least 2), got shape_code = 0"
            )
        if self.feature_critic > self.frames:
            raise ConfigError(
                f"feature_critic: expected at most the {self.frames} frames of a video, got "
                f"{self.feature_critic}"
            )
        default_steps = attrs.fields(type(self)).feature_encoder_steps.default
        if self.feature_encoder_steps != default_steps and not self.feature_critic:
            raise ConfigError(
                f"feature_encoder_steps: {self.feature_encoder_steps} needs a feature critic "
                "(feature_critic of at least 1), got feature_critic = 0"
            )
        default_every = attrs.fields(type(self)).feature_encoder_every.default
        if self.feature_encoder_every != default_every and not self.feature_critic:
            raise ConfigError(
                f"feature_encoder_every: {self.feature_encoder_every} needs a feature critic "
                "(feature_critic of at least 1), got feature_critic = 0"
            )
        if self.feature_encoder_fakes and not self.feature_critic:
            raise ConfigError(
                "feature_encoder_fakes: true needs a feature critic (feature_critic of at "
                "least 1), got feature_critic = 0"
            )
        if self.feature_mmd and not self.feature_critic:
            raise ConfigError(
                f"feature_mmd: {self.feature_mmd} needs a feature critic (feature_critic of at "
                "least 1), got feature_critic = 0"
            )
        if self.frame_critic > self.frames:
            raise ConfigError(
                f"frame_critic: expected at most the {self.frames} frames of a video, got "
                f"{self.frame_critic}"
            )


def _projection(latent_dim: int, features: int) -> nn.Sequential:
    """A latent → Linear (no bias) + BN + ReLU: G1's first map, flattened."""
    return nn.Sequential(
        nn.Linear(latent_dim, features, bias=False),
        nn.BatchNorm1d(features),
        nn.ReLU(inplace=True),
    )


def _up_levels(channels: int, levels: int, upsample: str) -> list[nn.Module]:
    """``levels`` ×2 up-samplings, each halving ``channels`` and followed by BN + ReLU: a 4×4
    stride-2 transposed convolution, or nearest ×2 then a 3×3 convolution (both without bias)."""
    layers: list[nn.Module] = []
    for _ in range(levels):
        if upsample == "nearest":
            layers += [
                nn.Upsample(scale_factor=2),
                nn.Conv2d(channels, channels // 2, 3, 1, 1, bias=False),
            ]
        else:
            layers.append(nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False))
        layers += [nn.BatchNorm2d(channels // 2), nn.ReLU(inplace=True)]
        channels //= 2
    return layers


def shape_code_of(z: torch.Tensor, values: int) -> torch.Tensor:
    """The InfoGAN shape code of each latent (B, D) → (B,) in ``range(values)``: which of
    ``values`` equal intervals of [-1, 1] the first coordinate of ``z`` lies in."""
    return ((z[:, 0] + 1) * (values / 2)).floor().clamp(0, values - 1).long()


def _published_init(generator: nn.Module) -> None:
    """The published G1 init: every Linear and convolution weight U(−0.01, 0.01)."""
    for layer in generator.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.uniform_(layer.weight, -0.01, 0.01)


class ImageGenerator(nd.ImageGenerator):
    """G1: (z_slow, z_fast) → a frame. Each latent → Linear (no bias) + BN + ReLU to
    (c/2)×4×4, concatenated to c×4×4, then up-convolutions (k4 s2 p1, no bias, BN + ReLU)
    halving channels to ``g_channels`` at full size, and a 3×3 convolution to RGB + tanh."""

    def __init__(self, config: TGANConfig) -> None:
        super().__init__()
        levels = int(math.log2(config.size // 4))
        top = config.g_channels * 2**levels
        self.top = top
        self.fc_slow = _projection(config.latent_dim, top // 2 * 16)
        self.fc_fast = _projection(config.latent_dim, top // 2 * 16)
        layers = _up_levels(top, levels, config.upsample)
        layers += [nn.ConvTranspose2d(top >> levels, 3, 3, 1, 1), nn.Tanh()]
        self.up = nn.Sequential(*layers)
        if config.init == "published":
            _published_init(self)

    def forward(self, latents: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """latents (B, T, D), z (B, D) → frames (B, T, 3, H, W)."""
        b, t = latents.shape[:2]
        slow = self.fc_slow(z).view(b, 1, self.top // 2, 4, 4).expand(b, t, -1, -1, -1)
        fast = self.fc_fast(latents.reshape(b * t, -1)).view(b, t, self.top // 2, 4, 4)
        h = torch.cat([slow, fast], dim=2).reshape(b * t, self.top, 4, 4)
        frames = self.up(h)
        return frames.view(b, t, *frames.shape[1:])


class SpriteImageGenerator(nd.ImageGenerator):
    """G1 as one layer over a background: ``z`` → Linear + BN + ReLU to a 4×4 map, nearest
    ×2 + 3×3 convolution levels (BN + ReLU) down to ``g_channels`` at half the frame's size
    (or the whole frame's, ``sprite_size = "full"``), and a 3×3 convolution to a sprite (RGB
    by tanh, opacity by sigmoid); whatever its pixels, it spans the same part of the frame.
    ``z`` → a 3×4×4 map bilinearly up-sampled to the frame, by tanh, as the background. Each
    frame latent with ``z`` → an MLP (64 hidden units) → the sprite's centre (tanh, in frame
    coordinates [-1, 1]), angle and scale (0.25–1 of the frame: half at 0), which place the
    opacity-premultiplied sprite on the frame by an affine grid and bilinear sampling.
    Motion is then a path of four numbers, and rendering cost is one sprite per video.
    ``sprite_supersample = N`` samples N×N points per frame pixel and averages them, so a
    sprite drawn smaller than its own pixel grid keeps smooth outlines instead of aliasing.
    ``sprite_background = "dark"`` starts every background near-black (the random default
    starts it many-coloured, and the generator's first thousand steps then grow the sprite to
    a dark mask over the frame, with the shape drawn off-centre inside it).
    ``sprite_pose_init = "still"`` starts every sprite still (the random default starts most of
    them spinning, which the generator keeps). ``sprite_turn_gain`` and ``sprite_shift_gain``
    scale the angle and centre codes (angle = gain · π · code, centre = tanh(gain · code)): at
    1 and 1 the generator makes every motion by turning a sprite drawn off its centre.
    ``sprite_shape = "polar"`` replaces the up-convolutions by z → an MLP (128 hidden units) →
    one colour (tanh) and the outline's radius at ``sprite_outline_angles`` evenly spaced
    angles (sigmoid, up to 0.85 of the sprite's half-width, linearly interpolated between
    angles) and a round hole (its centre and radius, up to 0.3 of the half-width: it may shrink
    to nothing): the sprite is the filled region inside that outline less the hole, so it is
    always one single-coloured shape. ``shape_code = N`` reads a code in range(N) from z's first
    coordinate (:func:`shape_code_of`), gives it one-hot to the network that draws the sprite,
    and sets that coordinate to 0 for everything else of the image generator (with the polar
    sprite the colour then comes from z alone, by its own Linear)."""

    POSE_HIDDEN: ClassVar[int] = 64
    OUTLINE_HIDDEN: ClassVar[int] = 128
    OUTLINE_MAX_RADIUS: ClassVar[float] = 0.85
    """``sprite_shape = "polar"``: the outline's radii, as fractions of the sprite's half-width,
    stay inside the window's fully opaque disc."""
    HOLE_MAX_RADIUS: ClassVar[float] = 0.3
    HOLE_MAX_OFFSET: ClassVar[float] = 0.6
    """The hole's largest radius and distance from the centre, in the same units (the data's
    circles: 0.3 and 0.5 of their radius)."""

    def __init__(self, config: TGANConfig) -> None:
        super().__init__()
        self.size = config.size
        self.supersample = config.sprite_supersample
        sprite = config.size if config.sprite_size == "full" else config.size // 2
        self.sprite_pixels = sprite
        levels = int(math.log2(sprite // 4))
        top = config.g_channels * 2**levels
        self.top = top
        self.colour: nn.Module | None = None
        self.outline_angles = config.sprite_outline_angles
        self.shape_code = config.shape_code
        drawing_inputs = config.latent_dim + config.shape_code
        if config.sprite_shape == "polar":
            # With a shape code, the colour comes from z alone, so the code can only be told
            # by the outline and the hole.
            if config.shape_code:
                self.colour = nn.Linear(config.latent_dim, 3)
            outputs = self.outline_angles + 3 + (0 if config.shape_code else 3)
            self.outline: nn.Module | None = nn.Sequential(
                nn.Linear(drawing_inputs, self.OUTLINE_HIDDEN),
                nn.ReLU(inplace=True),
                nn.Linear(self.OUTLINE_HIDDEN, outputs),
            )
            self.fc: nn.Module | None = None
            self.up: nn.Module | None = None
        else:
            self.outline = None
            self.fc = _projection(drawing_inputs, top * 16)
            layers = _up_levels(top, levels, "nearest")
            flat = config.sprite_colour == "flat"
            layers.append(nn.Conv2d(top >> levels, 1 if flat else 4, 3, 1, 1))
            self.colour = nn.Linear(config.latent_dim, 3) if flat else None
            self.up = nn.Sequential(*layers)
        self.background = nn.Linear(config.latent_dim, 3 * 16)
        # The sprite's opacity fades to 0 at the inscribed circle of its square, so neither the
        # square's edges nor its corners (which a rotation would cut off) ever show.
        ramp = (torch.arange(sprite, dtype=torch.float32) + 0.5) / sprite * 2 - 1
        radius = torch.hypot(ramp[:, None], ramp[None, :])
        self.register_buffer("window", ((1 - radius) / 0.15).clamp(0, 1), persistent=False)
        if self.outline is not None:
            # Each sprite pixel's position, and the two neighbouring angles of the outline
            # (with the weight of the second) between which it lies.
            xy = torch.stack(torch.meshgrid(ramp, ramp, indexing="xy"), dim=-1).view(-1, 2)
            self.register_buffer("sprite_xy", xy, persistent=False)
            turn = torch.atan2(xy[:, 1], xy[:, 0]).div(2 * math.pi).remainder(1.0)
            position = turn * self.outline_angles
            below = position.floor().long()
            self.register_buffer("angle_below", below, persistent=False)
            self.register_buffer("angle_above", (below + 1) % self.outline_angles, persistent=False)
            self.register_buffer("angle_weight", position - below, persistent=False)
        # Pixel centres of the frame in [-1, 1] (x, y, 1): the warp is one matrix product, which
        # exports to ONNX where torch's affine_grid does not.
        fine = config.size * config.sprite_supersample
        coords = (torch.arange(fine, dtype=torch.float32) + 0.5) / fine * 2 - 1
        y, x = torch.meshgrid(coords, coords, indexing="ij")
        pixels = torch.stack([x, y, torch.ones_like(x)], dim=-1).view(-1, 3)
        self.register_buffer("pixels", pixels, persistent=False)
        self.radians_per_angle_code = math.pi * config.sprite_turn_gain
        self.shift_gain = config.sprite_shift_gain
        self.pose = nn.Sequential(
            nn.Linear(2 * config.latent_dim, self.POSE_HIDDEN),
            nn.ReLU(inplace=True),
            nn.Linear(self.POSE_HIDDEN, 4),
        )
        if config.init == "published":
            _published_init(self)
        if config.sprite_background == "dark":
            nn.init.zeros_(self.background.weight)
            nn.init.constant_(self.background.bias, math.atanh(-0.9))
        if config.sprite_pose_init == "still":
            nn.init.zeros_(self.pose[-1].weight)
            nn.init.zeros_(self.pose[-1].bias)

    def draw_sprite(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D) → the opacity-premultiplied sprite (B, 4, S, S): RGB × opacity, opacity."""
        b = z.shape[0]
        drawing_input = z
        if self.shape_code:
            values = torch.arange(self.shape_code, device=z.device)
            one_hot = (shape_code_of(z, self.shape_code).unsqueeze(1) == values).to(z.dtype)
            z = self.without_code(z)
            drawing_input = torch.cat([z, one_hot], dim=1)
        if self.outline is not None:
            codes = self.outline(drawing_input)
            radii = self.OUTLINE_MAX_RADIUS * torch.sigmoid(codes[:, : self.outline_angles])
            weight = self.angle_weight
            edge = radii[:, self.angle_below] * (1 - weight) + radii[:, self.angle_above] * weight
            # One frame pixel of soft edge at the usual scale (the sprite half the frame's
            # width, so a radius of 1 is size / 4 frame pixels), as the data's clip(0.5 − d).
            edge_pixels = self.size / 4
            alpha = ((edge - self.sprite_xy.norm(dim=-1)) * edge_pixels + 0.5).clamp(0, 1)
            rest = codes[:, self.outline_angles :]
            colour_codes = rest[:, :3] if self.colour is None else self.colour(z)
            colour = torch.tanh(colour_codes).view(b, 3, 1, 1)
            # A round hole (the data's circles carry one), which may shrink to nothing.
            hole_centre = self.HOLE_MAX_OFFSET * torch.tanh(rest[:, -3:-1])
            hole_radius = self.HOLE_MAX_RADIUS * torch.sigmoid(rest[:, -1:])
            hole_distance = (self.sprite_xy - hole_centre.unsqueeze(1)).norm(dim=-1)
            hole = ((hole_radius - hole_distance) * edge_pixels + 0.5).clamp(0, 1)
            # ... fading out below half a frame pixel of radius, so it can vanish altogether
            hole = hole * (2 * hole_radius * edge_pixels).clamp(max=1)
            alpha = (alpha * (1 - hole)).view(b, 1, self.sprite_pixels, self.sprite_pixels)
            return torch.cat([colour * alpha, alpha], dim=1)
        assert self.fc is not None and self.up is not None
        sprite = self.up(self.fc(drawing_input).view(b, self.top, 4, 4))
        alpha = torch.sigmoid(sprite[:, -1:]) * self.window
        if self.colour is not None:
            colour = torch.tanh(self.colour(z)).view(b, 3, 1, 1)
        else:
            colour = torch.tanh(sprite[:, :3])
        return torch.cat([colour * alpha, alpha], dim=1)

    def without_code(self, z: torch.Tensor) -> torch.Tensor:
        """z with its first coordinate set to 0 when it carries a shape code (which then
        reaches the sprite only one-hot, so nothing varies with it within an interval)."""
        if not self.shape_code:
            return z
        return torch.cat([torch.zeros_like(z[:, :1]), z[:, 1:]], dim=1)

    def forward(self, latents: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """latents (B, T, D), z (B, D) → frames (B, T, 3, H, W)."""
        b, t = latents.shape[:2]
        size = self.size
        fine = size * self.supersample
        layer = self.draw_sprite(z)
        z = self.without_code(z)
        background = self.background(z).view(b, 3, 4, 4)
        background = torch.tanh(
            F.interpolate(background, size=(size, size), mode="bilinear", align_corners=False)
        )
        pose = self.pose(torch.cat([latents, z.unsqueeze(1).expand(b, t, -1)], dim=2))
        centre = torch.tanh(self.shift_gain * pose[..., :2]).reshape(b * t, 2, 1)
        angle = self.radians_per_angle_code * pose[..., 2].reshape(b * t)
        # Sampling coordinates: input = s·R·(output − centre), so the sprite's middle lands on
        # the centre and the sprite spans 1/s of the frame's width (s in [1, 4], 2 at 0).
        scale = 2.0 * torch.exp(math.log(2.0) * torch.tanh(pose[..., 3])).reshape(b * t)
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        linear = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
        theta = torch.cat([linear, -linear @ centre], dim=2)
        grid = (self.pixels @ theta.transpose(1, 2)).view(b * t, fine, fine, 2)
        per_frame = layer.unsqueeze(1).expand(b, t, -1, -1, -1).reshape(b * t, *layer.shape[1:])
        placed = F.grid_sample(per_frame, grid, mode="bilinear", align_corners=False)
        if self.supersample > 1:
            placed = F.avg_pool2d(placed, self.supersample)
        placed = placed.view(b, t, 4, size, size)
        return placed[:, :, :3] + (1 - placed[:, :, 3:]) * background.unsqueeze(1)


def pixel_differences(images: torch.Tensor) -> torch.Tensor:
    """Images (B, C, [T,] H, W) → (B, 2C, [T,] H, W): each channel's difference to the pixel
    on its right, then to the pixel below (0 past the last column and row)."""
    right = F.pad(images[..., :, 1:] - images[..., :, :-1], (0, 1))
    below = F.pad(images[..., 1:, :] - images[..., :-1, :], (0, 0, 0, 1))
    return torch.cat([right, below], dim=1)


class Critic(nn.Module):
    """The 3-D convolutional critic: Conv3d k4 s2 p1 layers (BN after all but the first, LeakyReLU
    0.2; with ``critic_downsample = "maxpool"`` each is a k3 s1 p1 convolution followed by a
    2×2×2 max-pool) down to 4×4 pixels, then one convolution over the remaining extent to a
    score. At 16×64×64 that is 3→64→128→256→512, 512×1×4×4, and a 4×4 kernel (the paper's
    Conv2d(512, 1, 4)). Works for any batch size. ``frames = 0`` makes it the 2-D frame
    critic: the same layers as Conv2d on single frames (B, 3, H, W). ``minibatch_std`` feeds
    the score one more channel: the batch's standard deviation of the last features, one
    number per batch. ``code_values`` adds a linear head from the last features (flattened)
    to that many logits: InfoGAN's Q, which :meth:`forward` returns with ``with_code``.
    ``critic_max_score`` adds to the score a linear function (no bias) of each last feature
    channel's maximum over the remaining positions. ``critic_edges = k`` feeds the first layer
    :func:`pixel_differences` × k beside the colours (9 input channels instead of 3)."""

    def __init__(self, config: TGANConfig, frames: int | None = None, code_values: int = 0) -> None:
        super().__init__()
        frames = config.frames if frames is None else frames
        conv: type[nn.Module] = nn.Conv3d if frames else nn.Conv2d
        norm: type[nn.Module] = nn.BatchNorm3d if frames else nn.BatchNorm2d
        layers: list[nn.Module] = []
        self.edge_gain = config.critic_edges
        c_in, c = (9 if self.edge_gain else 3), config.d_channels
        n = int(math.log2(config.size // 4))
        spectral = config.critic_norm == "spectral"
        batchnorm = config.critic_norm == "batchnorm"
        pooled = config.critic_downsample == "maxpool"
        pool: type[nn.Module] = nn.MaxPool3d if frames else nn.MaxPool2d
        kernel, stride = (3, 1) if pooled else (4, 2)
        for i in range(n):
            bias = i == 0 or config.critic_bias or not batchnorm
            layers.append(conv(c_in, c, kernel, stride, 1, bias=bias))
            if i > 0 and batchnorm:
                layers.append(norm(c))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            if pooled:
                layers.append(pool(2))
            c_in, c = c, c * 2
        self.features = nn.Sequential(*layers)
        self.minibatch_std = config.minibatch_std
        extra = 1 if self.minibatch_std else 0
        self.score = conv(c_in + extra, 1, (frames // 2**n, 4, 4) if frames else 4)
        self.max_score = nn.Linear(c_in, 1, bias=False) if config.critic_max_score else None
        extent = (frames // 2**n if frames else 1) * 16
        self.code_head = nn.Linear(c_in * extent, code_values) if code_values else None
        if config.init == "published":
            for layer in self.modules():
                if isinstance(layer, (nn.Conv2d, nn.Conv3d)):
                    nn.init.xavier_normal_(layer.weight, gain=math.sqrt(2))
        if spectral:
            for layer in [*self.features, self.score, self.max_score]:
                if isinstance(layer, (nn.Conv2d, nn.Conv3d, nn.Linear)):
                    nn.utils.parametrizations.spectral_norm(layer)

    def last_features(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, 3, T, H, W) (or frames) → the features the score reads: (B, C, T', 4, 4)
        (or (B, C, 4, 4)), with the pixel differences beside the colours if ``critic_edges``."""
        if self.edge_gain:
            video = torch.cat([video, self.edge_gain * pixel_differences(video)], dim=1)
        return self.features(video)

    def forward(
        self, video: torch.Tensor, with_code: bool = False, with_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """video (B, 3, T, H, W) (or frames (B, 3, H, W)) → scores (B,), and with
        ``with_code`` also the code head's logits (B, code_values); with ``with_features``
        the triple (scores, logits or None, :meth:`last_features`)."""
        last = features = self.last_features(video)
        logits = None
        if with_code:
            if self.code_head is None:
                raise ValueError("this critic has no code head (code_values = 0)")
            logits = self.code_head(features.flatten(1))
        peak_score = None
        if self.max_score is not None:
            peak_score = self.max_score(features.flatten(2).amax(2)).flatten()
        if self.minibatch_std:
            spread = features.std(dim=0, correction=0).mean()
            features = torch.cat([features, spread.expand_as(features[:, :1])], dim=1)
        scores = self.score(features).flatten()
        if peak_score is not None:
            scores = scores + peak_score
        if with_features:
            return scores, logits, last
        return scores if logits is None else (scores, logits)


class FrameEncoder(nn.Module):
    """A frame encoder for the feature critic: 3×3 convolutions (32, 64, 64, … channels), each
    followed by LeakyReLU 0.2 and a 2×2 max-pool, down to 4×4: (B, 3, H, W) → (B, 64, 4, 4).
    Max-pooled small kernels keep small shapes' outlines, which strided 4×4 layers blur."""

    CHANNELS = 64

    def __init__(self, size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i in range(int(math.log2(size // 4))):
            c = 32 if i == 0 else self.CHANNELS
            layers += [nn.Conv2d(c_in, c, 3, 1, 1), nn.LeakyReLU(0.2), nn.MaxPool2d(2)]
            c_in = c
        self.layers = nn.Sequential(*layers)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, 3, H, W) → features (B, 64, 4, 4)."""
        return self.layers(frames)


def contrastive_loss(
    encoder: FrameEncoder,
    frames: torch.Tensor,
    rng: torch.Generator,
    temperature: float = 0.2,
    fakes: torch.Tensor | None = None,
) -> torch.Tensor:
    """SimCLR's loss for ``frames`` (B, 3, H, W): each frame is seen twice, each time shifted
    (``critic_augment``'s translation) and with its colour channels in a random order; the
    encoder's features (their maximum over the frame, normalised) of the two views of a frame
    must be more alike than those of any other pair. With ``fakes`` (F, 3, H, W), ContraD's
    second term is added: each view of a fake must be more alike to every other fake's view
    than to any real frame's (supervised contrast with the fakes as one class)."""
    b = frames.shape[0]
    both = frames if fakes is None else torch.cat([frames, fakes])
    n = both.shape[0]

    def view() -> torch.Tensor:
        shifted = augment_videos(both.unsqueeze(2), "translation", rng).squeeze(2)
        order = torch.argsort(torch.rand(n, 3, generator=rng), dim=1).to(both.device)
        swapped = torch.gather(shifted, 1, order[:, :, None, None].expand_as(shifted))
        return contrastive_embedding(encoder(swapped))

    first, second = view(), view()
    similarity = first[:b] @ second[:b].T / temperature
    loss = F.cross_entropy(similarity, torch.arange(b, device=frames.device))
    if fakes is None:
        return loss
    views = torch.cat([first, second])
    is_fake = torch.arange(n, device=both.device).repeat(2) >= b
    anchors = views[is_fake]
    logits = anchors @ views.T / temperature
    itself = torch.nonzero(is_fake).flatten()
    rows = torch.arange(anchors.shape[0], device=both.device)
    logits[rows, itself] = float("-inf")
    log_p = logits.log_softmax(dim=1)
    positive = is_fake.expand_as(logits).clone()
    positive[rows, itself] = False
    supervised = -(log_p.masked_fill(~positive, 0).sum(1) / positive.sum(1)).mean()
    return loss + supervised


def contrastive_embedding(features: torch.Tensor) -> torch.Tensor:
    """Encoder features (B, C, h, w) → the space :func:`contrastive_loss` shapes: each
    channel's maximum over the frame, normalised to unit length (B, C)."""
    return F.normalize(features.amax((2, 3)), dim=1)


MMD_BANDWIDTHS = (0.25, 1.0, 4.0)
""":func:`mmd_squared`'s Gaussian kernels, as multiples of the median squared distance."""


def mmd_squared(
    x: torch.Tensor, y: torch.Tensor, bandwidths: tuple[float, ...] = MMD_BANDWIDTHS
) -> torch.Tensor:
    """The unbiased estimate of the squared maximum mean discrepancy between the samples ``x``
    (N, D) and ``y`` (M, D), N, M ≥ 2: mean k(x, x') + mean k(y, y') − 2 mean k(x, y) over
    distinct pairs, with k the average of Gaussian kernels exp(−d² / (2 b m)) for each b in
    ``bandwidths`` and m the median squared distance between distinct points of both samples
    (taken as a constant: the median heuristic)."""
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"mmd_squared needs at least 2 points in each sample, got {n} and {m}")
    both = torch.cat([x, y])
    squared = torch.cdist(both, both).square()
    distinct = ~torch.eye(n + m, dtype=torch.bool, device=both.device)
    median = squared.detach()[distinct].median().clamp(min=1e-12)
    kernel = sum(torch.exp(-squared / (2 * b * median)) for b in bandwidths) / len(bandwidths)
    kernel = kernel.masked_fill(~distinct, 0.0)
    within_x = kernel[:n, :n].sum() / (n * (n - 1))
    within_y = kernel[n:, n:].sum() / (m * (m - 1))
    return within_x + within_y - 2 * kernel[:n, n:].mean()


def _one_frame_of_each(videos: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """videos (B, 3, T, H, W) → one random frame of each (B, 3, H, W)."""
    b, _, t = videos.shape[:3]
    chosen = torch.randint(0, t, (b,), generator=rng).to(videos.device)
    return videos[torch.arange(b, device=videos.device), :, chosen]


class FeatureCritic(nn.Module):
    """The feature critic's head: per frame, (B, 64, 4, 4) encoder features (standardised by
    the real frames' per-channel mean and deviation) → Conv2d 3×3 (64) → LeakyReLU 0.2 →
    Conv2d 4×4 → one score (B,). Singular value clipping keeps it 1-Lipschitz like the other
    critics, so without the standardisation its score would hardly move: the contrastive loss
    reads only the features' directions, and their scale drifts to ~0.02."""

    def __init__(self) -> None:
        super().__init__()
        c = FrameEncoder.CHANNELS
        self.layers = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(c, 1, 4))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, 64, 4, 4) → scores (B,)."""
        return self.layers(features).flatten()


IMAGE_GENERATORS: dict[str, type[nd.ImageGenerator]] = {
    "convolutional": ImageGenerator,
    "sprite": SpriteImageGenerator,
}


class _Scored(NamedTuple):
    """What :meth:`TGAN._score` returns for one batch of videos."""

    scores: list[torch.Tensor]
    code_loss: torch.Tensor | None
    embedded: torch.Tensor | None
    video_features: torch.Tensor


class TGAN(nd.VideoGAN):
    """TGAN's networks and its WGAN + singular value clipping training step."""

    REAL_FRAMES = 512
    """The feature critic's encoder learns from the last this many real frames (one per video)."""
    ENCODER_BATCH = 64
    """Frames of each of the encoder's contrastive steps (each the others' negatives)."""

    def __init__(self, config: TGANConfig, temporal: nd.TemporalGenerator) -> None:
        super().__init__()
        self.config = config
        self.generator = nd.VideoGenerator(
            temporal,
            IMAGE_GENERATORS[config.image_generator](config),
            (config.latent_dim,),
            "uniform",
        )
        critics = {"video": Critic(config, code_values=config.shape_code)}
        if config.frame_critic:
            critics["frame"] = Critic(config, frames=0)
        if config.feature_critic:
            critics["features"] = FeatureCritic()
        self.discriminators = nn.ModuleDict(critics)
        if config.feature_critic:  # the encoder learns apart from the critics' optimiser
            self.frame_encoder = FrameEncoder(config.size).requires_grad_(False)
            frames = torch.zeros(self.REAL_FRAMES, 3, config.size, config.size)
            self.register_buffer("real_frames", frames)
            self.register_buffer("real_frames_seen", torch.zeros((), dtype=torch.long))
            channels = (FrameEncoder.CHANNELS, 1, 1)
            self.register_buffer("feature_mean", torch.zeros(channels))
            self.register_buffer("feature_std", torch.ones(channels))

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """RMSprop (the paper) or Adam for the generator and the critic."""
        c = self.config

        def make(params: Any, lr: float) -> torch.optim.Optimizer:
            if c.optimizer == "adam":
                return torch.optim.Adam(params, lr=lr, betas=(c.beta1, c.beta2))
            return torch.optim.RMSprop(params, lr=lr)

        optimizers = {
            "generator": make(self.generator.parameters(), c.lr),
            "discriminator": make(self.discriminators.parameters(), c.d_lr or c.lr),
        }
        if c.feature_critic:
            optimizers["encoder"] = torch.optim.Adam(self.frame_encoder.parameters(), lr=1e-3)
        return optimizers

    def training_step(
        self,
        real: torch.Tensor,
        step: int,
        optimizers: dict[str, torch.optim.Optimizer],
        rng: torch.Generator,
    ) -> dict[str, float]:
        """With a feature critic, first (during ``feature_encoder_steps``) the frame encoder's
        own step. One critic step, one generator step (fresh fakes, as the paper's code, or the
        critic step's; every critic input augmented by ``critic_augment``, with fresh draws each
        time), then (every ``clip_every`` iterations, from iteration 0 on, as the paper's
        code) singular value clipping of the critics."""
        g = self.generator
        b = real.shape[0]
        c = self.config
        reuse = c.generator_fakes == "reuse"
        z = g.sample_z(b, rng, real.device)
        with torch.set_grad_enabled(reuse):
            fake = g(z, generator=rng)
        if c.r1:
            real = real.detach().requires_grad_(True)
        frame_picks = feature_picks = None
        if c.frame_critic:
            frame_picks = torch.randperm(real.shape[2], generator=rng)[: c.frame_critic]
        figures = {}
        if c.feature_critic:
            if step < c.feature_encoder_steps:
                fakes = fake.detach() if c.feature_encoder_fakes else None
                learns = step % c.feature_encoder_every == 0
                loss = self._encoder_step(real.detach(), optimizers["encoder"], rng, fakes, learns)
                if learns:
                    figures["encoder"] = loss
            feature_picks = torch.randperm(real.shape[2], generator=rng)[: c.feature_critic]
        picks = (frame_picks, feature_picks)
        augment = c.critic_augment
        scores_real = self._score(augment_videos(real, augment, rng), picks).scores
        scores_fake, code_loss, _, _ = self._score(
            augment_videos(fake.detach(), augment, rng), picks, z
        )
        loss_d = sum(
            (self._critic_loss(r, f) for r, f in zip(scores_real, scores_fake, strict=True)),
            start=torch.zeros((), device=real.device),
        )
        if code_loss is not None:
            figures["code_d"] = code_loss.item()
            loss_d = loss_d + c.shape_code_weight * code_loss
        if c.r1:
            for scores in scores_real:
                loss_d = loss_d + r1_penalty([scores], [real], c.r1, "mean")
        optimizers["discriminator"].zero_grad(set_to_none=True)
        loss_d.backward()
        optimizers["discriminator"].step()

        self.discriminators.requires_grad_(False)
        try:
            if not reuse:
                z = g.sample_z(b, rng, real.device)
                fake = g(z, generator=rng)
            scores_fake_g, code_loss, embedded, video_features = self._score(
                augment_videos(fake, augment, rng), picks, z
            )
            loss_g = sum(
                (self._generator_loss(scores) for scores in scores_fake_g),
                start=torch.zeros((), device=real.device),
            )
            if c.feature_mmd and embedded is not None:
                kept_real = self._kept_real_embeddings(rng)
                if kept_real is not None:
                    mmd = mmd_squared(embedded, kept_real)
                    figures["mmd"] = mmd.item()
                    loss_g = loss_g + c.feature_mmd * mmd
            if c.video_mmd:
                with torch.no_grad():
                    real_features = self.discriminators["video"](
                        augment_videos(real, augment, rng), with_features=True
                    )[2]
                mmd = mmd_squared(video_features.flatten(1), real_features.flatten(1))
                figures["video_mmd"] = mmd.item()
                loss_g = loss_g + c.video_mmd * mmd
            if code_loss is not None:
                figures["code_g"] = code_loss.item()
                loss_g = loss_g + c.shape_code_weight * code_loss
            optimizers["generator"].zero_grad(set_to_none=True)
            loss_g.backward()
            optimizers["generator"].step()
        finally:
            self.discriminators.requires_grad_(True)
        if c.clip_every and step % c.clip_every == 0:
            floor = 0.01 if c.gamma_clip == "published" else None
            singular_value_clip(self.discriminators, gamma_floor=floor)
        return {
            "loss_d": loss_d.item(),
            "loss_g": loss_g.item(),
            "d_real": scores_real[0].mean().item(),
            "d_fake": scores_fake[0].mean().item(),
            **figures,
        }

    def _encoder_step(
        self,
        real: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        rng: torch.Generator,
        fake: torch.Tensor | None = None,
        learns: bool = True,
    ) -> float:
        """Keep one random frame of each real video among the last :attr:`REAL_FRAMES`, and
        once :attr:`ENCODER_BATCH` are kept, take one contrastive step of the frame encoder on
        that many of them (drawn from many videos: frames of one video are too alike to be told
        apart by their shape) and measure the features' per-channel mean and deviation on
        those frames. With ``fake`` videos, one random frame of each joins the step as
        :func:`contrastive_loss`'s fakes. With ``learns`` false, only keep the frame."""
        b = real.shape[0]
        slots = (self.real_frames_seen + torch.arange(b, device=real.device)) % self.REAL_FRAMES
        self.real_frames[slots] = _one_frame_of_each(real, rng)
        self.real_frames_seen += b
        frames = self._draw_kept_real_frames(rng) if learns else None
        if frames is None:
            return float("nan")
        self.frame_encoder.requires_grad_(True)
        try:
            fakes = None if fake is None else _one_frame_of_each(fake, rng)
            loss = contrastive_loss(self.frame_encoder, frames, rng, fakes=fakes)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        finally:
            self.frame_encoder.requires_grad_(False)
        with torch.no_grad():
            features = self.frame_encoder(frames)
            std = features.std(dim=(0, 2, 3))
            self.feature_mean.copy_(features.mean(dim=(0, 2, 3)).view_as(self.feature_mean))
            self.feature_std.copy_(std.clamp(min=0.1 * std.mean()).view_as(self.feature_std))
        return loss.item()

    def _score(
        self,
        video: torch.Tensor,
        picks: tuple[torch.Tensor | None, torch.Tensor | None],
        z: torch.Tensor | None = None,
    ) -> _Scored:
        """Scores of every critic: the video critic's, then the frame critic's of the
        first ``picks`` frames of each video, then the feature critic's of the second's; with
        a shape code and the fakes' latents ``z``, the code head's cross-entropy against
        their codes; the feature critic's frames' :func:`contrastive_embedding`; and the
        video critic's last features."""
        frame_picks, feature_picks = picks
        code_loss = embedded = None
        with_code = bool(self.config.shape_code and z is not None)
        video_scores, logits, video_features = self.discriminators["video"](
            video, with_code=with_code, with_features=True
        )
        if with_code:
            code_loss = F.cross_entropy(logits, shape_code_of(z, self.config.shape_code))
        scores = [video_scores]
        if frame_picks is not None:
            frames = video[:, :, frame_picks.to(video.device)].transpose(1, 2)
            scores.append(self.discriminators["frame"](frames.flatten(0, 1)))
        if feature_picks is not None:
            frames = video[:, :, feature_picks.to(video.device)].transpose(1, 2)
            features = self.frame_encoder(frames.flatten(0, 1))
            embedded = contrastive_embedding(features)
            features = (features - self.feature_mean) / self.feature_std
            scores.append(self.discriminators["features"](features))
        return _Scored(scores, code_loss, embedded, video_features)

    def _draw_kept_real_frames(self, rng: torch.Generator) -> torch.Tensor | None:
        """:attr:`ENCODER_BATCH` random frames of those kept, or None while fewer are kept."""
        kept = int(min(self.real_frames_seen.item(), self.REAL_FRAMES))
        if kept < self.ENCODER_BATCH:
            return None
        drawn = torch.randperm(kept, generator=rng)[: self.ENCODER_BATCH]
        return self.real_frames[drawn.to(self.real_frames.device)]

    def _kept_real_embeddings(self, rng: torch.Generator) -> torch.Tensor | None:
        """:meth:`_draw_kept_real_frames`' :func:`contrastive_embedding` (constants), or None."""
        frames = self._draw_kept_real_frames(rng)
        if frames is None:
            return None
        with torch.no_grad():
            return contrastive_embedding(self.frame_encoder(frames))

    def _critic_loss(self, scores_real: torch.Tensor, scores_fake: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "hinge":
            return F.relu(1 - scores_real).mean() + F.relu(1 + scores_fake).mean()
        if self.config.loss == "nonsaturating":
            return F.softplus(-scores_real).mean() + F.softplus(scores_fake).mean()
        return wgan_discriminator_loss(scores_real.mean(), scores_fake.mean())

    def _generator_loss(self, scores: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "nonsaturating":
            return F.softplus(-scores).mean()
        return wgan_generator_loss(scores)


class TGANBackbone(nd.Backbone):
    """The TGAN backbone as the core sees it: specs, and the GAN around a temporal G."""

    default_temporal = "temporal.conv1d"

    def temporal_spec(self) -> nd.TemporalSpec:
        """Vector latents of ``latent_dim`` from z of the same size; the paper's time grid."""
        shape = (self.config.latent_dim,)
        spec = nd.TemporalSpec(shape, shape, self.config.frames)
        original = Conv1dTemporalConfig(bias=self.config.preset == "paper")  # as resolved
        return spec.with_reference(lambda s: Conv1dTemporal(original, s))

    def build(self, temporal: nd.TemporalGenerator) -> TGAN:
        """TGAN with ``temporal`` as its temporal generator."""
        return TGAN(self.config, temporal)

    def published_temporal_options(
        self, options: Mapping[str, Any], explicit: frozenset[str]
    ) -> dict[str, Any]:
        """At the ``paper`` preset, the paper's TGAN dynamics (its ``linear=True`` models):
        the pre-ODE MLP 100→512→512→512→100 with LeakyReLU(0.2) after every layer, xavier
        (gain √2) weights for the MLP, f and the encoders, tanh, the chain form for orders 2
        and 3, the adjoint, SDE step 2.5e-2, and the authors' hidden width 978 for the
        first-order ``matched`` f."""
        if self.config.preset != "paper":
            return {}
        if "pre_mlp" not in options:  # the original G0 of the paper's code
            return {"bias": True, "init": "xavier_uniform"} if "channels" in options else {}
        out: dict[str, Any] = {
            "pre_mlp": (512, 512, 512),
            "pre_mlp_final_activation": True,
            "pre_mlp_init": "xavier_uniform",
            "init": "xavier_uniform",
            "encoder_init": "xavier_uniform",
            "activation": "tanh",
            "form": "chain",
        }
        first_order_matched = options.get("design") == "matched" and options.get("order") == 1
        if first_order_matched and "pre_mlp" not in explicit:  # the "EQ" width, with the MLP
            out["hidden"] = 978
        if options.get("backend") in ("torchdiffeq", "torchsde"):
            out["adjoint"] = True
        if options.get("backend") == "torchsde":
            out["dt"] = 2.5e-2
        return out


@nd.hookimpl
def register_components(register: Any) -> None:
    """Register ``backbone.tgan`` and ``temporal.conv1d``."""
    register("backbone.tgan", TGANBackbone, TGANConfig)
    register("temporal.conv1d", build_conv1d, Conv1dTemporalConfig)
