"""Integrating the SDEs of stochastic temporal generators: d(y) = μ(t, y) dt + σ(t, y) dW.

Two backends, driven by the same noise so that a sample does not depend on the backend:

- ``torchsde`` (training default): its solvers, with or without its stochastic adjoint;
- ``unrolled``: Euler–Maruyama and derivative-free Milstein written as plain torch ops over a
  precomputed step grid, so they can be exported (ONNX). They take the same steps as torchsde
  and repeat its arithmetic, so given the same increments they give the same numbers.

The noise is a tensor of standard normals ``(B, n_steps, m)`` (:func:`sde_noise_shape`); the
Brownian increment of step k is ``sqrt(h_k) * noise[:, k]``, ``h_k`` the length of step k of
:func:`sde_step_times`. torchsde reads those increments through :class:`IncrementBrownian`.
Drift and diffusion take ``(t, y)`` with a flat state ``y`` ``(B, D)`` and return ``(B, D)``;
the diffusion returns ``(B, D)`` for diagonal noise and ``(B, D, m)`` for general noise.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
import torch
import torchsde
from torch import nn

from .config import method_of, one_of, option, positive
from .errors import ConfigError
from .solvers import (
    _NUMPY_FLOATS,
    Times,
    check_monotonic,
    grid,
    initial_time,
    inverse_order,
    split_around,
)

SDE_BACKENDS: tuple[str, ...] = ("torchsde", "unrolled")
"""Where the integration happens: torchsde, or this module's unrolled fixed-step solvers."""

TORCHSDE_METHODS: tuple[str, ...] = (
    "euler",
    "milstein",
    "srk",
    "midpoint",
    "heun",
    "reversible_heun",
    "euler_heun",
)
"""torchsde 0.2.6 methods usable here (its ``log_ode`` needs a Davie/Foster Lévy area and
``adjoint_reversible_heun`` is only an adjoint method)."""

UNROLLED_SDE_METHODS: tuple[str, ...] = ("euler-maruyama", "milstein")
"""Methods of the ``unrolled`` backend."""

SDE_TYPES: tuple[str, ...] = ("ito", "stratonovich")
"""The calculi an SDE can be written in."""

NOISE_TYPES: tuple[str, ...] = ("diagonal", "general")
"""Diagonal noise: σ is ``(B, D)`` and acts elementwise on ``D`` Brownian channels; general:
σ is ``(B, D, m)`` and multiplies ``m`` channels."""

_ITO_ONLY = ("euler", "srk")
_STRATONOVICH_ONLY = ("midpoint", "heun", "reversible_heun", "euler_heun")
_DIAGONAL_ONLY = ("milstein", "srk")

