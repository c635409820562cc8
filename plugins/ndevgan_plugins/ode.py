"""``temporal.ode``: the frame latents follow a neural ODE of order 1, 2 or 3 (paper §3.1).

Frame k's latent is the solution x(t_k), starting from the latent z at ``t_start`` (the paper
integrates on linspace(0, 1, 16), so frame 0 is z itself). Two forms of higher order:

- ``general``: x^(n) = f(t, x, x', …, x^(n-1)), integrated as the first-order system
  (x, x', …, x^(n-1)); x(0) = z and each initial derivative x^(i)(0) comes from its own learned
  encoder of z.
- ``chain`` (the paper's code, to reproduce its numbers): components c_0 … c_{n-1}, each
  c_i(0) from its own linear encoder of z (after the pre-MLP, if any), dc_0/dt = f(c_0) and
  dc_i/dt = c_{i-1}; the frame latent is c_{n-1}. That is x^(n) = f(x^(n-1)).

f is one of the paper's §4.1 designs (:mod:`ndevgan_core.fields`): ``single``, ``composed`` or
``matched``. On feature-map latents (TGANv2) f's layers are convolutions. The core integrates
(torchdiffeq, or its own unrolled solvers, which export uses too).
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch
from torch import nn

import ndevgan_core as nd
from ndevgan_core import (
    FieldOptions,
    LatentInput,
    add_time_input,
    build_field_net,
    initialise,
    latent_layout,
    match_reference_width,
    one_of,
    option,
    run_post_init_hooks,
)


@attrs.frozen(slots=False)
class OrderOptions:
    """The order and form of the ODE (listed first among ``temporal.ode``'s options)."""

    order: int = option(1, "order n of the ODE: 1, 2 or 3", one_of(1, 2, 3))
    form: str = option(
        "general",
        "higher orders: general (x^(n) = f(t, x, …, x^(n-1))) or chain (the paper's code: "
        "x^(n) = f(x^(n-1)), every initial component encoded from z)",
        one_of("general", "chain"),
    )


@attrs.frozen
class ODEConfig(nd.ODESolverOptions, FieldOptions, OrderOptions):
    """Options of ``temporal.ode``: order and form, the design of f, how to integrate."""

    def __attrs_post_init__(self) -> None:
        run_post_init_hooks(self, nd.ODESolverOptions, FieldOptions)


class ODETemporal(nd.ODETemporalGenerator):
    """A neural ODE of order 1–3 on vector or feature-map latents; continuous in time.

    The state is the components stacked along dim 1 (features or channels), the position
    first: general form (x, x', …), chain form (c_{n-1}, …, c_0). Either way d(component j)/dt
    is component j+1, and the last component's derivative is f — of all components (general)
    or of the last alone (chain).
    """

    def __init__(self, config: ODEConfig, spec: nd.TemporalSpec, name: str = "temporal.ode"):
        super().__init__(spec, name)
        self.feature_map, self.width = latent_layout(spec, name)
        self.order = config.order
        self.form = config.form
        self.time_input = config.time_input
        # Chain form (the paper's code): every initial component has its own linear encoder
        # of (MLP of) z, straight to the latent shape, so no shared input map is needed.
        self.chain = config.order > 1 and config.form == "chain"
        self.input = LatentInput(config, spec, encode=not self.chain)
        if config.order == 1:
            encoders = 0  # both forms are dx/dt = f(x), x(0) = z
        elif self.chain:
            encoders = config.order
        else:
            encoders = config.order - 1
        self.initial = nn.ModuleList(self._encoder(spec) for _ in range(encoders))
        initialise(self.initial, config.encoder_init, config.init_gain)
        f_in = (config.order if config.form == "general" else 1) * self.width
        f_in += int(config.time_input)

        def field(hidden: int | None) -> nn.Module:
            return build_field_net(
                config, f_in, self.width, feature_map=self.feature_map, hidden=hidden
            )

        hidden = None
        if config.design == "matched":
            hidden = config.hidden or match_reference_width(
                spec, name, nd.count_parameters(self), lambda h: nd.count_parameters(field(h))
            )
        self.hidden = hidden
        self.field = field(hidden)
        self.solver = nd.ODESolverOptions(
            **{f.name: getattr(config, f.name) for f in attrs.fields(nd.ODESolverOptions)}
        )

    def _encoder(self, spec: nd.TemporalSpec) -> nn.Module:
        if self.chain:
            return nn.Linear(math.prod(spec.input_shape), math.prod(spec.latent_shape))
        if self.feature_map:
            return nn.Conv2d(self.width, self.width, 1)
        return nn.Linear(self.width, self.width)

    def initial_state(self, z: torch.Tensor) -> torch.Tensor:
        """z → (x(0), x'(0), …) stacked along dim 1."""
        x = self.input(z)
        if self.order == 1:
            return x
        if self.chain:
            shape = (x.shape[0], *self.spec.latent_shape)
            parts = [encode(x).view(shape) for encode in reversed(self.initial)]
        else:
            parts = [x, *(encode(x) for encode in self.initial)]
        return torch.cat(parts, dim=1)

    def drift(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """d(state)/dt: each component's derivative is the next; the last's is f."""
        if self.order == 1:
            f_in = state
        else:
            f_in = state if self.form == "general" else state[:, -self.width :]
        if self.time_input:
            f_in = add_time_input(f_in, t)
        accel = self.field(f_in)
        if self.order == 1:
            return accel
        return torch.cat([state[:, self.width :], accel], dim=1)

    def readout(self, states: torch.Tensor) -> torch.Tensor:
        """The position component of every state: (B, T, *latent_shape)."""
        return states[:, :, : self.width]


def build(config: ODEConfig, spec: nd.TemporalSpec) -> ODETemporal:
    """Factory of ``temporal.ode``."""
    return ODETemporal(config, spec)


@nd.hookimpl
def register_components(register: Any) -> None:
    """Register ``temporal.ode``."""
    register("temporal.ode", build, ODEConfig)
