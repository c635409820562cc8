"""temporal.ode and the core's ODE integration: parity with torchdiffeq, analytic solutions."""

from __future__ import annotations

import math

import pytest
import torch
import torchdiffeq
from torch import nn

import ndevgan_core as nd
from ndevgan_core.config import build_config
from ndevgan_core.errors import ConfigError
from ndevgan_plugins.ode import ODEConfig, ODETemporal

SPEC = nd.TemporalSpec((100,), (100,), 16)


def make(**options) -> ODETemporal:
    torch.manual_seed(0)
    return ODETemporal(build_config(ODEConfig, options, "temporal.ode"), SPEC)


class Linear(nn.Module):
    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, t, y):
        return y @ self.a.T


def test_single_design_is_one_linear_plus_tanh_with_xavier_init():
    ode = make()
    layers = list(ode.field.net)
    assert [type(m) for m in layers] == [nn.Linear, nn.Tanh]
    assert nd.count_parameters(ode) == 100 * 100 + 100
    bound = math.sqrt(2) * math.sqrt(6 / 200)  # xavier_uniform(gain=√2) on 100×100
    w = layers[0].weight
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert torch.count_nonzero(layers[0].bias) == 0


def test_composed_design_parameter_count():
    ode = make(design="composed", hidden=49)
    assert nd.count_parameters(ode) == 100 * 49 + 49 + 49 * 100 + 100


def test_frame_zero_is_z_and_output_matches_torchdiffeq_rk4():
    ode = make()
    z = torch.rand(3, 100) * 2 - 1
    t = SPEC.times()
    out = ode(z, t)
    assert out.shape == (3, 16, 100)
    assert torch.equal(out[:, 0], z)
    expected = torchdiffeq.odeint(ode.field, z, t, method="rk4").transpose(0, 1)
    assert torch.equal(out, expected)


def test_adaptive_method_agrees_with_rk4_and_any_grid_is_accepted():
    z = torch.rand(2, 100) * 2 - 1
    fine = make(method="dopri5", rtol=1e-9, atol=1e-11)
    coarse = make()
    t = torch.linspace(-0.5, 2.0, 41)  # negative times and extrapolation past t=1
    coarse.check_times(t)
    a = fine(z, t)
    b = coarse(z, t)
    assert (a - b).abs().max() < 1e-4


def test_backwards_integration_inverts_forwards():
    ode = make(method="dopri5", rtol=1e-10, atol=1e-12)
    z = torch.rand(2, 100) * 2 - 1
    forward = ode(z, torch.tensor([0.0, 1.0]))[:, -1]
    back = ode(forward, torch.tensor([1.0, 0.0]))[:, -1]
    assert (back - z).abs().max() < 1e-5


def test_core_odeint_matches_matrix_exponential():
    torch.manual_seed(0)
    a = torch.randn(4, 4, dtype=torch.float64) * 0.5
    y0 = torch.randn(2, 4, dtype=torch.float64)
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    options = nd.ODESolverOptions(method="dopri5", rtol=1e-10, atol=1e-12)
    ys = nd.odeint(Linear(a), y0, t, options)
    exact = torch.stack([y0 @ torch.linalg.matrix_exp(a * ti).T for ti in t])
    assert (ys - exact).abs().max() < 1e-8
    # fixed steps: rk4 with step 1/64 is fourth-order accurate
    ys = nd.odeint(Linear(a), y0, t, nd.ODESolverOptions(method="rk4", step_size=1 / 64))
    assert (ys - exact).abs().max() < 1e-8


def test_adjoint_gradients_match_direct_backprop():
    z = torch.rand(2, 100) * 2 - 1
    grads = []
    for adjoint in (False, True):
        ode = make(adjoint=adjoint)
        ode(z, SPEC.times()).square().sum().backward()
        grads.append(ode.field.net[0].weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def test_odeint_rejects_non_monotonic_times():
    with pytest.raises(ConfigError, match="strictly increasing or strictly decreasing"):
        make()(torch.zeros(1, 100), torch.tensor([0.0, 1.0, 0.5]))


def test_feature_map_latents_are_refused_clearly():
    with pytest.raises(ConfigError, match="temporal.ode works on vector latents"):
        ODETemporal(ODEConfig(), nd.TemporalSpec((8, 3, 3), (8, 3, 3), 16))
