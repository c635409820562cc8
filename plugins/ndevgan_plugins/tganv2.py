"""TGANv2 (Saito, Saito, Koyama & Kobayashi, IJCV 2020) as ndevgan's ``backbone.tganv2``.

Also registers TGANv2's original temporal generator as ``temporal.clstm``. "Train sparsely,
generate densely": z ~ U(-1, 1)^256 → Linear → a 1024×3×3 map; a one-layer ConvLSTM unrolls
it into 16 frame latents (feature maps, not vectors); an image generator of residual up blocks
renders them at four levels (24, 48, 96, 192 px). Training renders level 0 with all 16 frames
and keeps 1 frame in f between levels, so the expensive high levels see only a few frames;
each level has its own 3-D ResNet discriminator. Test time renders all 16 frames at the top
level. Non-saturating softplus loss, R1 on real data (λ = 0.5), Adam 1e-4 β = (0, 0.9), the
learning rate decayed linearly to 0 over 100k iterations.

The ``paper`` preset is the paper's code (LNDE's TGANv2, which trained the published
TGANv2-ODE); where it differs from tgan2's Chainer release the release's choice is an option
(docs/FIDELITY.md has every row):

- **ConvLSTM**: gates i, f, o, g from one 3×3 convolution of concat(input, h) (both codes have
  an input convolution with bias and a hidden one without: the same parameters, initialised
  here as those two); h and c start at 0; the input is fc(z) at the first step and zeros after;
  the frame latents are the hidden states h_1 … h_16. No peepholes.
- **Frame subsampling** (``frame_subsample``): between level k and k+1 each video keeps every
  f-th frame from a random offset below min(f, frames): the paper's code f = 4 (16→4→1→1),
  tgan2's release f = 2 (16→8→4→2). Reals get the same rule with independent offsets, then
  are area-downsampled to the level's size (the codes draw one offset per batch; per video is
  the same marginal law per video). Optional *adaptive batch reduction* (``batch_reduction``,
  from the TGANv2 paper; off in both codes) keeps every 2nd video between levels as well.
- **Discriminator** (one per level, the same architecture for every input size): a first block
  conv3³ (3→64) → ReLU → conv3³ (64→64) → 2× average pool in space only, shortcut 2× pool → 1³
  conv; then four blocks 64→128→256→512→1024, each ReLU → conv3³ (c_in→c_in) → ReLU → conv3³
  (c_in→c_out) → average pool, shortcut 1³ conv → average pool. Pooling halves every axis (time
  included, space only in the first block) whose extent is still > 1, an odd extent zero-padded
  by one on both sides first (both codes); then sum pooling over the remaining positions
  (tgan2: a ReLU first, ``d_final_relu``) and Linear(1024→1). Every conv has a bias.
- **Loss**: D minimises mean softplus(−D(real)) + mean softplus(D(fake)) over the scores of
  all levels taken together, G minimises mean softplus(−D(fake)) likewise. R1: λ · Σ_levels
  Σ_videos ‖∇_x D(x)‖² on real videos — summed over the batch, not averaged (``r1_reduction =
  "sum"``; "mean" gives λ · E‖∇‖²). With ``r1_every = N`` > 1 the penalty is applied every
  N-th step, multiplied by N (lazy regularisation).
- **Updates** (``update``): the paper's code takes a D step on fakes drawn without gradients,
  then a G step on fresh fakes scored by the updated D (``alternating``); tgan2 takes both
  from one forward pass (``simultaneous``).
- **Learning rate**: lr · max(0, 1 − step / decay_iterations), set on every parameter group at
  each step from ``step`` alone (no scheduler state; resume is exact).
- **Initialisation** (``init``): block convolutions Glorot-uniform with gain √2, shortcuts and
  D's linear gain 1; the paper's code leaves biases, fc, ConvLSTM and render heads at torch's
  default (``published``), tgan2 zeroes the biases and uses LeCun-normal for the others
  (``chainer``; the ConvLSTM's own option ``temporal.clstm.init``).
- **Batch**: ``paper`` uses 32 videos per step, as the paper's code (tgan2's UCF101 run: 4
  processes of 32).

Presets. ``paper``: 192×192, base map 3×3, four levels (24/48/96/192 px, 16/4/1/1 frames).
Level k renders at ``base_size · 2^(3+k)``, so 64 and 128 px keep the networks and change the
base map and the number of levels: ``128px`` is a 4×4 base map and three levels (32/64/128 px,
16/8/4 frames), ``64px`` a 4×4 base and two levels (32/64 px, 16/8 frames) — every level still
at least 8× the latent map, the first rendered by the same three up blocks. ``tiny`` (CPU
tests and demos): 48×48 from a 32×3×3 map, two levels (24/48 px), narrow networks
(image G 32→16→8→4 channels, discriminators 4…64), batch 4 with batch reduction.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import torch
import torch.nn.functional as F
from torch import nn

import ndevgan_core as nd
from ndevgan_core import ConfigError, non_negative, one_of, option, positive, r1_penalty

# ------------------------------------------------------------------------------------------
# temporal.clstm — TGANv2's ConvLSTM temporal generator


def _odd(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < 1 or value % 2 == 0:
        raise ConfigError(f"{attribute.name}: expected an odd number >= 1, got {value!r}")


def _lecun_normal(weight: torch.Tensor, fan_in: int) -> None:
    """Chainer's default initialiser: N(0, 1 / fan_in)."""
    nn.init.normal_(weight, 0.0, 1.0 / math.sqrt(fan_in))


