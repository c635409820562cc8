"""The library entry points: train from a config, and load a trained generator to sample."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch

from .checkpoint import load_checkpoint
from .contracts import VideoGenerator
from .errors import CheckpointError, NdevganError
from .registry import Registry, default_registry
from .runconfig import ResolvedConfig, assemble, resolve


def train(
    config: ResolvedConfig,
    registry: Registry | None = None,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
) -> Path:
    """Train as ``config`` says (or continue ``resume``); return the run directory."""
    from .trainer import Trainer

    trainer = Trainer(config, registry or default_registry(), run_dir=run_dir, resume=resume)
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
    """Rebuild the generator a checkpoint was trained with and load its weights (eval mode)."""
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
    """Generate ``n`` videos (N, C, T, H, W) in [-1, 1] from latents drawn with ``seed``."""
    device = next(generator.parameters()).device
    z = generator.sample_z(n, torch.Generator().manual_seed(seed))
    chunks = [
        generator(z[i : i + batch_size].to(device), times).float().cpu()
        for i in range(0, n, batch_size)
    ]
    return torch.cat(chunks)
