"""Scoring a generator: the evaluation pipeline behind ``ndevgan eval`` (IS, FID, …).

The core knows no classifier network and no metric formula. It generates videos, runs them
through a :class:`~ndevgan_core.contracts.VideoClassifier` batch by batch, keeps only the
classifier's outputs (:class:`Features`), and hands them to :class:`Metric` components
(``metric.is``, ``metric.fid``, or a third party's) registered like every other plugin. A
classifier file (C3D weights, the small shapes classifier, …) is opened by whichever plugin
implements the ``load_video_classifier`` hook; the core imports the metric plugins through the
registry before asking, never by name.

Reproducibility: sample ``i`` of loop ``l`` has its own CPU random generator seeded from
``(seed, l, i)``, which draws its latent and then (for a stochastic temporal generator) its
noise. A score therefore depends on the seed only — not on the batch size, the device or the
number of processes. Under ``torch.distributed`` (``distributed=True``) the batches are dealt
round-robin to the ranks and the outputs all-gathered, so every rank returns what a single
process returns.

Real-data statistics for FID (mean and covariance in float64 of the classifier features of
``samples`` real clips, chosen by a fixed permutation of the dataset) are cached as ``.npz``
files in ``stats_cache`` (default ``$NDEVGAN_CACHE/fid-stats``, else
``~/.cache/ndevgan/fid-stats``), keyed by the dataset plugin and its options, the clip shape,
the classifier's ``weights_id`` and the sample count.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import click
import numpy as np
import torch

from ndevgan_core.config import build_config, config_to_dict
from ndevgan_core.contracts import (
    Features,
    FeatureStats,
    Metric,
    MetricResult,
    VideoClassifier,
    VideoDataset,
    VideoGenerator,
    normalise_videos,
)
from ndevgan_core.errors import ConfigError, PluginError
from ndevgan_core.files import atomic_open, output_problem, write_json_atomic
from ndevgan_core.hookspecs import hookimpl
from ndevgan_core.options import OutputPath, device_option, progress_option
from ndevgan_core.progress import progress_bar
from ndevgan_core.registry import Registry, default_registry, qualify

__all__ = [
    "CACHE_ENV",
    "FeatureStats",
    "Features",
    "Metric",
    "MetricResult",
    "StatsCacheWarning",
    "default_stats_cache",
    "evaluate",
    "higher_is_better",
    "load_video_classifier",
    "real_feature_stats",
    "sample_latents",
    "scored_samples",
]

CACHE_ENV = "NDEVGAN_CACHE"
"""Environment variable naming ndevgan's cache directory (FID statistics go in ``fid-stats``)."""

_REAL_SELECTION_SEED = 20_171_225
"""Seed of the permutation that picks real clips; part of the cache's meaning, never change."""
_STATS_FORMAT = "ndevgan.fid-stats"


class StatsCacheWarning(UserWarning):
    """A cached real-data statistics file was unreadable or inconsistent and is recomputed."""


# --------------------------------------------------------------------------------------------
# Classifiers from files, through the plugins


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


# --------------------------------------------------------------------------------------------
# Seeds and distribution


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


# --------------------------------------------------------------------------------------------
# Running the classifier


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


# --------------------------------------------------------------------------------------------
# Real-data statistics and their cache


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


# --------------------------------------------------------------------------------------------
# evaluate


