"""Classifiers from files, the sampled latents, and the classifier's outputs batch by batch
(shared across ranks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from ndevgan_core.contracts import (
    Features,
    VideoClassifier,
    VideoGenerator,
)
from ndevgan_core.errors import ConfigError, PluginError
from ndevgan_core.registry import Registry, default_registry


def load_video_classifier(
    path: str | Path,
    *,
    registry: Registry | None = None,
    options: Mapping[str, Any] | None = None,
) -> VideoClassifier:
    """Open classifier weights with the plugin that reads their format (eval mode, CPU).

    The metric plugins are imported through the registry first, so a built-in one answers
    without the core naming it. ``options`` reach the plugin that reads the file (for
    example C3D's ``dropout_compat``, which keeps dropout on while scoring as the paper's
    code did).

    Raises:
        ConfigError: the file is missing, or is rejected by the plugin that claims it (the
            message names the file and what was expected), or no plugin reads it.
    """
    registry = registry or default_registry()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"classifier weights {path} not found")
    for name in registry.names("metric"):
        registry.get(name)  # imports the built-in metric plugins, which read classifier files
    classifier = registry.hook.load_video_classifier(path=path, options=dict(options or {}))
    if classifier is None:
        raise ConfigError(
            f"{path}: no installed metric plugin reads this file as video classifier weights "
            f"(metric plugins: {', '.join(registry.names('metric')) or 'none'})"
        )
    if not isinstance(classifier, VideoClassifier):
        raise PluginError(
            f"the plugin that read {path} returned a {type(classifier).__name__}, "
            "not an ndevgan_core.VideoClassifier"
        )
    return classifier.eval()


def _sample_seed(seed: int, loop: int, index: int) -> int:
    state = np.random.SeedSequence((seed, loop, index)).generate_state(2, np.uint32)
    return int(state[0]) | (int(state[1]) << 32)


def sample_latents(
    generator: VideoGenerator,
    indices: Sequence[int],
    times: torch.Tensor,
    seed: int = 0,
    loop: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The latents (and, for a stochastic temporal generator, the noise) of the samples
    ``indices`` of loop ``loop``: each sample draws ``z`` then its noise from a CPU generator
    seeded from ``(seed, loop, index)``, so a sample is the same in any batch and process."""
    zs, noises = [], []
    stochastic = generator.temporal.stochastic
    for index in indices:
        rng = torch.Generator().manual_seed(_sample_seed(seed, loop, index))
        zs.append(generator.sample_z(1, rng))
        if stochastic:
            noises.append(torch.randn(generator.temporal.noise_shape(1, times), generator=rng))
    noise = torch.cat(noises) if stochastic else None
    return torch.cat(zs), noise


@attrs.frozen
class _Ranks:
    """Which batches this process handles: batch ``j`` belongs to rank ``j mod world``."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls, distributed: bool) -> _Ranks:
        if not distributed:
            return cls()
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        return cls(dist.get_rank(), dist.get_world_size())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def batches(self, n: int, batch_size: int) -> list[range]:
        """The index ranges of every batch of ``n`` samples (all ranks')."""
        return [range(i, min(n, i + batch_size)) for i in range(0, n, batch_size)]

    def mine(self, batches: Sequence[range]) -> list[range]:
        return list(batches[self.rank :: self.world])

    def gather(self, local: np.ndarray, batches: Sequence[range]) -> np.ndarray:
        """Rows of this rank's batches (in order) → the rows of every batch, in sample order,
        on every rank."""
        if self.world == 1:
            return local
        shares: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(shares, local)
        offsets = [0] * self.world
        rows = []
        for j, batch in enumerate(batches):
            owner = j % self.world
            rows.append(shares[owner][offsets[owner] : offsets[owner] + len(batch)])
            offsets[owner] += len(batch)
        return np.concatenate(rows) if rows else local[:0]

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (picklable) on every rank."""
        if self.world == 1:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]


def _outputs(classifier: VideoClassifier, videos: torch.Tensor) -> np.ndarray:
    """One batch through the classifier → rows [features | probs] as float32 on the CPU."""
    out = classifier(videos)
    features, probs = out.get("features"), out.get("probs")
    if not isinstance(features, torch.Tensor) or not isinstance(probs, torch.Tensor):
        raise PluginError(
            f"{type(classifier).__name__} must return {{'features': (B, F), 'probs': (B, K)}}; "
            f"got keys {sorted(out)}"
        )
    features = (features if features.dim() == 2 else features.flatten(1)).float()
    probs = (probs if probs.dim() == 2 else probs.flatten(1)).float()
    if features.shape[0] != videos.shape[0] or probs.shape[0] != videos.shape[0]:
        raise PluginError(
            f"{type(classifier).__name__} returned {features.shape[0]} features and "
            f"{probs.shape[0]} probabilities for {videos.shape[0]} videos"
        )
    return torch.cat([features, probs], dim=1).cpu().numpy()


def _split(rows: np.ndarray, feature_size: int) -> Features:
    return Features(features=rows[:, :feature_size], probs=rows[:, feature_size:])


@torch.no_grad()
def _classify_generated(
    generator: VideoGenerator,
    classifier: VideoClassifier,
    *,
    samples: int,
    loop: int,
    seed: int,
    batch_size: int,
    device: torch.device,
    ranks: _Ranks,
    bar: Any,
) -> Features:
    times = generator.spec.times(device)
    batches = ranks.batches(samples, batch_size)
    rows = []
    for batch in ranks.mine(batches):
        z, noise = sample_latents(generator, batch, times, seed=seed, loop=loop)
        noise = None if noise is None else noise.to(device)
        videos = generator(z.to(device), times, noise=noise)
        rows.append(_outputs(classifier, videos.float()))
        bar.update(1)
    local = np.concatenate(rows) if rows else np.zeros((0, _width(classifier)), np.float32)
    return _split(ranks.gather(local, batches), classifier.feature_size)


def _width(classifier: VideoClassifier) -> int:
    return int(classifier.feature_size) + int(classifier.num_classes)
