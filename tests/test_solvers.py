"""ODE solvers: unrolled steps bit for bit equal to torchdiffeq, accuracy, odeint_from, options."""

from __future__ import annotations

import attrs
import pytest
import scipy.linalg
import torch
import torchdiffeq
from torch import nn

from ndevgan_core.config import build_config, describe_options
from ndevgan_core.errors import ConfigError
from ndevgan_core.solvers import (
    ODE_METHODS,
    UNROLLED_ODE_METHODS,
    ODESolverOptions,
    odeint,
    odeint_from,
    unrolled_odeint,
)


class MLP(nn.Module):
    """A small non-autonomous nonlinear field on a (4, 8) state."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(8, 8)

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(y)) * (1 + 0.5 * t)


class Linear(nn.Module):
    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y @ self.a.T


def linear_problem() -> tuple[Linear, torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    a = torch.randn(3, 3, dtype=torch.float64) * 0.7
    y0 = torch.randn(2, 3, dtype=torch.float64)
    return Linear(a), y0, a


def exact(a: torch.Tensor, y0: torch.Tensor, times: torch.Tensor, t0: float = 0.0) -> torch.Tensor:
    m = a.detach().numpy()
    return torch.stack(
        [y0 @ torch.from_numpy(scipy.linalg.expm(m * (float(ti) - t0))).T for ti in times]
    )


FIXED = ("euler", "midpoint", "rk4")


@pytest.mark.parametrize("method", FIXED)
@pytest.mark.parametrize("frames", [16, 17])
def test_unrolled_equals_torchdiffeq_bit_for_bit(method: str, frames: int) -> None:
    field, y0 = MLP(), torch.randn(4, 8)
    t = torch.linspace(0, 1, frames)
    expected = torchdiffeq.odeint(field, y0, t, method=method)
    assert torch.equal(unrolled_odeint(field, y0, t, method), expected)
    options = ODESolverOptions(backend="unrolled", method=method)
    assert torch.equal(odeint(field, y0, t, options), expected)
    # backwards: torchdiffeq negates time and the field; negative steps give the same bits
    back = t.flip(0)
    assert torch.equal(
        unrolled_odeint(field, y0, back, method), torchdiffeq.odeint(field, y0, back, method=method)
    )


@pytest.mark.parametrize("method", FIXED)
def test_substeps_equal_torchdiffeq_step_size_on_a_dyadic_grid(method: str) -> None:
    # torchdiffeq's grid is arange(n) * step_size + t[0]: with step 1/64 on linspace(0, 1, 17)
    # every grid point and every output time is exact in fp32, so its linear interpolation
    # returns the stepped state itself and the two agree bit for bit.
    field, y0 = MLP(), torch.randn(4, 8)
    t = torch.linspace(0, 1, 17)
    expected = torchdiffeq.odeint(field, y0, t, method=method, options={"step_size": 1 / 64})
    assert torch.equal(unrolled_odeint(field, y0, t, method, steps_per_interval=4), expected)
    options = ODESolverOptions(backend="unrolled", method=method, step_size=1 / 64)
    assert torch.equal(odeint(field, y0, t, options), expected)


def test_substeps_on_a_non_dyadic_grid_differ_from_torchdiffeq_only_by_rounding() -> None:
    # linspace(0, 1, 16) with step 1/60: torchdiffeq's grid points k * fl(1/60) are not the
    # unrolled substep boundaries t[j] + i Δ/4, and it interpolates at the output times, so
    # the two agree to fp32 rounding only (measured: up to 8.4e-7).
    field, y0 = MLP(), torch.randn(4, 8)
    t = torch.linspace(0, 1, 16)
    for method in FIXED:
        expected = torchdiffeq.odeint(field, y0, t, method=method, options={"step_size": 1 / 60})
        options = ODESolverOptions(backend="unrolled", method=method, step_size=1 / 60)
        got = odeint(field, y0, t, options)
        assert (got - expected).abs().max() < 5e-6


def test_rk4_classic_is_the_classic_rule_and_fourth_order() -> None:
    field, y0 = MLP(), torch.randn(4, 8)
    t = torch.linspace(0, 1, 16)
    classic = unrolled_odeint(field, y0, t, "rk4-classic")
    assert not torch.equal(classic, unrolled_odeint(field, y0, t, "rk4"))  # not the 3/8 rule
    # one step equals torchdiffeq's own classic step function, bit for bit
    from torchdiffeq._impl.rk_common import rk4_step_func

    dt = t[1] - t[0]
    dy = rk4_step_func(lambda s, y, perturb=None: field(s, y), t[0], dt, t[1], y0)
    assert torch.equal(classic[1], y0 + dy)

    lin, z0, a = linear_problem()
    errors = []
    for n in (8, 16, 32):
        grid = torch.linspace(0, 1, n + 1, dtype=torch.float64)
        end = unrolled_odeint(lin, z0, grid, "rk4-classic")[-1]
        errors.append((end - exact(a, z0, grid[-1:])[0]).abs().max().item())
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(15 < r < 17 for r in ratios), ratios


@pytest.mark.parametrize(
    ("method", "step", "tol"),
    [
        ("euler", 1e-4, 1e-4),
        ("midpoint", 1e-3, 1e-6),
        ("rk4", 1e-2, 1e-10),
        ("rk4-classic", 1e-2, 1e-10),
    ],
)
def test_unrolled_methods_match_the_matrix_exponential(
    method: str, step: float, tol: float
) -> None:
    field, y0, a = linear_problem()
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    options = ODESolverOptions(backend="unrolled", method=method, step_size=step)
    assert (odeint(field, y0, t, options) - exact(a, y0, t)).abs().max() < tol


def test_torchdiffeq_dopri5_matches_the_matrix_exponential() -> None:
    field, y0, a = linear_problem()
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    options = ODESolverOptions(method="dopri5", rtol=1e-10, atol=1e-12)
    assert (odeint(field, y0, t, options) - exact(a, y0, t)).abs().max() < 1e-9


@pytest.mark.parametrize("method", UNROLLED_ODE_METHODS)
def test_backward_integration_returns_to_the_start(method: str) -> None:
    field, y0, _ = linear_problem()
    options = ODESolverOptions(backend="unrolled", method=method, step_size=1e-2)
    forward = odeint(field, y0, torch.linspace(0, 1, 5, dtype=torch.float64), options)[-1]
    back = odeint(field, forward, torch.linspace(1, 0, 5, dtype=torch.float64), options)[-1]
    tol = {"euler": 2e-2, "midpoint": 1e-4}.get(method, 1e-9)
    assert (back - y0).abs().max() < tol


@pytest.mark.parametrize(
    "options",
    [
        ODESolverOptions(backend="unrolled", method="rk4", step_size=1e-2),
        ODESolverOptions(method="dopri5", rtol=1e-10, atol=1e-12),
    ],
    ids=["unrolled-rk4", "torchdiffeq-dopri5"],
)
def test_odeint_from_inside_the_grid_solves_both_ways(options: ODESolverOptions) -> None:
    field, y0, a = linear_problem()
    # like linspace(-0.5, 1.5, 21), whose t[5] is 2.8e-17 rather than 0
    t = torch.arange(-5, 16, dtype=torch.float64) / 10
    ys = odeint_from(field, y0, t, 0.0, options)
    assert ys.shape == (21, 2, 3)
    assert torch.equal(ys[5], y0)
    assert (ys - exact(a, y0, t)).abs().max() < 1e-8
    # decreasing grid: same values in the grid's order
    back = odeint_from(field, y0, t.flip(0), 0.0, options)
    assert torch.equal(back[15], y0)
    assert (back - ys.flip(0)).abs().max() < 1e-8
    # t0 off the grid, before it and after it
    for t0 in (0.25, -3.0, 3.0):
        got = odeint_from(field, y0, t, t0, options)
        assert (got - exact(a, y0, t, t0)).abs().max() < 1e-7


@pytest.mark.parametrize("backend", ["torchdiffeq", "unrolled"])
def test_odeint_from_at_the_first_time_is_odeint(backend: str) -> None:
    field, y0 = MLP(), torch.randn(4, 8)
    t = torch.linspace(0, 1, 16)
    options = ODESolverOptions(backend=backend)
    expected = odeint(field, y0, t, options)
    assert torch.equal(odeint_from(field, y0, t, 0.0, options), expected)
    assert torch.equal(odeint_from(field, y0, t, t[0], options), expected)
    assert torch.equal(expected, torchdiffeq.odeint(field, y0, t, method="rk4"))
    back = t.flip(0)
    assert torch.equal(odeint_from(field, y0, back, 1.0, options), odeint(field, y0, back, options))


def test_odeint_from_takes_a_grid_time_within_rounding_of_t0_as_t0() -> None:
    field, y0 = MLP(), torch.randn(4, 8)
    t = torch.linspace(-1, 2, 31)  # t[10] is 1.5e-8, not 0
    assert 0 < t[10] < 1e-7
    for options in (ODESolverOptions(), ODESolverOptions(backend="unrolled")):
        ys = odeint_from(field, y0, t, 0.0, options)
        assert torch.equal(ys[10], y0)
        assert torch.equal(ys[10:], odeint(field, y0, t[10:], options))
    # a time a real step away is integrated to, not snapped
    ys = odeint_from(field, y0, torch.tensor([-1.0, 1e-3, 1.0]), 0.0, ODESolverOptions())
    assert not torch.equal(ys[1], y0)


def test_times_may_be_a_sequence_of_floats() -> None:
    # a sequence is planned without reading tensor values (traceable for export)
    field, y0 = MLP(), torch.randn(4, 8)
    t = torch.linspace(-0.5, 1, 16)
    for options in (ODESolverOptions(), ODESolverOptions(backend="unrolled", step_size=0.03)):
        expected = odeint_from(field, y0, t, 0.0, options)
        assert torch.equal(odeint_from(field, y0, t.tolist(), 0.0, options), expected)
    same = torch.tensor([0.0, 0.5, 1.0])
    assert torch.equal(
        unrolled_odeint(field, y0, [0.0, 0.5, 1.0]), unrolled_odeint(field, y0, same)
    )


def test_odeint_from_is_differentiable_on_both_sides() -> None:
    field, y0 = MLP(), torch.randn(4, 8, requires_grad=True)
    t = torch.linspace(-0.5, 0.5, 11)
    odeint_from(field, y0, t, 0.0, ODESolverOptions(backend="unrolled")).square().sum().backward()
    assert y0.grad is not None and field.linear.weight.grad is not None


def test_option_errors_name_the_option_the_backend_and_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"method: 'dopri5' is not available with backend "):
        ODESolverOptions(backend="unrolled", method="dopri5")
    with pytest.raises(ConfigError) as info:
        ODESolverOptions(backend="unrolled", method="dopri5")
    assert "euler, midpoint, rk4, rk4-classic" in str(info.value)
    with pytest.raises(ConfigError, match=r"adjoint: backend 'unrolled'.*adjoint=false"):
        ODESolverOptions(backend="unrolled", adjoint=True)
    with pytest.raises(ConfigError, match=r"backend: expected one of 'torchdiffeq', 'unrolled'"):
        ODESolverOptions(backend="jax")
    with pytest.raises(ConfigError, match=r"method: 'rk4-classic' is not a torchdiffeq method"):
        ODESolverOptions(method="rk4-classic")
    with pytest.raises(ConfigError, match="method: expected one of .*got 'rk5'"):
        ODESolverOptions(method="rk5")
    # through the config builder the section prefixes the option
    with pytest.raises(ConfigError, match=r"^temporal\.ode\.method: 'dopri5' is not available"):
        build_config(ODESolverOptions, {"backend": "unrolled", "method": "dopri5"}, "temporal.ode")
    # evolve and subclasses validate too
    with pytest.raises(ConfigError, match="adjoint"):
        attrs.evolve(ODESolverOptions(adjoint=True), backend="unrolled")

    @attrs.frozen
    class PluginConfig(ODESolverOptions):
        width: int = 3

    assert PluginConfig(backend="unrolled", method="rk4-classic").width == 3
    with pytest.raises(ConfigError, match="method"):
        PluginConfig(backend="unrolled", method="bosh3")


def test_method_choices_are_listed_for_the_cli() -> None:
    info = {o.name: o for o in describe_options(ODESolverOptions)}
    assert list(info)[:2] == ["backend", "method"]
    assert set(info["method"].choices) == set(ODE_METHODS) | set(UNROLLED_ODE_METHODS)
    assert info["backend"].choices == ("torchdiffeq", "unrolled")


def test_bad_times_are_refused_clearly() -> None:
    field, y0 = MLP(), torch.randn(4, 8)
    with pytest.raises(ConfigError, match="strictly increasing or strictly decreasing"):
        odeint(field, y0, torch.tensor([0.0, 1.0, 0.5]), ODESolverOptions(backend="unrolled"))
    with pytest.raises(ConfigError, match="strictly increasing or strictly decreasing"):
        odeint_from(field, y0, torch.tensor([0.0, 1.0, 0.5]), 0.0, ODESolverOptions())
    with pytest.raises(ConfigError, match="t0 must be one finite time"):
        odeint_from(field, y0, torch.linspace(0, 1, 3), float("nan"), ODESolverOptions())
    with pytest.raises(ConfigError, match="steps_per_interval"):
        unrolled_odeint(field, y0, torch.linspace(0, 1, 3), "rk4", [1])
