"""``metric.is`` and ``metric.fid``, the classifier files they score with, ``ndevgan metrics``.

The metrics (docs/FIDELITY.md, "Scoring") work on what
:func:`ndevgan_core.evaluation.evaluate` gathers
from a :class:`~ndevgan_core.VideoClassifier`:

* ``metric.is``: Inception Score ``exp(E KL(p(y|x) ‖ p(y)))`` of the class probabilities.
  Protocol ``tganv2``: one split per loop of N samples, mean ± std over the loops (TGANv2:
  2048 × 10). Protocol ``stylegan-v``: the N probabilities shuffled with
  ``np.random.RandomState(42)`` and cut at ``i·N // S`` into S splits, mean ± std over the
  splits — what StyleGAN-V's ``video_inception_score.py`` does (2048, S = 10).
* ``metric.fid``: Fréchet distance between the features (C3D fc7) of each loop's generated
  videos and of real clips (statistics cached by the core), mean ± std over the loops.

Classifier files (:func:`load_classifier`, also the ``load_video_classifier`` hook):

* ``ndevgan.c3d``: the UCF101 C3D converted from TGANv2's Chainer npz by ``ndevgan metrics
  import-c3d`` — features fc7 (4096), probabilities softmax(fc8) (101).
* StyleGAN-V's TorchScript ``c3d_ucf101.pt``: it takes uint8 videos (B, 3, 16, H, W) and
  does its own preprocessing; our [-1, 1] videos become ``(x·127.5 + 128).clamp(0, 255)``
  as uint8, as StyleGAN-V's generator side does. StyleGAN-V calls it with no keyword
  arguments and reads the output as probabilities; when the scripted ``forward`` also takes
  ``return_features`` (the keyword of StyleGAN-V's I3D detector), features come from a
  second call with ``return_features=True``, and ``return_probs=True`` is passed when
  accepted. Without ``return_features`` it serves IS only. A TorchScript file is code: load
  only files from a source you trust.
* ``ndevgan.shapes-c3d``: the small classifier shipped for ``dataset.shapes``
  (:mod:`ndevgan_plugins.shapes_classifier`).

Commands::

    ndevgan metrics import-c3d --weights conv3d_deepnetA_ucf.npz --mean mean2.npz \\
        --out c3d_ucf101.pt
    ndevgan metrics stats RUN_OR_CHECKPOINT [--c3d WEIGHTS] [--n 2048]  # compute / reuse cache
    ndevgan metrics stats FILE.npz                                       # inspect a cache file
"""

from __future__ import annotations

import hashlib
import itertools
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import click
import numpy as np
import torch

import ndevgan_core as nd
from ndevgan_core import Features, FeatureStats, Metric, MetricResult, one_of, option, positive

from . import c3d

__all__ = [
    "C3DClassifier",
    "FIDConfig",
    "FrechetDistance",
    "ISConfig",
    "InceptionScore",
    "ScriptedDetector",
    "file_digest",
    "load_classifier",
    "stylegan_v_inception_score",
]

_SHAPES_FORMAT = "ndevgan.shapes-c3d"
_EXPECTED_FILES = (
    "an 'ndevgan.c3d' torch file from `ndevgan metrics import-c3d` (keys format, version, "
    f"state_dict with {', '.join(sorted(c3d.C3D_SHAPES)[:3])} … in the shapes of "
    "ndevgan_plugins.c3d.C3D_SHAPES, mean (3, 16, 128, 171)), StyleGAN-V's TorchScript "
    f"c3d_ucf101.pt, or an '{_SHAPES_FORMAT}' file"
)
_STYLEGAN_V_SHUFFLE_SEED = 42


# --------------------------------------------------------------------------------------------
# Metrics


@attrs.frozen
class ISConfig:
    """Options of ``metric.is``."""

    protocol: str = option(
        "tganv2",
        "tganv2: one split per loop of N samples, mean ± std over loops; stylegan-v: N samples "
        "shuffled (seed 42) into `splits` splits, mean ± std over splits",
        one_of("tganv2", "stylegan-v"),
    )
    splits: int = option(10, "splits of the N samples (protocol stylegan-v)", positive)