Coefficient = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@attrs.frozen
class SDESolverOptions:
    """How to integrate an SDE; embedded (as fields) in the configs of SDE plugins.

    Combinations are checked in ``__attrs_post_init__`` against what the solvers support: a
    subclass that defines its own ``__attrs_post_init__`` must call
    ``super().__attrs_post_init__()``.
    """

    backend: str = option(
        "torchsde",
        "torchsde (its solvers, adjoint) or unrolled (plain torch ops, exportable)",
        one_of(*SDE_BACKENDS),
    )
    method: str = option(
        "euler",
        "torchsde: euler, milstein (derivative-free), srk, midpoint, heun, reversible_heun, "
        "euler_heun; unrolled: euler-maruyama or milstein (derivative-free, as torchsde's)",
        method_of({"torchsde": TORCHSDE_METHODS, "unrolled": UNROLLED_SDE_METHODS}),
    )
    sde_type: str = option("ito", "calculus of the SDE: ito or stratonovich", one_of(*SDE_TYPES))
    noise_type: str = option(
        "diagonal",
        "diagonal (σ is (B, D), one Brownian channel per state) or general (σ is (B, D, m))",
        one_of(*NOISE_TYPES),
    )
    dt: float = option(
        2.5e-2,
        "solver step (outputs between steps are interpolated; the paper's code: 2.5e-2 on TGAN "
        "and MoCoGAN, 5e-2 on TGANv2, which their paper presets set)",
        positive,
    )
    adjoint: bool = option(
        False,
        "backpropagate with torchsde's stochastic adjoint (less memory, slower; with method "
        "euler the adjoint SDE is solved with euler too, as the paper's code)",
    )

    def __attrs_post_init__(self) -> None:
        """Check the method against the backend, the SDE type, the noise type and adjoint."""
        if self.backend == "unrolled":
            self._check_unrolled()
        else:
            self._check_torchsde()

    def _check_unrolled(self) -> None:
        m = self.method
        if m not in UNROLLED_SDE_METHODS:
            raise ConfigError(
                f"method: {m!r} is not available with backend 'unrolled'; expected one of "
                f"{', '.join(UNROLLED_SDE_METHODS)} (or backend 'torchsde' for {m})"
            )
        if m == "euler-maruyama" and self.sde_type != "ito":
            raise ConfigError(
                "method: 'euler-maruyama' solves Itô SDEs only (sde_type='ito'); for "
                "sde_type='stratonovich' use method 'milstein' (diagonal noise), or backend "
                "'torchsde' with midpoint, heun, euler_heun or reversible_heun"
            )
        if m == "milstein" and self.noise_type != "diagonal":
            raise ConfigError(
                "method: 'milstein' needs noise_type='diagonal'; for general noise use "
                "'euler-maruyama' (Itô)"
            )
        if self.adjoint:
            raise ConfigError(
                "adjoint: backend 'unrolled' backpropagates directly through its steps; set "
                "adjoint=false, or backend='torchsde' for the stochastic adjoint"
            )

    def _check_torchsde(self) -> None:
        m = self.method
        if m not in TORCHSDE_METHODS:
            raise ConfigError(
                f"method: {m!r} is not a torchsde method (backend 'torchsde'); expected one of "
                f"{', '.join(TORCHSDE_METHODS)} (torchsde's Euler–Maruyama is 'euler'), or "
                "backend 'unrolled'"
            )
        if m in _ITO_ONLY and self.sde_type != "ito":
            raise ConfigError(
                f"method: {m!r} solves Itô SDEs only; with sde_type='stratonovich' use "
                f"{', '.join(_STRATONOVICH_ONLY)} or milstein, or set sde_type='ito'"
            )
        if m in _STRATONOVICH_ONLY and self.sde_type != "stratonovich":
            raise ConfigError(
                f"method: {m!r} solves Stratonovich SDEs only; with sde_type='ito' use euler, "
                "milstein or srk, or set sde_type='stratonovich'"
            )
        if m in _DIAGONAL_ONLY and self.noise_type != "diagonal":
            alternatives = "euler" if self.sde_type == "ito" else ", ".join(_STRATONOVICH_ONLY)
            raise ConfigError(
                f"method: {m!r} needs noise_type='diagonal'; for general noise use {alternatives}"
            )


# --------------------------------------------------------------------------------------------
# The step grid


def _check_increasing(values: Sequence[float], where: str) -> None:
    check_monotonic(values, where)
    if len(values) > 1 and values[1] < values[0]:
        raise ConfigError(
            f"{where}: times must be strictly increasing (t[0] is the initial time; "
            "sdeint_from takes other grids)"
        )


def _values(t: Times, where: str) -> tuple[torch.Tensor, list[float]]:
    """``t`` and its values, in its own dtype (a sequence: the default dtype)."""
    like = t if isinstance(t, torch.Tensor) else torch.empty((), dtype=torch.get_default_dtype())
    return grid(t, like, where)


