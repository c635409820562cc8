"""``temporal.spiral``: a third-party temporal generator in its own distribution.

The latent rotates and decays: dz/dt = (S - S^T - softplus(d) I) z with learned S and d, i.e. a
linear ODE whose flow is a damped rotation. It is an ``ODETemporalGenerator``: it supplies the
initial state and the vector field, and the core integrates them with its solver options
(torchdiffeq or the core's unrolled solvers), at any time grid, backwards too.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import nn

import ndevgan_core as nd
from ndevgan_core import option, positive


@attrs.frozen
class SpiralConfig(nd.ODESolverOptions):
    """Options of temporal.spiral: the initial scale of the rotation generator."""

    scale: float = option(1.0, "initial scale of the skew-symmetric generator", positive)


class Field(nn.Module):
    """The linear vector field of a damped rotation."""

    def __init__(self, dim: int, scale: float) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.randn(dim, dim) * scale / dim**0.5)
        self.d = nn.Parameter(torch.full((), -2.0))

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        a = self.s - self.s.T - nn.functional.softplus(self.d) * torch.eye(len(self.s))
        return z @ a.T


class Spiral(nd.ODETemporalGenerator):
    """A damped rotation of the latent; continuous in time."""

    def __init__(self, config: SpiralConfig, spec: nd.TemporalSpec) -> None:
        super().__init__(spec, "temporal.spiral")
        self.field = Field(spec.latent_shape[0], config.scale)
        self.solver = config  # a SpiralConfig is an ODESolverOptions

    def initial_state(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def drift(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.field(t, state)


@nd.hookimpl
def register_components(register: Any) -> None:
    register("temporal.spiral", Spiral, SpiralConfig, summary="A damped rotation of the latent")
