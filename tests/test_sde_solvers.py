"""SDE solvers: torchsde's step grid, unrolled == torchsde, noise, statistics, adjoint, options."""

from __future__ import annotations

import math
import warnings

import attrs
import pytest
import scipy.linalg
import torch
import torchsde
from torch import nn

from ndevgan_core.config import build_config, describe_options
from ndevgan_core.errors import ConfigError
from ndevgan_core.sde_solvers import (
    TORCHSDE_METHODS,
    UNROLLED_SDE_METHODS,
    IncrementBrownian,
    SDESolverOptions,
    sde_noise_shape,
    sde_step_times,
    sdeint,
    sdeint_from,
)

B, D, M = 4, 5, 3
T16 = torch.linspace(0, 1, 16)


class Coefficients(nn.Module):
    """A small nonlinear SDE: drift tanh(Ay + b), diffusion 0.3 sigmoid(Cy + d)."""

    def __init__(self, m: int | None = None, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.m = m
        self.a = nn.Linear(D, D).to(dtype)
        self.c = nn.Linear(D, D * (m or 1)).to(dtype)

    def drift(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.a(y)) * (1 + 0.5 * t)

    def diffusion(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        g = 0.3 * torch.sigmoid(self.c(y))
        return g if self.m is None else g.view(y.shape[0], D, self.m)


class QueryLog(torchsde.BaseBrownian):
    """Records the intervals torchsde asks for (and answers zero)."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.queries: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._shape = shape

    def __call__(self, ta, tb=None, return_U=False, return_A=False):  # noqa: N803
        self.queries.append((ta.clone(), tb.clone()))
        return torch.zeros(self._shape)

    def __repr__(self) -> str:
        return "QueryLog"

    dtype = property(lambda self: torch.float32)
    device = property(lambda self: torch.device("cpu"))
    shape = property(lambda self: self._shape)
    levy_area_approximation = property(lambda self: "none")


class Zero(nn.Module):
    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(y)


@pytest.mark.parametrize("dt", [2.5e-2, 5e-2])
def test_step_times_are_the_boundaries_torchsde_visits(dt: float) -> None:
    class Ito(nn.Module):
        noise_type, sde_type = "diagonal", "ito"

        def f(self, t, y):
            return -y

        def g(self, t, y):
            return torch.ones_like(y)

    bm = QueryLog((2, 3))
    torchsde.sdeint(Ito(), torch.zeros(2, 3), T16, bm=bm, method="euler", dt=dt)
    visited = torch.stack([bm.queries[0][0]] + [tb for _, tb in bm.queries])
    steps = sde_step_times(T16, dt)
    assert torch.equal(steps, visited)
    assert all(torch.equal(ta, steps[k]) for k, (ta, _) in enumerate(bm.queries))
    if dt == 2.5e-2:
        # fp32 accumulation of 0.025 reaches 0.9999996 after 40 steps: torchsde then takes a
        # 41st step of 4e-7 to t=1
        assert len(steps) - 1 == 41 and 0 < steps[-1] - steps[-2] < 1e-6
    else:
        assert len(steps) - 1 == 20


def torch_step_times(t: torch.Tensor, dt: float) -> torch.Tensor:
    """torchsde's stepping loop written with its own tensor operations."""
    curr = t[0]
    steps = [curr]
    for out_t in t[1:]:
        while curr < out_t:
            curr = min(curr + dt, t[-1])
            steps.append(curr)
    return torch.stack(steps)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_times_planned_on_floats_equal_torch_arithmetic(dtype: torch.dtype) -> None:
    # sde_step_times plans with numpy (no tensor reads, so solves can be traced for export);
    # it must round exactly as torch's tensor + float does
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        t = torch.rand(6, generator=generator, dtype=torch.float64).sort().values * 3 - 1
        dt = float(torch.rand((), generator=generator)) * 0.2 + 1e-3
        t = t.to(dtype)
        assert torch.equal(sde_step_times(t, dt), torch_step_times(t, dt))
        if dtype == torch.float32:  # a sequence is planned in the default dtype
            assert torch.equal(sde_step_times(t.tolist(), dt), torch_step_times(t, dt))


def test_times_may_be_a_sequence_of_floats() -> None:
    coef = Coefficients()
    y0 = torch.randn(B, D)
    times = torch.linspace(-0.5, 1, 16)
    options = SDESolverOptions(backend="unrolled", method="milstein")
    noise = torch.randn(sde_noise_shape(B, times, options, D, t0=0.0))
    assert sde_noise_shape(B, times.tolist(), options, D, t0=0.0) == noise.shape
    a = sdeint_from(coef.drift, coef.diffusion, y0, times, 0.0, options, noise=noise)
    b = sdeint_from(coef.drift, coef.diffusion, y0, times.tolist(), 0.0, options, noise=noise)
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("noise_type", "sde_type", "torchsde_method", "unrolled_method"),
    [
        ("diagonal", "ito", "euler", "euler-maruyama"),
        ("general", "ito", "euler", "euler-maruyama"),
        ("diagonal", "ito", "milstein", "milstein"),
        ("diagonal", "stratonovich", "milstein", "milstein"),
    ],
)
def test_unrolled_equals_torchsde_exactly_given_the_same_noise(
    noise_type: str, sde_type: str, torchsde_method: str, unrolled_method: str
) -> None:
    m = M if noise_type == "general" else None
    coef = Coefficients(m)
    y0 = torch.randn(B, D)
    ref = SDESolverOptions(method=torchsde_method, sde_type=sde_type, noise_type=noise_type)
    unrolled = attrs.evolve(ref, backend="unrolled", method=unrolled_method)
    shape = sde_noise_shape(B, T16, ref, D, m)
    assert shape == (B, 41, m or D)
    noise = torch.randn(shape)
    a = sdeint(coef.drift, coef.diffusion, y0, T16, ref, noise=noise, brownian_size=m)
    b = sdeint(coef.drift, coef.diffusion, y0, T16, unrolled, noise=noise, brownian_size=m)
    assert a.shape == (16, B, D)
    assert torch.equal(a, b)
    assert torch.equal(a[0], y0)

    # the torchsde backend is plain torchsde driven by IncrementBrownian (milstein: grad_free)
    class SDE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.noise_type, self.sde_type = noise_type, sde_type

        def f(self, t, y):
            return coef.drift(t, y)

        def g(self, t, y):
            return coef.diffusion(t, y)

    steps = sde_step_times(T16, ref.dt)
    bm = IncrementBrownian(steps, noise * (steps[1:] - steps[:-1]).sqrt()[None, :, None])
    options = {"grad_free": True} if torchsde_method == "milstein" else None
    raw = torchsde.sdeint(SDE(), y0, T16, bm=bm, method=torchsde_method, dt=ref.dt, options=options)
    assert torch.equal(a, raw)


@pytest.mark.parametrize("backend", ["torchsde", "unrolled"])
def test_seeds_make_samples_reproducible(backend: str) -> None:
    coef = Coefficients()
    y0 = torch.randn(B, D)
    method = "euler" if backend == "torchsde" else "euler-maruyama"
    options = SDESolverOptions(backend=backend, method=method)

    def sample(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return sdeint(coef.drift, coef.diffusion, y0, T16, options, generator=generator)

    assert torch.equal(sample(7), sample(7))
    assert not torch.allclose(sample(7), sample(8))
    # the generator draws exactly the documented standard normals
    noise = torch.randn(
        sde_noise_shape(B, T16, options, D), generator=torch.Generator().manual_seed(7)
    )
    assert torch.equal(sample(7), sdeint(coef.drift, coef.diffusion, y0, T16, options, noise=noise))


def test_srk_draws_its_own_reproducible_noise_and_refuses_explicit_noise() -> None:
    coef = Coefficients()
    y0 = torch.randn(B, D)
    options = SDESolverOptions(method="srk")

    def sample(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return sdeint(coef.drift, coef.diffusion, y0, T16, options, generator=generator)

    assert torch.equal(sample(1), sample(1))
    assert not torch.allclose(sample(1), sample(2))
    with pytest.raises(ConfigError, match="'srk' needs a Lévy area.*cannot take explicit noise"):
        sdeint(coef.drift, coef.diffusion, y0, T16, options, noise=torch.randn(B, 41, D))


def test_wrong_noise_shape_states_the_expected_shape() -> None:
    coef = Coefficients()
    y0 = torch.randn(B, D)
    options = SDESolverOptions()
    with pytest.raises(ConfigError, match=r"noise: expected .* \(4, 41, 5\).*41 solver steps"):
        sdeint(coef.drift, coef.diffusion, y0, T16, options, noise=torch.randn(B, 40, D))
    general = SDESolverOptions(noise_type="general")
    with pytest.raises(ConfigError, match=r"brownian_size: general noise needs"):
        sdeint(coef.drift, coef.diffusion, y0, T16, general)
    with pytest.raises(ConfigError, match=r"diffusion: expected shape \(B, D, brownian_size\)"):
        sdeint(coef.drift, coef.diffusion, y0, T16, general, brownian_size=M)
    with pytest.raises(ConfigError, match=r"y0 must be a flat state \(B, D\)"):
        sdeint(coef.drift, coef.diffusion, y0[None], T16, options)
    with pytest.raises(ConfigError, match="strictly increasing"):
        sdeint(coef.drift, coef.diffusion, y0, T16.flip(0), options)


@pytest.mark.parametrize(
    "options",
    [
        SDESolverOptions(method="euler", dt=5e-3),
        SDESolverOptions(backend="unrolled", method="euler-maruyama", dt=5e-3),
        SDESolverOptions(method="srk", dt=5e-2),
    ],
    ids=["torchsde-euler", "unrolled-em", "torchsde-srk"],
)
def test_ornstein_uhlenbeck_moments(options: SDESolverOptions) -> None:
    theta, sigma, x0, paths = 1.5, 0.8, 1.0, 20_000
    y0 = torch.full((paths, 1), x0, dtype=torch.float64)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    ys = sdeint(
        lambda t, y: -theta * y,
        lambda t, y: torch.full_like(y, sigma),
        y0,
        t,
        options,
        generator=generator,
    )
    x = ys[-1].flatten()
    mean = x0 * math.exp(-theta)
    var = sigma**2 * (1 - math.exp(-2 * theta)) / (2 * theta)
    n = x.numel()
    assert abs(x.mean().item() - mean) < 4 * math.sqrt(var / n)
    assert abs(x.var().item() - var) < 4 * var * math.sqrt(2 / (n - 1))


def _gradients(options: SDESolverOptions, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    coef = Coefficients(dtype=dtype)
    y0 = torch.randn(3, D, dtype=dtype, generator=torch.Generator().manual_seed(1))
    y0.requires_grad_(True)
    noise = torch.randn(
        sde_noise_shape(3, t, options, D), generator=torch.Generator().manual_seed(2)
    )
    ys = sdeint(coef.drift, coef.diffusion, y0, t, options, noise=noise.to(dtype))
    ys.square().sum().backward()
    assert y0.grad is not None
    return torch.cat([p.grad.flatten() for p in coef.parameters()] + [y0.grad.flatten()])


@pytest.mark.parametrize(
    ("method", "sde_type", "dtype", "t", "dt", "tol"),
    [
        # the paper's setting: Itô Euler; torchsde's adjoint solves the adjoint SDE with its
        # own discretisation (Milstein, Itô–Stratonovich corrections), so it is only O(dt)-
        # close to the gradient of the discrete forward pass: measured 1.1e-2 relative
        ("euler", "ito", torch.float32, T16, 2.5e-2, 3e-2),
        # Stratonovich midpoint: measured 5e-6
        ("midpoint", "stratonovich", torch.float32, torch.linspace(0, 1, 6), 1e-2, 5e-5),
        # reversible Heun is algebraically reversible: with output spacing a multiple of dt the
        # reverse pass meets every forward step boundary, the Brownian answers it with the very
        # same increment, and the gradients agree to rounding (measured 9e-16)
        (
            "reversible_heun",
            "stratonovich",
            torch.float64,
            torch.linspace(0, 1, 6, dtype=torch.float64),
            1e-2,
            1e-12,
        ),
    ],
    ids=["ito-euler", "stratonovich-midpoint", "reversible-heun"],
)
def test_adjoint_gradients_are_close_to_direct_backprop(
    method: str, sde_type: str, dtype: torch.dtype, t: torch.Tensor, dt: float, tol: float
) -> None:
    options = SDESolverOptions(method=method, sde_type=sde_type, dt=dt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reversible_heun's note about interpolated outputs
        direct = _gradients(options, t, dtype)
        adjoint = _gradients(attrs.evolve(options, adjoint=True), t, dtype)
    assert ((direct - adjoint).abs().max() / direct.abs().max()).item() < tol


def test_adjoint_needs_modules_to_find_parameters() -> None:
    options = SDESolverOptions(adjoint=True)
    with pytest.raises(ConfigError, match="adjoint: drift and diffusion must be nn.Modules"):
        sdeint(lambda t, y: -y, lambda t, y: y, torch.randn(B, D), T16, options)


def test_increment_brownian_answers_steps_exactly_and_interpolates_inside() -> None:
    steps = torch.tensor([0.0, 0.25, 0.5, 1.0])
    inc = torch.randn(2, 3, 4)
    bm = IncrementBrownian(steps, inc)
    assert bm.shape == (2, 4) and bm.levy_area_approximation == "none"
    assert torch.equal(bm(steps[1], steps[2]), inc[:, 1])
    assert torch.allclose(bm(0.0, 1.0), inc.sum(1))
    assert torch.allclose(bm(0.5 + 1e-9, 1.0), inc[:, 2])  # boundaries matched within rounding
    assert torch.allclose(bm(0.5, 0.75), 0.5 * inc[:, 2])
    assert torch.allclose(bm(0.125, 0.75), 0.5 * inc[:, 0] + inc[:, 1] + 0.5 * inc[:, 2])
    assert torch.allclose(bm(0.5), inc[:, :2].sum(1))
    with pytest.raises(ConfigError, match="Lévy area"):
        bm(0.0, 0.25, return_U=True)
    with pytest.raises(ConfigError, match="outside"):
        bm(0.0, 1.5)


def test_sdeint_from_at_the_first_time_is_sdeint() -> None:
    coef = Coefficients()
    y0 = torch.randn(B, D)
    options = SDESolverOptions()
    noise = torch.randn(sde_noise_shape(B, T16, options, D, t0=0.0))
    expected = sdeint(coef.drift, coef.diffusion, y0, T16, options, noise=noise)
    got = sdeint_from(coef.drift, coef.diffusion, y0, T16, 0.0, options, noise=noise)
    assert torch.equal(got, expected)


def test_sdeint_from_takes_a_grid_time_within_rounding_of_t0_as_t0() -> None:
    coef = Coefficients()
    y0 = torch.randn(B, D)
    options = SDESolverOptions()
    t = torch.linspace(-0.5, 1.5, 21)  # t[5] is 7.5e-9, not 0
    shape = sde_noise_shape(B, t, options, D, t0=0.0)
    noise = torch.randn(shape)
    ys = sdeint_from(coef.drift, coef.diffusion, y0, t, 0.0, options, noise=noise)
    assert torch.equal(ys[5], y0)
    back = shape[1] - sde_noise_shape(B, t[5:], options, D)[1]
    forward = sdeint(coef.drift, coef.diffusion, y0, t[5:], options, noise=noise[:, back:])
    assert torch.equal(ys[5:], forward)


@pytest.mark.parametrize("backend", ["torchsde", "unrolled"])
def test_sdeint_from_splits_the_noise_backward_part_first(backend: str) -> None:
    coef = Coefficients()
    y0 = torch.randn(B, D)
    method = "euler" if backend == "torchsde" else "euler-maruyama"
    options = SDESolverOptions(backend=backend, method=method, dt=0.05)
    t = torch.arange(-4, 9) / 8  # -0.5 … 1.0, t[4] == 0
    shape = sde_noise_shape(B, t, options, D, t0=0.0)
    back_steps = sde_step_times(-t[:5].flip(0), 0.05).numel() - 1
    fwd_steps = sde_step_times(t[4:], 0.05).numel() - 1
    assert shape == (B, back_steps + fwd_steps, D)
    noise = torch.randn(shape)
    ys = sdeint_from(coef.drift, coef.diffusion, y0, t, 0.0, options, noise=noise)
    assert ys.shape == (13, B, D) and torch.equal(ys[4], y0)
    forward = sdeint(coef.drift, coef.diffusion, y0, t[4:], options, noise=noise[:, back_steps:])
    assert torch.equal(ys[4:], forward)
    reversed_drift = lambda s, y: -coef.drift(-s, y)  # noqa: E731
    reversed_diffusion = lambda s, y: coef.diffusion(-s, y)  # noqa: E731
    backward = sdeint(
        reversed_drift, reversed_diffusion, y0, -t[:5].flip(0), options, noise=noise[:, :back_steps]
    )
    assert torch.equal(ys[:5], backward.flip(0))
    # a decreasing grid gives the same values in its own order
    assert torch.equal(
        sdeint_from(coef.drift, coef.diffusion, y0, t.flip(0), 0.0, options, noise=noise),
        ys.flip(0),
    )


@pytest.mark.parametrize(
    ("backend", "method", "sde_type", "dt", "tol"),
    [
        ("unrolled", "euler-maruyama", "ito", 1e-3, 2e-3),  # Euler: first order, 4e-4
        ("torchsde", "heun", "stratonovich", 1e-2, 1e-4),  # Heun; linear interpolation: 2e-5
    ],
)
def test_sdeint_from_without_diffusion_solves_the_ode_backwards(
    backend: str, method: str, sde_type: str, dt: float, tol: float
) -> None:
    torch.manual_seed(3)
    a = torch.randn(D, D, dtype=torch.float64) * 0.5
    y0 = torch.randn(2, D, dtype=torch.float64)
    t = torch.arange(-4, 5, dtype=torch.float64) / 8  # -0.5 … 0.5
    options = SDESolverOptions(backend=backend, method=method, sde_type=sde_type, dt=dt)
    ys = sdeint_from(lambda t, y: y @ a.T, Zero(), y0, t, 0.0, options)
    exact = torch.stack(
        [y0 @ torch.from_numpy(scipy.linalg.expm(a.numpy() * float(ti))).T for ti in t]
    )
    assert torch.equal(ys[4], y0)
    assert (ys - exact).abs().max() < tol


def test_option_combinations_are_checked_with_helpful_messages() -> None:
    cases = [
        (
            {"method": "euler", "sde_type": "stratonovich"},
            r"'euler' solves Itô SDEs only.*midpoint",
        ),
        ({"method": "heun"}, r"'heun' solves Stratonovich SDEs only.*euler, milstein or srk"),
        ({"method": "milstein", "noise_type": "general"}, r"needs noise_type='diagonal'.*euler"),
        ({"method": "srk", "noise_type": "general"}, r"needs noise_type='diagonal'"),
        ({"method": "euler-maruyama"}, r"not a torchsde method.*'euler'"),
        ({"backend": "unrolled", "method": "euler"}, r"not available with backend 'unrolled'"),
        (
            {"backend": "unrolled", "method": "euler-maruyama", "sde_type": "stratonovich"},
            r"Itô SDEs only.*'milstein'",
        ),
        (
            {"backend": "unrolled", "method": "milstein", "noise_type": "general"},
            r"needs noise_type='diagonal'.*euler-maruyama",
        ),
        ({"backend": "unrolled", "method": "milstein", "adjoint": True}, r"adjoint: backend"),
        ({"backend": "pytorch"}, r"backend: expected one of 'torchsde', 'unrolled'"),
        ({"sde_type": "ito2"}, r"sde_type: expected one of 'ito', 'stratonovich'"),
        ({"dt": 0.0}, r"dt: expected a number > 0"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message):
            SDESolverOptions(**kwargs)
    with pytest.raises(ConfigError, match=r"^temporal\.sde\.method: 'heun' solves Stratonovich"):
        build_config(SDESolverOptions, {"method": "heun"}, "temporal.sde")
    # what torchsde accepts is accepted, adjoint included
    for method in TORCHSDE_METHODS:
        sde_type = "ito" if method in ("euler", "milstein", "srk") else "stratonovich"
        SDESolverOptions(method=method, sde_type=sde_type, adjoint=True)

    @attrs.frozen
    class PluginConfig(SDESolverOptions):
        width: int = 3

    with pytest.raises(ConfigError, match="Stratonovich SDEs only"):
        PluginConfig(method="midpoint")
    info = {o.name: o for o in describe_options(SDESolverOptions)}
    assert set(info["method"].choices) == set(TORCHSDE_METHODS) | set(UNROLLED_SDE_METHODS)


def test_euler_adjoint_solves_the_adjoint_sde_with_euler_as_the_papers_code() -> None:
    coef = Coefficients()
    t = torch.linspace(0, 1, 6)
    y0 = torch.randn(3, D, generator=torch.Generator().manual_seed(1))
    options = SDESolverOptions(dt=2.5e-2, adjoint=True)
    noise = torch.randn(
        sde_noise_shape(3, t, options, D), generator=torch.Generator().manual_seed(2)
    )

    def gradients(run) -> torch.Tensor:
        coef.zero_grad()
        run().square().sum().backward()
        return torch.cat([p.grad.flatten() for p in coef.parameters()])

    class AsTorchsde(nn.Module):  # the paper's code hands torchsde such a module
        noise_type, sde_type = "diagonal", "ito"

        def __init__(self) -> None:
            super().__init__()
            self.coef = coef

        def f(self, t, y):
            return coef.drift(t, y)

        def g(self, t, y):
            return coef.diffusion(t, y)

    ours = gradients(lambda: sdeint(coef.drift, coef.diffusion, y0, t, options, noise=noise))
    steps = sde_step_times(t, 2.5e-2)
    increments = noise * (steps[1:] - steps[:-1]).sqrt()[None, :, None]
    reference = gradients(
        lambda: torchsde.sdeint_adjoint(
            AsTorchsde(),
            y0,
            t,
            bm=IncrementBrownian(steps, increments),
            method="euler",
            adjoint_method="euler",
            dt=2.5e-2,
        )
    )
    torch.testing.assert_close(ours, reference)
