"""Exporting a trained generator to one self-contained ONNX file (``ndevgan export``).

Neither torchdiffeq's nor torchsde's solvers export (docs/BENCH_ONNX.md), so a continuous
temporal generator — one built on :class:`~ndevgan_core.contracts.ODETemporalGenerator` or
:class:`~ndevgan_core.contracts.SDETemporalGenerator` — is integrated in the graph by the
core's unrolled fixed-step solvers: a deep copy of the generator gets its solver options evolved
to the ``unrolled`` backend (the loaded model is never touched), and the plugin's vector fields
are traced as they are. Discrete temporal generators (conv1d, the GRU with its per-step noise
as an input, the ConvLSTM) export as they are.

The graph's inputs are ``z`` and, for stochastic generators, ``noise`` (standard normals; an
SDE scales them by √dt inside the graph), with a dynamic batch axis; its output is ``video``
``(B, T, C, H, W)`` in [-1, 1]. Frames, times, solver and steps are fixed per file and written
into the model's metadata (:mod:`ndevgan_core.export.runtime` reads it back) with the plugins,
config and checkpoint hash that made it. Before the file is moved into place ONNX Runtime runs it at
two batch sizes against the PyTorch generator with the same solver (:data:`PARITY_TOLERANCE`),
and the report also gives the error against the training-time solver.

The graph is traced with torch's TorchScript-based exporter by default: on these generators it
exports in about a fifth of the time of the torch.export-based one (which cannot trace the
discrete generators' time-grid checks) and gives the same parity (docs/BENCH_ONNX.md).
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import math
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import click
import torch
from torch import nn

from ndevgan_core.contracts import ODETemporalGenerator, SDETemporalGenerator, VideoGenerator
from ndevgan_core.errors import CheckpointError, ConfigError, NdevganError
from ndevgan_core.export.runtime import (
    FORMAT,
    FORMAT_VERSION,
    METADATA_KEY,
    OnnxMetadata,
    captured_native_stderr,
    open_session,
    parse_metadata,
)
from ndevgan_core.files import write_bytes_atomic
from ndevgan_core.hookspecs import hookimpl
from ndevgan_core.options import OutputPath
from ndevgan_core.registry import Registry, default_registry
from ndevgan_core.sde_solvers import UNROLLED_SDE_METHODS, SDESolverOptions
from ndevgan_core.solvers import FIXED_STEP_METHODS, UNROLLED_ODE_METHODS, ODESolverOptions
from ndevgan_core.training.api import LoadedGenerator, load_generator
from ndevgan_core.training.checkpoint import latest_checkpoint

EXPORT_SOLVERS: tuple[str, ...] = (*UNROLLED_ODE_METHODS, *UNROLLED_SDE_METHODS)
"""``--solver`` choices: the unrolled ODE methods, then the unrolled SDE methods."""

EXPORTERS: tuple[str, ...] = ("torchscript", "dynamo")
"""torch's ONNX exporters: TorchScript tracing (default) or torch.export (continuous only)."""

PARITY_TOLERANCE: dict[str, float] = {"float32": 1e-4, "float16": 2e-2}
"""Largest max-abs difference between ONNX Runtime and PyTorch (same solver) an export accepts."""

PARITY_BATCHES: tuple[int, int] = (1, 3)
"""Batch sizes the parity check runs at (the graph is traced at batch 2)."""

_TRACE_BATCH = 2
_RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial"}
    | {"Bernoulli"}
)
_CORE_DIR = str(Path(__file__).resolve().parent)


class ExportError(NdevganError, RuntimeError):
    """A generator cannot be exported, or its exported graph does not reproduce it."""


# --------------------------------------------------------------------------------------------
# What to export


@attrs.frozen
class ExportPlan:
    """The fixed choices of one export: frame times, the solver in the graph, and the inputs.

    ``solver`` is the unrolled solver options swapped into the copy (None: the temporal
    generator exports as it is); ``noise_shape`` the per-sample shape of ``noise`` (None for a
    deterministic generator).
    """

    times: tuple[float, ...]
    dtype: torch.dtype
    solver: ODESolverOptions | SDESolverOptions | None
    steps_per_frame: int | None
    noise_shape: tuple[int, ...] | None


