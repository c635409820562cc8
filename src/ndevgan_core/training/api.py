"""The library entry points: train from a config, and load a trained generator to sample."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from ndevgan_core.config import build_config
from ndevgan_core.contracts import TemporalSpec, VideoDataset, VideoGenerator, VideoSpec
from ndevgan_core.errors import CheckpointError, ConfigError, NdevganError
from ndevgan_core.registry import Registry, default_registry, qualify
from ndevgan_core.runconfig import ResolvedConfig, assemble, resolve
from ndevgan_core.training.checkpoint import load_checkpoint


def train(
    config: ResolvedConfig,
    registry: Registry | None = None,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Train as ``config`` says (or continue ``resume``; ``force`` accepts options that differ
    from the checkpoint's); return the run directory."""
    from ndevgan_core.training.trainer import Trainer

    trainer = Trainer(
        config, registry or default_registry(), run_dir=run_dir, resume=resume, force=force
    )
    return trainer.fit()


@attrs.frozen
class LoadedGenerator:
    """A generator restored from a checkpoint, with the config and step it was saved at."""

    generator: VideoGenerator
    config: ResolvedConfig
    step: int


def load_generator(
    checkpoint: str | Path,
    registry: Registry | None = None,
    device: str | torch.device = "cpu",
) -> LoadedGenerator:
    """Rebuild the generator a checkpoint was trained with and load its weights (eval mode);
    for a run with ``run.ema``, the averaged weights."""
    registry = registry or default_registry()
    state = load_checkpoint(checkpoint)
    try:
        config = resolve(state["config"], registry)
    except NdevganError as exc:
        raise CheckpointError(f"{checkpoint}: its config cannot be used here: {exc}") from None
    gan = assemble(config, registry).gan
    prefix = "generator."
    weights: dict[str, Any] = {
        k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)
    }
    if isinstance(state.get("generator_ema"), dict):  # run.ema: the weight average samples
        weights = state["generator_ema"]
    try:
        gan.generator.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{checkpoint}: weights do not fit the generator: {exc}") from None
    generator = gan.generator.to(device).eval()
    return LoadedGenerator(generator=generator, config=config, step=int(state["step"]))


@torch.no_grad()
def sample_videos(
    generator: VideoGenerator,
    n: int,
    seed: int = 0,
    times: torch.Tensor | None = None,
    batch_size: int = 16,
) -> torch.Tensor:
    """Generate ``n`` videos (N, C, T, H, W) in [-1, 1] at ``times`` (default: the training grid).

    The latents — and, for a stochastic temporal generator, the noise after them — are drawn on
    the CPU from one generator seeded with ``seed``, so a sample is reproducible on any device.
    Two calls with the same seed share z; they also share the noise whenever the two grids
    need noise of one shape (an SDE steps by its ``dt``, so e.g. 1× and K× frame rates over
    one interval do).
    """
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    z = generator.sample_z(n, rng)
    if times is None:
        times = generator.spec.times()
    times = times.to(device)
    noise = None
    if generator.temporal.stochastic:
        noise = torch.randn(generator.temporal.noise_shape(n, times), generator=rng)
    chunks = []
    for i in range(0, n, batch_size):
        part = None if noise is None else noise[i : i + batch_size].to(device)
        video = generator(z[i : i + batch_size].to(device), times, noise=part)
        chunks.append(video.float().cpu())
    return torch.cat(chunks)


@attrs.frozen
class TimeGrid:
    """The times to render a sample at, and how they relate to the trained grid.

    ``times`` is the grid to render; ``base`` the 1× grid it refines when ``factor`` > 1 (else
    None); ``trained`` the (t_start, t_end) interval the model was trained on.
    """

    times: torch.Tensor
    base: torch.Tensor | None
    factor: int
    trained: tuple[float, float]

    def describe(self) -> str:
        """One line for people: the span, the frame count and the rate factor."""
        t = self.times
        text = f"{t.numel()} frames, t = {t[0].item():g} … {t[-1].item():g}"
        if self.factor > 1:
            text += f" ({self.factor}× the frame rate of {self.base.numel()} frames)"
        lo, hi = self.trained
        if t.min().item() < lo - 1e-9 or t.max().item() > hi + 1e-9:
            text += f"; trained on [{lo:g}, {hi:g}], frames outside it are marked"
        return text


