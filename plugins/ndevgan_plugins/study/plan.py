"""Planning: the runs of a grid, each with its full run config."""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch

from ndevgan_core.config import (
    build_config,
    parse_override,
    set_nested,
)
from ndevgan_core.errors import ConfigError, NdevganError
from ndevgan_core.registry import Registry, qualify

from .grid import EVAL_LOGGER, Grid

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
