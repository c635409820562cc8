"""Results: the table, CSV, plots and the comparison grid of a study."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

import ndevgan_core as nd
from ndevgan_core import media
from ndevgan_core.files import (
    atomic_path,
    write_text_atomic,
)
from ndevgan_core.registry import Registry

from .grid import (
    COMPARISON_NPZ,
    FINAL_JSON,
    METRIC_LABELS,
    METRICS,
    RUNS_DIR,
    TIMING_JSON,
    Grid,
    Protocol,
)
from .launch import _read_json, holds_result_of
from .plan import PlannedRun, _short

# Results: table, CSV, plots and the comparison grid


_FIGURE_COLUMNS = (
    "steps_per_s",
    "train_seconds",
    "best_step",
    "late_trend",
    "is_mean",
    "is_std",
    "fid_mean",
    "fid_std",
)
CSV_COLUMNS = (
    "run",
    "backbone",
    "temporal",
    "original",
    "design",
    "order",
    "seed",
    "status",
    "params_temporal",
    "params_generator",
    *_FIGURE_COLUMNS,
)


def steps_per_second(run_dir: Path) -> float | None:
    """Training steps per second: 1 / the mean ``step_time`` of ``log.jsonl`` (the GAN step
    alone; data loading, evaluation and checkpoints excluded)."""
    path = run_dir / "log.jsonl"
    if not path.is_file():
        return None
    times = []
    for line in path.read_text("utf-8").splitlines():
        try:
            value = json.loads(line).get("step_time")
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(value, (int, float)) and value > 0:
            times.append(float(value))
    return 1.0 / (sum(times) / len(times)) if times else None


def read_eval_log(run_dir: Path) -> list[dict[str, Any]]:
    """A run's ``eval.jsonl`` (the scores ``logger.eval`` recorded), oldest first."""
    path = run_dir / "eval.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text("utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


def late_trend(records: Sequence[Mapping[str, Any]], metric: str) -> float | None:
    """How fast ``metric`` still moved at the end of a run: the least-squares slope of its
    periodic scores (``records``, as :func:`read_eval_log` gives them) over the second half of
    the steps scored, per 1,000 steps. None with fewer than three scores in that half. A
    curve that has flattened has a slope near 0, well inside its spread across seeds."""
    points = [(r["step"], r[f"{metric}_mean"]) for r in records if f"{metric}_mean" in r]
    if not points:
        return None
    last = max(step for step, _ in points)
    late = [(step, value) for step, value in points if step >= last / 2]
    if len(late) < 3:
        return None
    steps, values = (np.array(column, dtype=float) for column in zip(*late))
    return float(np.polyfit(steps / 1000, values, 1)[0])


def result_rows(
    plans: Sequence[PlannedRun], out: Path, protocol: Protocol, registry: Registry
) -> list[dict[str, Any]]:
    """One row per planned run (finished or not) with the CSV's columns; ``late_trend`` is
    that of the tracked metric (the protocol's ``eval_metric``)."""
    rows = []
    for plan in plans:
        run_dir = out / RUNS_DIR / plan.run_id
        final = _read_json(run_dir / FINAL_JSON)
        if not holds_result_of(final, plan, protocol, registry):
            final = None  # another config's or protocol's: not this run's result
        timing = _read_json(run_dir / TIMING_JSON) or {}
        row: dict[str, Any] = {
            "run": plan.run_id,
            "backbone": plan.backbone,
            "temporal": plan.temporal,
            "original": plan.original,
            "design": plan.design or "",
            "order": "" if plan.order is None else plan.order,
            "seed": plan.seed,
            "status": "done" if final else "pending",
            "params_temporal": plan.params_temporal,
            "params_generator": plan.params_generator,
            "steps_per_s": steps_per_second(run_dir),
            "train_seconds": timing.get("train_seconds"),
            "best_step": final["step"] if final else None,
            "late_trend": late_trend(read_eval_log(run_dir), protocol.eval_metric)
            if final
            else None,
        }
        for metric in METRICS:
            result = (final or {}).get("metrics", {}).get(metric)
            row[f"{metric}_mean"] = result["mean"] if result else None
            row[f"{metric}_std"] = result["std"] if result else None
        rows.append(row)
    return rows


