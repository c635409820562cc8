"""temporal.ode: orders 1–3 in both forms, the f designs, feature maps, against known solutions.

The solvers themselves are tested in test_solvers.py; here the plugin's state layout, encoders
and designs are checked against solutions nobody here wrote (scipy's matrix exponential,
trigonometric and exponential closed forms, torchdiffeq).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torchdiffeq
from torch import nn

import ndevgan_core as nd
from ndevgan_core.config import build_config
from ndevgan_core.errors import ConfigError
from ndevgan_plugins.ode import ODEConfig, ODETemporal
from ndevgan_plugins.tgan import Conv1dTemporal, Conv1dTemporalConfig

SPEC = nd.TemporalSpec((100,), (100,), 16)
TIGHT = {"method": "dopri5", "rtol": 1e-10, "atol": 1e-12}


def make(spec: nd.TemporalSpec = SPEC, **options) -> ODETemporal:
    torch.manual_seed(0)
    return ODETemporal(build_config(ODEConfig, options, "temporal.ode"), spec)


def tgan_spec() -> nd.TemporalSpec:
    reference = nd.count_parameters(Conv1dTemporal(Conv1dTemporalConfig(bias=True), SPEC))
    return nd.TemporalSpec((100,), (100,), 16, reference_params=reference)


def set_linear(layer: nn.Module, weight: torch.Tensor, bias: float = 0.0) -> None:
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.fill_(bias)


def test_single_design_is_one_linear_plus_tanh_with_xavier_init():
    ode = make(init="xavier_uniform")  # the paper presets' init
    layers = list(ode.field)
    assert [type(m) for m in layers] == [nn.Linear, nn.Tanh]
    assert nd.count_parameters(ode) == 100 * 100 + 100
    bound = math.sqrt(2) * math.sqrt(6 / 200)  # xavier_uniform(gain=√2) on 100×100
    w = layers[0].weight
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    # as the paper's code: only the weights are xavier; the bias keeps torch's U(±1/√fan_in)
    b = layers[0].bias
    assert b.abs().max() <= 0.1 and torch.count_nonzero(b) == 100
    zero = make()  # ndevgan's default: the same weights, zero biases
    assert torch.count_nonzero(zero.field[0].bias) == 0
    torch.testing.assert_close(zero.field[0].weight, w)


def test_composed_design_parameter_count():
    ode = make(design="composed", hidden=49)
    assert [type(m) for m in ode.field] == [nn.Linear, nn.Tanh, nn.Linear]
    assert nd.count_parameters(ode) == 100 * 49 + 49 + 49 * 100 + 100


def test_higher_orders_count_their_encoders_and_wider_f():
    # general: f sees (x, x', …) → n·D inputs; one Linear(D, D) encoder per initial derivative
    for order in (2, 3):
        ode = make(order=order)
        assert nd.count_parameters(ode) == (order * 100 * 100 + 100) + (order - 1) * 10_100
    # chain: f sees one component; every component has its own encoder
    ode = make(order=3, form="chain")
    assert nd.count_parameters(ode) == 10_100 + 3 * 10_100


def test_frame_zero_is_z_and_output_matches_torchdiffeq_rk4():
    ode = make()
    z = torch.rand(3, 100) * 2 - 1
    t = SPEC.times()
    out = ode(z, t)
    assert out.shape == (3, 16, 100)
    assert torch.equal(out[:, 0], z)
    expected = torchdiffeq.odeint(ode.drift, z, t, method="rk4").transpose(0, 1)
    assert torch.equal(out, expected)


def test_unrolled_backend_equals_torchdiffeq_rk4_bit_for_bit():
    z = torch.rand(3, 100) * 2 - 1
    for order in (1, 2):
        a = make(order=order)(z, SPEC.times())
        b = make(order=order, backend="unrolled", method="rk4")(z, SPEC.times())
        assert torch.equal(a, b)


def test_linear_first_order_matches_scipy_matrix_exponential():
    torch.manual_seed(1)
    a = (torch.randn(6, 6) * 0.4).double()
    ode = make(nd.TemporalSpec((6,), (6,), 16), activation="identity", **TIGHT).double()
    set_linear(ode.field[0], a)
    z = torch.randn(2, 6, dtype=torch.float64)
    t = torch.linspace(-1, 2, 13, dtype=torch.float64)  # before, across and past [0, 1]
    out = ode(z, t)
    exact = np.stack([z.numpy() @ scipy.linalg.expm(a.numpy() * ti).T for ti in t.numpy()], 1)
    assert np.abs(out.detach().numpy() - exact).max() < 1e-8


def test_second_order_reproduces_a_harmonic_oscillator():
    omega, d = 2.5, 5
    ode = make(nd.TemporalSpec((d,), (d,), 16), order=2, activation="identity", **TIGHT).double()
    # x'' = -ω² x: f([x, x']) = [-ω² I, 0] [x; x']; x'(0) = encoder(z) = 0
    set_linear(ode.field[0], torch.cat([-(omega**2) * torch.eye(d), torch.zeros(d, d)], 1))
    set_linear(ode.initial[0], torch.zeros(d, d))
    z = torch.randn(3, d, dtype=torch.float64)
    t = torch.linspace(0, 2, 21, dtype=torch.float64)
    out = ode(z, t).detach()
    exact = z[:, None] * torch.cos(omega * t)[None, :, None]
    assert (out - exact).abs().max() < 1e-8
    # with x'(0) = z as well: x = z (cos ωt + sin ωt / ω)
    set_linear(ode.initial[0], torch.eye(d))
    out = ode(z, t).detach()
    exact = z[:, None] * (torch.cos(omega * t) + torch.sin(omega * t) / omega)[None, :, None]
    assert (out - exact).abs().max() < 1e-8


def test_third_order_reproduces_known_solutions():
    d = 4
    spec = nd.TemporalSpec((d,), (d,), 16)
    ode = make(spec, order=3, activation="identity", **TIGHT).double()
    z = torch.randn(2, d, dtype=torch.float64)
    t = torch.linspace(-1, 1.5, 11, dtype=torch.float64)
    # x''' = x with x(0) = x'(0) = x''(0) = z  →  x = z eᵗ
    set_linear(ode.field[0], torch.cat([torch.eye(d), torch.zeros(d, 2 * d)], 1))
    for encoder in ode.initial:
        set_linear(encoder, torch.eye(d))
    exact = z[:, None] * torch.exp(t)[None, :, None]
    assert (ode(z, t).detach() - exact).abs().max() < 1e-8
    # x''' = 0 with x'(0) = 2z, x''(0) = -3z  →  x = z (1 + 2t − 1.5t²)
    set_linear(ode.field[0], torch.zeros(d, 3 * d))
    set_linear(ode.initial[0], 2 * torch.eye(d))
    set_linear(ode.initial[1], -3 * torch.eye(d))
    exact = z[:, None] * (1 + 2 * t - 1.5 * t**2)[None, :, None]
    assert (ode(z, t).detach() - exact).abs().max() < 1e-7


def test_chain_form_is_the_papers_chain_of_integrators():
    # order 2 chain: dc0/dt = f(c0) = a c0, dc1/dt = c0, output c1; c0(0) = c1(0) = z
    a, d = -0.7, 3
    ode = make(
        nd.TemporalSpec((d,), (d,), 16), order=2, form="chain", activation="identity", **TIGHT
    ).double()
    set_linear(ode.field[0], a * torch.eye(d, dtype=torch.float64))
    for encoder in ode.initial:
        set_linear(encoder, torch.eye(d))
    z = torch.randn(2, d, dtype=torch.float64)
    t = torch.linspace(0, 1, 16, dtype=torch.float64)
    exact = z[:, None] * (1 + (torch.exp(a * t) - 1) / a)[None, :, None]
    assert (ode(z, t).detach() - exact).abs().max() < 1e-9


def test_negative_times_integrate_backwards_from_z():
    ode = make(**TIGHT).double()
    z = torch.rand(2, 100, dtype=torch.float64) * 2 - 1
    t = torch.linspace(-1, 2, 31, dtype=torch.float64)  # t = 0 is frame 10
    out = ode(z, t).detach()
    assert torch.equal(out[:, 10], z)
    # running the field forward from the t = -1 state lands back on z at t = 0
    t_back = torch.tensor([-1.0, 0.0], dtype=torch.float64)
    again = torchdiffeq.odeint(ode.drift, out[:, 0], t_back, **TIGHT)[-1]
    assert (again - z).abs().max() < 1e-8
    # and a decreasing grid gives the same states in reverse order
    assert (ode(z, t.flip(0)).detach() - out.flip(1)).abs().max() < 1e-8


def test_adaptive_method_agrees_with_rk4_on_any_grid():
    z = torch.rand(2, 100) * 2 - 1
    t = torch.linspace(-0.5, 2.0, 41)
    fine = make(method="dopri5", rtol=1e-6, atol=1e-7)
    assert (fine(z, t) - make()(z, t)).abs().max() < 1e-4


def test_adjoint_gradients_match_direct_backprop():
    z = torch.rand(2, 100) * 2 - 1
    grads = []
    for adjoint in (False, True):
        ode = make(adjoint=adjoint, order=2)
        ode(z, SPEC.times()).square().sum().backward()
        grads.append(ode.field[0].weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def test_matched_design_has_the_original_temporal_generators_parameter_count():
    spec = tgan_spec()
    assert spec.reference_params == 826_468  # G0 with a bias on every layer, as the authors
    for options in ({}, {"pre_mlp": [512, 512, 512]}, {"order": 2}, {"order": 3}):
        ode = make(spec, design="matched", **options)
        # one hidden unit: a row of W1 (order × 100 inputs), its bias, a column of W2
        per_unit = options.get("order", 1) * 100 + 1 + 100
        assert abs(nd.count_parameters(ode) - 826_468) <= per_unit / 2
    # solved with the pre-ODE MLP: 985 (the authors hard-coded 978; an explicit hidden wins)
    ode = make(spec, design="matched", pre_mlp=[512, 512, 512])
    assert ode.hidden == 985
    assert nd.count_parameters(ode.input.pre) == 628_324  # 100→512→512→512→100
    ode = make(spec, design="matched", pre_mlp=[512, 512, 512], hidden=978)
    assert ode.hidden == 978 and nd.count_parameters(ode) == 825_002
    # MoCoGAN: GRUCell(16, 16) has 1,632 parameters; solved: hidden 49, the authors' width
    gru = nd.count_parameters(nn.GRUCell(16, 16))
    ode = make(nd.TemporalSpec((16,), (16,), 16, reference_params=gru), design="matched")
    assert ode.hidden == 49 and abs(nd.count_parameters(ode) - gru) <= 33 // 2


def test_matched_without_a_reference_is_a_clear_error():
    with pytest.raises(ConfigError, match="design 'matched' needs a backbone"):
        make(design="matched")


def test_feature_map_latents_use_a_convolutional_f():
    spec = nd.TemporalSpec((8, 3, 3), (8, 3, 3), 16)
    ode = make(spec)
    conv, act = list(ode.field)
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
    assert isinstance(act, nn.LeakyReLU) and act.negative_slope == 0.2  # TGANv2's f
    assert nd.count_parameters(ode) == 8 * 8 * 9 + 8
    z = torch.randn(2, 8, 3, 3)
    out = ode(z, torch.linspace(-0.5, 1, 7))
    assert out.shape == (2, 7, 8, 3, 3) and torch.equal(out[:, 2], z)
    ode2 = make(spec, order=2)
    assert ode2(z, spec.times()).shape == (2, 16, 8, 3, 3)
    # TGANv2's ODE: f = Conv2d(1024, 1024, 3, p1) + LeakyReLU(0.2), counted without allocating
    with torch.device("meta"):
        big = make(nd.TemporalSpec((1024, 3, 3), (1024, 3, 3), 16))
    assert nd.count_parameters(big) == 1024 * 1024 * 9 + 1024


def test_input_encoder_pre_mlp_and_time_input():
    spec = nd.TemporalSpec((10,), (6,), 16)  # z of 10 → frame latents of 6
    ode = make(spec, pre_mlp=[32], time_input=True)
    assert nd.count_parameters(ode.input) == (10 * 32 + 32) + (32 * 10 + 10) + (10 * 6 + 6)
    assert ode.field[0].in_features == 7
    out = ode(torch.randn(3, 10), spec.times())
    assert out.shape == (3, 16, 6)


def test_option_errors_name_the_option():
    with pytest.raises(ConfigError, match="order"):
        make(order=4)
    with pytest.raises(ConfigError, match="method"):
        make(backend="unrolled", method="dopri5")
    with pytest.raises(ConfigError, match="pre_mlp"):
        make(pre_mlp=[0])
    with pytest.raises(ConfigError, match="vector .* or feature-map"):
        make(nd.TemporalSpec((4, 4), (4, 4), 16))


def test_odeint_rejects_non_monotonic_times():
    with pytest.raises(ConfigError, match="strictly increasing or strictly decreasing"):
        make()(torch.zeros(1, 100), torch.tensor([0.0, 1.0, 0.5]))