def step_plan(
    values: Sequence[float], dtype: torch.dtype, dt: float
) -> tuple[list[float], list[int]]:
    """torchsde's fixed-step loop (``BaseSDESolver.integrate``) without the solving.

    From the first time it steps ``curr → min(curr + dt, t[-1])``, with ``dt`` rounded to
    ``dtype`` and the sum rounded to ``dtype`` as torch rounds ``tensor + float`` (done here
    with numpy for fp32/fp64, so nothing reads tensor values). Returns the step boundaries and,
    for every output time, how many steps have been taken when it is produced (output j is
    interpolated on the last of those steps).
    """
    if dtype in _NUMPY_FLOATS:
        cast = _NUMPY_FLOATS[dtype]
        times: list[Any] = [cast(v) for v in values]
        step: Any = cast(dt)
    else:
        times = [torch.tensor(v, dtype=dtype) for v in values]
        step = dt
    curr = times[0]
    end = times[-1]
    steps = [curr]
    emitted = [0]
    for out_t in times[1:]:
        while curr < out_t:
            curr = min(curr + step, end)
            steps.append(curr)
        emitted.append(len(steps) - 1)
    return [float(x) for x in steps], emitted


def sde_step_times(t: Times, dt: float) -> torch.Tensor:
    """The step boundaries a fixed-step solver visits for output times ``t`` (increasing).

    Exactly torchsde's: from ``t[0]`` it steps ``curr → min(curr + dt, t[-1])`` (in ``t``'s
    dtype, so the boundaries drift by rounding as torchsde's do), not stopping at output times;
    outputs between boundaries are interpolated linearly. ``len(result) - 1`` is the number of
    steps.
    """
    tensor, values = _values(t, "sde_step_times")
    _check_increasing(values, "sde_step_times")
    if not dt > 0:
        raise ConfigError(f"dt: expected a number > 0, got {dt!r}")
    bounds = step_plan(values, tensor.dtype, float(dt))[0]
    return torch.tensor(bounds, dtype=tensor.dtype, device=tensor.device)


@attrs.frozen
class _Part:
    """One side of :func:`sdeint_from`: output indices, the solver grid and how to read it."""

    indices: list[int]
    values: list[float]  # increasing solver times, starting at t0
    skip: int  # 1 when t0 was prepended to the outputs
    reflect: bool  # integrate the time-reversed SDE in s = 2 t0 - t
    steps: int


def _reflect(x: float, values: list[float], dtype: torch.dtype) -> list[float]:
    """``2 x - values`` rounded as torch rounds it in ``dtype``."""
    if dtype in _NUMPY_FLOATS:
        cast = _NUMPY_FLOATS[dtype]
        return (cast(2) * cast(x) - np.asarray(values, dtype=cast)).tolist()
    return (2 * torch.tensor(x, dtype=dtype) - torch.tensor(values, dtype=dtype)).tolist()


def _parts(values: list[float], x: float, dtype: torch.dtype, dt: float) -> list[_Part]:
    """Split the grid around ``t0 = x`` into the backward part then the forward part."""
    after, before = split_around(values, x)
    parts = []
    for indices, reflect in ((before, True), (after, False)):
        if not indices:
            continue
        times = [values[i] for i in indices]
        if reflect:
            times = _reflect(x, times, dtype)
        skip = 0 if times[0] == x else 1
        if skip:
            times = [x, *times]
        steps = len(step_plan(times, dtype, dt)[0]) - 1
        parts.append(_Part(indices, times, skip, reflect, steps))
    return parts


def _is_plain(values: list[float], x: float) -> bool:
    """Whether the grid starts at ``t0 = x`` and increases: then sdeint_from is sdeint."""
    return values[0] == x and (len(values) == 1 or values[1] > values[0])


def _brownian_size(options: SDESolverOptions, state_size: int, brownian_size: int | None) -> int:
    if options.noise_type == "diagonal":
        if brownian_size is not None and brownian_size != state_size:
            raise ConfigError(
                f"brownian_size: diagonal noise has one Brownian channel per state entry "
                f"({state_size}); got {brownian_size} (use noise_type='general' for another size)"
            )
        return state_size
    if brownian_size is None or brownian_size < 1:
        raise ConfigError(
            "brownian_size: general noise needs the number of Brownian channels m (the last "
            f"dimension of the diffusion's (B, D, m) output), got {brownian_size!r}"
        )
    return int(brownian_size)