SEED_CSV_COLUMNS = ("configuration", "seeds", *_FIGURE_COLUMNS, "late_trend_std")
"""Columns of ``results_by_configuration.csv`` (a study with several seeds)."""


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1; None for one value)."""
    if not values:
        return None, None
    if len(values) == 1:
        return float(values[0]), None
    return float(np.mean(values)), float(np.std(values, ddof=1))


def seed_rows(rows: Sequence[Mapping[str, Any]], plans: Sequence[PlannedRun]) -> list[dict]:
    """One row per configuration over its finished seeds: each figure's mean and sample
    standard deviation across seeds (the spread a reader compares configurations by), the
    mean speed, training time and best step, and the late trend's mean and sample standard
    deviation. Configurations with no finished seed are left out."""
    by_run = {p.run_id: p for p in plans}
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row["status"] == "done":
            groups.setdefault(by_run[row["run"]].configuration, []).append(row)
    out = []
    for configuration, members in groups.items():
        summary: dict[str, Any] = {"configuration": configuration, "seeds": len(members)}
        for key in ("steps_per_s", "train_seconds", "best_step"):
            values = [m[key] for m in members if m[key] is not None]
            summary[key] = float(np.mean(values)) if values else None
        for metric in METRICS:
            values = [m[f"{metric}_mean"] for m in members if m[f"{metric}_mean"] is not None]
            summary[f"{metric}_mean"], summary[f"{metric}_std"] = _mean_std(values)
        trends = [m["late_trend"] for m in members if m["late_trend"] is not None]
        summary["late_trend"], summary["late_trend_std"] = _mean_std(trends)
        out.append(summary)
    return out


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def write_csv(
    path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = CSV_COLUMNS
) -> Path:
    """A CSV of ``columns`` (``results.csv``: :data:`CSV_COLUMNS`), empty where not known."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    return write_text_atomic(path, buffer.getvalue())


def _number(x: float) -> str:
    """A figure with sensible precision for a table (26,512 / 152.3 / 12.42 / 0.0123)."""
    if not math.isfinite(x):
        return str(x)
    magnitude = abs(x)
    if magnitude >= 1000:
        return f"{x:,.0f}"
    if magnitude >= 100:
        return f"{x:.1f}"
    if magnitude >= 1 or magnitude == 0:
        return f"{x:.2f}"
    return f"{x:.2g}"


def _pm(mean: float | None, std: float | None) -> str:
    """``mean ± std``, the std to the mean's decimals (so 1.00 ± 0.00, not 1.00 ± 7.6e-10);
    just ``mean`` when there is no spread (one batch: std None or exactly 0)."""
    if mean is None:
        return "—"
    text = _number(mean)
    if not std:
        return text
    if "e" in text:
        return f"{text} ± {_number(std)}"
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    return f"{text} ± {std:,.{decimals}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _trend(mean: float | None, std: float | None = None) -> str:
    """A late trend as a signed figure per 1,000 steps (± its spread across seeds)."""
    if mean is None:
        return "—"
    text = f"{mean:+.2f}"
    return text if std is None else f"{text} ± {std:.2f}"


