"""Building blocks for the vector fields of differential-equation temporal generators.

The paper (section 4.1) ablates three designs of the learned function f of dz/dt = f(z):

- ``single``: one learned layer and a nonlinearity;
- ``composed``: f = g∘h, a layer + nonlinearity, then a layer (hidden width configurable);
- ``matched``: ``composed`` with the hidden width chosen so the whole temporal generator has
  the parameter count of the backbone's original one (see :func:`match_width`).

On vector latents the layers are ``Linear``; on feature-map latents (TGANv2's 1024×3×3 state)
they are ``Conv2d`` with "same" padding, so one plugin serves both. :class:`FieldOptions` holds
these choices; ODE and SDE plugins mix it into their configs, and a third party's dynamics
plugin can do the same.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch
from torch import nn

from .config import non_negative, one_of, option, positive
from .contracts import TemporalSpec
from .errors import ConfigError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}
"""Nonlinearities by name (``leaky_relu`` has slope 0.2, as in the paper's code)."""

DESIGNS = ("single", "composed", "matched")
INITS = ("xavier_uniform", "xavier_uniform_zero_bias", "torch_default")


def make_activation(name: str) -> nn.Module:
    """A fresh nonlinearity module by its name in :data:`ACTIVATIONS`."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(
            f"activation: expected one of {', '.join(ACTIVATIONS)}, got {name!r}"
        ) from None


def _widths(instance: object, attribute: attrs.Attribute, value: tuple[int, ...]) -> None:
    if any(not isinstance(w, int) or w < 1 for w in value):
        raise ConfigError(f"{attribute.name}: expected a list of widths >= 1, got {list(value)!r}")


@attrs.frozen(slots=False)
class FieldOptions:
    """How a vector field f is built: the paper's design, widths, nonlinearity and init.

    Mixed into the configs of ODE/SDE plugins (their TOML sections carry these options).
    """

    design: str = option(
        "single",
        "f: single (layer+act), composed (layer→act→layer) or matched (composed, hidden width "
        "chosen to match the backbone's original temporal generator's parameter count)",
        one_of(*DESIGNS),
    )
    hidden: int = option(
        0,
        "composed: hidden width (0: the latent's width); matched: the width to use (0: solved "
        "so the temporal generator matches the original's parameter count; the paper presets "
        "set the authors' width, TGAN 978 and MoCoGAN 49)",
        non_negative,
    )
    activation: str = option(
        "auto",
        "nonlinearity of f (auto: tanh on vectors, leaky_relu on feature maps)",
        one_of("auto", *ACTIVATIONS),
    )
    final_activation: bool = option(
        False,
        "composed/matched: end f with the nonlinearity too (the paper's TGANv2 code does)",
    )
    init: str = option(
        "xavier_uniform_zero_bias",
        "init of f's layers: xavier_uniform (weights; biases keep torch's default, as the "
        "paper's code — the paper presets set it), xavier_uniform_zero_bias (biases 0: ndevgan's "
        "default, better at tiny scale), or torch_default (the paper's MoCoGAN)",
        one_of(*INITS),
    )
    init_gain: float = option(
        math.sqrt(2), "gain of every xavier_uniform init (f, pre-MLP, encoders)", positive
    )
    kernel_size: int = option(3, "feature-map latents: kernel of f's convolutions", positive)
    pre_mlp: tuple[int, ...] = option(
        (),
        "hidden widths of an MLP applied to z before the dynamics, LeakyReLU(0.2) between "
        "layers (the paper presets: [512, 512, 512] on TGAN, [64] on MoCoGAN; empty: none)",
        _widths,
    )
    pre_mlp_final_activation: bool = option(
        False, "a LeakyReLU(0.2) after the pre-MLP's last layer too (the paper's code: true)"
    )
    pre_mlp_init: str = option(
        "torch_default",
        "weight init of the pre-MLP: xavier_uniform (gain init_gain; the paper's TGAN) or "
        "torch_default",
        one_of("xavier_uniform", "torch_default"),
    )
    encoder_init: str = option(
        "torch_default",
        "weight init of the encoders of initial components (orders 2-3): xavier_uniform (the "
        "paper's TGAN) or torch_default",
        one_of("xavier_uniform", "torch_default"),
    )
    time_input: bool = option(False, "f also sees t (non-autonomous); the paper: false")

    def __attrs_post_init__(self) -> None:
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size: expected an odd number, got {self.kernel_size}")

    def activation_for(self, feature_map: bool) -> str:
        """The nonlinearity name after resolving ``auto`` for this kind of latent."""
        if self.activation != "auto":
            return self.activation
        return "leaky_relu" if feature_map else "tanh"


def _layer(options: FieldOptions, n_in: int, n_out: int, feature_map: bool) -> nn.Module:
    if feature_map:
        k = options.kernel_size
        return nn.Conv2d(n_in, n_out, k, padding=k // 2)
    return nn.Linear(n_in, n_out)


def initialise(net: nn.Module, init: str, gain: float = math.sqrt(2)) -> None:
    """Initialise every Linear/Conv2d of ``net``: ``xavier_uniform`` sets the weights (gain
    ``gain``) and leaves the biases at torch's default, as the paper's code does;
    ``xavier_uniform_zero_bias`` also zeroes the biases; ``torch_default`` changes nothing."""
    if init == "torch_default":
        return
    for layer in net.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(layer.weight, gain=gain)
            if init == "xavier_uniform_zero_bias" and layer.bias is not None:
                nn.init.zeros_(layer.bias)


def build_field_net(
    options: FieldOptions,
    n_in: int,
    n_out: int,
    *,
    feature_map: bool,
    hidden: int | None = None,
    final_activation: bool = False,
) -> nn.Sequential:
    """f's network from ``n_in`` to ``n_out`` features (channels, for feature maps).

    ``single`` is layer + nonlinearity; ``composed``/``matched`` are layer → nonlinearity →
    layer, with ``hidden`` (for ``matched``, computed by the caller) overriding
    ``options.hidden``. ``final_activation`` appends the nonlinearity to a composed net too
    (e.g. for a bounded diffusion).
    """
    act = options.activation_for(feature_map)
    if options.design == "single":
        net = nn.Sequential(_layer(options, n_in, n_out, feature_map), make_activation(act))
    else:
        width = hidden if hidden is not None else (options.hidden or n_out)
        if width < 1:
            raise ConfigError(f"hidden: expected a width >= 1, got {width}")
        layers = [
            _layer(options, n_in, width, feature_map),
            make_activation(act),
            _layer(options, width, n_out, feature_map),
        ]
        if final_activation or options.final_activation:
            layers.append(make_activation(act))
        net = nn.Sequential(*layers)
    initialise(net, options.init, options.init_gain)
    return net


def build_mlp(
    sizes: Sequence[int], activation: str = "leaky_relu", final_activation: bool = False
) -> nn.Module:
    """Linear layers through ``sizes`` with the nonlinearity between them (and after the last
    too with ``final_activation``); the identity when there are no hidden sizes."""
    if len(sizes) < 3:
        return nn.Identity()
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_activation:
            layers.append(make_activation(activation))
    return nn.Sequential(*layers)


def match_width(count: Callable[[int], int], target: int, what: str) -> int:
    """The hidden width ``h >= 1`` whose parameter count ``count(h)`` is closest to ``target``.

    ``count`` must be affine in ``h`` (as it is for a composed f: a + b·h), so the best width
    is within half a hidden unit's worth of parameters of the target. ``what`` names the
    component in the error raised when even ``h = 1`` is too big.
    """
    base, slope = count(1), count(2) - count(1)
    if slope <= 0:
        raise ConfigError(f"{what}: the parameter count does not grow with the hidden width")
    width = max(1, round((target - base) / slope) + 1)
    if count(width) - target > slope / 2:
        raise ConfigError(
            f"{what}: cannot match {target:,} parameters; even a hidden width of 1 gives "
            f"{count(1):,}"
        )
    return width


def run_post_init_hooks(config: Any, *bases: type) -> None:
    """Run the validation hooks of the option classes a plugin config mixes together."""
    for base in bases:
        hook = getattr(base, "__attrs_post_init__", None)
        if hook is not None:
            hook(config)


def latent_layout(spec: TemporalSpec, plugin: str) -> tuple[bool, int]:
    """(is a feature map, width) of the spec's frame latent: vectors (D,) or maps (C, H, W)."""
    shape = spec.latent_shape
    if len(shape) == 1:
        return False, shape[0]
    if len(shape) == 3:
        return True, shape[0]
    raise ConfigError(
        f"{plugin} works on vector (D,) or feature-map (C, H, W) latents; this backbone asks "
        f"for {shape}"
    )


class LatentInput(nn.Module):
    """z → the initial frame latent: the optional pre-ODE MLP, then (with ``encode``) a linear
    map when the backbone's input and latent shapes differ (identity otherwise)."""

    def __init__(self, options: FieldOptions, spec: TemporalSpec, encode: bool = True) -> None:
        super().__init__()
        n_in = math.prod(spec.input_shape)
        self.latent_shape = spec.latent_shape
        self.pre = build_mlp(
            [n_in, *options.pre_mlp, n_in],
            final_activation=options.pre_mlp_final_activation,
        )
        initialise(self.pre, options.pre_mlp_init, options.init_gain)
        same = tuple(spec.input_shape) == tuple(spec.latent_shape)
        self.encode = encode
        self.encoder = (
            nn.Identity() if same or not encode else nn.Linear(n_in, math.prod(spec.latent_shape))
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) → (B, *latent_shape); without ``encode``, (B, n_in) after the MLP."""
        x = self.encoder(self.pre(z.flatten(1)))
        if not self.encode:
            return x
        return x.view(x.shape[0], *self.latent_shape)


def add_time_input(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Append t as one more feature (vectors) or constant channel (feature maps)."""
    column = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0], 1, *x.shape[2:])
    return torch.cat([x, column], dim=1)


def match_reference_width(
    spec: TemporalSpec, plugin: str, fixed: int, field_params: Callable[[int], int], nets: int = 1
) -> int:
    """The hidden width that gives the temporal generator the backbone's reference count.

    ``fixed`` counts everything but the f networks; ``field_params(h)`` counts one f network of
    hidden width h; ``nets`` is how many such networks there are (an SDE has two).
    """
    if spec.reference_params is None:
        raise ConfigError(
            f"{plugin}: design 'matched' needs a backbone with an original temporal generator "
            "to match; this backbone declares none (use 'composed' with an explicit hidden)"
        )
    return match_width(
        lambda h: fixed + nets * field_params(h), spec.reference_params, f"{plugin} (matched)"
    )