def _default_sde_method(options: SDESolverOptions) -> str:
    """The unrolled method nearest the training one: Milstein stays Milstein, Itô SDEs take
    Euler–Maruyama (torchsde's ``euler``), Stratonovich ones Milstein."""
    if options.method == "milstein" or options.sde_type == "stratonovich":
        return "milstein"
    return "euler-maruyama"


def _grid(
    spec: Any, frames: int | None, t_start: float | None, t_end: float | None
) -> tuple[float, float, int]:
    a = spec.t_start if t_start is None else float(t_start)
    b = spec.t_end if t_end is None else float(t_end)
    count = spec.frames if frames is None else int(frames)
    if count < 1:
        raise ConfigError(f"frames: expected a count >= 1, got {count}")
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ConfigError(f"t_start/t_end: expected finite times, got {a}, {b}")
    if count > 1 and a == b:
        raise ConfigError(f"t_start and t_end are both {a:g}; {count} frames need a span")
    return a, b, count


def plan_export(
    generator: VideoGenerator,
    *,
    frames: int | None = None,
    t_start: float | None = None,
    t_end: float | None = None,
    steps_per_frame: int | None = None,
    solver: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> ExportPlan:
    """Check the export options against ``generator`` and fix the times, solver and inputs.

    Defaults: the trained grid; for an ODE the training method when it is an unrolled one (else
    rk4) and its step size (none: one step per frame); for an SDE the nearest unrolled method
    and the training ``dt``. ``steps_per_frame`` N splits each frame interval into N steps (an
    SDE's ``dt`` becomes the interval / N). Discrete generators take only their trained grid.
    """
    temporal = generator.temporal
    name = temporal.plugin_name
    a, b, count = _grid(generator.spec, frames, t_start, t_end)
    times = torch.linspace(a, b, count).to(dtype)
    values = tuple(times.tolist())
    if steps_per_frame is not None and steps_per_frame < 1:
        raise ConfigError(f"steps_per_frame: expected an integer >= 1, got {steps_per_frame}")
    if not temporal.continuous:
        if (count, a, b) != (temporal.spec.frames, temporal.spec.t_start, temporal.spec.t_end):
            temporal.check_times(times.float())  # raises the plugin's own message
        if solver is not None or steps_per_frame is not None:
            raise ConfigError(
                f"solver/steps_per_frame: {name} is a discrete temporal generator; it exports as "
                "it is, without a solver"
            )
    is_ode = isinstance(temporal, ODETemporalGenerator)
    is_sde = isinstance(temporal, SDETemporalGenerator)
    if temporal.continuous and not (is_ode or is_sde) and (solver or steps_per_frame):
        raise ConfigError(
            f"solver/steps_per_frame: {name} is neither an ODETemporalGenerator nor an "
            "SDETemporalGenerator, so the core cannot swap its solver; it exports as it is"
        )
    if steps_per_frame is not None and count < 2:
        raise ConfigError("steps_per_frame: needs at least 2 frames (it divides frame intervals)")
    interval = abs(values[1] - values[0]) if count > 1 else None
    options: ODESolverOptions | SDESolverOptions | None = None
    if is_ode:
        trained = temporal.solver
        method = solver or (trained.method if trained.method in UNROLLED_ODE_METHODS else "rk4")
        if method not in UNROLLED_ODE_METHODS:
            raise ConfigError(
                f"solver: {name} is an ODE; expected one of {', '.join(UNROLLED_ODE_METHODS)}, "
                f"got {method!r}"
            )
        step_size = trained.step_size
        if steps_per_frame is not None:
            assert interval is not None
            step_size = interval / steps_per_frame
        options = _evolve(trained, name, backend="unrolled", method=method, step_size=step_size)
    elif is_sde:
        trained = temporal.solver
        method = solver or _default_sde_method(trained)
        if method not in UNROLLED_SDE_METHODS:
            raise ConfigError(
                f"solver: {name} is an SDE; expected one of {', '.join(UNROLLED_SDE_METHODS)}, "
                f"got {method!r}"
            )
        dt = trained.dt if steps_per_frame is None else interval / steps_per_frame
        options = _evolve(trained, name, backend="unrolled", method=method, dt=dt)
    noise_shape = None
    if temporal.stochastic:
        probe = temporal
        if options is not None:
            probe = copy.copy(temporal)  # a shallow copy, only to ask for the noise shape
            probe.solver = options
        noise_shape = tuple(probe.noise_shape(1, times))[1:]
    return ExportPlan(values, dtype, options, steps_per_frame, noise_shape)


def _evolve(options: Any, name: str, **changes: Any) -> Any:
    changes["adjoint"] = False
    try:
        return attrs.evolve(options, **changes)
    except ConfigError as exc:
        raise ConfigError(f"{name}: cannot export with these solver options: {exc}") from None


def describe_solver(options: Any) -> str:
    """A short description of ODE or SDE solver options, e.g. ``torchdiffeq dopri5 (rtol
    1e-07, atol 1e-09)`` or ``unrolled euler-maruyama, dt 0.025``."""
    text = f"{options.backend} {options.method}"
    if isinstance(options, SDESolverOptions):
        return f"{text}, dt {options.dt:g}"
    if options.step_size is not None:
        return f"{text}, step {options.step_size:g}"
    if options.backend == "torchdiffeq" and options.method not in FIXED_STEP_METHODS:
        return f"{text} (rtol {options.rtol:g}, atol {options.atol:g})"
    return f"{text}, one step per frame"


# --------------------------------------------------------------------------------------------
# The traced module


class GraphModule(nn.Module):
    """What the exported graph computes: ``(z[, noise])`` → ``video`` ``(B, T, C, H, W)``.

    The same steps as :meth:`VideoGenerator.forward` on the fixed ``times`` (checked when the
    export was planned). ODE and SDE generators get the times as Python floats, which the core's
    solvers trace without reading tensor values; other generators get a constant tensor. With
    ``temporal_only`` it stops at the frame latents (used to tell which plugin an op belongs to).
    """

    def __init__(
        self, generator: VideoGenerator, times: tuple[float, ...], temporal_only: bool = False
    ) -> None:
        super().__init__()
        self.generator = generator
        self.times = list(times)
        self.temporal_only = temporal_only

    def forward(self, z: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Videos ``(B, T, C, H, W)`` (or the latents with ``temporal_only``)."""
        g = self.generator
        temporal = g.temporal
        start = z if g.temporal_slice is None else z[:, slice(*g.temporal_slice)]
        t: Any = self.times
        if not isinstance(temporal, ODETemporalGenerator | SDETemporalGenerator):
            t = torch.tensor(self.times, dtype=z.dtype, device=z.device)
        latents = temporal(start, t, noise=noise) if temporal.stochastic else temporal(start, t)
        if self.temporal_only:
            return latents
        return g.image(latents, z)


def exportable_generator(
    generator: VideoGenerator, plan: ExportPlan
) -> tuple[GraphModule, VideoGenerator]:
    """The module that is traced for ``plan`` and the eval-mode fp32 copy of ``generator`` it
    was made from (the reference with the training-time solver). Both are deep copies."""
    reference = copy.deepcopy(generator).float().eval()
    exported = copy.deepcopy(reference).to(plan.dtype)
    if plan.solver is not None:
        exported.temporal.solver = plan.solver
    return GraphModule(exported, plan.times).eval(), reference


# --------------------------------------------------------------------------------------------
# Tracing and diagnosing


def _trace(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    names: list[str],
    path: Path,
    opset: int,
    exporter: str,
) -> list[str]:
    """Export ``module`` to ``path``; returns the trace warnings raised from plugin code."""
    with (
        torch.no_grad(),
        warnings.catch_warnings(record=True) as caught,
        captured_native_stderr(),
    ):
        warnings.simplefilter("always")
        if exporter == "torchscript":
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=names,
                output_names=["video"],
                dynamic_axes={n: {0: "batch"} for n in [*names, "video"]},
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
        else:
            batch = torch.export.Dim("batch", min=1)
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=names,
                output_names=["video"],
                dynamic_shapes={n: {0: batch} for n in names},
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    notes = []
    for w in caught:
        if issubclass(w.category, torch.jit.TracerWarning) and not str(w.filename).startswith(
            (_CORE_DIR, str(Path(torch.__file__).parent))
        ):
            notes.append(f"{w.filename}:{w.lineno}: {str(w.message).splitlines()[0]}")
    return sorted(set(notes))


def _random_ops(model: Any) -> list[str]:
    """The random-number ops anywhere in an ONNX model (subgraphs included)."""
    import onnx

    found: set[str] = set()

    def scan(graph: Any) -> None:
        for node in graph.node:
            if node.op_type in _RANDOM_OPS:
                found.add(node.op_type)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    scan(attr.g)
                for sub in attr.graphs:
                    scan(sub)

    scan(model.graph)
    return sorted(found)


def _first_line(exc: BaseException) -> str:
    """``Type: first line`` of the innermost cause (torch.export wraps the real error)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _op_of(exc: BaseException) -> str | None:
    found = re.search(r"operator '([\w:.]+)'", str(exc))
    return found.group(1) if found else None


@attrs.frozen
class _Tracer:
    """Traces one module with fixed example inputs and settings, and explains failures.

    ``temporal``/``backbone`` name the plugins to blame (from the checkpoint's config) and
    ``field`` what of the temporal plugin is traced ("its vector field" for ODE/SDE plugins).
    A problem is blamed on the temporal plugin when its generator, exported alone, shows it
    too; otherwise on the backbone's image generator.
    """

    module: GraphModule
    args: tuple[torch.Tensor, ...]
    names: list[str]
    opset: int
    exporter: str
    temporal: str
    backbone: str
    field: str

    def trace(self, path: Path, module: nn.Module | None = None) -> list[str]:
        """Export the module (or ``module``) to ``path``; see :func:`_trace`."""
        return _trace(module or self.module, self.args, self.names, path, self.opset, self.exporter)

    def _culprit(self, shows_problem: Callable[[Exception | None, Any], bool]) -> tuple[str, str]:
        """(plugin, part) to blame: ``shows_problem(error, model)`` is asked about the
        temporal generator exported alone (error None when it exported, model None when not)."""
        alone = GraphModule(self.module.generator, tuple(self.module.times), temporal_only=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "temporal.onnx"
            try:
                self.trace(path, alone.eval())
            except NdevganError:
                raise
            except Exception as exc:
                temporal = shows_problem(exc, None)
            else:
                import onnx

                temporal = shows_problem(None, onnx.load(str(path)))
        return (self.temporal, self.field) if temporal else (self.backbone, "its image generator")

    def failure(self, exc: Exception) -> NdevganError:
        """The error to raise for an exception from the exporter."""
        op = _op_of(exc)
        text = str(exc).lower()
        if op is None and "opset" in text and "unsupported" in text:
            return ConfigError(f"opset {self.opset}: torch's exporter cannot write it ({exc})")

        def same(other: Exception | None, _model: Any) -> bool:
            if other is None:
                return False
            return _op_of(other) == op if op else type(other) is type(exc)

        plugin, part = self._culprit(same)
        if op is not None:
            return ExportError(
                f"{plugin}: cannot export to ONNX: {part} uses the op {op}, which has no ONNX "
                f"equivalent at opset {self.opset}; write it with exportable torch ops"
            )
        hint = " (the torchscript exporter may trace it)" if self.exporter == "dynamo" else ""
        return ExportError(
            f"{plugin}: tracing {part} for ONNX export failed: {_first_line(exc)}{hint}"
        )

    def random_failure(self, ops: list[str]) -> ExportError:
        """The error for a graph that draws random numbers (ops ``ops``)."""
        plugin, part = self._culprit(lambda _exc, model: model is not None and _random_ops(model))
        return ExportError(
            f"{plugin}: cannot export to ONNX: {part} draws random numbers inside the graph (op "
            f"{', '.join(ops)}), which no caller could seed; an exported generator takes its "
            "noise as an input — make the randomness a stochastic generator's noise, or remove it"
        )


# --------------------------------------------------------------------------------------------
# The report and the metadata


@attrs.frozen
class ExportReport:
    """What an export wrote and how well the file reproduces the generator.

    ``parity`` maps each checked batch size to the max abs difference between ONNX Runtime and
    PyTorch with the same (unrolled) solver; ``training_error`` is the max abs difference
    between ONNX Runtime and the generator with its training-time solver (None where no common
    input exists; ``training_reference`` says which solver, or why not). ``trace_warnings``
    are the tracer's warnings from plugin code (Python control flow on tensor values).
    """

    path: Path
    metadata: OnnxMetadata
    parity: dict[int, float]
    tolerance: float
    training_error: float | None
    training_reference: str
    provider: str
    trace_warnings: tuple[str, ...]
    seconds: float
    size_bytes: int

    @property
    def max_error(self) -> float:
        """The largest parity error over the checked batch sizes."""
        return max(self.parity.values())

    def lines(self) -> list[str]:
        """The report for people, one fact a line."""
        meta = self.metadata
        temporal = meta.temporal
        solver = temporal.get("solver")
        how = "exported as it is"
        if solver:
            how = describe_solver(_solver_from_dict(solver, temporal["kind"]))
            if temporal.get("steps_per_frame"):
                how += f", {temporal['steps_per_frame']} steps per frame"
        parity = ", ".join(f"{e:.1e} (batch {b})" for b, e in self.parity.items())
        lines = [
            f"wrote {self.path} ({self.size_bytes / 1e6:.1f} MB, {self.seconds:.1f} s): "
            f"{meta.summary()}",
            f"  inputs: {meta.describe_inputs()}",
            f"  temporal: {temporal['plugin']} ({temporal['kind']}): {how}",
            f"  ONNX Runtime ({self.provider}) vs PyTorch, same solver: max abs error {parity}; "
            f"limit {self.tolerance:g}",
        ]
        if self.training_error is not None:
            lines.append(
                f"  vs the training-time solver ({self.training_reference}): max abs error "
                f"{self.training_error:.1e}"
            )
        else:
            lines.append(f"  vs the training-time solver: n/a ({self.training_reference})")
        return lines


def _solver_from_dict(data: dict[str, Any], kind: str) -> Any:
    cls = SDESolverOptions if kind == "sde" else ODESolverOptions
    names = {f.name for f in attrs.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def _kind(temporal: Any) -> str:
    if isinstance(temporal, ODETemporalGenerator):
        return "ode"
    if isinstance(temporal, SDETemporalGenerator):
        return "sde"
    return "continuous" if temporal.continuous else "discrete"


def _solver_dict(options: Any) -> dict[str, Any] | None:
    if options is None:
        return None
    fields = attrs.fields(
        SDESolverOptions if isinstance(options, SDESolverOptions) else ODESolverOptions
    )
    return {f.name: getattr(options, f.name) for f in fields}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _provider_of(registry: Registry | None, name: str) -> str | None:
    if registry is None or not name:
        return None
    try:
        provider = registry.get(name).provider
    except NdevganError:
        return None
    return f"{provider.package} {provider.version}".strip()


def build_metadata(
    generator: VideoGenerator,
    plan: ExportPlan,
    *,
    loaded: LoadedGenerator | None,
    checkpoint: Path | None,
    registry: Registry | None,
    opset: int,
    exporter: str,
    video_shape: tuple[int, ...],
    checks: dict[str, Any],
) -> dict[str, Any]:
    """The ``ndevgan`` metadata of an export (JSON-able): inputs, output (per-sample
    ``video_shape`` (T, C, H, W)), times, solver, plugins, config, checkpoint and the parity
    figures in ``checks``."""
    from ndevgan_core import __version__

    temporal = generator.temporal
    dtype = "float16" if plan.dtype == torch.float16 else "float32"
    inputs: dict[str, Any] = {
        "z": {
            "shape": ["batch", *generator.z_shape],
            "dtype": dtype,
            "distribution": generator.z_distribution,
            "description": "the latent: uniform on [-1, 1]"
            if generator.z_distribution == "uniform"
            else "the latent: standard normal",
        }
    }
    if plan.noise_shape is not None:
        inputs["noise"] = {
            "shape": ["batch", *plan.noise_shape],
            "dtype": dtype,
            "distribution": "normal",
            "description": "standard-normal increments, one row per solver step, scaled by "
            "sqrt(dt) inside the graph"
            if isinstance(temporal, SDETemporalGenerator)
            else "standard-normal noise, one row per step",
        }
    spec = generator.spec
    plugins: dict[str, Any] = {"temporal": temporal.plugin_name}
    config = None
    if loaded is not None:
        p = loaded.config.plugins
        plugins = {"backbone": p.backbone, "temporal": p.temporal, "dataset": p.dataset}
        config = loaded.config.to_dict()
    packages = {
        name: pkg for name in plugins.values() if (pkg := _provider_of(registry, name)) is not None
    }
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ndevgan_version": __version__,
        "inputs": inputs,
        "outputs": {
            "video": {
                "shape": ["batch", *video_shape],
                "layout": "batch, frames, channels, height, width",
                "dtype": dtype,
                "range": [-1.0, 1.0],
            }
        },
        "frames": len(plan.times),
        "times": list(plan.times),
        "trained_interval": [spec.t_start, spec.t_end],
        "z_time": spec.t_start,
        "temporal": {
            "plugin": temporal.plugin_name,
            "kind": _kind(temporal),
            "continuous": bool(temporal.continuous),
            "stochastic": bool(temporal.stochastic),
            "solver": _solver_dict(plan.solver),
            "steps_per_frame": plan.steps_per_frame,
            "training_solver": _solver_dict(getattr(temporal, "solver", None)),
        },
        "plugins": plugins,
        "plugin_packages": packages,
        "config": config,
        "checkpoint": None
        if checkpoint is None
        else {
            "file": checkpoint.name,
            "sha256": _sha256(checkpoint),
            "step": loaded.step if loaded is not None else None,
        },
        "export": {
            "opset": opset,
            "exporter": exporter,
            "fp16": plan.dtype == torch.float16,
            "torch": torch.__version__,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            **checks,
        },
    }


# --------------------------------------------------------------------------------------------
# Export


def _inputs(
    generator: VideoGenerator, plan: ExportPlan, batch: int, seed: int
) -> dict[str, torch.Tensor]:
    rng = torch.Generator().manual_seed(seed)
    inputs = {"z": generator.sample_z(batch, rng)}
    if plan.noise_shape is not None:
        inputs["noise"] = torch.randn((batch, *plan.noise_shape), generator=rng)
    return inputs


def _training_reference(
    reference: VideoGenerator, plan: ExportPlan, inputs: dict[str, torch.Tensor]
) -> tuple[torch.Tensor | None, str]:
    """The training-time solver's videos ``(B, T, C, H, W)`` for ``inputs``, or None and why."""
    temporal = reference.temporal
    if not temporal.continuous:
        return None, "discrete: the graph is the trained generator itself"
    options = getattr(temporal, "solver", None)
    what = describe_solver(options) if options is not None else "its own forward"
    t = torch.tensor(plan.times, dtype=torch.float32)
    noise = inputs.get("noise")
    if temporal.stochastic:
        if options is not None and options.backend == "torchsde" and options.method == "srk":
            return None, f"{what} draws its own Brownian motion, so no noise is common to both"
        shape = tuple(temporal.noise_shape(noise.shape[0], t))
        if shape != tuple(noise.shape):
            return None, (
                f"{what} takes noise of shape {shape[1:]} per sample on this grid and the export "
                f"{tuple(noise.shape[1:])}, so no noise is common to both"
            )
    with torch.no_grad():
        video = reference(inputs["z"], t, noise=noise.float() if noise is not None else None)
    return video.transpose(1, 2), what


def _load(
    source: str | os.PathLike[str] | LoadedGenerator | VideoGenerator, registry: Registry | None
) -> tuple[VideoGenerator, LoadedGenerator | None, Path | None]:
    if isinstance(source, VideoGenerator):
        return source, None, None
    if isinstance(source, LoadedGenerator):
        return source.generator, source, None
    path = Path(source)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    checkpoint = latest_checkpoint(path) if path.is_dir() else path
    loaded = load_generator(checkpoint, registry or default_registry())
    return loaded.generator, loaded, checkpoint


def export_onnx(
    source: str | os.PathLike[str] | LoadedGenerator | VideoGenerator,
    out: str | os.PathLike[str],
    *,
    frames: int | None = None,
    t_start: float | None = None,
    t_end: float | None = None,
    steps_per_frame: int | None = None,
    solver: str | None = None,
    opset: int = 18,
    fp16: bool = False,
    exporter: str = "torchscript",
    registry: Registry | None = None,
    progress: bool = False,
) -> ExportReport:
    """Export a generator to one self-contained ONNX file at ``out`` and verify it.

    ``source`` is a checkpoint file or run directory (its newest checkpoint), a
    :class:`~ndevgan_core.training.api.LoadedGenerator`, or a :class:`VideoGenerator`. Frames, times
    and solver are fixed per file (:func:`plan_export` gives the defaults). ``fp16`` exports in
    half precision (inputs and output too). The file is written only after ONNX Runtime
    reproduced PyTorch (same solver) within :data:`PARITY_TOLERANCE` at two batch sizes;
    otherwise :class:`ExportError`. A plugin whose ops do not export fails with its name and
    the op.
    """
    from ndevgan_core.progress import progress_bar

    if exporter not in EXPORTERS:
        raise ConfigError(f"exporter: expected one of {', '.join(EXPORTERS)}, got {exporter!r}")
    if not isinstance(opset, int) or opset < 13:
        raise ConfigError(f"opset: expected an ONNX opset >= 13, got {opset!r}")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"out: expected a file ending in .onnx, got {out.name!r}")
    started = time.perf_counter()
    generator, loaded, checkpoint = _load(source, registry)
    dtype = torch.float16 if fp16 else torch.float32
    plan = plan_export(
        generator,
        frames=frames,
        t_start=t_start,
        t_end=t_end,
        steps_per_frame=steps_per_frame,
        solver=solver,
        dtype=dtype,
    )
    module, reference = exportable_generator(generator, plan)
    temporal = generator.temporal
    example = _inputs(reference, plan, _TRACE_BATCH, seed=0)
    tracer = _Tracer(
        module=module,
        args=tuple(v.to(dtype) for v in example.values()),
        names=list(example),
        opset=opset,
        exporter=exporter,
        temporal=loaded.config.plugins.temporal if loaded else temporal.plugin_name,
        backbone=loaded.config.plugins.backbone if loaded else "the backbone",
        field="its vector field"
        if isinstance(temporal, ODETemporalGenerator | SDETemporalGenerator)
        else "its forward",
    )
    with progress_bar(3, desc="export", unit="stage", disable=not progress) as bar:
        bar.set_postfix_str("trace")
        model, notes = _traced_model(tracer)
        bar.update()
        bar.set_postfix_str("check in ONNX Runtime")
        check = _check(model.SerializeToString(), module, reference, plan, notes)
        bar.update()
        bar.set_postfix_str("write")
        meta = build_metadata(
            module.generator,
            plan,
            loaded=loaded,
            checkpoint=checkpoint,
            registry=registry or (default_registry() if loaded else None),
            opset=opset,
            exporter=exporter,
            video_shape=check.video_shape,
            checks=check.as_metadata(),
        )
        text = json.dumps(meta, default=str)
        del model.metadata_props[:]
        model.metadata_props.add(key=METADATA_KEY, value=text)
        model.doc_string = f"ndevgan generator: {parse_metadata(text, str(out)).summary()}"
        data = model.SerializeToString()
        write_bytes_atomic(out, data)
        bar.update()
    return ExportReport(
        path=out,
        metadata=parse_metadata(text, str(out)),
        parity=check.parity,
        tolerance=check.tolerance,
        training_error=check.training_error,
        training_reference=check.training_reference,
        provider=check.provider,
        trace_warnings=tuple(notes),
        seconds=time.perf_counter() - started,
        size_bytes=len(data),
    )


def _traced_model(tracer: _Tracer) -> tuple[Any, list[str]]:
    """Trace, load the ONNX model and refuse random ops: (model, trace warnings)."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.onnx"
        try:
            notes = tracer.trace(path)
        except NdevganError:
            raise
        except Exception as exc:
            raise tracer.failure(exc) from None
        model = onnx.load(str(path))
    random_ops = _random_ops(model)
    if random_ops:
        raise tracer.random_failure(random_ops)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises several types; all mean an unusable file
        raise ExportError(
            f"the exported graph is not a valid ONNX model: {_first_line(exc)}"
        ) from None
    return model, notes


@attrs.frozen
class _Check:
    """The outcome of :func:`_check`."""

    parity: dict[int, float]
    tolerance: float
    provider: str
    training_error: float | None
    training_reference: str
    video_shape: tuple[int, ...]

    def as_metadata(self) -> dict[str, Any]:
        """The figures as the metadata records them."""
        return {
            "parity_max_abs_error": {str(b): e for b, e in self.parity.items()},
            "parity_tolerance": self.tolerance,
            "parity_provider": self.provider,
            "training_solver_error": self.training_error,
            "training_solver_reference": self.training_reference,
        }


def _check(
    data: bytes,
    module: GraphModule,
    reference: VideoGenerator,
    plan: ExportPlan,
    notes: list[str],
) -> _Check:
    """Run the serialized model in ONNX Runtime (CPU) at :data:`PARITY_BATCHES` against
    ``module`` in PyTorch (same solver), and at the last one against ``reference`` (the
    training-time solver); raise :class:`ExportError` above the tolerance."""
    session, provider, _ = open_session(data, "cpu")
    dtype = plan.dtype
    tolerance = PARITY_TOLERANCE["float16" if dtype == torch.float16 else "float32"]
    parity: dict[int, float] = {}
    for batch in PARITY_BATCHES:
        inputs = _inputs(reference, plan, batch, seed=batch)
        with torch.no_grad():
            expected = module(*(v.to(dtype) for v in inputs.values())).double()
        feed = {k: v.to(dtype).numpy() for k, v in inputs.items()}
        got = torch.from_numpy(session.run(["video"], feed)[0]).double()
        if got.shape != expected.shape:
            raise ExportError(
                f"ONNX Runtime returned shape {tuple(got.shape)} at batch {batch}, PyTorch "
                f"{tuple(expected.shape)}: the traced graph does not generalise over the batch"
                + _hint(notes)
            )
        parity[batch] = float((got - expected).abs().max())
        if not parity[batch] <= tolerance:
            raise ExportError(
                f"ONNX Runtime differs from PyTorch (same solver) by {parity[batch]:.2e} at "
                f"batch {batch}, above the limit {tolerance:g}: the graph does not reproduce "
                "the generator" + _hint(notes)
            )
    video, training_reference = _training_reference(reference, plan, inputs)
    training_error = None
    if video is not None:
        training_error = float((got - video.double()).abs().max())
    return _Check(
        parity, tolerance, provider, training_error, training_reference, tuple(got.shape[1:])
    )


def _hint(notes: list[str]) -> str:
    if not notes:
        return ""
    return "; the tracer warned about Python control flow on tensor values at " + ", ".join(
        n.split(": ", 1)[0] for n in notes
    )


# --------------------------------------------------------------------------------------------
# ndevgan export


@click.command("export")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option(
    "--out",
    default="generator.onnx",
    show_default=True,
    type=OutputPath(),
    help="The ONNX file to write (one file, weights inside).",
)
@click.option(
    "--frames", type=click.IntRange(min=1), default=None, help="Frames (default: as trained)."
)
@click.option("--t-start", type=float, default=None, help="Time of the first frame.")
@click.option("--t-end", type=float, default=None, help="Time of the last frame.")
@click.option(
    "--steps-per-frame",
    type=click.IntRange(min=1),
    default=None,
    help="Solver steps per frame interval (default: the training step size, or one step; an "
    "SDE keeps its dt).",
)
@click.option(
    "--solver",
    type=click.Choice(EXPORT_SOLVERS),
    default=None,
    help="Unrolled solver in the graph (ODE: euler, midpoint, rk4, rk4-classic; SDE: "
    "euler-maruyama, milstein). Default: nearest to the training solver.",
)
@click.option(
    "--opset",
    type=click.IntRange(min=13),
    default=18,
    show_default=True,
    help="ONNX opset version of the file (13 or newer).",
)
@click.option("--fp16", is_flag=True, help="Export in half precision (inputs and output too).")
@click.option(
    "--exporter",
    type=click.Choice(EXPORTERS),
    default="torchscript",
    show_default=True,
    help="torch's TorchScript-based exporter, or the torch.export-based one (slower; "
    "continuous temporal generators only).",
)
def export_command(
    checkpoint: str,
    out: str,
    frames: int | None,
    t_start: float | None,
    t_end: float | None,
    steps_per_frame: int | None,
    solver: str | None,
    opset: int,
    fp16: bool,
    exporter: str,
) -> None:
    """Export a checkpoint's generator (a file, or a run directory's newest) to ONNX.

    Inputs z (and noise for stochastic generators) with a dynamic batch axis, output video
    (B, T, C, H, W) in [-1, 1]. ODE and SDE temporal generators are integrated by unrolled
    fixed-step solvers; the file is checked in ONNX Runtime against PyTorch before it is
    written. `ndevgan infer FILE` runs it.
    """
    report = export_onnx(
        checkpoint,
        out,
        frames=frames,
        t_start=t_start,
        t_end=t_end,
        steps_per_frame=steps_per_frame,
        solver=solver,
        opset=opset,
        fp16=fp16,
        exporter=exporter,
        progress=True,
    )
    for line in report.lines():
        click.echo(line)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``ndevgan export``."""
    cli.add_command(export_command)
