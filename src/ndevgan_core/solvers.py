"""Integrating the vector fields of differential-equation temporal generators.

Plugins expose their vector field as an ``nn.Module`` ``f(t, y)``; this module integrates it,
so every plugin gets the same solver options and error messages. Two backends:

- ``torchdiffeq`` (training default): any of its methods, fixed step or adaptive, adjoint on
  or off;
- ``unrolled``: fixed-step solvers written as plain torch ops (:func:`unrolled_odeint`), with
  no solver library in the graph, so they can be exported (ONNX). Their ``euler``,
  ``midpoint`` and ``rk4`` (the 3/8 rule) repeat torchdiffeq's floating-point operations in
  the same order, so on the output grid they give the same numbers bit for bit.

:func:`odeint_from` starts the solution at any time ``t0``, inside or outside the grid. Times
are a 1-D tensor or a sequence of floats; every decision that depends on their values is taken
on Python floats, so an unrolled solve given a sequence can be traced for export.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
import torch
import torchdiffeq
from torch import nn

from .config import method_of, non_negative, one_of, option, optional_positive, positive
from .errors import ConfigError

ODE_METHODS: tuple[str, ...] = (
    "dopri8",
    "dopri5",
    "bosh3",
    "fehlberg2",
    "adaptive_heun",
    "euler",
    "midpoint",
    "heun3",
    "rk4",
    "explicit_adams",
    "implicit_adams",
)
"""torchdiffeq methods that work without extra options (its ``scipy_solver`` and
``fixed_adams`` need more and are left out)."""

FIXED_STEP_METHODS = frozenset(
    {"euler", "midpoint", "heun3", "rk4", "explicit_adams", "implicit_adams"}
)
"""The torchdiffeq methods of :data:`ODE_METHODS` that take fixed steps (``step_size``)."""

UNROLLED_ODE_METHODS: tuple[str, ...] = ("euler", "midpoint", "rk4", "rk4-classic")
"""Methods of the ``unrolled`` backend: torchdiffeq's euler, midpoint and rk4 (3/8 rule)
repeated operation for operation, and the classic RK4 (1/6, 1/3, 1/3, 1/6)."""

ODE_BACKENDS: tuple[str, ...] = ("torchdiffeq", "unrolled")
"""Where the integration happens: torchdiffeq, or this module's unrolled fixed-step solvers."""


@attrs.frozen
class ODESolverOptions:
    """How to integrate an ODE; embedded (as fields) in the configs of ODE plugins.

    The method is checked against the backend in ``__attrs_post_init__``: a subclass that
    defines its own ``__attrs_post_init__`` must call ``super().__attrs_post_init__()``.
    """

    backend: str = option(
        "torchdiffeq",
        "torchdiffeq (any of its methods, adjoint) or unrolled (plain torch ops, exportable)",
        one_of(*ODE_BACKENDS),
    )
    method: str = option(
        "rk4",
        "torchdiffeq: any torchdiffeq method (the paper: rk4, the 3/8 rule); "
        "unrolled: euler, midpoint, rk4 (3/8 rule, as torchdiffeq) or rk4-classic",
        method_of({"torchdiffeq": ODE_METHODS, "unrolled": UNROLLED_ODE_METHODS}),
    )
    step_size: float | None = option(
        None,
        "fixed-step methods: step size (none: one step per output time; unrolled: each "
        "interval is split into the fewest equal steps no longer than this)",
        optional_positive,
    )
    rtol: float = option(1e-7, "adaptive methods: relative tolerance", positive)
    atol: float = option(1e-9, "adaptive methods: absolute tolerance", non_negative)
    adjoint: bool = option(
        False,
        "backpropagate with the adjoint method (torchdiffeq only; less memory, slower; the "
        "paper's code: true, which the backbones' paper presets set)",
    )

    def __attrs_post_init__(self) -> None:
        """Check the method and the adjoint against the backend."""
        if self.backend == "unrolled":
            if self.method not in UNROLLED_ODE_METHODS:
                raise ConfigError(
                    f"method: {self.method!r} is not available with backend 'unrolled'; "
                    f"expected one of {', '.join(UNROLLED_ODE_METHODS)} "
                    "(or backend 'torchdiffeq' for adaptive methods)"
                )
            if self.adjoint:
                raise ConfigError(
                    "adjoint: backend 'unrolled' backpropagates directly through its steps; "
                    "set adjoint=false, or backend='torchdiffeq' for the adjoint method"
                )
        elif self.method not in ODE_METHODS:
            raise ConfigError(
                f"method: {self.method!r} is not a torchdiffeq method (backend 'torchdiffeq'); "
                f"expected one of {', '.join(ODE_METHODS)}, or backend 'unrolled' for "
                f"{', '.join(m for m in UNROLLED_ODE_METHODS if m not in ODE_METHODS)}"
            )


