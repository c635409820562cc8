"""GAN losses and regularisers shared by backbones."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def wgan_discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The WGAN critic loss E[D(fake)] − E[D(real)] (minimised by the critic)."""
    return d_fake.mean() - d_real.mean()


def wgan_generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """The WGAN generator loss −E[D(fake)]."""
    return -d_fake.mean()


@torch.no_grad()
def singular_value_clip(
    module: nn.Module, max_value: float = 1.0, gamma_floor: float | None = 0.01
) -> None:
    """Singular value clipping (TGAN): keep every layer of ``module`` 1-Lipschitz.

    Each convolution or linear weight, reshaped to (out, rest), has its singular values
    clipped to ``max_value``. Each batch-norm layer's scale γ is clipped, per channel, to
    ``[gamma_floor · σ, max_value · σ]`` with σ = √running_var (no eps): the rule of TGAN's
    Chainer updater and the paper's code (``gamma_floor = 0.01``). ``gamma_floor = None``
    clips symmetrically, |γ| ≤ max_value · √(running_var + eps).
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            w = layer.weight
            matrix = w.reshape(w.shape[0], -1)
            u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
            if s.max() > max_value:
                w.copy_(((u * s.clamp(max=max_value)) @ vh).reshape_as(w))
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.affine:
            if layer.running_var is None:
                continue
            if gamma_floor is None:
                limit = max_value * torch.sqrt(layer.running_var + layer.eps)
                layer.weight.copy_(layer.weight.clamp(min=-limit, max=limit))
            else:
                sigma = torch.sqrt(layer.running_var)
                gamma = torch.maximum(layer.weight, gamma_floor * sigma)
                layer.weight.copy_(torch.minimum(gamma, max_value * sigma))


def r1_penalty(
    scores: Sequence[torch.Tensor],
    inputs: Sequence[torch.Tensor],
    weight: float,
    reduction: str = "sum",
) -> torch.Tensor:
    """The R1 gradient penalty on real data: ``weight`` · Σ_k Σ_videos ‖∇_x D(x)‖² over the
    inputs ``k`` (``sum``; TGANv2's release) or with the mean over each input's videos
    (``mean``). ``scores[k]`` are D's outputs (B_k,) for the real ``inputs[k]``, which must
    require grad; the penalty keeps its graph (create_graph) so it can be minimised."""
    grads = torch.autograd.grad([s.sum() for s in scores], list(inputs), create_graph=True)
    total = scores[0].new_zeros(())
    for g in grads:
        per_video = g.pow(2).flatten(1).sum(1)
        total = total + (per_video.sum() if reduction == "sum" else per_video.mean())
    return weight * total
