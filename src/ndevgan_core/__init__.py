"""ndevgan's core: contracts, plugin registry, configuration, solvers and the trainer.

The public API, in the spirit of torchdiffeq (a small surface over tables of components):

- :func:`list_plugins` / :func:`get_plugin` — the registered components by name;
- :data:`hookimpl` — decorate plugin hooks (see :mod:`ndevgan_core.hookspecs`);
- the contracts a plugin implements: :class:`TemporalGenerator`, :class:`ImageGenerator`,
  :class:`VideoGAN`, :class:`Backbone`, :class:`VideoDataset`, with :class:`TemporalSpec`
  and :class:`VideoSpec`;
- :class:`ODETemporalGenerator` / :class:`SDETemporalGenerator`: a dynamics plugin supplies
  the initial state and vector fields, the core integrates them (:func:`odeint`,
  :func:`sdeint` with :class:`ODESolverOptions` / :class:`SDESolverOptions`: torchdiffeq,
  torchsde or the core's unrolled fixed-step solvers), and :class:`FieldOptions` builds the
  paper's f designs;
- :func:`train`, :func:`load_generator` — train from a config, generate from a checkpoint;
- :func:`export_onnx`, :class:`OnnxVideoGenerator` — export a generator to ONNX, run it in
  ONNX Runtime.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ndevgan")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

from .config import (
    build_config,
    config_to_dict,
    non_negative,
    one_of,
    option,
    parse_value,
    positive,
    power_of_two,
)
from .contracts import (
    Backbone,
    Features,
    FeatureStats,
    ImageGenerator,
    Metric,
    MetricResult,
    ODETemporalGenerator,
    SDETemporalGenerator,
    TemporalGenerator,
    TemporalSpec,
    TrainingRun,
    VideoClassifier,
    VideoDataset,
    VideoGAN,
    VideoGenerator,
    VideoSpec,
    count_parameters,
)
from .devices import resolve_device
from .errors import CheckpointError, ConfigError, NdevganError, PluginError
from .fields import (
    FieldOptions,
    LatentInput,
    add_time_input,
    build_field_net,
    initialise,
    latent_layout,
    match_reference_width,
    run_post_init_hooks,
)
from .files import atomic_path, write_bytes_atomic, write_json_atomic, write_text_atomic
from .hookspecs import hookimpl
from .losses import (
    r1_penalty,
    singular_value_clip,
    wgan_discriminator_loss,
    wgan_generator_loss,
)
from .progress import progress_bar
from .registry import Registry, default_registry, get_plugin, list_plugins
from .sde_solvers import SDESolverOptions, sdeint
from .solvers import ODESolverOptions, odeint

# The applications (training, export, ONNX Runtime) load on first use, so a plugin that
# imports ndevgan_core does not pay for them.
_LAZY = {
    "ExportError": "export.onnx",
    "OutputPath": "options",
    "device_option": "options",
    "progress_option": "options",
    "stats_cache_option": "options",
    "export_onnx": "export.onnx",
    "OnnxVideoGenerator": "export.runtime",
    "load_generator": "training.api",
    "train": "training.api",
    "load": "training.api",
    "dataset": "training.api",
    "TrainedGenerator": "training.api",
    "RealClips": "training.api",
    "sample_videos": "training.api",
    "atomic_torch_save": "training.checkpoint",
    "load_checkpoint": "training.checkpoint",
    "save_checkpoint": "training.checkpoint",
    "evaluate": "evaluation",
    "higher_is_better": "evaluation",
    "load_dataset_of": "evaluation",
    "read_stats": "evaluation",
    "real_feature_stats": "evaluation",
    "resolve_config": "runconfig",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ndevgan_core' has no attribute {name!r}")


__all__ = [
    "Backbone",
    "CheckpointError",
    "ConfigError",
    "ExportError",
    "FeatureStats",
    "Features",
    "FieldOptions",
    "ImageGenerator",
    "LatentInput",
    "Metric",
    "MetricResult",
    "NdevganError",
    "ODESolverOptions",
    "ODETemporalGenerator",
    "OnnxVideoGenerator",
    "OutputPath",
    "PluginError",
    "RealClips",
    "Registry",
    "SDESolverOptions",
    "SDETemporalGenerator",
    "TemporalGenerator",
    "TemporalSpec",
    "TrainedGenerator",
    "TrainingRun",
    "VideoClassifier",
    "VideoDataset",
    "VideoGAN",
    "VideoGenerator",
    "VideoSpec",
    "__version__",
    "add_time_input",
    "atomic_path",
    "atomic_torch_save",
    "build_config",
    "build_field_net",
    "config_to_dict",
    "count_parameters",
    "dataset",
    "default_registry",
    "device_option",
    "evaluate",
    "export_onnx",
    "get_plugin",
    "higher_is_better",
    "hookimpl",
    "initialise",
    "latent_layout",
    "list_plugins",
    "load",
    "load_checkpoint",
    "load_dataset_of",
    "load_generator",
    "match_reference_width",
    "non_negative",
    "odeint",
    "one_of",
    "option",
    "parse_value",
    "positive",
    "power_of_two",
    "progress_bar",
    "progress_option",
    "r1_penalty",
    "read_stats",
    "real_feature_stats",
    "resolve_config",
    "resolve_device",
    "run_post_init_hooks",
    "sample_videos",
    "save_checkpoint",
    "sdeint",
    "singular_value_clip",
    "stats_cache_option",
    "train",
    "wgan_discriminator_loss",
    "wgan_generator_loss",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
