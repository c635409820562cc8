"""GAN losses and regularisers shared by backbones."""

from __future__ import annotations

import torch
from torch import nn


def wgan_discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The WGAN critic loss E[D(fake)] − E[D(real)] (minimised by the critic)."""
    return d_fake.mean() - d_real.mean()


def wgan_generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """The WGAN generator loss −E[D(fake)]."""
    return -d_fake.mean()


@torch.no_grad()
def singular_value_clip(module: nn.Module, max_value: float = 1.0) -> None:
    """Singular value clipping (TGAN): keep every layer of ``module`` 1-Lipschitz.

    Each convolution or linear weight, reshaped to (out, rest), has its singular values
    clipped to ``max_value``. Each batch-norm layer's scale is clipped so that
    |gamma| / sqrt(running_var + eps) <= ``max_value``.
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
            limit = max_value * torch.sqrt(layer.running_var + layer.eps)
            layer.weight.copy_(layer.weight.clamp(min=-limit, max=limit))
