"""The contracts between the core and its plugins.

The paper's Figure 1: a latent ``z`` goes through a :class:`TemporalGenerator` to one latent per
frame, an :class:`ImageGenerator` turns each into a frame, and :class:`VideoGenerator` composes
the two. A :class:`Backbone` (TGAN, MoCoGAN, TGANv2) says what its temporal generator must
produce (:class:`TemporalSpec`) and builds a :class:`VideoGAN` around any temporal generator that
fits: the generator, its discriminator(s), optimisers and one training step.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import attrs
import numpy as np
import torch
from torch import nn

from .errors import ConfigError, PluginError
from .sde_solvers import SDESolverOptions, sde_noise_shape, sdeint_from
from .solvers import ODESolverOptions, odeint_from

if TYPE_CHECKING:
    from .registry import Registry
    from .runconfig import ResolvedConfig


@attrs.frozen
class VideoSpec:
    """The shape of the videos a backbone generates and trains on."""

    frames: int
    height: int
    width: int
    channels: int = 3


@attrs.frozen
class TemporalSpec:
    """What a backbone asks of a temporal generator.

    ``input_shape`` is the shape (per sample) of the latent the temporal generator starts
    from; ``latent_shape`` is the shape of each frame's latent it must produce — a vector for
    TGAN/MoCoGAN, a feature map for TGANv2. Frame ``k`` of ``frames`` sits at time
    ``t_start + k (t_end - t_start) / (frames - 1)`` (the paper: ``linspace(0, 1, 16)``).
    """

    input_shape: tuple[int, ...]
    latent_shape: tuple[int, ...]
    frames: int
    t_start: float = 0.0
    t_end: float = 1.0
    reference_params: int | None = None
    """Parameter count of the backbone's original temporal generator, if it has one."""

    def times(self, device: torch.device | str | None = None) -> torch.Tensor:
        """The training time grid: ``frames`` evenly spaced times from t_start to t_end."""
        return torch.linspace(self.t_start, self.t_end, self.frames, device=device)

    def with_reference(self, build: Callable[[TemporalSpec], nn.Module]) -> TemporalSpec:
        """This spec with ``reference_params`` counted from the original temporal generator that
        ``build(spec)`` makes — built on the meta device, so counting allocates nothing."""
        with torch.device("meta"):
            count = count_parameters(build(self))
        return attrs.evolve(self, reference_params=count)


class TemporalGenerator(nn.Module, abc.ABC):
    """Maps a latent ``z`` of shape ``(B, *input_shape)`` to ``(B, T, *latent_shape)``.

    ``t`` is a 1-D tensor of ``T`` times. A ``continuous`` generator accepts any grid
    (increasing or decreasing, negative times allowed: ``z`` is the state at ``spec.t_start``,
    and times before it are reached by integrating backwards); a discrete one accepts only the
    training grid and refuses others with a clear message (:meth:`check_times`). A
    ``stochastic`` generator's ``forward`` also takes ``noise`` (explicit standard-normal
    increments) or ``generator`` (a seeded ``torch.Generator`` to draw them from).
    """

    continuous: ClassVar[bool] = False
    stochastic: ClassVar[bool] = False

    def __init__(self, spec: TemporalSpec, name: str) -> None:
        super().__init__()
        self.spec = spec
        self.plugin_name = name

    @abc.abstractmethod
    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Return the latents of the frames at times ``t``: ``(B, len(t), *latent_shape)``."""

    def check_times(self, t: torch.Tensor) -> None:
        """Refuse a time grid this generator cannot produce, naming the plugin and the grid."""
        if t.ndim != 1 or t.numel() < 1:
            raise ConfigError(f"{self.plugin_name}: times must be a non-empty 1-D tensor")
        if self.continuous:
            return
        grid = self.spec.times(t.device).to(t.dtype)
        if t.shape != grid.shape or not torch.allclose(t, grid, atol=1e-6):
            raise ConfigError(
                f"{self.plugin_name} is a discrete temporal generator: it produces exactly "
                f"{self.spec.frames} frames at t = linspace({self.spec.t_start:g}, "
                f"{self.spec.t_end:g}, {self.spec.frames}). Use a continuous one (e.g. "
                "temporal.ode) for other time grids."
            )


class _Field(nn.Module):
    """Adapts a generator's ``drift`` to the ``f(t, y)`` module torchdiffeq integrates (the
    owner is a submodule, so the adjoint method finds its parameters)."""

    def __init__(self, owner: ODETemporalGenerator) -> None:
        super().__init__()
        self.owner = owner

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.owner.drift(t, state)


class ODETemporalGenerator(TemporalGenerator):
    """A temporal generator defined by an ODE d(state)/dt = drift(t, state); the core integrates.

    A plugin supplies :meth:`initial_state` (z → the state at ``spec.t_start``), :meth:`drift`
    and :meth:`readout` (states → frame latents), plus ``solver`` (its
    :class:`~ndevgan_core.solvers.ODESolverOptions`) and ``order``. The core integrates the
    field with torchdiffeq or its own unrolled solvers for training and sampling, and with the
    unrolled solvers for export, without knowing the plugin. Continuous: any time grid works.
    """

    continuous = True
    order: int = 1
    solver: ODESolverOptions

    @abc.abstractmethod
    def initial_state(self, z: torch.Tensor) -> torch.Tensor:
        """The state ``(B, *state_shape)`` at ``spec.t_start`` for latents ``z``."""

    @abc.abstractmethod
    def drift(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """d(state)/dt at time ``t``."""

    def readout(self, states: torch.Tensor) -> torch.Tensor:
        """States ``(B, T, *state_shape)`` → frame latents ``(B, T, *latent_shape)``."""
        return states

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Integrate from ``initial_state(z)`` at ``spec.t_start`` to every time in ``t``."""
        state = self.initial_state(z)
        states = odeint_from(_Field(self), state, t, self.spec.t_start, self.solver)
        return self.readout(states.transpose(0, 1))


