"""What an export writes: the solver, frames and times of a file (:func:`plan_export`), and the
export's constants and error."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import attrs
import torch

from ndevgan_core.contracts import ODETemporalGenerator, SDETemporalGenerator, VideoGenerator
from ndevgan_core.errors import ConfigError, NdevganError
from ndevgan_core.sde_solvers import UNROLLED_SDE_METHODS, SDESolverOptions
from ndevgan_core.solvers import FIXED_STEP_METHODS, UNROLLED_ODE_METHODS, ODESolverOptions

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
_CORE_DIR = str(Path(__file__).resolve().parent.parent)  # ndevgan_core: frames of the core


class ExportError(NdevganError, RuntimeError):
    """A generator cannot be exported, or its exported graph does not reproduce it."""


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
