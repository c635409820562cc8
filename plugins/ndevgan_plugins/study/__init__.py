"""``ndevgan study GRID.toml``: the paper's experimental protocol (section 4) as one command.

A grid file names a study, its protocol, a base run config and the axes of the ablation::

    [study]
    name = "tiny"

    [protocol]                 # Protocol: the paper's numbers are the defaults
    eval_every = 2000          # IS on eval_samples videos every eval_every steps ...
    eval_samples = 2048
    final_loops = 5            # ... then IS/FID of the best step over 5 batches of 2,048
    final_samples = 2048
    metrics = ["is", "fid"]

    [base.run]                 # the shared run config: the sections of an ndevgan run config
    iterations = 100000
    [base.backbone.tgan]
    preset = "paper"

    [axes]                     # backbones × temporal plugins × f designs × orders × seeds
    backbones = ["backbone.tgan", "backbone.mocogan"]
    temporals = ["original", "temporal.ode", "temporal.sde"]
    designs = ["single"]       # only for temporal plugins with a `design` option
    orders = [1, 2, 3]         # only for temporal plugins with an `order` option
    seeds = [0]

    [[override]]               # per-run settings or exclusions, by glob over run ids
    runs = "tganv2-sde-*"
    set = { "temporal.sde.dt" = 5e-2 }

Each run is independent: ``OUT/runs/<run id>`` is an ordinary run directory (``ndevgan run``
writes the same) trained with :class:`~ndevgan_core.training.trainer.Trainer` in this process
(``--launcher local``) or by ``torchrun … -m ndevgan_core run`` in a subprocess; the
``logger.eval`` plugin scores it during training and keeps ``checkpoints/best.pt``. The final
figures of the best checkpoint go to ``final.json``. Re-running the study skips finished runs
and resumes interrupted ones. ``OUT`` then holds ``results.md``, ``results.csv``, plots as
PNG, and a video grid of every configuration on the same latents.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import itertools
import json
import math
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs
import click
import numpy as np
import torch

from ndevgan_core import media
from ndevgan_core.config import (
    build_config,
    close_matches,
    dump_toml,
    load_toml,
    non_negative,
    one_of,
    option,
    parse_override,
    positive,
    set_nested,
)
from ndevgan_core.errors import ConfigError, NdevganError
from ndevgan_core.files import (
    DirectoryLock,
    atomic_path,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from ndevgan_core.hookspecs import hookimpl
from ndevgan_core.options import OutputPath
from ndevgan_core.registry import Registry, default_registry, qualify
from ndevgan_core.training.checkpoint import list_checkpoints

RUNS_DIR = "runs"
FINAL_JSON = "final.json"
TIMING_JSON = "timing.json"
COMPARISON_NPZ = "comparison.npz"
EVAL_LOGGER = "logger.eval"

UNCOMPARED_RUN_KEYS = ("progress", "device", "workers", "threads", "out", "name")
"""``[run]`` settings that do not change what a run computes: a finished run whose config
differs only in these is still finished."""

METRICS = ("is", "fid")
HIGHER_IS_BETTER = {"is": True, "fid": False}
METRIC_LABELS = {"is": "IS", "fid": "FID"}


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


# --------------------------------------------------------------------------------------------
# Planning: the runs of a grid


@attrs.frozen
class PlannedRun:
    """One run of the grid, with its resolved config and parameter counts."""

    run_id: str
    backbone: str
    temporal: str
    original: bool
    design: str | None
    order: int | None
    seed: int
    config: Any  # ResolvedConfig
    params_temporal: int
    params_generator: int

    @property
    def configuration(self) -> str:
        """The run id without its seed: runs of one configuration differ only by seed."""
        return self.run_id.rsplit("-s", 1)[0]


def _deep_copy(tree: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in tree.items()}


def _short(name: str) -> str:
    return name.split(".", 1)[1]


def _original_temporal(backbone: str, base: Mapping[str, Any], registry: Registry) -> str:
    component = registry.get(backbone, "backbone")
    options = base.get("backbone", {}).get(_short(component.name), {})
    config = build_config(component.config_class, options, component.name)
    return component.factory(config).default_temporal


def _run_id(backbone: str, temporal: str, order: int | None, design: str | None, seed: int) -> str:
    parts = [_short(backbone), _short(temporal)]
    parts += [f"o{order}"] if order is not None else []
    parts += [design] if design is not None else []
    return "-".join([*parts, f"s{seed}"])


def _raw_run_config(
    grid: Grid, backbone: str, temporal: str, order: int | None, design: str | None, seed: int
) -> dict[str, Any]:
    """The base config with this run's choices and the protocol's ``logger.eval`` settings."""
    raw = _deep_copy(grid.base)
    set_nested(raw, ["plugins", "backbone"], backbone)
    set_nested(raw, ["plugins", "temporal"], temporal)
    loggers = list(raw["plugins"].get("loggers", []))
    if EVAL_LOGGER not in loggers:
        set_nested(raw, ["plugins", "loggers"], [*loggers, EVAL_LOGGER])
    section = ["temporal", _short(temporal)]
    if order is not None:
        set_nested(raw, [*section, "order"], order)
    if design is not None:
        set_nested(raw, [*section, "design"], design)
    set_nested(raw, ["run", "seed"], seed)
    p = grid.protocol
    scoring = {
        "every": p.eval_every,
        "samples": p.eval_samples,
        "metric": p.eval_metric,
        "batch_size": p.batch_size,
        "seed": p.seed,
        "classifier": p.classifier,
        "dropout_compat": p.dropout_compat,
    }
    for key, value in scoring.items():
        set_nested(raw, ["logger", "eval", key], value)
    return raw


def plan_runs(grid: Grid, registry: Registry, overrides: Sequence[str] = ()) -> list[PlannedRun]:
    """Every run of the grid, configs resolved and models built on the meta device.

    The axes multiply; ``designs`` and ``orders`` apply only to temporal plugins whose config
    has a ``design`` / ``order`` option. Then the grid's ``[[override]]`` tables that match the
    run id apply (or exclude it), then ``overrides`` (``section.key=value``, every run). Any
    invalid combination raises a :class:`ConfigError` naming the grid file, the run and the
    option.
    """
    from ndevgan_core.contracts import count_parameters
    from ndevgan_core.runconfig import assemble, resolve

    axes = grid.axes
    base_plugins = grid.base.get("plugins", {})
    backbones = axes.backbones or (base_plugins.get("backbone", "backbone.tgan"),)
    temporals = axes.temporals or (base_plugins.get("temporal") or "original",)
    where = str(grid.path)
    used_overrides: set[int] = set()
    runs: dict[str, PlannedRun] = {}
    for backbone_name, temporal_choice in itertools.product(backbones, temporals):
        backbone = qualify(backbone_name, "backbone")
        original = temporal_choice == "original"
        try:
            temporal = (
                _original_temporal(backbone, grid.base, registry)
                if original
                else qualify(temporal_choice, "temporal")
            )
            fields = attrs.fields_dict(registry.get(temporal, "temporal").config_class)
        except NdevganError as exc:
            raise ConfigError(f"{where}: {backbone} × {temporal_choice}: {exc}") from None
        orders = axes.orders if "order" in fields and axes.orders else (None,)
        designs = axes.designs if "design" in fields and axes.designs else (None,)
        for order, design, seed in itertools.product(orders, designs, axes.seeds):
            run_id = _run_id(backbone, temporal, order, design, seed)
            raw = _raw_run_config(grid, backbone, temporal, order, design, seed)
            excluded = False
            for i, override in enumerate(grid.overrides):
                if any(fnmatch.fnmatchcase(run_id, g) for g in override.runs):
                    used_overrides.add(i)
                    excluded = excluded or override.exclude
                    for key, value in override.settings:
                        set_nested(raw, key.split("."), value)
            if excluded:
                continue
            try:
                for expr in overrides:
                    key, value = parse_override(expr)
                    set_nested(raw, key, value)
                config = resolve(raw, registry)
                with torch.device("meta"):  # counting needs shapes only
                    built = assemble(config, registry)
            except NdevganError as exc:
                raise ConfigError(f"{where}: run {run_id}: {exc}") from None
            if run_id in runs and runs[run_id].config != config:
                raise ConfigError(f"{where}: the axes name run {run_id} twice, differently")
            runs[run_id] = PlannedRun(
                run_id=run_id,
                backbone=backbone,
                temporal=temporal,
                original=original,
                design=design,
                order=order,
                seed=seed,
                config=config,
                params_temporal=count_parameters(built.temporal),
                params_generator=count_parameters(built.gan.generator),
            )
    for i, override in enumerate(grid.overrides):
        if i not in used_overrides:
            raise ConfigError(
                f"{where}: [[override]] #{i + 1} runs = {list(override.runs)!r} matches no run "
                f"of the grid; run ids: {', '.join(runs) or '(none)'}"
            )
    if not runs:
        raise ConfigError(f"{where}: the grid has no runs (every run is excluded)")
    return list(runs.values())


def select_runs(plans: Sequence[PlannedRun], only: Sequence[str]) -> list[PlannedRun]:
    """The runs whose id matches any of the ``--only`` globs (all runs when none given)."""
    if not only:
        return list(plans)
    chosen = [p for p in plans if any(fnmatch.fnmatchcase(p.run_id, g) for g in only)]
    if not chosen:
        raise ConfigError(
            f"--only {' '.join(only)} matches no run; run ids: {', '.join(p.run_id for p in plans)}"
        )
    return chosen


# --------------------------------------------------------------------------------------------
# Where each run stands


@attrs.frozen
class RunState:
    """What a run directory says about a planned run.

    ``status``: ``done`` (final.json matches the config and protocol), ``evaluate`` (trained,
    final figures missing or stale), ``resume`` (a checkpoint before the last step) or
    ``new``. ``step`` is the newest checkpoint's step.
    """

    status: str
    step: int
    final: dict[str, Any] | None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid JSON ({exc}); delete it to redo that step"
        ) from None


def _comparable(tree: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if tree is None:
        return None
    out = _deep_copy(tree)
    run = out.get("run", {})
    for key in UNCOMPARED_RUN_KEYS:
        run.pop(key, None)
    return out


def checkpoint_step(path: Path) -> int:
    """The step of a ``step-NNNNNNNN.pt`` checkpoint, from its name."""
    return int(path.stem.split("-", 1)[1])


def inspect_run(
    plan: PlannedRun, run_dir: Path, protocol: Protocol, registry: Registry
) -> RunState:
    """Where ``plan`` stands in ``run_dir``; a directory trained with other non-[run] settings
    is an error (retraining over it would mix two runs)."""
    from ndevgan_core.runconfig import resolve

    final = _read_json(run_dir / FINAL_JSON)
    checkpoints = list_checkpoints(run_dir)
    step = checkpoint_step(checkpoints[-1]) if checkpoints else 0
    wanted = plan.config.to_dict()
    saved_file = run_dir / "config.toml"
    if checkpoints and saved_file.is_file():
        try:
            saved = resolve(load_toml(saved_file), registry).to_dict()
        except NdevganError as exc:
            raise ConfigError(f"run {plan.run_id}: {saved_file} cannot be read: {exc}") from None
        changed = sorted(
            key for key in (set(saved) | set(wanted)) - {"run"} if saved.get(key) != wanted.get(key)
        )
        if changed:
            raise ConfigError(
                f"run {plan.run_id}: {run_dir} was trained with other settings in "
                f"[{'], ['.join(changed)}] than the grid now gives; delete that directory to "
                "retrain it, or write the study to another --out"
            )
    if (
        final is not None
        and _comparable(final.get("config")) == _comparable(wanted)
        and final.get("protocol") == protocol.final_record()
    ):
        return RunState("done", step, final)
    if checkpoints:
        status = "evaluate" if step >= plan.config.run.iterations else "resume"
        return RunState(status, step, None)
    return RunState("new", 0, None)


# --------------------------------------------------------------------------------------------
# Training a run


def train_local(plan: PlannedRun, run_dir: Path, resume: bool, registry: Registry) -> int:
    """Train (or continue) a run in this process; return the step it stopped at (the
    trainer unregisters its loggers when it ends, so the next run's events do not reach
    them)."""
    from ndevgan_core.training.trainer import Trainer

    trainer = Trainer(plan.config, registry, run_dir=run_dir, resume=run_dir if resume else None)
    trainer.resume_hint = "the same `ndevgan study` command (finished runs are skipped)"
    trainer.fit()
    return trainer.step


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)  # a JSON string is a TOML basic string


def torchrun_command(plan: PlannedRun, run_dir: Path, resume: bool, nproc: int) -> list[str]:
    """The command that trains a run under torchrun (``python -m torch.distributed.run``)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(nproc),
        "-m",
        "ndevgan_core",
        "run",
    ]
    if resume:
        # the config comes from the checkpoint; [run] settings may change (e.g. iterations)
        command += ["--resume", str(run_dir)]
        settings = {k: v for k, v in plan.config.to_dict()["run"].items() if v is not None}
        settings.pop("out", None)
        settings.pop("name", None)
    else:
        command += ["--config", str(run_dir / "config.toml")]
        settings = {"out": str(run_dir.parent), "name": run_dir.name}
    for key, value in settings.items():
        command += ["--set", f"run.{key}={_toml_literal(value)}"]
    return command