@attrs.frozen
class FIDConfig:
    """Options of ``metric.fid`` (none: the number of loops and samples are the evaluation's;
    real statistics use as many real clips as generated samples)."""


def stylegan_v_inception_score(probs: np.ndarray, splits: int) -> list[float]:
    """The per-split scores of StyleGAN-V's video IS: shuffle the rows with
    ``np.random.RandomState(42)``, cut at ``i·N // splits``, one IS per part."""
    p = np.array(probs, dtype=np.float64)
    n = p.shape[0]
    if not 1 <= splits <= n:
        raise nd.ConfigError(f"metric.is.splits: expected 1 … {n} (the samples), got {splits}")
    np.random.RandomState(_STYLEGAN_V_SHUFFLE_SEED).shuffle(p)
    bounds = [i * n // splits for i in range(splits + 1)]
    return [c3d.inception_score(p[a:b])[0] for a, b in itertools.pairwise(bounds)]


def _result(values: Sequence[float], protocol: str) -> MetricResult:
    array = np.asarray(values, dtype=np.float64)
    return MetricResult(float(array.mean()), float(array.std()), tuple(map(float, array)), protocol)


def _loops_text(fake: Sequence[Features]) -> str:
    loops = len(fake)
    return f"{fake[0].count} samples x {loops} loop{'s' if loops != 1 else ''}"


class InceptionScore(Metric):
    """``metric.is``: the Inception Score under the TGANv2 or StyleGAN-V protocol."""

    def __init__(self, config: ISConfig) -> None:
        self.config = config

    def score(self, fake: Sequence[Features], real: FeatureStats | None) -> MetricResult:
        """IS of each loop's probabilities, aggregated as the protocol says."""
        if self.config.protocol == "tganv2":
            values = [c3d.inception_score(f.probs)[0] for f in fake]
            return _result(values, f"tganv2: {_loops_text(fake)}, one split each")
        values = [v for f in fake for v in stylegan_v_inception_score(f.probs, self.config.splits)]
        text = f"stylegan-v: {_loops_text(fake)}, {self.config.splits} splits each"
        return _result(values, text)


class FrechetDistance(Metric):
    """``metric.fid``: Fréchet distance of classifier features, generated against real."""

    needs_real = True
    needs_features = True
    higher_is_better = False
    figure = "fid"
    """The figure's short name, in messages and the protocol text (``fvd`` in a subclass)."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def score(self, fake: Sequence[Features], real: FeatureStats | None) -> MetricResult:
        """The distance of each loop's features to the real statistics; mean ± std over loops."""
        if real is None:
            raise nd.ConfigError(f"metric.{self.figure} needs the statistics of real clips")
        values = []
        for f in fake:
            stats = FeatureStats.from_features(f.features)
            values.append(c3d.frechet_distance(stats.mean, stats.cov, real.mean, real.cov))
        return _result(values, f"{self.figure}: {_loops_text(fake)} vs {real.count} real clips")


# --------------------------------------------------------------------------------------------
# Classifiers


def file_digest(path: str | Path) -> str:
    """The first 16 hex digits of the SHA-256 of a file: a classifier's ``weights_id``."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


class C3DClassifier(nd.VideoClassifier):
    """The UCF101 C3D as a :class:`~ndevgan_core.VideoClassifier`: :func:`c3d.preprocess`,
    then :class:`c3d.C3D`; features are fc7 (4096), probabilities softmax(fc8).

    Args:
        state: a :class:`c3d.C3D` state dict.
        mean: the mean clip (3, 16, 128, 171), or cropped (3, 16, 128, 128).
        weights_id: identifies the weights (the digest of their file).
        dropout_compat: keep dropout on while scoring (the TGAN/paper code's behaviour).
        preprocessing: ``tgan`` (the paper's code) or ``tganv2`` (tgan2's scoring).
    """

    def __init__(
        self,
        state: dict[str, torch.Tensor],
        mean: torch.Tensor,
        weights_id: str,
        dropout_compat: bool = False,
        preprocessing: str = "tgan",
    ) -> None:
        super().__init__()
        self.preprocessing = preprocessing
        num_classes = int(state["fc8.weight"].shape[0])
        with torch.device("meta"):
            self.net = c3d.C3D(dropout_compat=dropout_compat, num_classes=num_classes)
        self.net.load_state_dict(state, strict=True, assign=True)
        self.register_buffer("mean", mean.float().clone(), persistent=False)
        self.num_classes = num_classes
        self.feature_size = int(state["fc7.weight"].shape[0])
        # dropout changes the features: real-data statistics are cached per setting
        self.weights_id = weights_id + ("-dropout" if dropout_compat else "")
        self.eval()

    def forward(self, videos: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"features": fc7, "probs": softmax(fc8)}`` of videos (B, 3, 16, H, W) in [-1, 1]."""
        out = self.net(c3d.preprocess(videos, self.mean, self.preprocessing))
        return {"features": out["fc7"], "probs": out["probs"]}


def _to_uint8(videos: torch.Tensor) -> torch.Tensor:
    return (videos * 127.5 + 128).clamp(0, 255).to(torch.uint8)


class ScriptedDetector(nd.VideoClassifier):
    """A TorchScript video classifier with StyleGAN-V's detector interface (its
    ``c3d_ucf101.pt``, or the I3D ``i3d_torchscript.pt`` its FVD uses):
    ``detector(uint8 videos (B, 3, T, H, W)) → probabilities``, and with
    ``return_features=True`` → features when its ``forward`` takes that keyword. A detector
    whose ``forward`` takes ``rescale`` and ``resize`` (I3D's) is called with both true, as
    StyleGAN-V's FVD calls it: uint8 rescaled to [-1, 1] and resized to its input size inside.

    ``num_classes`` and ``feature_size`` (0 when it gives no features) are read from one
    probe clip of zeros (1, 3, 16, 112, 112) when the file is opened.
    """

    def __init__(self, module: torch.jit.ScriptModule, weights_id: str, source: str) -> None:
        super().__init__()
        self.detector = module
        self.weights_id = weights_id
        keywords = {a.name for a in module.forward.schema.arguments}
        self._input_kwargs = (
            {"rescale": True, "resize": True} if {"rescale", "resize"} <= keywords else {}
        )
        self._probs_kwargs = {"return_probs": True} if "return_probs" in keywords else {}
        self._features = "return_features" in keywords
        probe = torch.zeros(1, 3, 16, 112, 112, dtype=torch.uint8)
        try:
            with torch.no_grad():
                probs = self._run(probe)
                features = self._run(probe, return_features=True) if self._features else None
        except Exception as exc:
            raise nd.ConfigError(
                f"{source}: the TorchScript detector fails on a uint8 clip (1, 3, 16, 112, 112) "
                f"— expected StyleGAN-V's c3d_ucf101.pt interface ({exc})"
            ) from None
        if probs.dim() != 2 or (features is not None and features.dim() != 2):
            raise nd.ConfigError(
                f"{source}: the TorchScript detector must return (B, K) probabilities "
                f"(and (B, F) features); got {tuple(probs.shape)}"
            )
        self.num_classes = int(probs.shape[1])
        self.feature_size = int(features.shape[1]) if features is not None else 0
        self.eval()

    def _run(self, videos: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        if return_features:
            return self.detector(videos, return_features=True, **self._input_kwargs)
        return self.detector(videos, **self._probs_kwargs, **self._input_kwargs)

    def forward(self, videos: torch.Tensor) -> dict[str, torch.Tensor]:
        """Probabilities (and features, if the detector has them) of [-1, 1] videos."""
        x = _to_uint8(videos)
        probs = self._run(x).float()
        if self._features:
            features = self._run(x, return_features=True).float()
        else:
            features = probs.new_zeros((probs.shape[0], 0))
        return {"features": features, "probs": probs}


def _zip_names(path: Path) -> list[str] | None:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None


def _peek_format(path: Path) -> Any:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise nd.ConfigError(
            f"{path}: cannot read as a torch file ({str(exc).splitlines()[0]}); expected "
            f"{_EXPECTED_FILES}"
        ) from None
    if not isinstance(payload, dict) or "format" not in payload:
        keys = sorted(map(str, payload))[:6] if isinstance(payload, dict) else type(payload)
        raise nd.ConfigError(
            f"{path}: a torch file without a 'format' entry (found {keys}); expected "
            f"{_EXPECTED_FILES}"
        )
    return payload["format"]


def _open(path: Path, dropout_compat: bool) -> nd.VideoClassifier | None:
    """The classifier in ``path``, None when it is a format this module does not know."""
    if not path.is_file():
        raise nd.ConfigError(f"classifier weights {path} not found")
    names = _zip_names(path)
    if names is None:
        return None
    if names and all(n.endswith(".npy") for n in names):
        raise nd.ConfigError(
            f"{path} is a numpy npz (the Chainer C3D?); convert it first: ndevgan metrics "
            f"import-c3d --weights {path.name} --mean mean2.npz --out c3d_ucf101.pt"
        )
    if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise nd.ConfigError(f"{path}: not a loadable TorchScript file ({exc})") from None
        return ScriptedDetector(module, file_digest(path), str(path))
    fmt = _peek_format(path)
    if fmt == "ndevgan.c3d":
        state, mean, preprocessing = c3d.read_c3d(path)
        return C3DClassifier(
            state, mean, file_digest(path), dropout_compat, preprocessing=preprocessing
        )
    if fmt == _SHAPES_FORMAT:
        from . import shapes_classifier

        return shapes_classifier.load_shapes_classifier(path)
    return None


def load_classifier(path: str | Path, dropout_compat: bool = False) -> nd.VideoClassifier:
    """Open a classifier file of any format this plugin reads (see the module docstring).

    Args:
        path: the weights file.
        dropout_compat: keep C3D dropout on while scoring (ignored by the other formats).

    Raises:
        ConfigError: missing, unreadable or incomplete, naming the file and what was expected.
    """
    path = Path(path)
    classifier = _open(path, dropout_compat)
    if classifier is None:
        raise nd.ConfigError(
            f"{path}: not a classifier file this plugin reads; expected {_EXPECTED_FILES}"
        )
    return classifier.eval()


@nd.hookimpl
def load_video_classifier(path: Path, options: Mapping[str, Any]) -> nd.VideoClassifier | None:
    """The core's door to :func:`load_classifier` (None for formats of other plugins)."""
    unknown = sorted(set(options) - {"dropout_compat"})
    classifier = _open(Path(path), bool(options.get("dropout_compat", False)))
    if classifier is not None and unknown:
        raise nd.ConfigError(
            f"classifier options {', '.join(unknown)}: {path} is read by ndevgan's C3D/shapes "
            "plugin, whose only option is dropout_compat"
        )
    return classifier


@nd.hookimpl
def register_components(register: Any) -> None:
    """Register ``metric.is`` and ``metric.fid``."""
    register("metric.is", InceptionScore, ISConfig)
    register("metric.fid", FrechetDistance, FIDConfig)


# --------------------------------------------------------------------------------------------
# ndevgan metrics


@click.group("metrics")
def metrics_group() -> None:
    """C3D weights and cached real-data statistics for IS and FID."""


@metrics_group.command("import-c3d")
@click.option(
    "--weights",
    required=True,
    type=click.Path(dir_okay=False),
    help="conv3d_deepnetA_ucf.npz (TGANv2's Chainer C3D; read with numpy).",
)
@click.option(
    "--mean", "mean_path", required=True, type=click.Path(dir_okay=False), help="mean2.npz"
)
@click.option(
    "--out",
    default="c3d_ucf101.pt",
    show_default=True,
    type=nd.OutputPath(),
    help="The converted file (an 'ndevgan.c3d' torch file, tensors only).",
)
@click.option(
    "--preprocess",
    type=click.Choice(c3d.PREPROCESSING),
    default="tgan",
    show_default=True,
    help="The input pipeline scoring with this file uses: tgan (TGAN v1 and the paper's code: "
    "bicubic to 128, centre crop) or tganv2 (tgan2's scoring: bilinear straight to 112, "
    "off-centre mean window), to compare with TGANv2's own numbers.",
)
def import_c3d(weights: str, mean_path: str, out: str, preprocess: str) -> None:
    """Convert the Chainer C3D weights and mean clip into a file `ndevgan eval --c3d` reads."""
    state, mean = c3d.load_chainer_npz(weights, mean_path)
    c3d.save_c3d(out, state, mean, preprocessing=preprocess)
    params = sum(v.numel() for v in state.values())
    click.echo(
        f"wrote {out}: C3D, {params:,} parameters, {state['fc8.weight'].shape[0]} classes, "
        f"mean clip {tuple(mean.shape)}, {preprocess} preprocessing; weights_id "
        f"{file_digest(out)}"
    )


def _describe_stats(path: Path) -> None:
    import json

    from ndevgan_core import read_stats

    stats = read_stats(path)
    with np.load(path, allow_pickle=False) as data:
        key = json.loads(str(data["key"]))
    click.echo(f"{path}")
    for name in ("dataset", "options", "clip", "length", "weights_id", "samples"):
        click.echo(f"  {name}: {key.get(name)}")
    click.echo(
        f"  features: {stats.mean.shape[0]}, clips: {stats.count}, |mean| "
        f"{np.linalg.norm(stats.mean):.4g}, trace(cov) {np.trace(stats.cov):.4g}"
    )


@metrics_group.command("stats")
@click.argument("target", type=click.Path(exists=True))
@click.option(
    "--classifier",
    "--c3d",
    "weights",
    type=click.Path(dir_okay=False),
    help="Classifier weights, as `ndevgan eval --classifier` (default: the dataset's built-in "
    "classifier).",
)
@click.option(
    "--n",
    "samples",
    default=2048,
    show_default=True,
    type=click.IntRange(min=2),
    help="Real clips (as many as `ndevgan eval --n` generates).",
)
@click.option(
    "--batch-size",
    default=32,
    show_default=True,
    type=click.IntRange(min=1),
    help="Videos per classifier batch.",
)
@nd.device_option
@nd.stats_cache_option
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="dataset.NAME.KEY=VALUE",
    help="Change an option of the run's dataset.",
)
@nd.progress_option
def stats_command(
    target: str,
    weights: str | None,
    samples: int,
    batch_size: int,
    device: str,
    stats_cache: str | None,
    overrides: tuple[str, ...],
    progress: bool,
) -> None:
    """Compute (or find in the cache) the real-data FID statistics of a run's dataset, or show
    what a cached statistics file (.npz) holds."""
    from ndevgan_core import (
        default_registry,
        load_checkpoint,
        load_dataset_of,
        real_feature_stats,
        resolve_device,
    )
    from ndevgan_core import resolve_config as resolve

    path = Path(target)
    if path.is_file() and path.suffix == ".npz":
        _describe_stats(path)
        return
    registry = default_registry()
    config = resolve(load_checkpoint(path)["config"], registry)
    dataset, name, _ = load_dataset_of(config, registry, overrides)
    source = weights or dataset.reference_classifier()
    if source is None:
        raise nd.ConfigError(f"{name} has no built-in classifier; pass --c3d WEIGHTS")
    torch_device = resolve_device(device, "--device")
    classifier = load_classifier(source).to(torch_device)
    stats, where = real_feature_stats(
        dataset,
        classifier,
        samples,
        batch_size=batch_size,
        device=torch_device,
        stats_cache=stats_cache,
        progress=progress,
        registry=registry,
    )
    click.echo(f"{name}: {stats.count} clips, {stats.mean.shape[0]} features → {where}")


@nd.hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``ndevgan metrics``."""
    cli.add_command(metrics_group)