@attrs.frozen
class ConvLSTMTemporalConfig:
    """Options of TGANv2's ConvLSTM temporal generator (the paper: one layer, 3×3 kernels)."""

    layers: int = option(1, "stacked ConvLSTM layers (the paper: 1)", positive)
    kernel_size: int = option(3, "kernel of the gate convolutions (odd)", _odd)
    init: str = option(
        "lecun_normal",
        "weights of fc and the gates: lecun_normal with zero biases (tgan2's Chainer release) "
        "or torch_default (torch's default for its two convolutions, input and hidden, as the "
        "paper's code; TGANv2's paper preset sets it)",
        one_of("lecun_normal", "torch_default"),
    )


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step: gates (i, f, o, g) = conv(concat(x, h)); c' = σ(f)·c + σ(i)·tanh(g);
    h' = σ(o)·tanh(c'). No peepholes."""

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 3,
        init: str = "lecun_normal",
    ) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(
            in_channels + hidden_channels,
            4 * hidden_channels,
            kernel_size,
            padding=kernel_size // 2,
        )
        # As two convolutions, input (with the bias) and hidden (without), each initialised for
        # its own fan-in: LeCun-normal and a zero bias (Chainer), or torch's default
        # U(±1/√fan_in) for weights and bias (the paper's code).
        k2 = kernel_size * kernel_size
        with torch.no_grad():
            for part, fan_in in (
                (self.gates.weight[:, :in_channels], in_channels * k2),
                (self.gates.weight[:, in_channels:], hidden_channels * k2),
            ):
                if init == "lecun_normal":
                    _lecun_normal(part, fan_in)
                else:
                    part.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
            if init == "lecun_normal":
                self.gates.bias.zero_()
            else:
                bound = 1 / math.sqrt(in_channels * k2)
                self.gates.bias.uniform_(-bound, bound)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: input (B, C_in, H, W), state (h, c) → the new (h, c)."""
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTMTemporal(nd.TemporalGenerator):
    """TGANv2's temporal generator: fc(z) → a C×H×W map → ConvLSTM unrolled for T steps.

    The input is fc(z) at the first step and zeros afterwards; h and c start at zero; frame k's
    latent is the hidden state after step k+1 (h_1 … h_T). With several layers each feeds its
    hidden state to the next and the last layer's states are the latents. Discrete time:
    exactly ``spec.frames`` frames on the training grid.
    """

    continuous = False

    def __init__(
        self, config: ConvLSTMTemporalConfig, spec: nd.TemporalSpec, name: str = "temporal.clstm"
    ) -> None:
        super().__init__(spec, name)
        if len(spec.latent_shape) != 3:
            raise ConfigError(
                f"{name} works on feature-map latents (C, H, W); this backbone asks for "
                f"{spec.latent_shape}"
            )
        channels = spec.latent_shape[0]
        n_in = math.prod(spec.input_shape)
        self.fc = nn.Linear(n_in, math.prod(spec.latent_shape))
        if config.init == "lecun_normal":
            with torch.no_grad():
                _lecun_normal(self.fc.weight, n_in)
                self.fc.bias.zero_()
        self.cells = nn.ModuleList(
            ConvLSTMCell(channels, channels, config.kernel_size, config.init)
            for _ in range(config.layers)
        )

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) → (B, T, C, H, W) at the training grid."""
        self.check_times(t)
        b = z.shape[0]
        x0 = self.fc(z.reshape(b, -1)).view(b, *self.spec.latent_shape)
        zeros = torch.zeros_like(x0)
        states = [(zeros, zeros) for _ in self.cells]
        hidden = []
        for step in range(self.spec.frames):
            x = x0 if step == 0 else zeros
            for i, cell in enumerate(self.cells):
                states[i] = cell(x, states[i])
                x = states[i][0]
            hidden.append(x)
        return torch.stack(hidden, dim=1)


def build_clstm(config: ConvLSTMTemporalConfig, spec: nd.TemporalSpec) -> ConvLSTMTemporal:
    """Factory of ``temporal.clstm``."""
    return ConvLSTMTemporal(config, spec)


# ------------------------------------------------------------------------------------------
# backbone.tganv2 — configuration


def _factors(instance: Any, attribute: attrs.Attribute, value: tuple[int, ...]) -> None:
    if any(not isinstance(f, int) or f < 1 for f in value):
        raise ConfigError(f"{attribute.name}: expected a list of integers >= 1, got {list(value)}")


@attrs.frozen
class TGANv2Config:
    """Options of the TGANv2 backbone (defaults: the paper at 192×192; presets for 128, 64, CPU).

    The generator renders level k (of ``levels``) at ``base_size · 2^(3 + k)`` pixels: three up
    blocks take the ``base_size`` map to the first level, one sub-block per further level.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        # The same networks with a 4×4 base map and fewer levels: 32/64/128 px, 16→8→4 frames.
        "128px": {"size": 128, "base_size": 4, "levels": 3, "frame_subsample": (2, 2)},
        # 32/64 px, 16→8 frames.
        "64px": {"size": 64, "base_size": 4, "levels": 2, "frame_subsample": (2,)},
        # A CPU-sized TGANv2 with every mechanism: 2 levels (24 and 48 px), narrow networks,
        # adaptive batch reduction (the 48 px level sees 8 frames of 2 videos).
        "tiny": {
            "size": 48,
            "levels": 2,
            "frame_subsample": (2,),
            "batch_reduction": True,
            "z_dim": 32,
            "clstm_channels": 32,
            "g_channels": 2,
            "d_channels": 4,
            "batch_size": 4,
            "lr": 2e-4,
        },
    }

    preset: str = option(
        "paper",
        "paper (192×192, 4 levels, batch 32; also gives the temporal plugin the authors' values "
        "of its unset options), 128px (3 levels), 64px (2 levels) or tiny (48×48, 2 levels, "
        "narrow, batch 4 with batch reduction); the others keep the plugin's own defaults",
        one_of("paper", "128px", "64px", "tiny"),
    )
    size: int = option(192, "frame height and width at the top level, in pixels", positive)
    frames: int = option(16, "frames per video (test-time rendering and level 0)", positive)
    z_dim: int = option(256, "size of z ~ U(-1, 1)", positive)
    base_size: int = option(3, "height and width of the latent feature maps", positive)
    clstm_channels: int = option(1024, "channels of the latent feature maps", positive)
    g_channels: int = option(
        32, "image G width ch: up blocks to 16ch, 8ch, 4ch, then sub-blocks 2ch, ch, ch", positive
    )
    d_channels: int = option(
        64, "discriminator width: blocks of c, 2c, 4c, 8c, 16c channels", positive
    )
    levels: int = option(4, "render levels (each doubles the size)", positive)
    frame_subsample: tuple[int, ...] = option(
        (4, 4, 4),
        "training: keep every f-th frame between consecutive levels, from a random offset "
        "below min(f, frames): [4, 4, 4] the paper's code (16→4→1→1 frames), [2, 2, 2] tgan2's "
        "release (16→8→4→2)",
        _factors,
    )
    batch_reduction: bool = option(
        False,
        "training: also keep every 2nd video between levels (adaptive batch reduction; off in "
        "the release's UCF101 run)",
    )
    batch_size: int = option(32, "videos per batch", positive)
    lr: float = option(1e-4, "Adam learning rate of G and the discriminators", positive)
    beta1: float = option(0.0, "Adam beta1", non_negative)
    beta2: float = option(0.9, "Adam beta2", non_negative)
    decay_iterations: int = option(
        100_000,
        "learning rate decays linearly to 0 over this many iterations (0: constant)",
        non_negative,
    )
    r1_weight: float = option(0.5, "λ of the R1 penalty on real videos (0: none)", non_negative)
    r1_every: int = option(
        1, "apply R1 every N iterations, multiplied by N (lazy regularisation)", positive
    )
    r1_reduction: str = option(
        "sum",
        "R1 over a batch: sum (the release: λ·Σ‖∇D‖², grows with the batch) or mean (λ·E‖∇D‖²)",
        one_of("sum", "mean"),
    )
    update: str = option(
        "alternating",
        "alternating (the paper's code: a D step, then a G step on fresh fakes scored by the "
        "updated D) or simultaneous (tgan2's release: both from one forward pass)",
        one_of("alternating", "simultaneous"),
    )
    d_final_relu: bool = option(
        False,
        "a ReLU before each discriminator's sum pooling (tgan2's release; the paper's code: none)",
    )
    init: str = option(
        "published",
        "published (the paper's code: block convolutions xavier-uniform, gain √2, shortcuts and "
        "D's linear gain 1, biases and render heads at torch's default) or chainer (tgan2's "
        "release: the same xavier gains with zero biases, render heads LeCun-normal)",
        one_of("published", "chainer"),
    )

    def __attrs_post_init__(self) -> None:
        expected = self.base_size * 2 ** (self.levels + 2)
        if self.size != expected:
            raise ConfigError(
                f"size: with base_size {self.base_size} and {self.levels} levels the generator "
                f"renders {self.base_size}·2^{self.levels + 2} = {expected} px; got {self.size}"
            )
        if len(self.frame_subsample) != self.levels - 1:
            raise ConfigError(
                f"frame_subsample: expected {self.levels - 1} factors (one between each pair of "
                f"the {self.levels} levels), got {list(self.frame_subsample)}"
            )
        frames = self.frames
        for f in self.frame_subsample:
            if frames % min(f, frames):
                raise ConfigError(
                    f"frames: a level of {frames} frames cannot keep 1 frame in {f} evenly "
                    f"(frame_subsample {list(self.frame_subsample)}, frames {self.frames}); "
                    "use factors that divide each level's frame count"
                )
            frames //= min(f, frames)
        if not 0 <= self.beta1 < 1 or not 0 <= self.beta2 < 1:
            raise ConfigError(
                f"beta1/beta2: expected numbers in [0, 1), got {self.beta1}, {self.beta2}"
            )

    @property
    def level_sizes(self) -> tuple[int, ...]:
        """Frame size of each level, lowest first (the paper: 24, 48, 96, 192)."""
        return tuple(self.base_size * 2 ** (3 + k) for k in range(self.levels))

    @property
    def level_frames(self) -> tuple[int, ...]:
        """Frames of each level's training video (the paper's code: 16, 4, 1, 1)."""
        frames = [self.frames]
        for f in self.frame_subsample:
            frames.append(frames[-1] // min(f, frames[-1]))
        return tuple(frames)


# ------------------------------------------------------------------------------------------
# The image generator


def _glorot(conv: nn.Module, gain: float = 1.0, zero_bias: bool = True) -> None:
    nn.init.xavier_uniform_(conv.weight, gain=gain)
    if zero_bias and conv.bias is not None:
        nn.init.zeros_(conv.bias)


class UpBlock(nn.Module):
    """A residual up block: BN → ReLU → nearest ×2 → conv3 → BN → ReLU → conv3, plus a 1×1
    convolution of the upsampled input (computed before upsampling: the same thing)."""

    def __init__(self, in_channels: int, out_channels: int, zero_bias: bool = True) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1)
        _glorot(self.conv1, math.sqrt(2), zero_bias)
        _glorot(self.conv2, math.sqrt(2), zero_bias)
        _glorot(self.skip, 1.0, zero_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) → (N, C_out, 2H, 2W)."""
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + F.interpolate(self.skip(x), scale_factor=2, mode="nearest")


class RenderHead(nn.Module):
    """BN → ReLU → conv3 to RGB → tanh."""

    def __init__(self, in_channels: int, out_channels: int = 3, lecun: bool = True) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        if lecun:
            with torch.no_grad():
                _lecun_normal(self.conv.weight, in_channels * 9)
                self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) → (N, 3, H, W) in [-1, 1]."""
        return torch.tanh(self.conv(F.relu(self.bn(x))))