def time_grid(
    spec: TemporalSpec,
    t_start: float | None = None,
    t_end: float | None = None,
    frames: int | None = None,
    fps_multiplier: int = 1,
) -> TimeGrid:
    """The grid ``ndevgan sample`` renders: ``frames`` times from ``t_start`` to ``t_end``
    (each defaulting to the trained grid's), refined ``fps_multiplier`` times (``(frames - 1)
    · K + 1`` frames over the same interval). ``t_start`` may be negative (before the first
    trained frame) and ``t_end`` past the trained end; a decreasing grid plays time backwards.
    """
    a = spec.t_start if t_start is None else float(t_start)
    b = spec.t_end if t_end is None else float(t_end)
    for option, value in (("--t-start", a), ("--t-end", b)):
        if not math.isfinite(value):
            raise ConfigError(f"{option}: expected a finite time, got {value}")
    count = spec.frames if frames is None else int(frames)
    if count < 1:
        raise ConfigError(f"--frames: expected a count >= 1, got {count}")
    if fps_multiplier < 1:
        raise ConfigError(f"--fps-multiplier: expected an integer >= 1, got {fps_multiplier}")
    if count > 1 and a == b:
        raise ConfigError(f"--t-start and --t-end are both {a:g}; {count} frames need a span")
    if fps_multiplier > 1 and count < 2:
        raise ConfigError("--fps-multiplier needs at least 2 frames to refine")
    base = torch.linspace(a, b, count)  # as TemporalSpec.times(), so defaults match it
    if fps_multiplier == 1:
        return TimeGrid(base, None, 1, (spec.t_start, spec.t_end))
    fine = torch.linspace(a, b, (count - 1) * fps_multiplier + 1)
    return TimeGrid(fine, base, fps_multiplier, (spec.t_start, spec.t_end))


# --------------------------------------------------------------------------------------------
# For notebooks: nd.load and nd.dataset


def _layout(videos: torch.Tensor, dtype: str) -> np.ndarray:
    """(N, C, T, H, W) float in [-1, 1] → (N, T, C, H, W) float32, or uint8 as the written
    samples are (``media.to_uint8``: −1 → 0, 1 → 255)."""
    if dtype == "float":
        return videos.transpose(1, 2).float().numpy()
    if dtype == "uint8":
        from ndevgan_core import media

        return np.ascontiguousarray(media.to_uint8(videos).transpose(0, 1, 4, 2, 3))
    raise ConfigError(f"dtype: expected 'float' or 'uint8', got {dtype!r}")