# --------------------------------------------------------------------------------------------
# Unrolled fixed-step solvers
#
# Each step function returns the increment dy of one step from (t0, y0) to t1 = t0 + dt, with
# exactly the operations (and operation order) of torchdiffeq's step of the same name, so that
# y1 = y0 + dy is bit-identical. Python float constants are multiplied in the same places too.

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepFn = Callable[[Field, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

_ONE_THIRD = 1 / 3
_TWO_THIRDS = 2 / 3
_ONE_SIXTH = 1 / 6


def euler_step(
    field: Field, t0: torch.Tensor, dt: torch.Tensor, t1: torch.Tensor, y0: torch.Tensor
) -> torch.Tensor:
    """Increment of one explicit Euler step (torchdiffeq's ``euler``)."""
    return dt * field(t0, y0)


def midpoint_step(
    field: Field, t0: torch.Tensor, dt: torch.Tensor, t1: torch.Tensor, y0: torch.Tensor
) -> torch.Tensor:
    """Increment of one explicit midpoint step (torchdiffeq's ``midpoint``)."""
    half_dt = 0.5 * dt
    f0 = field(t0, y0)
    y_mid = y0 + f0 * half_dt
    return dt * field(t0 + half_dt, y_mid)


def rk4_step(
    field: Field, t0: torch.Tensor, dt: torch.Tensor, t1: torch.Tensor, y0: torch.Tensor
) -> torch.Tensor:
    """Increment of one RK4 step by the 3/8 rule (torchdiffeq's ``rk4``)."""
    k1 = field(t0, y0)
    k2 = field(t0 + dt * _ONE_THIRD, y0 + dt * k1 * _ONE_THIRD)
    k3 = field(t0 + dt * _TWO_THIRDS, y0 + dt * (k2 - k1 * _ONE_THIRD))
    k4 = field(t1, y0 + dt * (k1 - k2 + k3))
    return (k1 + 3 * (k2 + k3) + k4) * dt * 0.125


def rk4_classic_step(
    field: Field, t0: torch.Tensor, dt: torch.Tensor, t1: torch.Tensor, y0: torch.Tensor
) -> torch.Tensor:
    """Increment of one classic RK4 step: (k1 + 2 k2 + 2 k3 + k4) dt / 6."""
    half_dt = dt * 0.5
    k1 = field(t0, y0)
    k2 = field(t0 + half_dt, y0 + half_dt * k1)
    k3 = field(t0 + half_dt, y0 + half_dt * k2)
    k4 = field(t1, y0 + dt * k3)
    return (k1 + 2 * (k2 + k3) + k4) * dt * _ONE_SIXTH


UNROLLED_ODE_STEPS: dict[str, StepFn] = {
    "euler": euler_step,
    "midpoint": midpoint_step,
    "rk4": rk4_step,
    "rk4-classic": rk4_classic_step,
}
"""The step function of each unrolled method: ``step(field, t0, dt, t1, y0) -> dy``."""


Times = torch.Tensor | Sequence[float]
"""Output times: a 1-D tensor, or a sequence of floats (see :func:`grid`)."""


def grid(t: Times, like: torch.Tensor, where: str) -> tuple[torch.Tensor, list[float]]:
    """The times ``t`` as a tensor of ``like``'s dtype and device, and their values as floats.

    Every decision that depends on the times (checks, step counts, step grids) is taken on the
    floats. A tensor's values are read here once; a sequence of floats is rounded to the dtype
    (with numpy for fp32/fp64) and becomes a constant tensor, so a solve given a sequence reads
    no tensor values at all and can be traced for export (torch.export, ONNX) with a dynamic
    batch axis.
    """
    if isinstance(t, torch.Tensor):
        if t.ndim != 1 or t.numel() < 1:
            raise ConfigError(f"{where}: t must be a non-empty 1-D tensor of times")
        if not torch.is_floating_point(t):
            raise ConfigError(f"{where}: t must be a floating-point tensor, got {t.dtype}")
        tensor = t.to(like)
        return tensor, tensor.detach().cpu().tolist()
    try:
        raw = [float(v) for v in t]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: t must be a 1-D tensor or a sequence of numbers") from None
    if not raw:
        raise ConfigError(f"{where}: t must hold at least one time")
    values = round_to(raw, like.dtype)
    return torch.tensor(values, dtype=like.dtype, device=like.device), values


_NUMPY_FLOATS = {torch.float32: np.float32, torch.float64: np.float64}


def round_to(values: Sequence[float], dtype: torch.dtype) -> list[float]:
    """``values`` rounded to ``dtype``, as floats (numpy for fp32/fp64, so no torch op)."""
    if dtype in _NUMPY_FLOATS:
        return np.asarray(values, dtype=_NUMPY_FLOATS[dtype]).tolist()
    return torch.tensor(list(values), dtype=dtype).tolist()


def check_monotonic(values: Sequence[float], where: str) -> None:
    """Raise a ConfigError unless ``values`` are finite and strictly monotonic."""
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"{where}: times must be finite")
    pairs = list(itertools.pairwise(values))
    if not (all(b > a for a, b in pairs) or all(b < a for a, b in pairs)):
        raise ConfigError(f"{where}: times must be strictly increasing or strictly decreasing")


def _substep_counts(values: Sequence[float], dtype: torch.dtype, step_size: float) -> list[int]:
    """Substeps of each interval of the grid so that none is longer than ``step_size``.

    n = ceil(|Δt| / step_size − tol) with a tolerance of a few ulps of the times (at least
    1e-9), so that e.g. an fp32 grid of spacing 1/15 with step_size 1/60 takes 4 substeps, not
    5. A uniform grid (equal spacing up to that rounding) uses the first interval's count for
    every interval; a non-uniform one counts per interval.
    """
    deltas = [abs(b - a) for a, b in itertools.pairwise(values)]
    slack = 4 * torch.finfo(dtype).eps * max(abs(x) for x in values)

    def count(delta: float) -> int:
        tol = max(1e-9, slack / step_size)
        return max(1, math.ceil(delta / step_size - tol))

    if all(abs(d - deltas[0]) <= 2 * slack for d in deltas):
        return [count(deltas[0])] * len(deltas)
    return [count(d) for d in deltas]


def _integrate_unrolled(
    field: Field, y0: torch.Tensor, t: torch.Tensor, method: str, counts: list[int]
) -> torch.Tensor:
    step = UNROLLED_ODE_STEPS[method]
    ys = [y0]
    y = y0
    for k, n in enumerate(counts):
        ta, tb = t[k], t[k + 1]
        if n == 1:
            points = [ta, tb]
        else:
            delta = tb - ta
            # Substep boundaries ta + i Δ/n, the last one exactly tb; the step length is the
            # difference of boundaries, as torchdiffeq computes it from its grid.
            points = [ta + delta * (i / n) for i in range(n)] + [tb]
        for s0, s1 in itertools.pairwise(points):
            y = y + step(field, s0, s1 - s0, s1, y)
        ys.append(y)
    return torch.stack(ys)


def unrolled_odeint(
    field: Field,
    y0: torch.Tensor,
    t: Times,
    method: str = "rk4",
    steps_per_interval: int | Sequence[int] = 1,
) -> torch.Tensor:
    """Integrate ``dy/dt = field(t, y)`` from ``y(t[0]) = y0`` with plain fixed-step torch ops.

    Between consecutive output times ``t[k]`` and ``t[k+1]`` it takes ``steps_per_interval``
    equal substeps (an int, or one count per interval); the state at each output time is the
    integrated state itself (no interpolation). ``t`` may decrease (negative steps). Returns
    ``(len(t), *y0.shape)``. With one substep per interval, ``euler``, ``midpoint`` and
    ``rk4`` equal ``torchdiffeq.odeint(field, y0, t, method=...)`` bit for bit. The number of
    steps is fixed by ``t`` and the counts; given ``t`` as a sequence of floats the call reads
    no tensor values and can be traced for export (see :func:`grid`).
    """
    if method not in UNROLLED_ODE_STEPS:
        raise ConfigError(
            f"method: expected one of {', '.join(UNROLLED_ODE_METHODS)}, got {method!r}"
        )
    tensor, values = grid(t, y0, "unrolled_odeint")
    check_monotonic(values, "unrolled_odeint")
    intervals = len(values) - 1
    if isinstance(steps_per_interval, int):
        counts = [steps_per_interval] * intervals
    else:
        counts = [int(n) for n in steps_per_interval]
        if len(counts) != intervals:
            raise ConfigError(
                f"steps_per_interval: expected one count per interval ({intervals}), "
                f"got {len(counts)}"
            )
    if any(n < 1 for n in counts):
        raise ConfigError(f"steps_per_interval: every count must be >= 1, got {counts}")
    return _integrate_unrolled(field, y0, tensor, method, counts)


# --------------------------------------------------------------------------------------------
# Entry points


def _odeint(
    field: Field,
    y0: torch.Tensor,
    t: torch.Tensor,
    values: list[float],
    options: ODESolverOptions,
) -> torch.Tensor:
    if len(values) == 1:
        return y0.unsqueeze(0)
    if options.backend == "unrolled":
        counts = [1] * (len(values) - 1)
        if options.step_size is not None:
            counts = _substep_counts(values, t.dtype, options.step_size)
        return _integrate_unrolled(field, y0, t, options.method, counts)
    kwargs: dict[str, Any] = {"method": options.method}
    if options.method in FIXED_STEP_METHODS:
        if options.step_size is not None:
            kwargs["options"] = {"step_size": options.step_size}
    else:
        kwargs["rtol"] = options.rtol
        kwargs["atol"] = options.atol
    if options.adjoint:
        return torchdiffeq.odeint_adjoint(field, y0, t, **kwargs)
    return torchdiffeq.odeint(field, y0, t, **kwargs)


def odeint(field: nn.Module, y0: torch.Tensor, t: Times, options: ODESolverOptions) -> torch.Tensor:
    """Integrate ``dy/dt = field(t, y)`` from ``y(t[0]) = y0``; returns ``(len(t), *y0.shape)``.

    ``t`` must be strictly monotonic (increasing, or decreasing to integrate backwards).
    ``options.backend`` picks torchdiffeq or :func:`unrolled_odeint`; for the latter,
    ``step_size`` none takes one step per interval of ``t``, else each interval is split into
    ``max(1, ceil(|Δt| / step_size))`` equal substeps (counted once on a uniform grid, per
    interval on a non-uniform one).
    """
    tensor, values = grid(t, y0, "odeint")
    check_monotonic(values, "odeint")
    return _odeint(field, y0, tensor, values, options)


def split_around(values: Sequence[float], t0: float) -> tuple[list[int], list[int]]:
    """Indices of the times at or after ``t0`` (ascending in time) and before it (descending).

    The two lists are the order in which the solution is produced from ``t0``: forwards
    through the first, backwards through the second.
    """
    after = sorted((i for i, v in enumerate(values) if v >= t0), key=lambda i: values[i])
    before = sorted((i for i, v in enumerate(values) if v < t0), key=lambda i: -values[i])
    return after, before


def initial_time(
    t0: float | torch.Tensor, t: torch.Tensor, values: Sequence[float], where: str
) -> tuple[torch.Tensor, float]:
    """``t0`` as a 0-d tensor like ``t`` and as a float, snapped to a grid time near it.

    Grids such as ``linspace(-1, 2, 31)`` hold 1.5e-8 where 0 was meant; a grid time within
    4 ulps of the grid's largest magnitude (and a quarter of its smallest spacing) of ``t0`` is
    taken to be ``t0`` itself, so that it gives the initial state exactly.
    """
    try:
        x = float(t0)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"{where}: t0 must be one finite time, got {t0!r}") from None
    if not math.isfinite(x):
        raise ConfigError(f"{where}: t0 must be one finite time, got {x}")
    x = round_to([x], t.dtype)[0]
    tol = 4 * torch.finfo(t.dtype).eps * max(abs(x), *(abs(v) for v in values))
    if len(values) > 1:
        tol = min(tol, 0.25 * min(abs(b - a) for a, b in itertools.pairwise(values)))
    nearest = min(range(len(values)), key=lambda i: abs(values[i] - x))
    if abs(values[nearest] - x) <= tol:
        return t[nearest], values[nearest]
    return torch.tensor(x, dtype=t.dtype, device=t.device), x