class SDETemporalGenerator(TemporalGenerator):
    """A temporal generator defined by an SDE d(state) = drift dt + diffusion dW.

    Like :class:`ODETemporalGenerator` with a :meth:`diffusion` as well, on a flat state
    ``(B, S)``: diagonal noise returns ``(B, S)``, general noise ``(B, S, brownian_size)``.
    ``noise`` passed to :meth:`forward` is standard normal of shape :meth:`noise_shape`
    (increment k is its row k times the square root of the step), so a caller that owns the
    noise owns the sample.
    """

    continuous = True
    stochastic = True
    solver: SDESolverOptions
    brownian_size: int | None = None

    @abc.abstractmethod
    def initial_state(self, z: torch.Tensor) -> torch.Tensor:
        """The flat state ``(B, S)`` at ``spec.t_start`` for latents ``z``."""

    @abc.abstractmethod
    def drift(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The drift μ(t, state), ``(B, S)``."""

    @abc.abstractmethod
    def diffusion(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The diffusion σ(t, state): ``(B, S)`` (diagonal) or ``(B, S, m)`` (general)."""

    def readout(self, states: torch.Tensor) -> torch.Tensor:
        """States ``(B, T, S)`` → frame latents ``(B, T, *latent_shape)``."""
        return states.reshape(*states.shape[:2], *self.spec.latent_shape)

    def state_size(self) -> int:
        """S, the size of the flat state."""
        return math.prod(self.spec.latent_shape)

    def noise_shape(self, batch: int, t: torch.Tensor) -> tuple[int, ...]:
        """The shape of the standard-normal ``noise`` that :meth:`forward` takes for grid ``t``."""
        return sde_noise_shape(
            batch, t, self.solver, self.state_size(), self.brownian_size, t0=self.spec.t_start
        )

    def forward(
        self,
        z: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Integrate from ``initial_state(z)`` at ``spec.t_start`` to every time in ``t``."""
        state = self.initial_state(z)
        states = sdeint_from(
            self.drift,
            self.diffusion,
            state,
            t,
            self.spec.t_start,
            self.solver,
            noise=noise,
            generator=generator,
            brownian_size=self.brownian_size,
        )
        return self.readout(states.transpose(0, 1))


class ImageGenerator(nn.Module, abc.ABC):
    """Turns each frame's latent (and the content latent ``z``) into a frame."""

    @abc.abstractmethod
    def forward(self, latents: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``latents`` (B, T, *latent_shape), ``z`` (B, *z_shape) → frames (B, T, C, H, W)."""


class VideoGenerator(nn.Module):
    """The whole generator: ``z`` → temporal generator → image generator → video.

    ``z_distribution`` is ``"uniform"`` (U(-1, 1), TGAN) or ``"normal"``; ``temporal_slice``
    selects the part of ``z`` the temporal generator starts from (all of it by default; the
    motion part for MoCoGAN). Output videos are ``(B, C, T, H, W)`` in [-1, 1].
    """

    def __init__(
        self,
        temporal: TemporalGenerator,
        image: ImageGenerator,
        z_shape: tuple[int, ...],
        z_distribution: str = "uniform",
        temporal_slice: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if z_distribution not in ("uniform", "normal"):
            raise ValueError(f"z_distribution must be 'uniform' or 'normal': {z_distribution!r}")
        self.temporal = temporal
        self.image = image
        self.z_shape = tuple(z_shape)
        self.z_distribution = z_distribution
        self.temporal_slice = temporal_slice

    @property
    def spec(self) -> TemporalSpec:
        """The temporal spec this generator was built for (time grid, latent shapes)."""
        return self.temporal.spec

    def sample_z(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` latents (on the CPU from ``generator`` for reproducibility, then moved)."""
        shape = (n, *self.z_shape)
        if self.z_distribution == "uniform":
            z = torch.rand(shape, generator=generator) * 2 - 1
        else:
            z = torch.randn(shape, generator=generator)
        return z.to(device) if device is not None else z

    def forward(
        self,
        z: torch.Tensor,
        t: torch.Tensor | None = None,
        *,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Generate videos ``(B, C, T, H, W)`` for latents ``z`` at times ``t`` (default: the
        training grid). ``noise``/``generator`` reach a stochastic temporal generator (see
        :class:`TemporalGenerator`) and are ignored by deterministic ones."""
        latents = self.frame_latents(z, t, noise=noise, generator=generator)
        frames = self.image(latents, z)
        return frames.transpose(1, 2)

    def frame_latents(
        self,
        z: torch.Tensor,
        t: torch.Tensor | None = None,
        *,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The temporal generator's part of :meth:`forward`: the frame latents ``(B, T,
        *latent_shape)`` of ``z`` at ``t``, for backbones that render them their own way."""
        if t is None:
            t = self.spec.times(z.device)
        self.temporal.check_times(t)
        start = z if self.temporal_slice is None else z[:, slice(*self.temporal_slice)]
        if self.temporal.stochastic:
            latents = self.temporal(start, t, noise=noise, generator=generator)
        elif noise is not None:
            raise ConfigError(
                f"{self.temporal.plugin_name} is deterministic; it takes no noise input"
            )
        else:
            latents = self.temporal(start, t)
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return latents  # checked eagerly; an export traces symbolic shapes
        expected = (z.shape[0], t.shape[0], *self.temporal.spec.latent_shape)
        if tuple(latents.shape) != expected:
            raise PluginError(
                f"{self.temporal.plugin_name} returned frame latents of shape "
                f"{tuple(latents.shape)}; the backbone expects (batch, frames, "
                f"*spec.latent_shape) = {expected}"
            )
        return latents


class VideoGAN(nn.Module, abc.ABC):
    """A generator and its discriminator(s) with the backbone's training protocol.

    The trainer knows nothing backbone-specific: it calls :meth:`configure_optimizers` once
    and :meth:`training_step` per iteration; everything else (n_critic, several
    discriminators, clipping or R1 schedules) lives in the backbone's subclass.
    """

    generator: VideoGenerator
    discriminators: nn.ModuleDict

    @abc.abstractmethod
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One optimiser per network, by name (saved and restored by name in checkpoints)."""

    @abc.abstractmethod
    def training_step(
        self,
        real: torch.Tensor,
        step: int,
        optimizers: dict[str, torch.optim.Optimizer],
        rng: torch.Generator,
    ) -> dict[str, float]:
        """One training iteration on a batch of real videos (B, C, T, H, W) in [-1, 1].

        ``step`` counts iterations from 0; ``rng`` is the trainer's generator for latents.
        Returns the named figures to log (losses, discriminator scores).
        """

    def module_parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per top-level module (temporal, image, each discriminator)."""
        counts = {
            "generator.temporal": count_parameters(self.generator.temporal),
            "generator.image": count_parameters(self.generator.image),
        }
        for name, disc in self.discriminators.items():
            counts[f"discriminator.{name}"] = count_parameters(disc)
        return counts


class Backbone(abc.ABC):
    """A video GAN architecture and its training protocol, minus the temporal generator.

    Built from its config by the backbone plugin's factory. The core asks it for the
    :class:`TemporalSpec` and :class:`VideoSpec`, builds the temporal generator (the plugin the
    run selects, or :attr:`default_temporal`), then calls :meth:`build`.
    """

    default_temporal: ClassVar[str]
    """The qualified name of the backbone's original temporal generator."""

    config: Any
    batch_size: int

    def __init__(self, config: Any) -> None:
        """Keep the config; its ``batch_size`` is the trainer's batch size."""
        self.config = config
        self.batch_size = config.batch_size

    @abc.abstractmethod
    def temporal_spec(self) -> TemporalSpec:
        """What the temporal generator must take and produce."""

    def video_spec(self) -> VideoSpec:
        """The videos the backbone generates and the dataset must supply: by default RGB,
        ``config.frames`` × ``config.size`` × ``config.size``."""
        return VideoSpec(self.config.frames, self.config.size, self.config.size, 3)

    @abc.abstractmethod
    def build(self, temporal: TemporalGenerator) -> VideoGAN:
        """Assemble the GAN around ``temporal``."""

    def published_temporal_options(
        self, options: Mapping[str, Any], explicit: frozenset[str]
    ) -> dict[str, Any]:
        """Option values with which a temporal plugin builds the authors' published model on
        this backbone (their pre-ODE MLP, initialisation, form, adjoint, step, widths).

        ``options`` are the plugin's options as its own defaults and the user's choices make
        them (keys: the plugin's option names, e.g. those of
        :class:`~ndevgan_core.fields.FieldOptions` and the solver options); ``explicit`` names
        the ones the user set. The result is applied to the options the user did not set;
        keys the plugin does not have are ignored. The default, and a backbone's CPU presets,
        return nothing: the plugin's own defaults stand.
        """
        return {}


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def normalise_videos(videos: torch.Tensor) -> torch.Tensor:
    """A batch of clips as the GAN takes them: float (B, C, T, H, W) in [-1, 1].

    Float batches pass through; ``uint8`` batches (B, T, H, W, C) — what a dataset may hand
    over to move a quarter of the bytes between processes — become ``(x - 128) / 128`` on
    whatever device they are on.
    """
    if videos.dtype == torch.uint8:
        return videos.permute(0, 4, 1, 2, 3).float().sub_(128.0).div_(128.0)
    return videos


class VideoDataset(torch.utils.data.Dataset, abc.ABC):
    """Training clips: item ``i`` is ``{"video": float (C, T, H, W) in [-1, 1], "label": int}``,
    or ``"video"`` as ``uint8`` (T, H, W, C), which the trainer normalises on the device
    (:func:`normalise_videos`).

    Built by a dataset plugin's factory from its config and the backbone's :class:`VideoSpec`;
    reports its resolution and frame count through ``spec`` and its classes through
    ``class_names``.
    """

    spec: VideoSpec
    class_names: tuple[str, ...]
    epoch_indices: bool = False
    """When true, the trainer asks for item ``i + e·len(self)`` in epoch ``e`` (item ``i``,
    draw ``e``), so a dataset can draw a new clip of the same video every epoch while staying
    deterministic and resumable."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of clips."""

    @abc.abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]:
        """The clip ``index`` as ``{"video": Tensor (C, T, H, W), "label": int}``."""

    def reference_classifier(self) -> str | None:
        """Path of the weights of a :class:`VideoClassifier` suited to score videos like these
        (IS/FID), or None when the user must bring one (e.g. C3D for UCF101)."""
        return None


class VideoClassifier(nn.Module, abc.ABC):
    """A pretrained video classifier that IS and FID score videos with (C3D on UCF101, or the
    small classifier shipped for ``dataset.shapes``).

    It owns its preprocessing: :meth:`forward` takes generated or real videos as the GAN makes
    them — float (B, C, T, H, W) in [-1, 1] — and returns ``{"features": (B, feature_size),
    "probs": (B, num_classes)}``: the FID features and the class probabilities for IS.
    ``weights_id`` identifies the weights (a digest), so cached real-data statistics are
    never reused with other weights.
    """

    num_classes: int
    feature_size: int
    weights_id: str

    @abc.abstractmethod
    def forward(self, videos: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"features": (B, F), "probs": (B, K)}`` for videos (B, C, T, H, W) in [-1, 1]."""


# --------------------------------------------------------------------------------------------
# Metrics: what they consume and produce


@attrs.frozen
class MetricResult:
    """One figure: its mean and standard deviation over ``values`` (one per loop or split,
    as ``protocol`` says, e.g. ``"tganv2: 2048 samples x 10 loops"``)."""

    mean: float
    std: float
    values: tuple[float, ...]
    protocol: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: mean, std, values (a list) and protocol."""
        return {
            "mean": self.mean,
            "std": self.std,
            "values": list(self.values),
            "protocol": self.protocol,
        }


@attrs.frozen(eq=False)
class Features:
    """What a classifier said about N videos: ``features`` (N, F) — the FID features — and
    ``probs`` (N, K) class probabilities, float32 in sample order."""

    features: np.ndarray
    probs: np.ndarray

    @property
    def count(self) -> int:
        """N, the number of videos."""
        return int(self.probs.shape[0])


@attrs.frozen(eq=False)
class FeatureStats:
    """Mean (F,) and covariance (F, F; unbiased) in float64 of ``count`` feature vectors."""

    mean: np.ndarray
    cov: np.ndarray
    count: int

    @classmethod
    def from_features(cls, features: np.ndarray) -> FeatureStats:
        """The statistics of the rows of ``features`` (N ≥ 2, F), computed in float64."""
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] < 2:
            raise ConfigError(f"feature statistics need (N ≥ 2, F) features; got {f.shape}")
        cov = np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])
        return cls(mean=f.mean(axis=0), cov=cov, count=int(f.shape[0]))