def train_torchrun(plan: PlannedRun, run_dir: Path, resume: bool, nproc: int) -> int:
    """Train (or continue) a run with torchrun in a subprocess; return its newest step.

    Ctrl-C reaches the workers (they checkpoint and stop); this process waits for them.
    """
    command = torchrun_command(plan, run_dir, resume, nproc)
    ignore = None
    if sys.platform != "win32":
        # a Python handler (not SIG_IGN, which children would inherit) keeps the study alive
        ignore = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        proc = subprocess.run(command, check=False)
    finally:
        if ignore is not None:
            signal.signal(signal.SIGINT, ignore)
    checkpoints = list_checkpoints(run_dir)
    step = checkpoint_step(checkpoints[-1]) if checkpoints else 0
    if proc.returncode != 0 and step < plan.config.run.iterations:
        interrupted = proc.returncode in (130, -signal.SIGINT, -signal.SIGTERM)
        if not interrupted:
            raise NdevganError(
                f"run {plan.run_id}: torchrun exited with status {proc.returncode} at step "
                f"{step} (its output is above); command: {shlex.join(command)}"
            )
    return step


# --------------------------------------------------------------------------------------------
# Final figures of a run


def _generator_batch(generator: Any, n: int, seed: int) -> np.ndarray:
    from ndevgan_core.training.api import sample_videos

    return media.to_uint8(sample_videos(generator, n, seed=seed))


