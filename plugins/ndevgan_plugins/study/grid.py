"""The grid file: its sections, the protocol and the axes of a study."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs

from ndevgan_core.config import (
    build_config,
    close_matches,
    load_toml,
    non_negative,
    one_of,
    option,
    positive,
)
from ndevgan_core.errors import ConfigError

RUNS_DIR = "runs"
FINAL_JSON = "final.json"
TIMING_JSON = "timing.json"
COMPARISON_NPZ = "comparison.npz"
EVAL_LOGGER = "logger.eval"

UNCOMPARED_RUN_KEYS = ("progress", "device", "workers", "threads", "out", "name")
"""``[run]`` settings that do not change what a run computes: a finished run whose config
differs only in these is still finished."""

METRICS = ("is", "fid", "fvd")
METRIC_LABELS = {"is": "IS", "fid": "FID", "fvd": "FVD"}


# --------------------------------------------------------------------------------------------
# The grid file


def _metric_list(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    bad = [m for m in value if m not in METRICS]
    if not value or bad or len(set(value)) != len(value):
        raise ConfigError(
            f"{attribute.name}: expected a list of distinct metrics from "
            f"{', '.join(METRICS)}, got {list(value)!r}"
        )


@attrs.frozen
class StudyInfo:
    """The ``[study]`` section: what the study is called and what it is for."""

    name: str = option("study", "the study's name (default output directory: studies/NAME)")
    description: str = option("", "one paragraph for the top of results.md")


@attrs.frozen
class Protocol:
    """The ``[protocol]`` section: how runs are scored.

    Two named presets: ``pre-registration`` (the default; the paper's section 4 as written:
    IS every 2,000 steps, final figures over 5 × 2,048 samples, classifier dropout off) and
    ``published-code`` (what produced the paper's published numbers: IS every 1,000 steps,
    10 × 2,048 samples, C3D dropout on, FID on fc7 after dropout). Explicit keys override.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "pre-registration": {},
        "published-code": {"eval_every": 1000, "final_loops": 10, "dropout_compat": True},
    }

    preset: str = option(
        "pre-registration",
        "pre-registration (every 2,000 steps, 5 × 2,048, dropout off) or published-code (the "
        "paper's code: every 1,000, 10 × 2,048, C3D dropout on as its scoring bug had it)",
        one_of("pre-registration", "published-code"),
    )
    eval_every: int = option(2000, "score every run every N training steps", positive)
    eval_samples: int = option(2048, "videos per score during training", positive)
    eval_metric: str = option(
        "is",
        "the score that picks each run's best checkpoint (is: higher, fid: lower)",
        one_of(*METRICS),
    )
    final_loops: int = option(5, "final figures: batches of final_samples videos", positive)
    final_samples: int = option(2048, "final figures: videos per batch", positive)
    metrics: tuple[str, ...] = option(("is", "fid"), "final figures to compute", _metric_list)
    batch_size: int = option(32, "videos per generator/classifier batch", positive)
    seed: int = option(0, "seed of the evaluation latents and of the comparison grid", non_negative)
    dropout_compat: bool = option(
        False, "score with the classifier's dropout on, as the paper's scoring code did"
    )
    comparison_videos: int = option(4, "videos per run in the comparison grid", positive)
    classifier: str = option(
        "",
        "weights of the scoring classifier (UCF101: C3D converted by `ndevgan metrics "
        "import-c3d`); empty: the dataset's built-in one (dataset.shapes ships one)",
    )
    is_protocol: str = option(
        "tganv2",
        "final IS: tganv2 (one split per batch, mean ± std over batches) or stylegan-v "
        "(is_splits splits of each batch)",
        one_of("tganv2", "stylegan-v"),
    )
    is_splits: int = option(10, "final IS splits under the stylegan-v protocol", positive)

    def final_record(self) -> dict[str, Any]:
        """The settings a run's final figures depend on (stored in ``final.json``)."""
        return {
            "preset": self.preset,
            "loops": self.final_loops,
            "samples": self.final_samples,
            "metrics": list(self.metrics),
            "batch_size": self.batch_size,
            "seed": self.seed,
            "dropout_compat": self.dropout_compat,
            "comparison_videos": self.comparison_videos,
            "classifier": self.classifier,
            "is_protocol": self.is_protocol,
            "is_splits": self.is_splits,
        }

    def metric_options(self) -> dict[str, dict[str, Any]]:
        """The per-metric options :func:`~ndevgan_core.evaluation.evaluate` takes."""
        if "is" not in self.metrics:
            return {}
        return {"metric.is": {"protocol": self.is_protocol, "splits": self.is_splits}}

    def describe(self) -> str:
        """One sentence for results.md."""
        metric = METRIC_LABELS[self.eval_metric]
        finals = " and ".join(METRIC_LABELS[m] for m in self.metrics)
        return (
            f"Protocol {self.preset}: "
            f"{metric} on {self.eval_samples:,} samples every {self.eval_every:,} steps picks "
            f"each run's best checkpoint; {finals} of that checkpoint over {self.final_loops} "
            f"batches of {self.final_samples:,} samples, mean ± std over the batches"
            + (" (classifier dropout on, as in the paper's code)" if self.dropout_compat else "")
            + "."
        )


