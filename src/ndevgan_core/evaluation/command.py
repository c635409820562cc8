"""``ndevgan eval``: score a checkpoint, print a table, write JSON."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import torch

from ndevgan_core.config import config_to_dict
from ndevgan_core.contracts import (
    MetricResult,
    VideoDataset,
    VideoGenerator,
)
from ndevgan_core.errors import ConfigError
from ndevgan_core.files import output_problem, write_json_atomic
from ndevgan_core.hookspecs import hookimpl
from ndevgan_core.options import (
    OutputPath,
    device_option,
    progress_option,
    stats_cache_option,
)
from ndevgan_core.registry import Registry, default_registry, qualify

from .classify import sample_latents
from .scoring import _build_metrics, _eval_mode, _resolve_classifier, evaluate


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
    "--classifier",
    "--c3d",
    "weights",
    type=click.Path(dir_okay=False),
    metavar="WEIGHTS",
    help="Classifier weights, opened by the metric plugin that reads their format (built in: "
    "C3D from `ndevgan metrics import-c3d`, StyleGAN-V's c3d_ucf101.pt, a shapes "
    "classifier). Default: the dataset's built-in classifier.",
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
@stats_cache_option
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


def quick_score(run_dir: Path, samples: int, device: str, progress: bool) -> list[str]:
    """``run.final_score``: IS and FID of a finished run's generator on ``samples`` videos
    with its dataset's built-in classifier, as the lines ``ndevgan run`` prints last (a
    quick check: the figures people quote come from ``ndevgan eval`` on 2,048)."""
    from ndevgan_core.devices import resolve_device
    from ndevgan_core.training.api import load_generator

    registry = default_registry()
    torch_device = resolve_device(device, "run.device")
    loaded = load_generator(str(run_dir), registry, device=torch_device)
    dataset, name, _ = load_dataset_of(loaded.config, registry)
    if dataset.reference_classifier() is None:
        return [
            f"no quick score: {name} has no built-in classifier (score with `ndevgan eval "
            f"{run_dir} --classifier WEIGHTS`)"
        ]
    results = evaluate(
        loaded.generator,
        ("metric.is", "metric.fid"),
        dataset=dataset,
        samples=samples,
        device=torch_device,
        progress=progress,
        registry=registry,
    )
    lines = [
        f"quick score at step {loaded.step:,} ({samples:,} videos, {name}'s classifier; "
        f"2,048: ndevgan eval {run_dir}):"
    ]
    lines += [result_line(key, result, 3) for key, result in results.items()]
    return lines


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