def final_evaluation(
    plan: PlannedRun,
    run_dir: Path,
    protocol: Protocol,
    registry: Registry,
    *,
    stats_cache: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score the run's best checkpoint over ``final_loops`` batches; write ``final.json``.

    Also draws the run's rows of the comparison grid (``comparison.npz``): the first
    ``comparison_videos`` latents of ``protocol.seed``.
    """
    from ndevgan_core.evaluation import evaluate
    from ndevgan_core.runconfig import make_dataset
    from ndevgan_core.training.api import load_generator
    from ndevgan_core.training.trainer import resolve_device

    t0 = time.perf_counter()
    best = run_dir / "checkpoints" / "best.pt"
    checkpoint = best if best.is_file() else list_checkpoints(run_dir)[-1]
    device = resolve_device(plan.config.run.device)
    loaded = load_generator(checkpoint, registry, device=device)
    backbone = registry.create(*loaded.config.component("backbone"))
    dataset = make_dataset(loaded.config, registry, backbone)
    results = evaluate(
        loaded.generator,
        protocol.metrics,
        dataset=dataset,
        samples=protocol.final_samples,
        loops=protocol.final_loops,
        batch_size=protocol.batch_size,
        seed=protocol.seed,
        device=device,
        progress=progress,
        registry=registry,
        stats_cache=stats_cache,
        dropout_compat=protocol.dropout_compat,
        classifier=protocol.classifier or None,
        options=protocol.metric_options(),
    )
    videos = _generator_batch(loaded.generator, protocol.comparison_videos, protocol.seed)
    buffer = io.BytesIO()
    np.savez(buffer, videos=videos)
    comparison = run_dir / COMPARISON_NPZ
    write_bytes_atomic(comparison, buffer.getvalue())
    generator = loaded.generator
    record = {
        "run": plan.run_id,
        "checkpoint": str(checkpoint.relative_to(run_dir)),
        "step": loaded.step,
        "metrics": {
            name: {
                "mean": float(r.mean),
                "std": float(r.std),
                "values": [float(v) for v in r.values],
                "protocol": r.protocol,
            }
            for name, r in results.items()
        },
        "latent": {"shape": list(generator.z_shape), "distribution": generator.z_distribution},
        "seconds": round(time.perf_counter() - t0, 3),
        "protocol": protocol.final_record(),
        "config": plan.config.to_dict(),
    }
    write_json_atomic(run_dir / FINAL_JSON, record)
    return record


# --------------------------------------------------------------------------------------------
# Results: table, CSV, plots and the comparison grid


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
    "steps_per_s",
    "train_seconds",
    "best_step",
    "is_mean",
    "is_std",
    "fid_mean",
    "fid_std",
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


def result_rows(plans: Sequence[PlannedRun], out: Path) -> list[dict[str, Any]]:
    """One row per planned run (finished or not) with the CSV's columns."""
    rows = []
    for plan in plans:
        run_dir = out / RUNS_DIR / plan.run_id
        final = _read_json(run_dir / FINAL_JSON)
        if final is not None and _comparable(final.get("config")) != _comparable(
            plan.config.to_dict()
        ):
            final = None  # from another config of this run id: not this run's result
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
        }
        for metric in METRICS:
            result = (final or {}).get("metrics", {}).get(metric)
            row[f"{metric}_mean"] = result["mean"] if result else None
            row[f"{metric}_std"] = result["std"] if result else None
        rows.append(row)
    return rows


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """``results.csv``: the columns of :data:`CSV_COLUMNS`, empty where not known."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in CSV_COLUMNS})
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
    """``mean ± std``, the std to the mean's decimals (so 1.00 ± 0.00, not 1.00 ± 7.6e-10)."""
    if mean is None:
        return "—"
    text = _number(mean)
    std = std or 0.0
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


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The results table as Markdown (one row per run)."""
    header = (
        "| run | backbone | temporal | design | order | seed | G_t params | G params | steps/s "
        "| train time | best step | IS | FID |"
    )
    lines = [header, "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
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
                    _pm(r["is_mean"], r["is_std"]),
                    _pm(r["fid_mean"], r["fid_std"]),
                ]
            )
            + " |"
        )
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


def plot_training_curves(
    path: Path, plans: Sequence[PlannedRun], out: Path, metric: str
) -> Path | None:
    """The tracked score over training, one line per run, the best step marked."""
    curves = []
    for plan in plans:
        records = [r for r in read_eval_log(out / RUNS_DIR / plan.run_id) if f"{metric}_mean" in r]
        if records:
            curves.append((plan.run_id, records))
    if not curves:
        return None
    figure = _figure(8, 4.5)
    ax = figure.add_subplot()
    pick = max if HIGHER_IS_BETTER[metric] else min
    for run_id, records in curves:
        steps = np.array([r["step"] for r in records], dtype=float)
        means = np.array([r[f"{metric}_mean"] for r in records], dtype=float)
        stds = np.array([r.get(f"{metric}_std", 0.0) for r in records], dtype=float)
        (line,) = ax.plot(steps, means, marker="o", markersize=3, label=run_id)
        if np.any(stds > 0):
            ax.fill_between(steps, means - stds, means + stds, color=line.get_color(), alpha=0.15)
        best = pick(range(len(means)), key=lambda i: means[i])
        ax.plot(steps[best], means[best], marker="*", markersize=12, color=line.get_color())
    label = METRIC_LABELS[metric]
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_xlabel("training step")
    ax.set_ylabel(label)
    ax.set_title(f"{label} during training (★ best step)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return _save_figure(figure, path)


def plot_final_metrics(
    path: Path,
    rows: Sequence[Mapping[str, Any]],
    plans: Sequence[PlannedRun],
    metrics: Sequence[str],
) -> Path | None:
    """Final figures per configuration with error bars (± std over the final batches); seeds of
    one configuration side by side."""
    by_run = {p.run_id: p for p in plans}
    done = [r for r in rows if r["status"] == "done"]
    metrics = [m for m in metrics if any(r[f"{m}_mean"] is not None for r in done)]
    if not done or not metrics:
        return None
    configurations = list(dict.fromkeys(by_run[r["run"]].configuration for r in done))
    seeds = sorted({r["seed"] for r in done})
    figure = _figure(max(6.0, 1.1 * len(configurations) + 2), 3.6 * len(metrics))
    axes = figure.subplots(len(metrics), 1, squeeze=False)[:, 0]
    width = 0.8 / len(seeds)
    for ax, metric in zip(axes, metrics):
        for j, seed in enumerate(seeds):
            xs, ys, errs = [], [], []
            for r in done:
                if r["seed"] != seed or r[f"{metric}_mean"] is None:
                    continue
                i = configurations.index(by_run[r["run"]].configuration)
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(r[f"{metric}_mean"])
                errs.append(r[f"{metric}_std"] or 0.0)
            ax.errorbar(
                xs,
                ys,
                yerr=errs,
                fmt="o",
                capsize=4,
                label=f"seed {seed}" if len(seeds) > 1 else None,
            )
        label = METRIC_LABELS[metric]
        better = "higher" if HIGHER_IS_BETTER[metric] else "lower"
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_ylabel(f"{label} ({better} is better)")
        ax.set_xticks(range(len(configurations)), configurations, rotation=30, ha="right")
        ax.grid(axis="y", alpha=0.3)
        if len(seeds) > 1:
            ax.legend(fontsize="small")
    axes[0].set_title("Final figures of the best checkpoint (mean ± std over batches)")
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
    *,
    wall_seconds: float | None = None,
) -> dict[str, Path]:
    """Write results.csv, results.md, the plots and the comparison grid; return their paths."""
    rows = result_rows(plans, out)
    paths = {"csv": write_csv(out / "results.csv", rows)}
    protocol = grid.protocol
    curve = plot_training_curves(
        out / f"{protocol.eval_metric}_over_training.png", plans, out, protocol.eval_metric
    )
    final = plot_final_metrics(out / "final_metrics.png", rows, plans, protocol.metrics)
    groups = write_comparison(out, plans, {r["run"] for r in rows if r["status"] == "done"})
    lines = [f"# Study: {grid.info.name}", ""]
    if grid.info.description:
        lines += [grid.info.description.strip(), ""]
    lines += [f"Protocol: {protocol.describe()}", ""]
    lines.append(markdown_table(rows))
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


# --------------------------------------------------------------------------------------------
# The study


@attrs.frozen
class StudyOutcome:
    """What :func:`run_study` did: the runs, which were finished, and whether it was stopped."""

    plans: tuple[PlannedRun, ...]
    finished: tuple[str, ...]
    interrupted: str | None
    report: dict[str, Path]


def _clean_new_run(run_dir: Path) -> None:
    """Remove what a run that never reached its first checkpoint left behind."""
    for name in ("log.jsonl", "eval.jsonl", "best.json", FINAL_JSON, TIMING_JSON, COMPARISON_NPZ):
        (run_dir / name).unlink(missing_ok=True)
    (run_dir / "checkpoints" / "best.pt").unlink(missing_ok=True)


def _add_timing(run_dir: Path, key: str, seconds: float) -> None:
    timing = _read_json(run_dir / TIMING_JSON) or {}
    timing[key] = round(timing.get(key, 0.0) + seconds, 3)
    write_json_atomic(run_dir / TIMING_JSON, timing)


def _summary(final: Mapping[str, Any]) -> str:
    parts = [f"{METRIC_LABELS[m]} {_pm(r['mean'], r['std'])}" for m, r in final["metrics"].items()]
    return ", ".join(parts) + f" (best step {final['step']:,})"


def run_study(
    grid: Grid,
    out: Path,
    *,
    registry: Registry | None = None,
    only: Sequence[str] = (),
    overrides: Sequence[str] = (),
    launcher: str = "local",
    nproc_per_node: int = 1,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> StudyOutcome:
    """Plan the grid, train and score every selected run that is not finished, then report.

    Stops after a run that was interrupted (Ctrl-C: the trainer checkpoints first); calling
    it again resumes that run and skips the finished ones.
    """
    registry = registry or default_registry()
    if launcher not in ("local", "torchrun"):
        raise ConfigError(f"--launcher: expected local or torchrun, got {launcher!r}")
    plans = plan_runs(grid, registry, overrides)
    selected = select_runs(plans, only)
    if dry_run:
        return _run_study(
            grid, out, registry, plans, selected, launcher, nproc_per_node, True, echo
        )
    with DirectoryLock(out, "study directory"):  # one study process per directory
        return _run_study(
            grid, out, registry, plans, selected, launcher, nproc_per_node, False, echo
        )


def _run_study(
    grid: Grid,
    out: Path,
    registry: Registry,
    plans: Sequence[PlannedRun],
    selected: Sequence[PlannedRun],
    launcher: str,
    nproc_per_node: int,
    dry_run: bool,
    echo: Callable[[str], None],
) -> StudyOutcome:
    t0 = time.perf_counter()
    width = len(str(len(selected)))
    finished: list[str] = []
    interrupted = None
    for index, plan in enumerate(selected, 1):
        run_dir = out / RUNS_DIR / plan.run_id
        state = inspect_run(plan, run_dir, grid.protocol, registry)
        prefix = f"[{index:>{width}}/{len(selected)}] {plan.run_id}:"
        iterations = plan.config.run.iterations
        if dry_run:
            what = {
                "done": "finished — would skip",
                "evaluate": f"trained to step {state.step:,} — would compute the final figures",
                "resume": f"would resume from step {state.step:,} of {iterations:,}",
                "new": f"would train {iterations:,} steps",
            }[state.status]
            echo(
                f"{prefix} {what}; G_t {plan.params_temporal:,} / G {plan.params_generator:,} "
                "parameters"
            )
            if launcher == "torchrun" and state.status in ("new", "resume"):
                command = torchrun_command(plan, run_dir, state.status == "resume", nproc_per_node)
                echo("    " + shlex.join(command))
            continue
        if state.status == "done":
            echo(f"{prefix} finished earlier, skipped — {_summary(state.final)}")
            finished.append(plan.run_id)
            continue
        if state.status in ("new", "resume"):
            resume = state.status == "resume"
            if resume:
                echo(f"{prefix} resuming from step {state.step:,} of {iterations:,}")
            else:
                echo(f"{prefix} training {iterations:,} steps")
                _clean_new_run(run_dir)
                write_text_atomic(run_dir / "config.toml", dump_toml(plan.config.to_dict()))
            started = time.perf_counter()
            try:
                if launcher == "local":
                    step = train_local(plan, run_dir, resume, registry)
                else:
                    step = train_torchrun(plan, run_dir, resume, nproc_per_node)
            finally:
                _add_timing(run_dir, "train_seconds", time.perf_counter() - started)
            if step < iterations:
                echo(
                    f"{prefix} interrupted at step {step:,} of {iterations:,} (checkpointed); "
                    "run the same command again to resume it"
                )
                interrupted = plan.run_id
                break
        echo(f"{prefix} final figures of the best checkpoint")
        started = time.perf_counter()
        final = final_evaluation(
            plan,
            run_dir,
            grid.protocol,
            registry,
            stats_cache=out / "cache",
            progress=plan.config.run.progress,
        )
        _add_timing(run_dir, "final_seconds", time.perf_counter() - started)
        echo(f"{prefix} done — {_summary(final)}")
        finished.append(plan.run_id)
    report: dict[str, Path] = {}
    if not dry_run:
        report = write_report(out, grid, plans, wall_seconds=time.perf_counter() - t0)
    return StudyOutcome(tuple(plans), tuple(finished), interrupted, report)


# --------------------------------------------------------------------------------------------
# The command


@click.command("study")
@click.argument("grid_file", metavar="GRID.toml", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    type=OutputPath(directory=True),
    default=None,
    help="Output directory (default: studies/<study name>). Runs go to OUT/runs/<run id>.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="GLOB",
    help="Train/score only the runs whose id matches (repeatable); the report covers all.",
)
@click.option("--dry-run", is_flag=True, help="List the runs and what would happen; do nothing.")
@click.option(
    "--launcher",
    type=click.Choice(["local", "torchrun"]),
    default="local",
    show_default=True,
    help="local: train in this process; torchrun: one torchrun subprocess per run.",
)
@click.option(
    "--nproc-per-node",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="torchrun: processes (GPUs) per run.",
)
@click.option("--eval-every", type=click.IntRange(min=1), help="Replaces protocol.eval_every.")
@click.option("--eval-samples", type=click.IntRange(min=1), help="Replaces protocol.eval_samples.")
@click.option("--final-loops", type=click.IntRange(min=1), help="Replaces protocol.final_loops.")
@click.option(
    "--final-samples", type=click.IntRange(min=1), help="Replaces protocol.final_samples."
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    type=click.Choice(list(METRICS)),
    help="Final figures to compute (repeatable); replaces protocol.metrics.",
)
@click.option(
    "--classifier",
    type=click.Path(dir_okay=False),
    metavar="WEIGHTS",
    help="Replaces protocol.classifier: the scoring classifier's weights (C3D for UCF101).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Override an option of every run, e.g. run.iterations=200 (after the grid's own).",
)
def study_command(
    grid_file: str,
    out: str | None,
    only: tuple[str, ...],
    dry_run: bool,
    launcher: str,
    nproc_per_node: int,
    eval_every: int | None,
    eval_samples: int | None,
    final_loops: int | None,
    final_samples: int | None,
    metrics: tuple[str, ...],
    classifier: str | None,
    overrides: tuple[str, ...],
) -> None:
    """Run the paper's ablation protocol over the grid of runs GRID.toml describes.

    Every run (backbone × temporal plugin × f design × order × seed) trains in its own
    directory, is scored every protocol.eval_every steps (logger.eval keeps the best
    checkpoint), and gets final IS/FID of its best checkpoint over protocol.final_loops
    batches. Writes results.md, results.csv, PNG plots and a comparison video grid to OUT.
    Running it again skips finished runs and resumes an interrupted one.
    """
    changes: dict[str, Any] = {
        key: value
        for key, value in {
            "eval_every": eval_every,
            "eval_samples": eval_samples,
            "final_loops": final_loops,
            "final_samples": final_samples,
            "classifier": classifier,
        }.items()
        if value is not None
    }
    if metrics:
        changes["metrics"] = list(dict.fromkeys(metrics))
    grid = load_grid(grid_file, changes)
    out_dir = Path(out) if out else Path("studies") / grid.info.name
    outcome = run_study(
        grid,
        out_dir,
        registry=default_registry(),
        only=only,
        overrides=overrides,
        launcher=launcher,
        nproc_per_node=nproc_per_node,
        dry_run=dry_run,
        echo=click.echo,
    )
    if dry_run:
        return
    click.echo(f"results: {outcome.report['md']} and {outcome.report['csv']}")
    if outcome.interrupted is not None:
        sys.exit(130)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``ndevgan study``."""
    cli.add_command(study_command)