class Metric(abc.ABC):
    """A figure computed from classifier outputs: the contract of ``metric.*`` components.

    A metric plugin registers ``register("metric.NAME", factory, ConfigClass)``; ``factory
    (config)`` returns a Metric. ``ndevgan_core.evaluation.evaluate`` gives :meth:`score` one
    :class:`Features` per loop (each of ``samples`` generated videos) and, when ``needs_real``, the
    :class:`FeatureStats` of real clips. ``needs_features`` says the metric reads
    ``Features.features`` (a classifier that gives probabilities only cannot serve it).
    """

    needs_real: ClassVar[bool] = False
    needs_features: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = True
    """Whether a larger figure is better (IS) or a smaller one (FID): how a logger picks the
    best checkpoint and a study its best run."""

    def check_generator(self, generator: VideoGenerator) -> None:  # noqa: B027
        """Refuse, with a ConfigError, a generator whose videos this metric cannot score
        (called once before any video is generated; the default accepts every one)."""

    @abc.abstractmethod
    def score(self, fake: Sequence[Features], real: FeatureStats | None) -> MetricResult:
        """The figure for generated videos ``fake`` (one entry per loop) against ``real``."""


# --------------------------------------------------------------------------------------------
# What a logger sees of a training run


class TrainingRun(Protocol):
    """The run that calls a logger's ``on_step`` / ``on_checkpoint`` / ``on_sample`` hooks:
    everything a hook may read (the trainer provides it; nothing else of it is contract)."""

    config: ResolvedConfig
    """The run's resolved config (``config.run.iterations``, ``config.run.progress``, …)."""
    registry: Registry
    """The registry the run was built from (to build metrics and classifiers with)."""
    run_dir: Path
    """The run directory (config.toml, log.jsonl, checkpoints/, samples/)."""
    device: torch.device
    """Where the run computes."""
    dataset: VideoDataset
    """The training data (real clips for FID)."""
    gan: VideoGAN
    """The GAN being trained (without any DDP wrappers)."""
    rank: int
    """This process's rank under torchrun (0 in a single process)."""
    world_size: int
    """The number of processes (1 without torchrun)."""

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files."""

    @property
    def sampling_generator(self) -> VideoGenerator:
        """The generator that samples and evaluation should use (the EMA copy when
        ``run.ema`` is on)."""

    def checkpoint_payload(self) -> dict[str, Any]:
        """Everything a checkpoint of the current step holds, as a dict for
        ``nd.save_checkpoint``."""