def markdown_table(rows: Sequence[Mapping[str, Any]], tracked: str = "is") -> str:
    """The results table as Markdown (one row per run)."""
    header = (
        "| run | backbone | temporal | design | order | seed | G_t params | G params | steps/s "
        f"| train time | best step | {METRIC_LABELS[tracked]} trend | IS | FID |"
    )
    lines = [header, "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        sps = r["steps_per_s"]
        lines.append(
            "| "
            + " | ".join(
                [
                    f"`{r['run']}`",
                    _short(r["backbone"]),
                    _short(r["temporal"]) + (" (original)" if r["original"] else ""),
                    r["design"] or "—",
                    str(r["order"]) if r["order"] != "" else "—",
                    str(r["seed"]),
                    f"{r['params_temporal']:,}",
                    f"{r['params_generator']:,}",
                    "—" if sps is None else f"{sps:.2f}",
                    _duration(r["train_seconds"]),
                    "—" if r["best_step"] is None else f"{r['best_step']:,}",
                    _trend(r["late_trend"]),
                    _pm(r["is_mean"], r["is_std"]),
                    _pm(r["fid_mean"], r["fid_std"]),
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def seed_markdown_table(summaries: Sequence[Mapping[str, Any]], tracked: str = "is") -> str:
    """The across-seeds table as Markdown (one row per configuration)."""
    lines = [
        "| configuration | seeds | steps/s | train time | best step | "
        f"{METRIC_LABELS[tracked]} trend | IS | FID |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summaries:
        sps, best = r["steps_per_s"], r["best_step"]
        cells = [
            f"`{r['configuration']}`",
            str(r["seeds"]),
            "—" if sps is None else f"{sps:.2f}",
            _duration(r["train_seconds"]),
            "—" if best is None else f"{best:,.0f}",
            _trend(r["late_trend"], r["late_trend_std"]),
            _pm(r["is_mean"], r["is_std"]),
            _pm(r["fid_mean"], r["fid_std"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)  # the Agg canvas: no display, no global pyplot state
    return figure


def _save_figure(figure: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def _curves_by_configuration(
    plans: Sequence[PlannedRun], out: Path, metric: str
) -> dict[str, list[list[dict[str, Any]]]]:
    curves: dict[str, list[list[dict[str, Any]]]] = {}
    for plan in plans:
        records = [r for r in read_eval_log(out / RUNS_DIR / plan.run_id) if f"{metric}_mean" in r]
        if records:
            curves.setdefault(plan.configuration, []).append(records)
    return curves


def plot_training_curves(
    path: Path, plans: Sequence[PlannedRun], out: Path, metric: str
) -> Path | None:
    """The tracked score over training. With one seed per configuration: one line per run,
    its band ± std over the scoring batch, the best step marked. With several: one line per
    configuration, the mean over its seeds at each step they all reached, the band ± std
    across seeds."""
    curves = _curves_by_configuration(plans, out, metric)
    if not curves:
        return None
    seeds = max(len(runs) for runs in curves.values())
    figure = _figure(8, 4.5)
    ax = figure.add_subplot()
    pick = max if nd.higher_is_better(metric) else min
    for configuration, runs in curves.items():
        if seeds > 1:
            steps = sorted(set.intersection(*({r["step"] for r in run} for run in runs)))
            if not steps:
                continue
            table = np.array(
                [[next(r[f"{metric}_mean"] for r in run if r["step"] == s) for s in steps]
                 for run in runs],
                dtype=float,
            )  # fmt: skip
            means = table.mean(axis=0)
            stds = table.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros_like(means)
            label = f"{configuration} ({len(runs)} seed{'s' if len(runs) > 1 else ''})"
            steps_arr = np.array(steps, dtype=float)
        else:
            records = runs[0]
            steps_arr = np.array([r["step"] for r in records], dtype=float)
            means = np.array([r[f"{metric}_mean"] for r in records], dtype=float)
            stds = np.array([r.get(f"{metric}_std", 0.0) for r in records], dtype=float)
            label = next(p.run_id for p in plans if p.configuration == configuration)
        (line,) = ax.plot(steps_arr, means, marker="o", markersize=3, label=label)
        if np.any(stds > 0):
            ax.fill_between(
                steps_arr, means - stds, means + stds, color=line.get_color(), alpha=0.15
            )
        best = pick(range(len(means)), key=lambda i: means[i])
        ax.plot(steps_arr[best], means[best], marker="*", markersize=12, color=line.get_color())
    label = METRIC_LABELS[metric]
    band = "± std across seeds" if seeds > 1 else "± std over the scoring batch"
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_xlabel("training step")
    ax.set_ylabel(label)
    ax.set_title(f"{label} during training (band: {band}; ★ best step)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return _save_figure(figure, path)


def plot_final_metrics(
    path: Path,
    rows: Sequence[Mapping[str, Any]],
    plans: Sequence[PlannedRun],
    metrics: Sequence[str],
) -> Path | None:
    """Final figures per configuration. One seed: each run with error bars ± std over the
    final batches. Several: each configuration's mean with error bars ± std across seeds,
    every seed's own figure a small dot beside it."""
    by_run = {p.run_id: p for p in plans}
    done = [r for r in rows if r["status"] == "done"]
    metrics = [m for m in metrics if any(r[f"{m}_mean"] is not None for r in done)]
    if not done or not metrics:
        return None
    summaries = {s["configuration"]: s for s in seed_rows(rows, plans)}
    configurations = list(summaries)
    several = max(s["seeds"] for s in summaries.values()) > 1
    figure = _figure(max(6.0, 1.1 * len(configurations) + 2), 3.6 * len(metrics))
    axes = figure.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics):
        if several:
            xs = range(len(configurations))
            ys = [summaries[c][f"{metric}_mean"] for c in configurations]
            errs = [summaries[c][f"{metric}_std"] or 0.0 for c in configurations]
            ax.errorbar(xs, ys, yerr=errs, fmt="o", markersize=8, capsize=6, label="mean ± std")
            for r in done:
                if r[f"{metric}_mean"] is not None:
                    i = configurations.index(by_run[r["run"]].configuration)
                    ax.plot(i + 0.15, r[f"{metric}_mean"], ".", color="grey")
            ax.plot([], [], ".", color="grey", label="each seed")
            ax.legend(fontsize="small")
        else:
            xs_, ys_, errs_ = [], [], []
            for r in done:
                if r[f"{metric}_mean"] is not None:
                    xs_.append(configurations.index(by_run[r["run"]].configuration))
                    ys_.append(r[f"{metric}_mean"])
                    errs_.append(r[f"{metric}_std"] or 0.0)
            ax.errorbar(xs_, ys_, yerr=errs_, fmt="o", capsize=4)
        label = METRIC_LABELS[metric]
        better = "higher" if nd.higher_is_better(metric) else "lower"
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_ylabel(f"{label} ({better} is better)")
        ax.set_xticks(range(len(configurations)), configurations, rotation=30, ha="right")
        ax.grid(axis="y", alpha=0.3)
    spread = "mean ± std over seeds" if several else "mean ± std over the final batches"
    axes[0].set_title(f"Best checkpoint: {spread}")
    return _save_figure(figure, path)


def _separated_strips(per_run: Sequence[np.ndarray], band: int = 4) -> np.ndarray:
    """Frame strips of each run's videos stacked, a grey band between runs."""
    strips = [media.frame_strip(videos) for videos in per_run]
    separator = np.full((band, strips[0].shape[1], 3), 128, dtype=np.uint8)
    parts = [strips[0]]
    for strip in strips[1:]:
        parts += [separator, strip]
    return np.concatenate(parts)


@attrs.frozen
class ComparisonGroup:
    """Runs whose latents are comparable: same latent shape and distribution, same video size."""

    name: str
    runs: tuple[str, ...]
    mp4: Path
    png: Path


def write_comparison(
    out: Path, plans: Sequence[PlannedRun], finished: set[str], fps: int = 8
) -> list[ComparisonGroup]:
    """The comparison grid: every finished run's first videos from the same latents.

    ``sample_videos`` draws z from ``protocol.seed``, so runs whose latent has the same shape
    and distribution see the same z. Runs whose latent (or video size) differs cannot share z
    or a grid: each such group gets its own grid (``comparison-<group>.mp4``), its z drawn
    from the same seed. Rows are runs (in grid order), columns videos.
    """
    groups: dict[tuple[Any, ...], list[tuple[str, np.ndarray]]] = {}
    for plan in plans:
        run_dir = out / RUNS_DIR / plan.run_id
        final = _read_json(run_dir / FINAL_JSON)
        if plan.run_id not in finished or not final or not (run_dir / COMPARISON_NPZ).is_file():
            continue
        with np.load(run_dir / COMPARISON_NPZ, allow_pickle=False) as data:
            videos = data["videos"]
        latent = final.get("latent", {})
        key = (tuple(latent.get("shape", ())), latent.get("distribution"), videos.shape[1:])
        groups.setdefault(key, []).append((plan.run_id, videos))
    written = []
    for key, members in groups.items():
        shape, distribution, (_, height, _, _) = key
        name = "comparison"
        if len(groups) > 1:
            name += f"-z{'x'.join(map(str, shape))}-{distribution}-{height}px"
        count = min(v.shape[0] for _, v in members)
        stacked = np.concatenate([v[:count] for _, v in members])
        mp4 = media.write_video(
            out / f"{name}.mp4", media.video_grid(stacked, ncols=count), fps=fps
        )
        png = media.write_png(
            out / f"{name}.png", _separated_strips([v[:count] for _, v in members])
        )
        written.append(ComparisonGroup(name, tuple(r for r, _ in members), mp4, png))
    return written


def write_report(
    out: Path,
    grid: Grid,
    plans: Sequence[PlannedRun],
    registry: Registry,
    *,
    wall_seconds: float | None = None,
) -> dict[str, Path]:
    """Write results.csv, results.md, the plots and the comparison grid; return their paths."""
    protocol = grid.protocol
    tracked = protocol.eval_metric
    rows = result_rows(plans, out, protocol, registry)
    paths = {"csv": write_csv(out / "results.csv", rows)}
    curve = plot_training_curves(
        out / f"{protocol.eval_metric}_over_training.png", plans, out, protocol.eval_metric
    )
    final = plot_final_metrics(out / "final_metrics.png", rows, plans, protocol.metrics)
    groups = write_comparison(out, plans, {r["run"] for r in rows if r["status"] == "done"})
    lines = [f"# Study: {grid.info.name}", ""]
    if grid.info.description:
        lines += [grid.info.description.strip(), ""]
    lines += [f"Protocol: {protocol.describe()}", ""]
    trained = sorted({plan.config.run.iterations for plan in plans})
    lines += [
        "Iterations per run (as trained, after any --set): " + ", ".join(f"{n:,}" for n in trained),
        "",
    ]
    summaries = seed_rows(rows, plans)
    if any(summary["seeds"] > 1 for summary in summaries):
        paths["seeds_csv"] = write_csv(
            out / "results_by_configuration.csv", summaries, SEED_CSV_COLUMNS
        )
        lines += [
            "Across seeds (each figure: mean ± sample std over the seeds' final figures):",
            "",
            seed_markdown_table(summaries, tracked),
            "Every run:",
            "",
        ]
    lines.append(markdown_table(rows, tracked))
    lines += [
        f"{METRIC_LABELS[tracked]} trend: the least-squares slope of the periodic "
        f"{METRIC_LABELS[tracked]} over the second half of a run's scored steps, per 1,000 "
        "steps; near 0, inside its spread across seeds, when the curve has flattened.",
        "",
    ]
    done = sum(r["status"] == "done" for r in rows)
    lines.append(f"{done} of {len(rows)} runs finished.")
    train = [r["train_seconds"] for r in rows if r["train_seconds"] is not None]
    if train:
        lines.append(
            f"Training time of all runs (wall clock, periodic scoring included): "
            f"{_duration(sum(train))}."
        )
    if wall_seconds is not None:
        lines.append(f"This invocation of `ndevgan study` took {_duration(wall_seconds)}.")
    lines.append("")
    for key, figure in (("curve", curve), ("final", final)):
        if figure is not None:
            paths[key] = figure
            lines += [f"![{figure.stem}]({figure.name})", ""]
    if groups:
        lines.append(
            f"Samples on the same latents (z from seed {protocol.seed}; "
            f"{protocol.comparison_videos} videos per run, one row per run):"
        )
        lines.append("")
        for group in groups:
            paths[group.name] = group.png
            lines.append(
                f"- [{group.mp4.name}]({group.mp4.name}) / [{group.png.name}]({group.png.name}):"
                f" rows {', '.join(f'`{r}`' for r in group.runs)}"
            )
        if len(groups) > 1:
            lines.append(
                "- Runs with different latent sizes, latent distributions or video sizes cannot "
                "share z or a grid: each group has its own grid, its z drawn from the same seed."
            )
        lines.append("")
    paths["md"] = write_text_atomic(out / "results.md", "\n".join(lines))
    return paths
