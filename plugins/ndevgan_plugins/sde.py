"""``temporal.sde``: the frame latents follow a neural SDE dz = μ(z) dt + σ(z) dW (paper §3.2).

Drift μ and diffusion σ are networks of the paper's §4.1 designs (:mod:`ndevgan_core.fields`),
on vector or feature-map latents. Frame k's latent is z(t_k) from z at ``t_start``. Ito or
Stratonovich, diagonal noise (σ has the state's shape) or general noise (σ is state ×
``brownian_size``, vector latents). The core solves it with torchsde or its own unrolled
Euler–Maruyama / Milstein; noise is explicit (standard-normal increments) or drawn from a
seeded generator, so every sample is reproducible.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

import ndevgan_core as nd
from ndevgan_core import (
    ConfigError,
    FieldOptions,
    LatentInput,
    SDESolverOptions,
    add_time_input,
    build_field_net,
    latent_layout,
    match_reference_width,
    non_negative,
    option,
    run_post_init_hooks,
)


@attrs.frozen
class SDEConfig(SDESolverOptions, FieldOptions):
    """Options of ``temporal.sde``: the design of μ and σ, the noise, how to solve."""

    brownian_size: int = option(
        0, "general noise: dimension m of the Brownian motion (0: the state size)", non_negative
    )

    def __attrs_post_init__(self) -> None:
        run_post_init_hooks(self, SDESolverOptions, FieldOptions)


class SDETemporal(nd.SDETemporalGenerator):
    """A first-order neural SDE on vector or feature-map latents (flat state for the solver)."""

    def __init__(self, config: SDEConfig, spec: nd.TemporalSpec, name: str = "temporal.sde"):
        super().__init__(spec, name)
        self.feature_map, self.width = latent_layout(spec, name)
        self.general = config.noise_type == "general"
        if self.general and self.feature_map:
            raise ConfigError(
                f"{name}: noise_type 'general' works on vector latents; this backbone's latent "
                f"is a feature map {spec.latent_shape} (use noise_type 'diagonal')"
            )
        size = math.prod(spec.latent_shape)
        self.brownian_size = (config.brownian_size or size) if self.general else None
        self.time_input = config.time_input
        self.input = LatentInput(config, spec)
        f_in = self.width + int(config.time_input)
        sigma_out = self.width * (self.brownian_size or 1)

        def nets(hidden: int | None) -> tuple[torch.nn.Module, torch.nn.Module]:
            kind = {"feature_map": self.feature_map, "hidden": hidden}
            return (
                build_field_net(config, f_in, self.width, **kind),
                build_field_net(config, f_in, sigma_out, **kind),
            )

        hidden = None
        if config.design == "matched":
            hidden = config.hidden or match_reference_width(
                spec,
                name,
                nd.count_parameters(self),
                lambda h: sum(nd.count_parameters(net) for net in nets(h)),
            )
        self.hidden = hidden
        self.mu, self.sigma = nets(hidden)
        self.solver = SDESolverOptions(
            **{f.name: getattr(config, f.name) for f in attrs.fields(SDESolverOptions)}
        )

    def _evaluate(self, net: torch.nn.Module, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        x = state.view(state.shape[0], *self.spec.latent_shape)
        if self.time_input:
            x = add_time_input(x, t)
        return net(x)

    def initial_state(self, z: torch.Tensor) -> torch.Tensor:
        """z → the flat state (B, S) at ``t_start``."""
        return self.input(z).flatten(1)

    def drift(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """μ(t, state), flat (B, S)."""
        return self._evaluate(self.mu, t, state).flatten(1)

    def diffusion(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """σ(t, state): (B, S) for diagonal noise, (B, S, m) for general noise."""
        sigma = self._evaluate(self.sigma, t, state)
        if self.general:
            return sigma.view(state.shape[0], state.shape[1], self.brownian_size)
        return sigma.flatten(1)


def build(config: SDEConfig, spec: nd.TemporalSpec) -> SDETemporal:
    """Factory of ``temporal.sde``."""
    return SDETemporal(config, spec)


@nd.hookimpl
def register_components(register: Any) -> None:
    """Register ``temporal.sde``."""
    register("temporal.sde", build, SDEConfig)