def slerp(z0: torch.Tensor, z1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latents ``z0`` and ``z1`` (any shape) at ``weights`` in
    [0, 1]: rows ``(K, *z.shape)``; linear where the two are (anti)parallel."""
    a, b = z0.flatten().double(), z1.flatten().double()
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))
    w = weights.double()[:, None]
    if omega.abs() < 1e-6 or (omega - math.pi).abs() < 1e-6:
        rows = (1 - w) * a + w * b
    else:
        rows = (torch.sin((1 - w) * omega) * a + torch.sin(w * omega) * b) / torch.sin(omega)
    return rows.to(z0.dtype).reshape(len(weights), *z0.shape)


class TrainedGenerator:
    """A trained generator for Python use (``nd.load``): videos as numpy ``(N, T, C, H, W)``,
    the layout of :meth:`~ndevgan_core.OnnxVideoGenerator.generate`, and the same videos as
    ``ndevgan sample --seed`` and ``ndevgan infer --seed`` for a seed."""

    def __init__(self, loaded: LoadedGenerator) -> None:
        self.generator = loaded.generator
        """The :class:`~ndevgan_core.VideoGenerator` (eval mode)."""
        self.config = loaded.config
        """The run's resolved config."""
        self.step = loaded.step
        """The training step of the checkpoint."""

    @property
    def times(self) -> torch.Tensor:
        """The trained time grid (``frames`` times from ``t_start`` to ``t_end``)."""
        return self.generator.spec.times()

    def latents(self, n: int, seed: int = 0) -> torch.Tensor:
        """The ``n`` latents z that :meth:`generate` uses for ``seed`` (on the CPU)."""
        return self.generator.sample_z(n, torch.Generator().manual_seed(seed))

    def generate(
        self,
        n: int,
        seed: int = 0,
        times: Any = None,
        *,
        dtype: str = "float",
        batch_size: int = 16,
    ) -> np.ndarray:
        """``n`` videos ``(n, T, C, H, W)``: float32 in [-1, 1] or ``dtype="uint8"``, at
        ``times`` (a sequence of times; default the trained grid — a continuous generator
        takes any grid, later or denser)."""
        if n < 1 or batch_size < 1:
            raise ConfigError(f"generate: n and batch_size must be >= 1, got {n}, {batch_size}")
        grid = None if times is None else torch.as_tensor(times, dtype=torch.float32)
        if grid is not None:
            self.generator.temporal.check_times(grid)
        videos = sample_videos(self.generator, n, seed=seed, times=grid, batch_size=batch_size)
        return _layout(videos, dtype)

    @torch.no_grad()
    def interpolate(
        self,
        z0: torch.Tensor,
        z1: torch.Tensor,
        steps: int,
        times: Any = None,
        *,
        dtype: str = "float",
        seed: int = 0,
    ) -> np.ndarray:
        """Videos ``(steps, T, C, H, W)`` along the spherical path from latent ``z0`` to ``z1``
        (each of ``generator.z_shape``, e.g. ``latents(2)[0]`` and ``[1]``). A stochastic
        generator uses one noise draw (from ``seed``) for every step, so only z moves."""
        if steps < 2:
            raise ConfigError(f"interpolate: steps must be >= 2, got {steps}")
        g = self.generator
        shape = tuple(g.z_shape)
        z0, z1 = torch.as_tensor(z0).float(), torch.as_tensor(z1).float()
        if tuple(z0.shape) != shape or tuple(z1.shape) != shape:
            raise ConfigError(
                f"interpolate: z0 and z1 must each have shape {shape}, got "
                f"{tuple(z0.shape)} and {tuple(z1.shape)}"
            )
        z = slerp(z0, z1, torch.linspace(0, 1, steps))
        grid = g.spec.times() if times is None else torch.as_tensor(times, dtype=torch.float32)
        g.temporal.check_times(grid)
        device = next(g.parameters()).device
        noise = None
        if g.temporal.stochastic:
            rng = torch.Generator().manual_seed(seed)
            one = torch.randn(g.temporal.noise_shape(1, grid), generator=rng)
            noise = one.expand(steps, *one.shape[1:]).contiguous().to(device)
        videos = g(z.to(device), grid.to(device), noise=noise).float().cpu()
        return _layout(videos, dtype)


def load(
    source: str | Path, device: str | torch.device = "cpu", registry: Registry | None = None
) -> TrainedGenerator:
    """A run directory (its newest checkpoint) or checkpoint file → a
    :class:`TrainedGenerator` on ``device`` (``nd.load``)."""
    return TrainedGenerator(load_generator(source, registry, device=device))


class RealClips:
    """Real clips of a dataset plugin (``nd.dataset``), in the layout of generated videos."""

    def __init__(self, dataset: VideoDataset, name: str) -> None:
        self.dataset = dataset
        """The plugin's :class:`~ndevgan_core.VideoDataset`."""
        self.name = name

    def __len__(self) -> int:
        return len(self.dataset)

    def videos(self, n: int, start: int = 0, *, dtype: str = "float") -> np.ndarray:
        """Clips ``start … start + n − 1`` as ``(n, T, C, H, W)`` (float in [-1, 1] or uint8)."""
        if n < 1 or not 0 <= start <= len(self) - n:
            raise ConfigError(
                f"{self.name} has {len(self)} clips; asked for {n} from index {start}"
            )
        clips = torch.stack([self.dataset[i]["video"] for i in range(start, start + n)])
        return _layout(clips, dtype)

    def labels(self, n: int, start: int = 0) -> list[Any]:
        """The labels of the same clips (when the dataset has them; else None each)."""
        return [self.dataset[i].get("label") for i in range(start, start + n)]


def dataset(
    name: str,
    video_shape: tuple[int, int, int] = (16, 64, 64),
    registry: Registry | None = None,
    **options: Any,
) -> RealClips:
    """Real clips of dataset plugin ``name`` (``"shapes"`` or ``"dataset.shapes"``) shaped
    ``video_shape`` = (frames, height, width), with the plugin's ``options``
    (``nd.dataset``), e.g. ``nd.dataset("shapes", (16, 32, 32)).videos(8)``."""
    registry = registry or default_registry()
    component = registry.get(qualify(name, "dataset"), "dataset")
    config = build_config(component.config_class, options, component.name)
    frames, height, width = video_shape
    spec = VideoSpec(frames, height, width, 3)
    return RealClips(registry.create(component.name, config, spec), component.name)
