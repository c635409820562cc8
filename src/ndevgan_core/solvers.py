"""Integrating the vector fields of differential-equation temporal generators.

Plugins expose their vector field as an ``nn.Module`` ``f(t, y)``; this module integrates it,
so every plugin gets the same solver options and error messages. Training uses torchdiffeq
(any of its methods, fixed step or adaptive, adjoint on or off).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
import torchdiffeq
from torch import nn

from .config import non_negative, option, optional_positive, positive
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


def _ode_method(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in ODE_METHODS:
        raise ConfigError(
            f"{attribute.name}: expected a torchdiffeq method, one of {', '.join(ODE_METHODS)}; "
            f"got {value!r}"
        )


_ode_method.choices = ODE_METHODS  # type: ignore[attr-defined]


@attrs.frozen
class ODESolverOptions:
    """How to integrate an ODE; embedded (as fields) in the configs of ODE plugins."""

    method: str = option(
        "rk4", "torchdiffeq method (the paper: rk4, torchdiffeq's 3/8 rule)", _ode_method
    )
    step_size: float | None = option(
        None, "fixed-step methods: step size (none: one step per output time)", optional_positive
    )
    rtol: float = option(1e-7, "adaptive methods: relative tolerance", positive)
    atol: float = option(1e-9, "adaptive methods: absolute tolerance", non_negative)
    adjoint: bool = option(False, "backpropagate with the adjoint method (less memory, slower)")


def odeint(
    field: nn.Module, y0: torch.Tensor, t: torch.Tensor, options: ODESolverOptions
) -> torch.Tensor:
    """Integrate ``dy/dt = field(t, y)`` from ``y(t[0]) = y0``; returns ``(len(t), *y0.shape)``.

    ``t`` must be strictly monotonic (increasing, or decreasing to integrate backwards).
    """
    if t.ndim != 1 or t.numel() < 1:
        raise ConfigError("odeint: t must be a non-empty 1-D tensor of times")
    if t.numel() > 1:
        d = t[1:] - t[:-1]
        if not (bool((d > 0).all()) or bool((d < 0).all())):
            raise ConfigError("odeint: times must be strictly increasing or strictly decreasing")
    else:
        return y0.unsqueeze(0)
    kwargs: dict[str, Any] = {"method": options.method}
    if options.method in FIXED_STEP_METHODS:
        if options.step_size is not None:
            kwargs["options"] = {"step_size": options.step_size}
    else:
        kwargs["rtol"] = options.rtol
        kwargs["atol"] = options.atol
    t = t.to(y0)
    if options.adjoint:
        return torchdiffeq.odeint_adjoint(field, y0, t, **kwargs)
    return torchdiffeq.odeint(field, y0, t, **kwargs)
