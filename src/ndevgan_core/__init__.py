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

from .config import build_config, option
from .contracts import (
    Backbone,
    ImageGenerator,
    ODETemporalGenerator,
    SDETemporalGenerator,
    TemporalGenerator,
    TemporalSpec,
    VideoClassifier,
    VideoDataset,
    VideoGAN,
    VideoGenerator,
    VideoSpec,
    count_parameters,
)
from .errors import CheckpointError, ConfigError, NdevganError, PluginError
from .fields import FieldOptions
from .hookspecs import hookimpl
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
    "export_onnx": "export.onnx",
    "OnnxVideoGenerator": "export.runtime",
    "load_generator": "training.api",
    "train": "training.api",
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
    "FieldOptions",
    "ImageGenerator",
    "NdevganError",
    "ODESolverOptions",
    "ODETemporalGenerator",
    "OnnxVideoGenerator",
    "OutputPath",
    "PluginError",
    "Registry",
    "SDESolverOptions",
    "SDETemporalGenerator",
    "TemporalGenerator",
    "TemporalSpec",
    "VideoClassifier",
    "VideoDataset",
    "VideoGAN",
    "VideoGenerator",
    "VideoSpec",
    "__version__",
    "build_config",
    "count_parameters",
    "default_registry",
    "device_option",
    "export_onnx",
    "get_plugin",
    "hookimpl",
    "list_plugins",
    "load_generator",
    "odeint",
    "option",
    "progress_bar",
    "progress_option",
    "sdeint",
    "train",
]