def inverse_order(pieces: list[torch.Tensor], order: list[int]) -> torch.Tensor:
    """Concatenate ``pieces`` (whose rows are the times ``order``) back into the grid's order."""
    out = torch.cat(pieces)
    inverse = [0] * len(order)
    for position, index in enumerate(order):
        inverse[index] = position
    return out[inverse]


def odeint_from(
    field: nn.Module,
    y0: torch.Tensor,
    t: Times,
    t0: float | torch.Tensor,
    options: ODESolverOptions,
) -> torch.Tensor:
    """Solve with ``y(t0) = y0`` and return the solution at every time of ``t``.

    ``t`` is strictly increasing or strictly decreasing and may lie anywhere relative to
    ``t0``: times on the far side of ``t0`` are reached by integrating backwards from ``t0``,
    the others forwards, and the result is in ``t``'s order, ``(len(t), *y0.shape)``. Times
    equal to ``t0`` give ``y0`` exactly (a grid time within rounding of ``t0``, such as
    linspace's 1.5e-8 for 0, is taken to be ``t0``). When ``t[0] == t0`` this is
    :func:`odeint` itself.
    """
    tensor, values = grid(t, y0, "odeint_from")
    check_monotonic(values, "odeint_from")
    start, x = initial_time(t0, tensor, values, "odeint_from")
    if values[0] == x:
        return _odeint(field, y0, tensor, values, options)
    pieces = []
    order: list[int] = []
    for idx in split_around(values, x):
        if not idx:
            continue
        part, part_values = tensor[idx], [values[i] for i in idx]
        if part_values[0] == x:
            pieces.append(_odeint(field, y0, part, part_values, options))
        else:
            # The grid must start at t0 itself; the state there is y0 and is dropped again.
            part = torch.cat([start.reshape(1), part])
            pieces.append(_odeint(field, y0, part, [x, *part_values], options)[1:])
        order.extend(idx)
    return inverse_order(pieces, order)