def sde_noise_shape(
    batch: int,
    t: Times,
    options: SDESolverOptions,
    state_size: int,
    brownian_size: int | None = None,
    t0: float | torch.Tensor | None = None,
) -> tuple[int, int, int]:
    """The shape ``(B, n_steps, m)`` of the standard-normal noise for grid ``t`` from ``t0``.

    ``n_steps`` counts the solver steps (:func:`sde_step_times` with ``options.dt``): for
    :func:`sdeint_from` the backward part's steps then the forward part's; ``m`` is the state
    size for diagonal noise, ``brownian_size`` for general noise. ``t0`` defaults to ``t[0]``.
    Steps are computed in ``t``'s dtype (a sequence: the default dtype), which should be the
    state's: the solvers compute them in the state's dtype. (Method ``srk`` takes no noise.)
    """
    tensor, values = _values(t, "sde_noise_shape")
    m = _brownian_size(options, state_size, brownian_size)
    x = values[0] if t0 is None else initial_time(t0, tensor, values, "sde_noise_shape")[1]
    if _is_plain(values, x):
        _check_increasing(values, "sde_noise_shape")
        return (batch, len(step_plan(values, tensor.dtype, options.dt)[0]) - 1, m)
    check_monotonic(values, "sde_noise_shape")
    return (batch, sum(p.steps for p in _parts(values, x, tensor.dtype, options.dt)), m)


# --------------------------------------------------------------------------------------------
# Noise


