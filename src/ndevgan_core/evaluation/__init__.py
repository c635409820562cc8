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

from ndevgan_core.contracts import Features, FeatureStats, Metric, MetricResult

from .classify import load_video_classifier, sample_latents
from .command import eval_command, load_dataset_of, result_line, scored_samples
from .scoring import evaluate, higher_is_better
from .statistics import (
    CACHE_ENV,
    StatsCacheWarning,
    dataset_name,
    default_stats_cache,
    read_stats,
    real_feature_stats,
    real_indices,
    stats_key,
    stats_path,
    write_stats,
)

__all__ = [
    "CACHE_ENV",
    "FeatureStats",
    "Features",
    "Metric",
    "MetricResult",
    "StatsCacheWarning",
    "dataset_name",
    "default_stats_cache",
    "eval_command",
    "evaluate",
    "higher_is_better",
    "load_dataset_of",
    "load_video_classifier",
    "read_stats",
    "real_feature_stats",
    "real_indices",
    "result_line",
    "sample_latents",
    "scored_samples",
    "stats_key",
    "stats_path",
    "write_stats",
]
