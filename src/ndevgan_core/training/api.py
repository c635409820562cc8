"""The library entry points: train from a config, and load a trained generator to sample."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import torch

from ndevgan_core.contracts import TemporalSpec, VideoGenerator
from ndevgan_core.errors import CheckpointError, ConfigError, NdevganError
from ndevgan_core.registry import Registry, default_registry
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