def _standard_noise(
    shape: tuple[int, int, int],
    like: torch.Tensor,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Standard normals drawn on the generator's device (the CPU by default), moved to ``like``."""
    device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.randn(shape, generator=generator, dtype=like.dtype, device=device)
    return noise.to(like.device)


def _check_noise(
    noise: torch.Tensor, expected: tuple[int, int, int], options: SDESolverOptions
) -> None:
    if not isinstance(noise, torch.Tensor) or tuple(noise.shape) != expected:
        got = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
        b, n, m = expected
        channels = (
            "the state size (diagonal noise)"
            if options.noise_type == "diagonal"
            else ("brownian_size (general noise)")
        )
        raise ConfigError(
            f"noise: expected standard normals of shape (B, n_steps, m) = {expected}: batch {b}, "
            f"{n} solver steps for these times with dt={options.dt} (len(sde_step_times(t, dt)) "
            f"- 1, summed over both sides of t0 in sdeint_from; see sde_noise_shape), m={m} "
            f"Brownian channels = {channels}; got {got}"
        )


def _increments(noise: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Brownian increments ``sqrt(h_k) * noise[:, k]``, ``h_k`` computed as torchsde does."""
    h = steps[1:] - steps[:-1]
    return noise * h.sqrt()[None, :, None]


class IncrementBrownian(torchsde.BaseBrownian):
    """A Brownian motion given by its increments over a fixed step grid, for torchsde.

    ``times`` ``(n+1,)`` are the step boundaries (:func:`sde_step_times`) and ``increments``
    ``(B, n, m)`` the values of ``W(times[k+1]) - W(times[k])``. A query over exactly one step
    returns that step's increment unchanged, so a torchsde solver and the unrolled solvers see
    the same numbers. Every query of torchsde's forward solvers is of that kind. W is known
    exactly at the boundaries (cumulative sums); between them it is interpolated linearly (the
    mean of the Brownian bridge). The adjoint's reverse pass restarts its stepping at every
    output time, so it meets the forward boundaries only up to float rounding (matched with a
    tolerance of a few ulps, ``tol``) and, where the output spacing is not a multiple of dt,
    queries points inside steps, which read the interpolated W.
    """

    def __init__(
        self, times: torch.Tensor, increments: torch.Tensor, tol: float | None = None
    ) -> None:
        if not isinstance(times, torch.Tensor) or times.ndim != 1 or times.numel() < 2:
            raise ConfigError("IncrementBrownian: times must be a 1-D tensor of >= 2 boundaries")
        _check_increasing(times.detach().cpu().tolist(), "IncrementBrownian")
        if increments.ndim != 3 or increments.shape[1] != times.numel() - 1:
            raise ConfigError(
                f"IncrementBrownian: expected increments (B, {times.numel() - 1}, m) for "
                f"{times.numel()} step boundaries, got {tuple(increments.shape)}"
            )
        super().__init__()
        self._grid = [float(x) for x in times.detach().cpu()]
        self._increments = increments
        zero = increments.new_zeros(increments.shape[0], 1, increments.shape[2])
        self._w = torch.cat([zero, increments.cumsum(1)], dim=1)
        if tol is None:
            scale = max(1.0, abs(self._grid[0]), abs(self._grid[-1]))
            tol = 64 * torch.finfo(times.dtype).eps * scale
            lengths = sorted(b - a for a, b in itertools.pairwise(self._grid))
            if lengths:
                tol = min(tol, 0.1 * lengths[len(lengths) // 2])
        self._tol = tol

    def _locate(self, x: float) -> tuple[int, float | None]:
        """``(k, None)`` for boundary k (within tol), else ``(k, fraction)`` inside step k."""
        grid = self._grid
        if x < grid[0] - self._tol or x > grid[-1] + self._tol:
            raise ConfigError(
                f"IncrementBrownian: time {x} is outside the noise's span [{grid[0]}, {grid[-1]}]"
            )
        i = bisect.bisect_left(grid, x)
        nearest = min((j for j in (i - 1, i) if 0 <= j < len(grid)), key=lambda j: abs(grid[j] - x))
        if abs(grid[nearest] - x) <= self._tol:
            return nearest, None
        k = min(max(i - 1, 0), len(grid) - 2)
        return k, (x - grid[k]) / (grid[k + 1] - grid[k])

    def _value(self, k: int, fraction: float | None) -> torch.Tensor:
        if fraction is None:
            return self._w[:, k]
        return self._w[:, k] + fraction * self._increments[:, k]

    def __call__(  # torchsde's keyword names
        self,
        ta: Any,
        tb: Any = None,
        return_U: bool = False,  # noqa: N803
        return_A: bool = False,  # noqa: N803
    ) -> torch.Tensor:
        """``W(tb) - W(ta)`` (``W(ta) - W(t0)`` when ``tb`` is None), shape ``(B, m)``."""
        if return_U or return_A:
            raise ConfigError(
                "IncrementBrownian has no Lévy area: a method that needs one (srk) draws its "
                "own noise from torchsde's BrownianInterval and cannot take explicit noise"
            )
        if tb is None:
            ta, tb = self._grid[0], ta
        a, b = float(ta), float(tb)
        if a > b:
            raise ConfigError(f"IncrementBrownian: query times must satisfy ta <= tb, got {a}, {b}")
        ka, fa = self._locate(a)
        kb, fb = self._locate(b)
        if fa is None and fb is None and kb == ka + 1:
            return self._increments[:, ka]
        return self._value(kb, fb) - self._value(ka, fa)

    def __repr__(self) -> str:
        """A short description: the span, the number of steps and the sample shape."""
        return (
            f"IncrementBrownian(t0={self._grid[0]}, t1={self._grid[-1]}, "
            f"steps={len(self._grid) - 1}, shape={tuple(self.shape)})"
        )

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the increments."""
        return self._increments.dtype

    @property
    def device(self) -> torch.device:
        """The device of the increments."""
        return self._increments.device

    @property
    def shape(self) -> torch.Size:
        """The shape of one increment, ``(B, m)``."""
        return torch.Size((self._increments.shape[0], self._increments.shape[2]))

    @property
    def levy_area_approximation(self) -> str:
        """``'none'``: only increments are known."""
        return "none"


# --------------------------------------------------------------------------------------------
# Solving


def _owner(fn: Any) -> nn.Module | None:
    if isinstance(fn, nn.Module):
        return fn
    owner = getattr(fn, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


class _SDE(nn.Module):
    """drift and diffusion as a torchsde SDE (``f``, ``g``), with shape checks.

    The modules that own ``drift`` and ``diffusion`` are submodules, so torchsde's adjoint
    finds their parameters. With ``reflect_about`` set it is the time-reversed SDE in
    ``s = 2 t0 - t``: drift ``-μ(2 t0 - s, y)``, diffusion ``σ(2 t0 - s, y)``.
    """

    def __init__(
        self,
        drift: Coefficient,
        diffusion: Coefficient,
        options: SDESolverOptions,
        m: int,
        reflect_about: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.sde_type = options.sde_type
        self.noise_type = options.noise_type
        owners: list[nn.Module] = []
        for fn in (drift, diffusion):
            owner = _owner(fn)
            if owner is not None and all(owner is not o for o in owners):
                owners.append(owner)
        self.owners = nn.ModuleList(owners)
        self.m = m
        # Plain attributes (object.__setattr__), so modules are not registered twice.
        object.__setattr__(self, "_drift", drift)
        object.__setattr__(self, "_diffusion", diffusion)
        self._reflect = reflect_about

    def f(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The drift (negated and reflected in time for the reversed SDE)."""
        reflect = self._reflect
        out = self._drift(t, y) if reflect is None else -self._drift(2 * reflect - t, y)
        # Compared with y's own shape, not stored ints, so that an export with a dynamic
        # batch axis sees a trivially true guard.
        if out.shape != y.shape:
            raise ConfigError(
                f"drift: expected the state's shape {tuple(y.shape)}, got {tuple(out.shape)}"
            )
        return out

    def g(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The diffusion (reflected in time for the reversed SDE)."""
        out = self._diffusion(t if self._reflect is None else 2 * self._reflect - t, y)
        diagonal = self.noise_type == "diagonal"
        expected = y.shape if diagonal else (*y.shape, self.m)
        if out.shape != expected:
            what = "(B, D)" if diagonal else "(B, D, brownian_size)"
            raise ConfigError(
                f"diffusion: expected shape {what} = {tuple(expected)} for {self.noise_type} "
                f"noise, got {tuple(out.shape)}"
            )
        return out


def _prod(noise_type: str, g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # torchsde's ForwardSDE.prod_diagonal / prod_default (misc.batch_mvp), op for op.
    if noise_type == "diagonal":
        return g * v
    return torch.bmm(g, v.unsqueeze(-1)).squeeze(dim=-1)


def _linear_interp(
    t0: torch.Tensor, y0: torch.Tensor, t1: torch.Tensor, y1: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    # torchsde's interp.linear_interp, op for op.
    return (t1 - t) / (t1 - t0) * y0 + (t - t0) / (t1 - t0) * y1


def _unrolled(
    sde: _SDE,
    y0: torch.Tensor,
    t: torch.Tensor,
    steps: torch.Tensor,
    emitted: list[int],
    increments: torch.Tensor,
    options: SDESolverOptions,
) -> torch.Tensor:
    """Euler–Maruyama or derivative-free Milstein over a fixed step grid, as plain torch ops."""
    ito = options.sde_type == "ito"
    states = [y0]
    y = y0
    for k in range(steps.numel() - 1):
        t0, t1 = steps[k], steps[k + 1]
        dt = t1 - t0
        dw = increments[:, k]
        if options.method == "euler-maruyama":
            f = sde.f(t0, y)
            g = sde.g(t0, y)
            y = y + f * dt + _prod(options.noise_type, g, dw)
        else:
            # torchsde's BaseMilstein.step with grad_free=True, diagonal noise.
            v = dw**2 - dt if ito else dw**2
            f = sde.f(t0, y)
            g = sde.g(t0, y)
            sqrt_dt = dt.sqrt()
            # torchsde's Stratonovich y_prime_f_factor is the float 0.; adding it keeps the
            # result bit-identical (it turns -0. into +0.).
            y_prime = y + (dt * f if ito else 0.0) + g * sqrt_dt
            g_prime = sde.g(t0, y_prime)
            y = y + f * dt + g * dw + (g_prime - g) * v / (2 * sqrt_dt)
        states.append(y)
    out = [y0]
    for j in range(1, t.numel()):
        c = emitted[j]
        out.append(_linear_interp(steps[c - 1], states[c - 1], steps[c], states[c], t[j]))
    return torch.stack(out)


def _solve(
    sde: _SDE,
    y0: torch.Tensor,
    t: torch.Tensor,
    values: list[float],
    options: SDESolverOptions,
    noise: torch.Tensor | None,
    entropy: int | None,
) -> torch.Tensor:
    """Integrate on increasing ``t`` (y0's dtype; ``values`` its floats) with standard
    ``noise`` (None for srk, which seeds a BrownianInterval with ``entropy``)."""
    if len(values) == 1:
        return y0.unsqueeze(0)
    bounds, emitted = step_plan(values, y0.dtype, options.dt)
    steps = torch.tensor(bounds, dtype=y0.dtype, device=y0.device)
    if noise is None:
        bm: torchsde.BaseBrownian = torchsde.BrownianInterval(
            t0=values[0],
            t1=values[-1],
            size=(y0.shape[0], sde.m),
            dtype=y0.dtype,
            device=y0.device,
            entropy=entropy,
            levy_area_approximation="space-time",
        )
    else:
        increments = _increments(noise, steps)
        if options.backend == "unrolled":
            return _unrolled(sde, y0, t, steps, emitted, increments, options)
        bm = IncrementBrownian(steps, increments)
    kwargs: dict[str, Any] = {"bm": bm, "method": options.method, "dt": options.dt}
    if options.method == "milstein":
        kwargs["options"] = {"grad_free": True}
    if options.adjoint:
        if options.method == "euler":  # as the paper's code; torchsde's default is another
            kwargs["adjoint_method"] = "euler"
        return torchsde.sdeint_adjoint(sde, y0, t, **kwargs)
    return torchsde.sdeint(sde, y0, t, **kwargs)


def _prepare(
    y0: torch.Tensor,
    options: SDESolverOptions,
    brownian_size: int | None,
    noise: torch.Tensor | None,
    drift: Coefficient,
    diffusion: Coefficient,
    where: str,
) -> int:
    if not isinstance(options, SDESolverOptions):
        raise ConfigError(
            f"{where}: options must be SDESolverOptions, got {type(options).__name__}"
        )
    if not isinstance(y0, torch.Tensor) or y0.ndim != 2:
        shape = tuple(y0.shape) if isinstance(y0, torch.Tensor) else type(y0).__name__
        raise ConfigError(f"{where}: y0 must be a flat state (B, D), got {shape}")
    general = options.noise_type == "general"
    if brownian_size is None and general and isinstance(noise, torch.Tensor) and noise.ndim == 3:
        brownian_size = noise.shape[2]
    m = _brownian_size(options, y0.shape[1], brownian_size)
    if options.backend == "torchsde" and options.method == "srk" and noise is not None:
        raise ConfigError(
            "noise: method 'srk' needs a Lévy area, so it draws its own noise (torchsde's "
            "BrownianInterval, seeded from generator) and cannot take explicit noise; pass "
            "noise=None, or use euler or milstein to drive the solver with given noise"
        )
    if options.adjoint and (_owner(drift) is None or _owner(diffusion) is None):
        raise ConfigError(
            "adjoint: drift and diffusion must be nn.Modules or methods of one, so that the "
            "adjoint finds their parameters"
        )
    return m


def _entropy(generator: torch.Generator | None) -> int:
    device = generator.device if generator is not None else "cpu"
    return int(torch.randint(0, 2**31 - 1, (), generator=generator, device=device))


def sdeint(
    drift: Coefficient,
    diffusion: Coefficient,
    y0: torch.Tensor,
    t: Times,
    options: SDESolverOptions,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    brownian_size: int | None = None,
) -> torch.Tensor:
    """Integrate ``dy = drift dt + diffusion dW`` from ``y(t[0]) = y0``; ``(len(t), B, D)``.

    ``t`` is strictly increasing (converted to y0's dtype). ``noise`` is standard normal of
    shape :func:`sde_noise_shape` (increment k = ``sqrt(h_k) * noise[:, k]``); if None it is
    drawn with ``torch.randn(..., generator=generator)`` on the generator's device (the CPU by
    default) and moved to y0's device, so a seeded generator reproduces a sample with either
    backend. Method ``srk`` cannot take explicit noise; it seeds torchsde's BrownianInterval
    from ``generator`` instead. ``brownian_size`` is m for general noise. With the unrolled
    backend, ``t`` as a sequence of floats and explicit ``noise``, the call reads no tensor
    values and can be traced for export.
    """
    m = _prepare(y0, options, brownian_size, noise, drift, diffusion, "sdeint")
    tensor, values = grid(t, y0, "sdeint")
    _check_increasing(values, "sdeint")
    return _sdeint(
        _SDE(drift, diffusion, options, m), y0, tensor.detach(), values, options, noise, generator
    )


def _sdeint(
    sde: _SDE,
    y0: torch.Tensor,
    t: torch.Tensor,
    values: list[float],
    options: SDESolverOptions,
    noise: torch.Tensor | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    if options.backend == "torchsde" and options.method == "srk":
        return _solve(sde, y0, t, values, options, None, _entropy(generator))
    shape = (y0.shape[0], len(step_plan(values, y0.dtype, options.dt)[0]) - 1, sde.m)
    if noise is None:
        noise = _standard_noise(shape, y0, generator)
    _check_noise(noise, shape, options)
    return _solve(sde, y0, t, values, options, noise.to(y0), None)


def sdeint_from(
    drift: Coefficient,
    diffusion: Coefficient,
    y0: torch.Tensor,
    t: Times,
    t0: float | torch.Tensor,
    options: SDESolverOptions,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    brownian_size: int | None = None,
) -> torch.Tensor:
    """Solve with ``y(t0) = y0`` and return the solution at every time of ``t``, ``(len(t), B, D)``.

    ``t`` is strictly increasing or decreasing, anywhere relative to ``t0``. Times at or after
    ``t0`` are integrated forwards; times before it come from the time-reversed SDE in
    ``s = 2 t0 - t`` (drift ``-μ(2 t0 - s, y)``, same diffusion) integrated forwards in s from
    ``t0``. The result is in ``t``'s order; times equal to ``t0`` (or within rounding of it,
    as in :func:`~ndevgan_core.solvers.odeint_from`) give ``y0``. ``noise`` is
    ``(B, n_back + n_fwd, m)`` (:func:`sde_noise_shape` with ``t0``): the backward part's steps
    first. When ``t[0] == t0`` and ``t`` increases this is :func:`sdeint` itself.
    """
    m = _prepare(y0, options, brownian_size, noise, drift, diffusion, "sdeint_from")
    tensor, values = grid(t, y0, "sdeint_from")
    tensor = tensor.detach()
    check_monotonic(values, "sdeint_from")
    start, x = initial_time(t0, tensor, values, "sdeint_from")
    if _is_plain(values, x):
        sde = _SDE(drift, diffusion, options, m)
        return _sdeint(sde, y0, tensor, values, options, noise, generator)
    parts = _parts(values, x, y0.dtype, options.dt)
    srk = options.backend == "torchsde" and options.method == "srk"
    if not srk:
        shape = (y0.shape[0], sum(p.steps for p in parts), m)
        if noise is None:
            noise = _standard_noise(shape, y0, generator)
        _check_noise(noise, shape, options)
        noise = noise.to(y0)
    pieces = []
    order: list[int] = []
    first = 0
    for part in parts:
        sde = _SDE(drift, diffusion, options, m, start if part.reflect else None)
        times = torch.tensor(part.values, dtype=y0.dtype, device=y0.device)
        if noise is None:
            ys = _solve(sde, y0, times, part.values, options, None, _entropy(generator))
        else:
            chunk = noise[:, first : first + part.steps]
            ys = _solve(sde, y0, times, part.values, options, chunk, None)
        first += part.steps
        pieces.append(ys[part.skip :])
        order.extend(part.indices)
    return inverse_order(pieces, order)
