"""Real-data statistics (mean and covariance of classifier features) and their cache."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from ndevgan_core.config import config_to_dict
from ndevgan_core.contracts import (
    FeatureStats,
    VideoClassifier,
    VideoDataset,
    normalise_videos,
)
from ndevgan_core.errors import ConfigError
from ndevgan_core.files import atomic_open
from ndevgan_core.progress import progress_bar
from ndevgan_core.registry import Registry, default_registry

from .classify import _outputs, _Ranks, _width

CACHE_ENV = "NDEVGAN_CACHE"
"""Environment variable naming ndevgan's cache directory (FID statistics go in ``fid-stats``)."""

_REAL_SELECTION_SEED = 20_171_225
"""Seed of the permutation that picks real clips; part of the cache's meaning, never change."""
_STATS_FORMAT = "ndevgan.fid-stats"


class StatsCacheWarning(UserWarning):
    """A cached real-data statistics file was unreadable or inconsistent and is recomputed."""


def default_stats_cache() -> Path:
    """Where real-data statistics are cached: ``$NDEVGAN_CACHE/fid-stats``, else
    ``~/.cache/ndevgan/fid-stats``."""
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "ndevgan"
    return base / "fid-stats"


def dataset_name(dataset: VideoDataset, registry: Registry | None = None) -> str:
    """The registered name of the plugin that made ``dataset`` (``dataset.shapes``), else its
    class path."""
    name = getattr(dataset, "plugin_name", None)
    if isinstance(name, str) and name:
        return name
    module = type(dataset).__module__
    for component in (registry or default_registry()).components.values():
        if component.kind == "dataset" and getattr(component.factory, "__module__", "") == module:
            return component.name
    return f"{module}.{type(dataset).__qualname__}"


def _dataset_options(dataset: VideoDataset) -> dict[str, Any]:
    config = getattr(dataset, "config", None)
    return config_to_dict(config) if config is not None and attrs.has(type(config)) else {}


def stats_key(
    dataset: VideoDataset,
    classifier: VideoClassifier,
    samples: int,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """What identifies a real-data statistics file: the dataset plugin and its options, the
    clip shape and count, the classifier's weights and the number of clips."""
    spec = dataset.spec
    return {
        "format": _STATS_FORMAT,
        "dataset": dataset_name(dataset, registry),
        "options": _dataset_options(dataset),
        "clip": [spec.channels, spec.frames, spec.height, spec.width],
        "length": len(dataset),
        "weights_id": str(classifier.weights_id),
        "samples": int(samples),
    }


def stats_path(cache_dir: str | Path, key: Mapping[str, Any]) -> Path:
    """The cache file of ``key`` in ``cache_dir`` (readable prefix + digest of the key)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    slug = "".join(c if c.isalnum() else "-" for c in str(key["dataset"]))
    weights = "".join(c for c in str(key["weights_id"]) if c.isalnum())[:12] or "weights"
    return Path(cache_dir) / f"{slug}-{weights}-n{key['samples']}-{digest}.npz"


def read_stats(path: str | Path, key: Mapping[str, Any] | None = None) -> FeatureStats:
    """Read a statistics file; with ``key``, check it is the file of that key.

    Raises:
        ConfigError: unreadable, not a statistics file, inconsistent shapes, or another key.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            stored_key = json.loads(str(data["key"]))
            mean, cov, count = data["mean"], data["cov"], int(data["count"])
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable FID statistics file ({exc})") from None
    f = mean.shape[0] if mean.ndim == 1 else -1
    if f < 1 or cov.shape != (f, f) or not np.isfinite(mean).all() or not np.isfinite(cov).all():
        raise ConfigError(
            f"{path}: expected mean (F,) and covariance (F, F) of finite numbers; got "
            f"{mean.shape} and {cov.shape}"
        )
    if key is not None and stored_key != dict(key):
        raise ConfigError(f"{path}: holds statistics of {stored_key}, not of {dict(key)}")
    return FeatureStats(mean=mean.astype(np.float64), cov=cov.astype(np.float64), count=count)


def write_stats(path: str | Path, stats: FeatureStats, key: Mapping[str, Any]) -> Path:
    """Write statistics and their key to ``path`` atomically (temporary file, then rename)."""
    with atomic_open(path, "wb") as fh:
        np.savez(
            fh,
            mean=stats.mean,
            cov=stats.cov,
            count=np.int64(stats.count),
            key=np.array(json.dumps(dict(key), sort_keys=True)),
        )
    return Path(path)


def real_indices(length: int, samples: int) -> list[int]:
    """The dataset items real statistics use: the first ``samples`` of a fixed permutation
    (all items, in that order, when the dataset is smaller)."""
    order = torch.randperm(length, generator=torch.Generator().manual_seed(_REAL_SELECTION_SEED))
    return order[: min(samples, length)].tolist()


@torch.no_grad()
def _classify_real(
    dataset: VideoDataset,
    classifier: VideoClassifier,
    indices: Sequence[int],
    *,
    batch_size: int,
    device: torch.device,
    ranks: _Ranks,
    progress: bool,
) -> np.ndarray:
    batches = ranks.batches(len(indices), batch_size)
    mine = ranks.mine(batches)
    rows = []
    with progress_bar(
        total=len(mine), disable=not progress, desc="eval: real clips", unit="batch"
    ) as bar:
        for batch in mine:
            items = [dataset[indices[i]]["video"] for i in batch]
            videos = normalise_videos(torch.stack(items).to(device))
            rows.append(_outputs(classifier, videos.float()))
            bar.update(1)
    local = np.concatenate(rows) if rows else np.zeros((0, _width(classifier)), np.float32)
    return ranks.gather(local, batches)[:, : classifier.feature_size]


def real_feature_stats(
    dataset: VideoDataset,
    classifier: VideoClassifier,
    samples: int,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    stats_cache: str | Path | None = None,
    progress: bool = True,
    registry: Registry | None = None,
    distributed: bool = False,
) -> tuple[FeatureStats, Path]:
    """The classifier-feature statistics of ``samples`` real clips, from the cache if there.

    Returns the statistics and the cache file (written atomically when computed). A cache
    file that cannot be read, or holds another key, is recomputed with a
    :class:`StatsCacheWarning`. Under ``distributed`` rank 0 reads and writes the cache and
    the ranks share the work of computing it.
    """
    ranks = _Ranks.current(distributed)
    if classifier.feature_size < 1:
        raise ConfigError(
            f"the classifier ({classifier.weights_id}) gives no features, so real-data "
            "statistics cannot be computed"
        )
    key = stats_key(dataset, classifier, min(samples, len(dataset)), registry)
    path = stats_path(stats_cache if stats_cache is not None else default_stats_cache(), key)
    f = int(classifier.feature_size)
    cached: FeatureStats | None = None
    if ranks.is_main and path.exists():
        try:
            cached = read_stats(path, key)
            if cached.mean.shape != (f,):
                raise ConfigError(f"{path}: features of size {cached.mean.shape[0]}, not {f}")
        except ConfigError as exc:
            warnings.warn(f"recomputing real-data statistics: {exc}", StatsCacheWarning, 2)
            cached = None
    shared = ranks.broadcast(cached)  # rank 0's cache hit (or None) on every rank
    if shared is not None:
        return shared, path
    indices = real_indices(len(dataset), samples)
    features = _classify_real(
        dataset,
        classifier,
        indices,
        batch_size=batch_size,
        device=torch.device(device),
        ranks=ranks,
        progress=progress and ranks.is_main,
    )
    stats = FeatureStats.from_features(features)
    if ranks.is_main:
        write_stats(path, stats, key)
    return stats, path