@contextlib.contextmanager
def _eval_mode(module: torch.nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _build_metrics(
    names: Sequence[str], options: Mapping[str, Mapping[str, Any]], registry: Registry
) -> dict[str, Metric]:
    metrics: dict[str, Metric] = {}
    known = {qualify(k, "metric") for k in options}
    for name in names:
        component = registry.get(name, "metric")
        config = build_config(
            component.config_class, options.get(component.name, {}), component.name
        )
        metric = component.factory(config)
        if not isinstance(metric, Metric):
            raise PluginError(
                f"{component.provider.describe()}: {component.name} must build an "
                f"ndevgan_core.Metric, got {type(metric).__name__}"
            )
        metrics[component.name] = metric
        known.discard(component.name)
    if known:
        raise ConfigError(f"options given for {', '.join(sorted(known))}, which is not evaluated")
    return metrics


def higher_is_better(metric: str, registry: Registry | None = None) -> bool:
    """Whether a larger value of ``metric`` (``is``, ``metric.fid``, …) is better, as its
    plugin's :class:`~ndevgan_core.Metric` declares."""
    registry = registry or default_registry()
    component = registry.get(qualify(metric, "metric"), "metric")
    built = component.factory(build_config(component.config_class, {}, component.name))
    return bool(built.higher_is_better)


def _resolve_classifier(
    classifier: str | Path | VideoClassifier | None,
    dataset: VideoDataset | None,
    registry: Registry,
    options: Mapping[str, Any] | None,
) -> VideoClassifier:
    if isinstance(classifier, VideoClassifier):
        return classifier
    if classifier is None:
        if dataset is None:
            raise ConfigError(
                "no classifier to score with: pass classifier= (weights file) or a dataset "
                "whose plugin ships one"
            )
        classifier = dataset.reference_classifier()
        if classifier is None:
            raise ConfigError(
                f"{dataset_name(dataset, registry)} has no built-in classifier; pass --c3d "
                "WEIGHTS (C3D converted by `ndevgan metrics import-c3d`, or StyleGAN-V's "
                "c3d_ucf101.pt)"
            )
    return load_video_classifier(classifier, registry=registry, options=options)


def evaluate(
    generator: VideoGenerator,
    metrics: Sequence[str] = ("is",),
    *,
    dataset: VideoDataset | None = None,
    classifier: str | Path | VideoClassifier | None = None,
    samples: int = 2048,
    loops: int = 1,
    batch_size: int = 32,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    registry: Registry | None = None,
    stats_cache: str | Path | None = None,
    classifier_options: Mapping[str, Any] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    distributed: bool = False,
) -> dict[str, MetricResult]:
    """Score ``generator`` with ``metrics`` and return ``{"is": MetricResult, …}``.

    Args:
        generator: the video generator (put in eval mode for the duration, then restored).
        metrics: metric components, short (``"is"``, ``"fid"``) or qualified
            (``"metric.is"``); result keys are the short names.
        dataset: real clips; needed by metrics that compare with real data (FID), and its
            ``reference_classifier()`` is the default classifier.
        classifier: a :class:`VideoClassifier`, or a weights file opened by the plugin that
            reads it (:func:`load_video_classifier`); None: the dataset's reference classifier.
        samples: generated videos per loop (and real clips for the statistics).
        loops: independent batches of ``samples`` videos (a new seed each); metrics report
            mean ± std over them (or over their splits, as their protocol says).
        batch_size: videos per generator/classifier batch (does not change the result).
        seed: the seed of every latent and noise draw (see :func:`sample_latents`).
        device: where to generate and classify; default the generator's device.
        progress: show progress bars (on rank 0).
        registry: where metric components come from (default: the process registry).
        stats_cache: directory of cached real-data statistics (default
            :func:`default_stats_cache`).
        classifier_options: options for the plugin that opens a classifier file, e.g.
            ``{"dropout_compat": True}`` (C3D with dropout on, as the paper's scoring code).
        options: per-metric options, e.g. ``{"metric.is": {"protocol": "stylegan-v"}}``.
        distributed: when torch.distributed is initialised, every rank calls this with the
            same arguments; each generates and classifies its share, the outputs are
            gathered, and every rank returns the single-process result.

    Raises:
        ConfigError: bad counts, unknown metric options, FID without a dataset, no classifier.
    """
    registry = registry or default_registry()
    for label, value, least in (
        ("samples", samples, 2),
        ("loops", loops, 1),
        ("batch_size", batch_size, 1),
    ):
        if not isinstance(value, int) or value < least:
            raise ConfigError(f"evaluate: {label} must be an integer >= {least}, got {value!r}")
    if seed < 0:
        raise ConfigError(f"evaluate: seed must be >= 0, got {seed}")
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    chosen = _build_metrics(names, options or {}, registry)
    if not chosen:
        raise ConfigError("evaluate: no metric to compute")
    needing_real = [n for n, m in chosen.items() if m.needs_real]
    if needing_real and dataset is None:
        raise ConfigError(f"{', '.join(needing_real)} compares with real clips: pass a dataset")
    net = _resolve_classifier(classifier, dataset, registry, classifier_options)
    needing_features = [n for n, m in chosen.items() if m.needs_features]
    if needing_features and net.feature_size < 1:
        raise ConfigError(
            f"{', '.join(needing_features)} needs classifier features, but the classifier "
            f"({net.weights_id}) gives class probabilities only"
        )
    if device is None:
        first = next(generator.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    ranks = _Ranks.current(distributed)
    net = net.to(device)
    fakes = []
    per_loop = len(ranks.mine(ranks.batches(samples, batch_size)))
    with (
        _eval_mode(generator),
        progress_bar(
            total=per_loop * loops,
            disable=not (progress and ranks.is_main),
            desc="eval: generated",
            unit="batch",
        ) as bar,
    ):
        for loop in range(loops):
            fakes.append(
                _classify_generated(
                    generator,
                    net,
                    samples=samples,
                    loop=loop,
                    seed=seed,
                    batch_size=batch_size,
                    device=device,
                    ranks=ranks,
                    bar=bar,
                )
            )
    real = None
    if needing_real:
        assert dataset is not None
        real, _ = real_feature_stats(
            dataset,
            net,
            samples,
            batch_size=batch_size,
            device=device,
            stats_cache=stats_cache,
            progress=progress,
            registry=registry,
            distributed=distributed,
        )
    results = {}
    for name, metric in chosen.items():
        results[name.split(".", 1)[1]] = metric.score(fakes, real if metric.needs_real else None)
    return results


# --------------------------------------------------------------------------------------------
# ndevgan eval


def _default_out(checkpoint: Path, step: int) -> Path:
    if checkpoint.is_dir():
        run_dir = checkpoint
    elif checkpoint.parent.name == "checkpoints":
        run_dir = checkpoint.parent.parent
    else:
        return Path(f"eval-step-{step:08d}.json")
    return run_dir / "eval" / f"step-{step:08d}.json"


def load_dataset_of(
    config: Any, registry: Registry, overrides: Sequence[str] = ()
) -> tuple[VideoDataset, str, dict[str, Any]]:
    """The dataset a checkpoint's resolved ``config`` trained on, with ``--set
    dataset.NAME.KEY=VALUE`` overrides; returns it with its plugin name and options."""
    from ndevgan_core.config import parse_override, set_nested
    from ndevgan_core.runconfig import resolve

    raw = config.to_dict()
    for expr in overrides:
        path, value = parse_override(expr)
        if path[0] != "dataset":
            raise ConfigError(f"--set {expr}: only dataset.NAME.KEY=VALUE options may be set here")
        set_nested(raw, path, value)
    if overrides:
        config = resolve(raw, registry)
    name, options = config.component("dataset")
    backbone_name, backbone_config = config.component("backbone")
    spec = registry.create(backbone_name, backbone_config).video_spec()
    try:
        dataset = registry.create(name, options, spec)
    except ConfigError as exc:
        raise ConfigError(
            f"{exc} (the checkpoint's dataset; change its options with --set {name}.KEY=VALUE)"
        ) from None
    return dataset, name, config_to_dict(options)


@torch.no_grad()
def scored_samples(
    generator: VideoGenerator, count: int = 8, seed: int = 0, device: torch.device | None = None
) -> torch.Tensor:
    """The first ``count`` videos :func:`evaluate` scores in loop 0 for ``seed`` (the same
    latents and noise), as (N, C, T, H, W) in [-1, 1] on the CPU — to look at what was scored."""
    first = next(generator.parameters(), None)
    device = device or (first.device if first is not None else torch.device("cpu"))
    times = generator.spec.times(device)
    with _eval_mode(generator):
        z, noise = sample_latents(generator, range(count), times, seed=seed)
        videos = generator(z.to(device), times, noise=None if noise is None else noise.to(device))
    return videos.float().cpu()


def _format(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"


def _split_overrides(
    overrides: Sequence[str],
) -> tuple[dict[str, dict[str, Any]], dict[str, Any], list[str]]:
    """``eval --set`` options → (metric options by plugin, classifier options, the
    ``dataset.*`` expressions)."""
    from ndevgan_core.config import parse_override

    metrics: dict[str, dict[str, Any]] = {}
    classifier: dict[str, Any] = {}
    dataset: list[str] = []
    for expr in overrides:
        path, value = parse_override(expr)
        if path[0] == "metric" and len(path) == 3:
            metrics.setdefault(f"metric.{path[1]}", {})[path[2]] = value
        elif path[0] == "classifier" and len(path) == 2:
            classifier[path[1]] = value
        elif path[0] == "dataset":
            dataset.append(expr)
        else:
            raise click.UsageError(
                f"--set {expr}: expected metric.NAME.KEY=VALUE, classifier.KEY=VALUE or "
                "dataset.NAME.KEY=VALUE"
            )
    return metrics, classifier, dataset


@click.command("eval")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option(
    "--metric",
    "metric_names",
    multiple=True,
    metavar="NAME",
    help="is, fid or another metric.* plugin; repeat for several  [default: is and fid]",
)
@click.option(
    "--c3d",
    "weights",
    type=click.Path(dir_okay=False),
    metavar="WEIGHTS",
    help="Classifier weights: C3D from `ndevgan metrics import-c3d`, StyleGAN-V's "
    "c3d_ucf101.pt, or a shapes classifier. Default: the dataset's built-in classifier.",
)
@click.option(
    "--n",
    "samples",
    default=2048,
    show_default=True,
    type=click.IntRange(min=2),
    help="Generated videos per loop (and real clips for the FID statistics).",
)
@click.option(
    "--loops",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Independent batches of N videos; mean ± std over them (TGANv2: 10).",
)
@click.option(
    "--batch-size",
    default=32,
    show_default=True,
    type=click.IntRange(min=1),
    help="Videos per generator and classifier batch (the scores do not depend on it).",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seed of the generated videos' latents (and noise).",
)
@device_option
@click.option(
    "--out",
    type=OutputPath(),
    default=None,
    help="Results JSON  [default: RUN/eval/step-N.json, or ./eval-step-N.json]",
)
@click.option(
    "--stats-cache",
    type=click.Path(file_okay=False),
    default=None,
    help=f"Directory of cached real-data statistics  [default: ${CACHE_ENV}/fid-stats or "
    "~/.cache/ndevgan/fid-stats]",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="An option of a metric (metric.is.protocol=stylegan-v, metric.is.splits=10), of the "
    "plugin that opens the classifier file (classifier.dropout_compat=true: C3D with dropout "
    "on, as the paper's scoring code) or of the checkpoint's dataset (dataset.NAME.KEY=VALUE, "
    "e.g. where its files are here).",
)
@progress_option
def eval_command(
    checkpoint: str,
    metric_names: tuple[str, ...],
    weights: str | None,
    samples: int,
    loops: int,
    batch_size: int,
    seed: int,
    device: str,
    out: str | None,
    stats_cache: str | None,
    overrides: tuple[str, ...],
    progress: bool,
) -> None:
    """Score a checkpoint (a file, or a run directory's newest) with IS and/or FID.

    Prints a table and writes JSON: every metric's mean, std, per-loop (or per-split) values
    and protocol, with the checkpoint, step, dataset and classifier they come from.
    """
    from ndevgan_core.devices import resolve_device
    from ndevgan_core.training.api import load_generator

    registry = default_registry()
    names = [qualify(n, "metric") for n in (metric_names or ("is", "fid"))]
    metric_options, classifier_options, dataset_overrides = _split_overrides(overrides)
    torch_device = resolve_device(device, "--device")
    loaded = load_generator(checkpoint, registry, device=torch_device)
    out_path = Path(out) if out else _default_out(Path(checkpoint), loaded.step)
    problem = output_problem(out_path)  # before minutes of scoring
    if problem:
        raise click.UsageError(f"cannot write the results {out_path}: {problem} (use --out)")
    needs_real = any(m.needs_real for m in _build_metrics(names, metric_options, registry).values())
    needs_dataset = weights is None or needs_real
    dataset = dataset_label = dataset_options = None
    if needs_dataset:
        dataset, dataset_label, dataset_options = load_dataset_of(
            loaded.config, registry, dataset_overrides
        )
    classifier_path = weights
    if classifier_path is None and dataset is not None:
        classifier_path = dataset.reference_classifier()
    classifier = _resolve_classifier(classifier_path, dataset, registry, classifier_options)
    results = evaluate(
        loaded.generator,
        names,
        dataset=dataset,
        classifier=classifier,
        samples=samples,
        loops=loops,
        batch_size=batch_size,
        seed=seed,
        device=torch_device,
        progress=progress,
        registry=registry,
        stats_cache=stats_cache,
        classifier_options=classifier_options,
        options=metric_options,
    )
    record = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "step": loaded.step,
        "dataset": {
            "name": dataset_label or loaded.config.plugins.dataset,
            "options": dataset_options,
        },
        "classifier": {
            "path": str(Path(classifier_path).resolve()),
            "weights_id": classifier.weights_id,
        },
        "n": samples,
        "loops": loops,
        "seed": seed,
        "device": str(torch_device),
        "classifier_options": classifier_options,
        "results": [{"metric": name, **result.to_dict()} for name, result in results.items()],
    }
    write_json_atomic(out_path, record)
    from ndevgan_core import media

    shown = scored_samples(loaded.generator, min(8, samples), seed, torch_device)
    strip = media.write_png(out_path.with_suffix(".png"), media.frame_strip(media.to_uint8(shown)))
    click.echo(f"step {loaded.step} of {checkpoint}; classifier {classifier_path}")
    width = max(len(name) for name in results)
    for name, result in results.items():
        click.echo(result_line(name, result, width))
    click.echo(f"wrote {out_path} and {strip} (the first scored videos)")


def result_line(name: str, result: MetricResult, width: int = 0) -> str:
    """One line of ``ndevgan eval``'s table: ``IS  12.3456 ± 0.1234  protocol``.

    A figure from a single batch has no spread, so it is shown without "± 0".
    """
    spread = f"± {_format(result.std):<8}" if len(result.values) > 1 else " " * 10
    return f"  {name.upper().ljust(width)}  {_format(result.mean):>10} {spread}  {result.protocol}"


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``ndevgan eval``."""
    cli.add_command(eval_command)