def subsample_frames(
    x: torch.Tensor, factor: int, rng: torch.Generator | None, dim: int = 1
) -> torch.Tensor:
    """Keep every ``factor``-th frame along ``dim``, each video from its own random offset.

    Video i keeps frames o_i, o_i + f, … with o_i uniform in [0, f) drawn from ``rng`` (on the
    CPU), where f = min(``factor``, frames) — so a video of fewer than ``factor`` frames keeps
    one, as the paper's code — and the frame count must be a multiple of f.
    """
    b, t = x.shape[0], x.shape[dim]
    factor = min(factor, t)
    if factor == 1:
        return x
    offsets = torch.randint(factor, (b,), generator=rng)
    index = (offsets[:, None] + factor * torch.arange(t // factor)).to(x.device)
    rows = torch.arange(b, device=x.device)[:, None]
    return x.movedim(dim, 1)[rows, index].movedim(1, dim)


class TGANv2ImageGenerator(nd.ImageGenerator):
    """Frame latents → frames through residual up blocks, rendered at one or several levels.

    Three up blocks take the latent map (C × base) to 4ch channels at 8× the base size (the first
    level, 24 px in the paper); each further level adds a sub-block (×2 size; 2ch, ch, ch, …).
    Every level has a render head. :meth:`forward` (test time) takes every frame through every
    block and renders the top level; :meth:`render_levels` (training) renders all levels with
    frames (and optionally videos) subsampled between them.
    """

    def __init__(self, config: TGANv2Config) -> None:
        super().__init__()
        self.config = config
        ch = config.g_channels
        chainer = config.init == "chainer"
        widths = [config.clstm_channels, 16 * ch, 8 * ch, 4 * ch]
        self.blocks = nn.ModuleList(UpBlock(a, b, chainer) for a, b in itertools.pairwise(widths))
        level_widths = [4 * ch]
        for k in range(1, config.levels):
            level_widths.append(max(4 * ch // 2**k, ch))
        self.sub_blocks = nn.ModuleList(
            UpBlock(a, b, chainer) for a, b in itertools.pairwise(level_widths)
        )
        self.heads = nn.ModuleList(RenderHead(w, lecun=chainer) for w in level_widths)

    def _base(self, latents: torch.Tensor) -> torch.Tensor:
        h = latents.reshape(-1, *latents.shape[2:])
        for block in self.blocks:
            h = block(h)
        return h

    def forward(self, latents: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """latents (B, T, C, h, w), z (unused) → frames (B, T, 3, H, W) at the top level."""
        b, t = latents.shape[:2]
        h = self._base(latents)
        for block in self.sub_blocks:
            h = block(h)
        frames = self.heads[-1](h)
        return frames.view(b, t, *frames.shape[1:])

    def render_levels(self, latents: torch.Tensor, rng: torch.Generator) -> list[torch.Tensor]:
        """The training output: one video (B_k, 3, T_k, H_k, W_k) per level, lowest first.

        Level 0 renders all T frames of every video. Before each further level the features
        keep every f-th frame (``frame_subsample``, per-video random offsets from ``rng``; see
        :func:`subsample_frames`) and, with ``batch_reduction``, every 2nd video.
        """
        b, t = latents.shape[:2]
        h = self._base(latents)
        videos = []
        for k, head in enumerate(self.heads):
            if k > 0:
                h = h.view(b, t, *h.shape[1:])
                if self.config.batch_reduction:
                    h = h[::2]
                h = subsample_frames(h, self.config.frame_subsample[k - 1], rng)
                b, t = h.shape[:2]
                h = self.sub_blocks[k - 1](h.reshape(b * t, *h.shape[2:]))
            frames = head(h)
            videos.append(frames.view(b, t, *frames.shape[1:]).transpose(1, 2))
        return videos


# ------------------------------------------------------------------------------------------
# The discriminators


def _halve(x: torch.Tensor, time: bool) -> torch.Tensor:
    """Average-pool by 2 along each axis (time only if ``time``) whose extent is > 1; an odd
    extent is first zero-padded by one on both sides (the paper's code and tgan2), so 3 → 2
    with windows (0, x0) and (x1, x2)."""
    kernel = tuple(2 if n > 1 and (axis > 0 or time) else 1 for axis, n in enumerate(x.shape[2:]))
    if kernel == (1, 1, 1):
        return x
    pad: list[int] = []
    for k, n in reversed(list(zip(kernel, x.shape[2:], strict=True))):
        p = 1 if k == 2 and n % 2 else 0
        pad += [p, p]
    if any(pad):
        x = F.pad(x, pad)
    return F.avg_pool3d(x, kernel, kernel)


class DBlock(nn.Module):
    """A residual 3-D block of the discriminator with average-pool downsampling.

    ``first``: conv3³ (in→out) → ReLU → conv3³ (out→out) → pool (space only); shortcut pool →
    conv1³. Otherwise: ReLU → conv3³ (in→in) → ReLU → conv3³ (in→out) → pool (space and time);
    shortcut conv1³ → pool.
    """

    def __init__(
        self, in_channels: int, out_channels: int, first: bool = False, zero_bias: bool = True
    ) -> None:
        super().__init__()
        self.first = first
        hidden = out_channels if first else in_channels
        self.conv1 = nn.Conv3d(in_channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv3d(hidden, out_channels, 3, padding=1)
        self.skip = nn.Conv3d(in_channels, out_channels, 1)
        _glorot(self.conv1, math.sqrt(2), zero_bias)
        _glorot(self.conv2, math.sqrt(2), zero_bias)
        _glorot(self.skip, 1.0, zero_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T, H, W) → (B, C_out, ⌈T/2⌉ or T, ⌈H/2⌉, ⌈W/2⌉)."""
        time = not self.first
        h = x if self.first else F.relu(x)
        h = _halve(self.conv2(F.relu(self.conv1(h))), time)
        skip = self.skip(_halve(x, time)) if self.first else _halve(self.skip(x), time)
        return h + skip


class VideoDiscriminator(nn.Module):
    """One level's 3-D ResNet: blocks of c, 2c, 4c, 8c, 16c channels (64 … 1024 in the paper),
    an optional ReLU (``final_relu``, tgan2), sum pooling over the remaining positions and
    Linear(16c → 1). Any input size."""

    def __init__(
        self,
        channels: int = 64,
        in_channels: int = 3,
        final_relu: bool = False,
        zero_bias: bool = False,
    ) -> None:
        super().__init__()
        widths = [channels * 2**i for i in range(5)]
        blocks = [DBlock(in_channels, widths[0], first=True, zero_bias=zero_bias)]
        blocks += [DBlock(a, b, zero_bias=zero_bias) for a, b in itertools.pairwise(widths)]
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(widths[-1], 1)
        self.final_relu = final_relu
        _glorot(self.linear, 1.0, zero_bias)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, 3, T, H, W) → scores (B,)."""
        h = self.blocks(video)
        if self.final_relu:
            h = F.relu(h)
        return self.linear(h.sum(dim=(2, 3, 4))).squeeze(1)


# ------------------------------------------------------------------------------------------
# The GAN


class TGANv2(nd.VideoGAN):
    """TGANv2's networks and training step (multi-level rendering, softplus loss, R1)."""

    def __init__(self, config: TGANv2Config, temporal: nd.TemporalGenerator) -> None:
        super().__init__()
        self.config = config
        self.generator = nd.VideoGenerator(
            temporal, TGANv2ImageGenerator(config), (config.z_dim,), "uniform"
        )
        self.discriminators = nn.ModuleDict(
            {
                f"level{k}": VideoDiscriminator(
                    config.d_channels,
                    final_relu=config.d_final_relu,
                    zero_bias=config.init == "chainer",
                )
                for k in range(config.levels)
            }
        )

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Adam (lr, betas (0, 0.9)) for the generator and one for all discriminators."""
        c = self.config
        kwargs = {"lr": c.lr, "betas": (c.beta1, c.beta2), "eps": 1e-8}
        return {
            "generator": torch.optim.Adam(self.generator.parameters(), **kwargs),
            "discriminator": torch.optim.Adam(self.discriminators.parameters(), **kwargs),
        }

    def learning_rate(self, step: int) -> float:
        """lr · max(0, 1 − step / decay_iterations) (constant when decay_iterations is 0)."""
        c = self.config
        if not c.decay_iterations:
            return c.lr
        return c.lr * max(0.0, 1.0 - step / c.decay_iterations)

    def generate_levels(self, z: torch.Tensor, rng: torch.Generator) -> list[torch.Tensor]:
        """The multi-level training videos of latents ``z`` (see
        :meth:`TGANv2ImageGenerator.render_levels`); a stochastic temporal generator draws its
        noise from ``rng``."""
        g = self.generator
        return g.image.render_levels(g.frame_latents(z, generator=rng), rng)

    @staticmethod
    def _take_step(
        optimizer: torch.optim.Optimizer,
        params: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor | None],
    ) -> None:
        optimizer.zero_grad(set_to_none=True)
        for p, grad in zip(params, grads, strict=True):
            p.grad = grad
        optimizer.step()

    def real_levels(self, real: torch.Tensor, rng: torch.Generator) -> list[torch.Tensor]:
        """Real videos (B, C, T, H, W) at the top size → one batch per level, lowest first:
        frames (and, with batch reduction, videos) subsampled as the fakes are, then each
        level area-downsampled (average pooling) to its size."""
        c = self.config
        videos, x = [], real
        for k, size in enumerate(c.level_sizes):
            if k > 0:
                if c.batch_reduction:
                    x = x[::2]
                x = subsample_frames(x, c.frame_subsample[k - 1], rng, dim=2)
            factor = c.size // size
            videos.append(F.avg_pool3d(x, (1, factor, factor)) if factor > 1 else x)
        return videos

    def training_step(
        self,
        real: torch.Tensor,
        step: int,
        optimizers: dict[str, torch.optim.Optimizer],
        rng: torch.Generator,
    ) -> dict[str, float]:
        """One G and D update: ``alternating`` (the paper's code) takes a D step on fakes
        drawn without gradients, then a G step on fresh fakes scored by the updated D;
        ``simultaneous`` (tgan2's release) takes both from one forward pass."""
        c = self.config
        lr = self.learning_rate(step)
        for opt in optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        g = self.generator
        discs = list(self.discriminators.values())
        b = real.shape[0]
        alternating = c.update == "alternating"
        if alternating:
            with torch.no_grad():
                fakes = self.generate_levels(g.sample_z(b, rng, real.device), rng)
        else:
            fakes = self.generate_levels(g.sample_z(b, rng, real.device), rng)
        reals = self.real_levels(real, rng)
        use_r1 = c.r1_weight > 0 and step % c.r1_every == 0
        if use_r1:
            reals = [x.detach().requires_grad_(True) for x in reals]
        d_real = [d(x) for d, x in zip(discs, reals, strict=True)]
        d_fake = [d(x) for d, x in zip(discs, fakes, strict=True)]
        all_real, all_fake = torch.cat(d_real), torch.cat(d_fake)
        loss_d = F.softplus(-all_real).mean() + F.softplus(all_fake).mean()
        if use_r1:
            r1 = r1_penalty(d_real, reals, c.r1_weight, c.r1_reduction) * c.r1_every
        else:
            r1 = loss_d.new_zeros(())

        g_params = [p for p in g.parameters() if p.requires_grad]
        d_params = [p for p in self.discriminators.parameters() if p.requires_grad]
        if alternating:
            d_grads = torch.autograd.grad(loss_d + r1, d_params, allow_unused=True)
            self._take_step(optimizers["discriminator"], d_params, d_grads)
            self.discriminators.requires_grad_(False)
            try:
                fakes = self.generate_levels(g.sample_z(b, rng, real.device), rng)
                all_fake_g = torch.cat([d(x) for d, x in zip(discs, fakes, strict=True)])
                loss_g = F.softplus(-all_fake_g).mean()
                g_grads = torch.autograd.grad(loss_g, g_params, allow_unused=True)
            finally:
                self.discriminators.requires_grad_(True)
            self._take_step(optimizers["generator"], g_params, g_grads)
        else:
            loss_g = F.softplus(-all_fake).mean()
            g_grads = torch.autograd.grad(loss_g, g_params, retain_graph=True, allow_unused=True)
            # Only D's part of the graph is walked: the fakes' graph through G is not revisited.
            d_grads = torch.autograd.grad(loss_d + r1, d_params, allow_unused=True)
            self._take_step(optimizers["generator"], g_params, g_grads)
            self._take_step(optimizers["discriminator"], d_params, d_grads)

        metrics = {
            "loss_d": loss_d.item(),
            "loss_g": loss_g.item(),
            "r1": r1.item(),
            "d_real": all_real.mean().item(),
            "d_fake": all_fake.mean().item(),
            "lr": lr,
        }
        for k, (yr, yf) in enumerate(zip(d_real, d_fake, strict=True)):
            metrics[f"d_real_{k}"] = yr.mean().item()
            metrics[f"d_fake_{k}"] = yf.mean().item()
        return metrics


class TGANv2Backbone(nd.Backbone):
    """The TGANv2 backbone as the core sees it: specs, and the GAN around a temporal G."""

    default_temporal = "temporal.clstm"

    def temporal_spec(self) -> nd.TemporalSpec:
        """z of ``z_dim`` → ``frames`` feature maps of clstm_channels × base × base."""
        c = self.config
        spec = nd.TemporalSpec((c.z_dim,), (c.clstm_channels, c.base_size, c.base_size), c.frames)
        return spec.with_reference(lambda s: ConvLSTMTemporal(ConvLSTMTemporalConfig(), s))

    def build(self, temporal: nd.TemporalGenerator) -> TGANv2:
        """TGANv2 with ``temporal`` as its temporal generator."""
        return TGANv2(self.config, temporal)

    def published_temporal_options(
        self, options: Mapping[str, Any], explicit: frozenset[str]
    ) -> dict[str, Any]:
        """At the ``paper`` preset, the paper's TGANv2 code: the ConvLSTM and fc at torch's
        default init; ODE: no pre-MLP, f = Conv2d(1024, 1024, 3) + LeakyReLU(0.2) (xavier,
        gain √2; a composed f ends with the nonlinearity too), orders 2–3 in chain form with
        ReLU and each initial component a Linear(256 → 1024·3·3) of z; SDE: drift and
        diffusion conv + ReLU, step 5e-2; the adjoint."""
        if self.config.preset != "paper":
            return {}
        if "pre_mlp" not in options:
            return {"init": "torch_default"} if "layers" in options else {}
        out: dict[str, Any] = {
            "pre_mlp": (),
            "init": "xavier_uniform",
            "encoder_init": "torch_default",
            "form": "chain",
            "final_activation": True,
        }
        order = options.get("order")
        out["activation"] = "leaky_relu" if order == 1 else "relu"
        if options.get("backend") in ("torchdiffeq", "torchsde"):
            out["adjoint"] = True
        if options.get("backend") == "torchsde":
            out["dt"] = 5e-2
        return out


@nd.hookimpl
def register_components(register: Any) -> None:
    """Register ``backbone.tganv2`` and ``temporal.clstm``."""
    register("backbone.tganv2", TGANv2Backbone, TGANv2Config)
    register("temporal.clstm", build_clstm, ConvLSTMTemporalConfig)
