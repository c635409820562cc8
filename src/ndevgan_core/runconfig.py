"""A run's configuration: which plugins, their options, and the run's own settings.

A config file is TOML::

    [run]                 # RunConfig
    iterations = 600
    [plugins]             # PluginsConfig: which backbone, temporal generator and dataset
    backbone = "backbone.tgan"
    temporal = "temporal.ode"
    [temporal.ode]        # each plugin's options live in its own section
    method = "dopri5"

:func:`resolve` merges a file, ``--plugin`` choices and ``--set`` overrides, validates all of
it, and returns a :class:`ResolvedConfig`; :func:`assemble` builds the GAN and dataset from it.
"""

from __future__ import annotations

import importlib.resources
import itertools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .config import (
    build_config,
    close_matches,
    config_to_dict,
    load_toml,
    non_negative,
    one_of,
    option,
    parse_override,
    positive,
    set_nested,
)
from .contracts import Backbone, TemporalGenerator, VideoDataset, VideoGAN, count_parameters
from .errors import ConfigError, ConfigWarning, NdevganError
from .registry import KINDS, Registry, qualify


@attrs.frozen
class RunConfig:
    """Settings of a training run that belong to no plugin (the ``[run]`` section)."""

    iterations: int = option(600, "training iterations", positive)
    seed: int = option(0, "seed of weights, latents and data order", non_negative)
    out: str = option("runs", "directory under which each run gets its own directory")
    name: str = option("", "the run directory's name (default: time and plugins)")
    device: str = option("auto", "auto (cuda when available), cpu, cuda or cuda:N")
    log_every: int = option(10, "write a log line every N iterations", positive)
    sample_every: int = option(
        200, "write sample videos every N iterations (and at the end)", positive
    )
    checkpoint_every: int = option(200, "checkpoint every N iterations (and at the end)", positive)
    keep_checkpoints: int = option(3, "how many recent checkpoints to keep", positive)
    samples: int = option(16, "videos in each sample grid", positive)
    sample_format: str = option("mp4", "sample grid video format", one_of("mp4", "gif"))
    fps: int = option(8, "frame rate of sample videos", positive)
    workers: int = option(0, "DataLoader worker processes", non_negative)
    threads: int = option(0, "torch CPU threads (0: torch's default)", non_negative)
    progress: bool = option(True, "show a progress bar")
    amp: str = option(
        "none",
        "mixed precision of the networks' forward passes: none, or bf16 (bfloat16 autocast; "
        "CUDA only)",
        one_of("none", "bf16"),
    )
    sync_batchnorm: bool = option(
        True, "under torchrun: batch-norm statistics over all processes' batches (global batch)"
    )
    find_unused_parameters: bool = option(
        False, "under torchrun: let DDP tolerate parameters that get no gradient (slower)"
    )
    ema: float = option(
        0.0,
        "decay of an exponential moving average of the generator's weights, which sample "
        "grids, scoring and export then use (0: none, as the paper; e.g. 0.99)",
        non_negative,
    )
    lr_decay: float = option(
        0.0,
        "fraction of the run, at its end, over which every learning rate falls linearly to "
        "zero (0: constant rates, as the paper; 1: from the first iteration); raising "
        "run.iterations on --resume moves the fall to the new end",
        non_negative,
    )
    final_score: int = option(
        0,
        "after training, score the final generator on N videos with IS and FID (the "
        "dataset's own classifier) and print both: a quick check, not the paper's 2,048 "
        "(0: none)",
        non_negative,
    )

    def __attrs_post_init__(self) -> None:
        if not self.ema < 1:
            raise ConfigError(f"ema: expected a decay in [0, 1), got {self.ema!r}")
        if not self.lr_decay <= 1:
            raise ConfigError(f"lr_decay: expected a fraction in [0, 1], got {self.lr_decay!r}")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {self.device!r}")


@attrs.frozen
class PluginsConfig:
    """Which components a run uses (the ``[plugins]`` section)."""

    backbone: str = option("backbone.tgan", "the video GAN architecture and protocol")
    temporal: str = option("", "temporal generator (empty: the backbone's original one)")
    dataset: str = option("dataset.shapes", "training data")
    loggers: tuple[str, ...] = option((), "logger plugins that receive trainer events")


@attrs.frozen
class ResolvedConfig:
    """A validated run configuration: run settings, plugin choices, and each plugin's options.

    ``components`` maps each selected component name to its config instance, with the
    temporal slot already resolved to a concrete plugin.
    """

    run: RunConfig
    plugins: PluginsConfig
    components: dict[str, Any]

    def component(self, kind: str) -> tuple[str, Any]:
        """The selected component of ``kind`` (``backbone``/``temporal``/``dataset``)."""
        name = getattr(self.plugins, kind)
        return name, self.components[name]

    def to_dict(self) -> dict[str, Any]:
        """The whole config as nested plain data (TOML/JSON-able; None where unset)."""
        tree: dict[str, Any] = {
            "run": config_to_dict(self.run),
            "plugins": config_to_dict(self.plugins),
        }
        for name, cfg in self.components.items():
            kind, short = name.split(".", 1)
            tree.setdefault(kind, {})[short] = config_to_dict(cfg)
        return tree


