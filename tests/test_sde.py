"""temporal.sde: drift/diffusion designs, noise handling and reproducibility, feature maps.

Solver accuracy (torchsde parity, Ornstein–Uhlenbeck statistics) is in test_sde_solvers.py;
this file checks the plugin on top of it.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import ndevgan_core as nd
from ndevgan_core.config import build_config
from ndevgan_core.errors import ConfigError
from ndevgan_plugins.sde import SDEConfig, SDETemporal

SPEC = nd.TemporalSpec((100,), (100,), 16)


def make(spec: nd.TemporalSpec = SPEC, **options) -> SDETemporal:
    torch.manual_seed(0)
    return SDETemporal(build_config(SDEConfig, options, "temporal.sde"), spec)


def test_default_drift_and_diffusion_are_the_papers_single_layers():
    sde = make()
    assert [type(m) for m in sde.mu] == [nn.Linear, nn.Tanh]
    assert [type(m) for m in sde.sigma] == [nn.Linear, nn.Tanh]
    assert nd.count_parameters(sde) == 2 * (100 * 100 + 100)
    assert sde.solver.method == "euler" and sde.solver.dt == 2.5e-2  # the paper's code
    assert sde.stochastic and sde.continuous


def test_frame_zero_is_z_and_seeded_samples_are_reproducible():
    sde = make()
    z = torch.rand(3, 100) * 2 - 1
    t = SPEC.times()
    a = sde(z, t, generator=torch.Generator().manual_seed(7))
    b = sde(z, t, generator=torch.Generator().manual_seed(7))
    c = sde(z, t, generator=torch.Generator().manual_seed(8))
    assert a.shape == (3, 16, 100) and torch.equal(a[:, 0], z)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_explicit_noise_drives_torchsde_and_the_unrolled_solver_identically():
    z = torch.rand(2, 100) * 2 - 1
    t = SPEC.times()
    torchsde_euler = make()
    unrolled = make(backend="unrolled", method="euler-maruyama")
    shape = torchsde_euler.noise_shape(2, t)
    assert shape == unrolled.noise_shape(2, t) and shape[0] == 2 and shape[2] == 100
    assert shape[1] >= 40  # 1 / 2.5e-2 steps
    noise = torch.randn(shape)
    assert torch.equal(torchsde_euler(z, t, noise=noise), unrolled(z, t, noise=noise))
    # the noise is what makes it random: zero noise is the drift's ODE, solved by Euler
    quiet = unrolled(z, t, noise=torch.zeros(shape))
    assert not torch.allclose(quiet, unrolled(z, t, noise=noise))


def test_wrong_noise_shape_is_a_clear_error():
    sde = make()
    with pytest.raises(ConfigError, match="noise"):
        sde(torch.zeros(2, 100), SPEC.times(), noise=torch.zeros(2, 3, 100))


def test_general_noise_has_its_own_brownian_size():
    sde = make(noise_type="general", brownian_size=7, sde_type="ito")
    assert sde.sigma[0].out_features == 100 * 7
    y = torch.zeros(2, 100)
    assert sde.diffusion(torch.tensor(0.0), y).shape == (2, 100, 7)
    t = SPEC.times()
    assert sde.noise_shape(2, t)[2] == 7
    out = sde(torch.rand(2, 100), t, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 16, 100) and torch.isfinite(out).all()


def test_stratonovich_milstein_and_negative_times():
    sde = make(sde_type="stratonovich", method="milstein")
    z = torch.rand(2, 100) * 2 - 1
    t = torch.linspace(-0.5, 1.5, 21)  # t = 0 is frame 5
    out = sde(z, t, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 21, 100) and torch.equal(out[:, 5], z)
    assert torch.isfinite(out).all()


def test_feature_map_latents_use_convolutional_drift_and_diffusion():
    spec = nd.TemporalSpec((8, 3, 3), (8, 3, 3), 16)
    sde = make(spec, dt=5e-2)
    assert isinstance(sde.mu[0], nn.Conv2d) and isinstance(sde.sigma[0], nn.Conv2d)
    z = torch.randn(2, 8, 3, 3)
    out = sde(z, spec.times(), generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 16, 8, 3, 3) and torch.equal(out[:, 0], z)
    with pytest.raises(ConfigError, match="noise_type 'general' works on vector latents"):
        make(spec, noise_type="general")


def test_matched_design_counts_both_networks():
    reference = nd.count_parameters(nn.GRUCell(16, 16))  # MoCoGAN's original: 1,632
    sde = make(nd.TemporalSpec((16,), (16,), 16, reference_params=reference), design="matched")
    per_unit = 2 * (16 + 1 + 16)
    assert abs(nd.count_parameters(sde) - reference) <= per_unit / 2
    assert sde.hidden == round((reference - 2 * 16) / per_unit)


def test_incompatible_solver_options_are_refused_with_a_reason():
    with pytest.raises(ConfigError, match="euler"):
        make(sde_type="stratonovich", method="euler")
    with pytest.raises(ConfigError, match="method"):
        make(backend="unrolled", method="srk")


def test_ou_process_through_the_plugin_matches_its_closed_form():
    # dX = -θ X dt + σ dW with linear drift and a constant diffusion (identity activations)
    theta, sigma, n = 1.5, 0.8, 20_000
    sde = make(nd.TemporalSpec((1,), (1,), 2), activation="identity", dt=1e-2)
    with torch.no_grad():
        sde.mu[0].weight.fill_(-theta)
        sde.mu[0].bias.zero_()
        sde.sigma[0].weight.zero_()
        sde.sigma[0].bias.fill_(sigma)
        x = sde(
            torch.ones(n, 1), torch.tensor([0.0, 1.0]), generator=torch.Generator().manual_seed(3)
        )
    end = x[:, -1, 0].double()
    mean, var = math.exp(-theta), sigma**2 * (1 - math.exp(-2 * theta)) / (2 * theta)
    assert abs(end.mean().item() - mean) < 4 * math.sqrt(var / n)
    assert abs(end.var().item() - var) < 4 * var * math.sqrt(2 / (n - 1))
