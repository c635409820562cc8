"""The plugin contract: every hook a plugin may implement, in one place.

A plugin is a module (or any object) with functions decorated by :data:`hookimpl`. Built-in
plugins are listed in ``registry.toml``; third-party packages declare an entry point in the
group ``ndevgan`` that points at such a module.

Example — a third-party temporal generator::

    import attrs
    import ndevgan_core as nd

    @attrs.frozen
    class SpiralConfig:
        speed: float = 1.0

    def build(config: SpiralConfig, spec: nd.TemporalSpec) -> nd.TemporalGenerator: ...

    @nd.hookimpl
    def register_components(register):
        register("temporal.spiral", build, SpiralConfig, summary="A rotating latent")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    import click

    from .contracts import MetricResult, TrainingRun, VideoClassifier

PROJECT = "ndevgan"

hookspec = pluggy.HookspecMarker(PROJECT)
"""Marks a function in this module as a hook specification."""

hookimpl = pluggy.HookimplMarker(PROJECT)
"""Decorate a plugin's functions with this to implement a hook."""


@hookspec(historic=True)
def register_components(register: Callable[..., None]) -> None:
    """Register the components this plugin provides.

    Call ``register(name, factory, config_class, summary="...")`` once per component, where
    ``name`` is qualified as ``kind.name`` (kinds: ``backbone``, ``temporal``, ``dataset``,
    ``metric``, ``logger``), ``config_class`` is a frozen attrs class whose fields are the
    component's options (all with defaults), and ``factory(config, *args)`` builds it. The
    hook is historic: a plugin registered later (a lazily imported built-in) is still asked.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``ndevgan`` command line (``cli.add_command(...)``)."""


@hookspec(firstresult=True)
def load_video_classifier(path: Path, options: Mapping[str, Any]) -> VideoClassifier | None:
    """Open the video classifier weights at ``path`` if this plugin reads their format.

    Return a :class:`~ndevgan_core.VideoClassifier` (eval mode, on the CPU), or None when the
    file is not of a format this plugin knows, so that another plugin may read it. Raise
    :class:`~ndevgan_core.ConfigError` for a file of this plugin's format that is wrong or
    incomplete, naming the file and what was expected. ``options`` are what the user set for
    the classifier (``ndevgan eval --set classifier.KEY=VALUE``, a logger's or a study's
    ``classifier_options``); a plugin reads the keys it knows and refuses, naming them, keys
    it does not when the file is its format.
    """


@hookspec
def on_step(run: TrainingRun, step: int, metrics: dict[str, float]) -> None:
    """Called after every training step with the losses and timings of that step.

    ``run`` is the :class:`~ndevgan_core.TrainingRun` calling (the trainer); ``step`` counts
    completed steps.
    """


@hookspec
def on_checkpoint(run: TrainingRun, step: int, path: Path) -> None:
    """Called after a checkpoint has been written (atomically) to ``path``."""


@hookspec
def on_sample(run: TrainingRun, step: int, paths: list[Path]) -> None:
    """Called after sample videos and frame strips have been written to ``paths``."""


@hookspec
def on_evaluation(run: TrainingRun, step: int, metric: str, result: MetricResult) -> None:
    """Called by a logger that scores the generator during training (``logger.eval``) with
    each figure it computed: ``metric`` is its short name (``is``, ``fid``, ``fvd``), ``result``
    its mean, std, values and protocol; on every rank. Other loggers (TensorBoard) show it."""