def demo_config() -> dict[str, Any]:
    """The embedded default run (``ndevgan run`` with no arguments): TGAN-ODE tiny on shapes."""
    path = importlib.resources.files("ndevgan_core").joinpath("demo.toml")
    return load_toml(str(path))


def raw_config(
    config_file: str | None = None,
    plugins: Sequence[str] = (),
    overrides: Sequence[str] = (),
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge ``base`` ← the config file ← ``--plugin`` names ← ``--set`` overrides (raw data)."""
    tree: dict[str, Any] = _deep_copy(base or {})
    if config_file:
        _deep_merge(tree, load_toml(config_file))
    for name in plugins:
        kind, dot, _ = name.partition(".")
        if not dot or kind not in ("backbone", "temporal", "dataset", "logger"):
            raise ConfigError(
                f"--plugin {name!r}: expected backbone.NAME, temporal.NAME, dataset.NAME or "
                "logger.NAME"
            )
        if kind == "logger":
            loggers = list(tree.setdefault("plugins", {}).get("loggers", []))
            set_nested(tree, ["plugins", "loggers"], [*loggers, name])
        else:
            set_nested(tree, ["plugins", kind], name)
    for expr in overrides:
        path, value = parse_override(expr)
        set_nested(tree, path, value)
    return tree


def _deep_copy(tree: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in tree.items()}


def _deep_merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for k, v in new.items():
        if isinstance(v, Mapping) and isinstance(into.get(k), dict):
            _deep_merge(into[k], v)
        else:
            into[k] = _deep_copy(v) if isinstance(v, Mapping) else v


def resolve(
    raw: Mapping[str, Any],
    registry: Registry,
    *,
    must_be_selected: frozenset[str] = frozenset(),
    warn_unselected: bool = False,
) -> ResolvedConfig:
    """Validate a raw config tree against the registry; raise ConfigError on any problem.

    Every plugin section is checked against that plugin's options, selected or not, so a typo
    never passes silently. A section for a plugin the run does not select is an error when
    its name is in ``must_be_selected`` (the CLI passes the plugins its ``--set`` options
    name) and, with ``warn_unselected``, a :class:`ConfigWarning` otherwise."""
    allowed = ("run", "plugins", *KINDS)
    for key, value in raw.items():
        if key not in allowed:
            raise ConfigError(
                f"unknown section [{key}].{close_matches(key, allowed)} "
                f"Allowed: {', '.join(allowed)}."
            )
        if not isinstance(value, Mapping):
            raise ConfigError(f"[{key}] must be a section (a table), got {value!r}")
    run = build_config(RunConfig, raw.get("run"), "run")
    plugins = build_config(PluginsConfig, raw.get("plugins"), "plugins")
    plugins = attrs.evolve(
        plugins,
        backbone=qualify(plugins.backbone, "backbone"),
        dataset=qualify(plugins.dataset, "dataset"),
        temporal=qualify(plugins.temporal, "temporal") if plugins.temporal else "",
        loggers=tuple(qualify(n, "logger") for n in plugins.loggers),
    )

    def options(name: str) -> Mapping[str, Any]:
        kind, short = name.split(".", 1)
        return raw.get(kind, {}).get(short, {})

    components: dict[str, Any] = {}
    backbone = registry.get(plugins.backbone, "backbone")
    components[backbone.name] = build_config(
        backbone.config_class, options(backbone.name), backbone.name
    )
    built_backbone: Backbone = backbone.factory(components[backbone.name])
    if not plugins.temporal:
        plugins = attrs.evolve(plugins, temporal=built_backbone.default_temporal)
    temporal = registry.get(plugins.temporal, "temporal")
    components[temporal.name] = temporal_config(built_backbone, temporal, options(temporal.name))
    for name, kind in [(plugins.dataset, "dataset")] + [(n, "logger") for n in plugins.loggers]:
        comp = registry.get(name, kind)
        components[comp.name] = build_config(comp.config_class, options(comp.name), comp.name)
    for kind in KINDS:
        for short, section in raw.get(kind, {}).items():
            name = f"{kind}.{short}"
            if not isinstance(section, Mapping):
                raise ConfigError(
                    f"[{kind}] must contain plugin sections like [{kind}.NAME]; "
                    f"found {short} = {section!r}"
                )
            if name in components:
                continue
            if name not in registry.names():
                hint = close_matches(name, registry.names())
                raise ConfigError(f"section [{name}] configures an unknown plugin.{hint}")
            comp = registry.get(name)
            build_config(comp.config_class, section, name)  # typos fail even when unused
            used = _selected(plugins, kind)
            if name in must_be_selected:
                raise ConfigError(
                    f"--set {name}.…: this run does not use {name} (its {kind} is "
                    f"{used or 'none'}); select it with --plugin {name} or set "
                    f"{used or kind + '.NAME'}.… instead"
                )
            if warn_unselected:
                warnings.warn(
                    f"options for {name} are ignored: this run's {kind} is {used or 'none'}",
                    ConfigWarning,
                    stacklevel=2,
                )
    return ResolvedConfig(run=run, plugins=plugins, components=components)


def _selected(plugins: PluginsConfig, kind: str) -> str:
    """The plugin(s) of ``kind`` a run selects, as text."""
    if kind == "logger":
        return ", ".join(plugins.loggers)
    return str(getattr(plugins, kind, ""))


def temporal_config(backbone: Backbone, component: Any, user: Mapping[str, Any]) -> Any:
    """The config of temporal plugin ``component`` on ``backbone``: the user's options, and
    for every option the user left unset, the backbone's published value where it has one
    (:meth:`Backbone.published_temporal_options`), else the plugin's default."""
    base = build_config(component.config_class, user, component.name)
    published = backbone.published_temporal_options(config_to_dict(base), frozenset(user))
    names = {f.name for f in attrs.fields(component.config_class)}
    extra = {k: v for k, v in published.items() if k in names and k not in user}
    if not extra:
        return base
    return build_config(component.config_class, {**extra, **user}, component.name)


@attrs.frozen
class Assembled:
    """Everything a run is made of, built from a resolved config."""

    backbone: Backbone
    temporal: TemporalGenerator
    gan: VideoGAN


def assemble(config: ResolvedConfig, registry: Registry) -> Assembled:
    """Build the backbone, the selected temporal generator and the GAN (not the dataset)."""
    name, cfg = config.component("backbone")
    backbone: Backbone = registry.create(name, cfg)
    spec = backbone.temporal_spec()
    tname, tcfg = config.component("temporal")
    temporal = registry.create(tname, tcfg, spec)
    gan = backbone.build(temporal)
    return Assembled(backbone=backbone, temporal=temporal, gan=gan)


@attrs.frozen
class TemporalVariant:
    """One temporal generator a backbone could use, as ``ndevgan info`` lists it."""

    plugin: str
    options: dict[str, Any]
    parameters: int | None
    """Trainable parameters, or None when the variant does not fit the backbone."""
    note: str = ""

    @property
    def label(self) -> str:
        """``plugin key=value …``."""
        return " ".join([self.plugin, *(f"{k}={v}" for k, v in self.options.items())])


VARIANT_AXES = ("order", "design")
"""Config fields whose choices :func:`temporal_variants` enumerates (when a plugin has them)."""


def temporal_variants(
    backbone: Backbone,
    registry: Registry,
    user_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[TemporalVariant]:
    """Every installed temporal plugin, at each choice of its ``order`` and ``design`` options
    (the paper's ablation axes), built for ``backbone`` on the meta device to count parameters.

    ``user_options`` maps a plugin's name to the options the user set for it (a config file's
    section, ``--set``); they apply to every variant of that plugin except on the axes, and
    the backbone's published values fill the rest (:func:`temporal_config`).
    """
    import torch

    spec = backbone.temporal_spec()
    variants = []
    for comp in registry.load_all():
        if comp.kind != "temporal":
            continue
        fields = {f.name: f for f in attrs.fields(comp.config_class)}
        axes = {
            key: fields[key].validator.choices
            for key in VARIANT_AXES
            if key in fields and hasattr(fields[key].validator, "choices")
        }
        user = dict((user_options or {}).get(comp.name, {}))
        for combo in itertools.product(*axes.values()):
            options = dict(zip(axes, combo, strict=True))
            try:
                config = temporal_config(backbone, comp, {**user, **options})
                with torch.device("meta"):
                    module = registry.create(comp.name, config, spec)
            except NdevganError as exc:
                variants.append(TemporalVariant(comp.name, options, None, str(exc)))
                continue
            hidden = getattr(module, "hidden", None)
            note = f"hidden {hidden}" if options.get("design") == "matched" and hidden else ""
            variants.append(TemporalVariant(comp.name, options, count_parameters(module), note))
    return variants


def make_dataset(config: ResolvedConfig, registry: Registry, backbone: Backbone) -> VideoDataset:
    """Build the selected dataset for the backbone's video shape."""
    name, cfg = config.component("dataset")
    return registry.create(name, cfg, backbone.video_spec())


resolve_config = resolve
"""``nd.resolve_config``: :func:`resolve` under the name the package exports."""
