"""``temporal.ode``: the latent evolves by a neural ODE, dz/dt = f(z) (paper section 3.1).

Frame k's latent is the solution at t_k, starting from z itself at t_0 (the paper's code
integrates on linspace(0, 1, 16), so frame 0 is the initial state). f is one of the paper's
section 4.1 designs: ``single`` (Linear + nonlinearity) or ``composed`` (g∘h: Linear →
nonlinearity → Linear). Integration is torchdiffeq's, through the core's solver options, so
any of its methods, fixed step or adaptive, with or without the adjoint.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch
from torch import nn

import ndevgan_core as nd
from ndevgan_core.config import non_negative, one_of, option, positive
from ndevgan_core.errors import ConfigError

ACTIVATIONS = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
}


@attrs.frozen
class ODEConfig(nd.ODESolverOptions):
    """Options of ``temporal.ode``: the design of f and how to integrate it."""

    design: str = option(
        "single",
        "f: single (Linear+act) or composed (Linear→act→Linear)",
        one_of("single", "composed"),
    )
    hidden: int = option(0, "composed: hidden width (0: the latent size)", non_negative)
    activation: str = option("tanh", "nonlinearity of f", one_of(*ACTIVATIONS))
    init: str = option(
        "xavier_uniform",
        "weight init of f's layers (biases start at 0)",
        one_of("xavier_uniform", "torch_default"),
    )
    init_gain: float = option(math.sqrt(2), "gain of the xavier_uniform init", positive)


class VectorField(nn.Module):
    """f(t, z) of the ODE; autonomous (f ignores t), as in the paper."""

    def __init__(self, config: ODEConfig, dim: int) -> None:
        super().__init__()
        act = ACTIVATIONS[config.activation]
        if config.design == "single":
            self.net = nn.Sequential(nn.Linear(dim, dim), act())
        else:
            hidden = config.hidden or dim
            self.net = nn.Sequential(nn.Linear(dim, hidden), act(), nn.Linear(hidden, dim))
        if config.init == "xavier_uniform":
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    nn.init.xavier_uniform_(layer.weight, gain=config.init_gain)
                    nn.init.zeros_(layer.bias)

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """dz/dt at (t, z)."""
        return self.net(z)


class ODETemporal(nd.TemporalGenerator):
    """A first-order neural ODE on vector latents; continuous in time (any grid)."""

    continuous = True
    order = 1

    def __init__(self, config: ODEConfig, spec: nd.TemporalSpec) -> None:
        super().__init__(spec, "temporal.ode")
        if len(spec.latent_shape) != 1:
            raise ConfigError(
                f"temporal.ode works on vector latents; this backbone asks for {spec.latent_shape}"
            )
        dim = spec.latent_shape[0]
        self.encoder = (
            nn.Identity()
            if spec.input_shape == spec.latent_shape
            else nn.Linear(math.prod(spec.input_shape), dim)
        )
        self.field = VectorField(config, dim)
        self.options = nd.ODESolverOptions(
            **{f.name: getattr(config, f.name) for f in attrs.fields(nd.ODESolverOptions)}
        )

    def drift(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The vector field, for solvers outside this module."""
        return self.field(t, state)

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) → (B, len(t), D): the solution at each time."""
        z0 = self.encoder(z.flatten(1))
        return nd.odeint(self.field, z0, t, self.options).transpose(0, 1)


def build(config: ODEConfig, spec: nd.TemporalSpec) -> ODETemporal:
    """Factory of ``temporal.ode``."""
    return ODETemporal(config, spec)


@nd.hookimpl
def register_components(register: Any) -> None:
    """Register ``temporal.ode``."""
    register("temporal.ode", build, ODEConfig)