@attrs.frozen
class Axes:
    """The ``[axes]`` section: the grid is the product of these lists."""

    backbones: tuple[str, ...] = option((), "backbones (empty: the base config's)")
    temporals: tuple[str, ...] = option(
        (), "temporal plugins; 'original' is each backbone's own (empty: the base config's)"
    )
    designs: tuple[str, ...] = option(
        (), "f designs, for temporal plugins with a `design` option (empty: the plugin's default)"
    )
    orders: tuple[int, ...] = option(
        (), "ODE orders, for temporal plugins with an `order` option (empty: the default)"
    )
    seeds: tuple[int, ...] = option((0,), "run.seed of each run")


@attrs.frozen
class Override:
    """One ``[[override]]`` table: settings for (or the exclusion of) the runs it matches."""

    runs: tuple[str, ...]
    """Globs over run ids."""
    settings: tuple[tuple[str, Any], ...]
    """(``section.key``, value) pairs applied to the matched runs' configs."""
    exclude: bool


@attrs.frozen
class Grid:
    """A parsed grid file."""

    path: Path
    info: StudyInfo
    protocol: Protocol
    axes: Axes
    base: dict[str, Any]
    overrides: tuple[Override, ...]


GRID_SECTIONS = ("study", "protocol", "base", "axes", "override")


def _flatten(table: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items += _flatten(value, path + ".")
        else:
            items.append((path, value))
    return items


def _parse_overrides(items: Any, where: str) -> tuple[Override, ...]:
    if not isinstance(items, list) or not all(isinstance(x, Mapping) for x in items):
        raise ConfigError(f"{where}: override must be an array of tables ([[override]])")
    out = []
    for i, item in enumerate(items, 1):
        here = f"{where}: [[override]] #{i}"
        unknown = [k for k in item if k not in ("runs", "set", "exclude")]
        if unknown:
            raise ConfigError(
                f"{here}: unknown key {unknown[0]!r}."
                f"{close_matches(unknown[0], ('runs', 'set', 'exclude'))} "
                "Allowed: runs, set, exclude."
            )
        runs = item.get("runs")
        if isinstance(runs, str):
            runs = [runs]
        if not runs or not all(isinstance(r, str) and r for r in runs):
            raise ConfigError(f"{here}: runs: expected a glob or a list of globs over run ids")
        settings = item.get("set", {})
        if not isinstance(settings, Mapping):
            raise ConfigError(f"{here}: set: expected a table of section.key = value")
        flat = _flatten(settings)
        for key, _ in flat:
            if key.count(".") < 1:
                raise ConfigError(f"{here}: set: {key!r} is not a section.key path")
        exclude = item.get("exclude", False)
        if not isinstance(exclude, bool):
            raise ConfigError(f"{here}: exclude: expected true or false, got {exclude!r}")
        if not flat and not exclude:
            raise ConfigError(f"{here}: has neither set nor exclude = true")
        out.append(Override(tuple(runs), tuple(flat), exclude))
    return tuple(out)


def load_grid(path: str | Path, protocol_changes: Mapping[str, Any] | None = None) -> Grid:
    """Read and check a grid file; ``protocol_changes`` replace ``[protocol]`` options."""
    path = Path(path)
    tree = load_toml(path)
    for key in tree:
        if key not in GRID_SECTIONS:
            raise ConfigError(
                f"{path}: unknown section [{key}].{close_matches(key, GRID_SECTIONS)} "
                f"Allowed: {', '.join(GRID_SECTIONS)}."
            )
    for key in ("study", "protocol", "base", "axes"):
        if not isinstance(tree.get(key, {}), Mapping):
            raise ConfigError(f"{path}: [{key}] must be a table")
    try:
        info = build_config(StudyInfo, tree.get("study"), "study")
        protocol = build_config(
            Protocol, {**tree.get("protocol", {}), **(protocol_changes or {})}, "protocol"
        )
        axes = build_config(Axes, tree.get("axes"), "axes")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not axes.seeds:
        raise ConfigError(f"{path}: axes.seeds: expected at least one seed")
    overrides = _parse_overrides(tree.get("override", []), str(path))
    return Grid(path, info, protocol, axes, dict(tree.get("base", {})), overrides)
