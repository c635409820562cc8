"""``evaluate``: a generator's figures under the registered metrics."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ndevgan_core.config import build_config
from ndevgan_core.contracts import (
    Metric,
    MetricResult,
    VideoClassifier,
    VideoDataset,
    VideoGenerator,
)
from ndevgan_core.errors import ConfigError, PluginError
from ndevgan_core.progress import progress_bar
from ndevgan_core.registry import Registry, default_registry, qualify

from .classify import _classify_generated, _Ranks, load_video_classifier
from .statistics import dataset_name, real_feature_stats


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
                f"{dataset_name(dataset, registry)} has no built-in classifier; pass --classifier "
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
    for metric in chosen.values():
        metric.check_generator(generator)
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
