"""How the shipped shapes classifier scores real clips that are degraded the way generated
ones are: blurred, noisy, dimmed or frozen. It says which flaws of a generator cost IS.

    python tools/classifier_robustness.py            # 512 held-out clips (indices 10,000+)

Prints IS and the classifier's accuracy for each degradation (figures in docs/TINY_RECIPE.md).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from ndevgan_core.evaluation import load_video_classifier
from ndevgan_plugins import shapes_render
from ndevgan_plugins.c3d import inception_score
from ndevgan_plugins.shapes import REFERENCE_CLASSIFIER


def blur(videos: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of every frame (5-tap kernel, edges replicated)."""
    taps = torch.arange(-2, 3, dtype=torch.float32)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    b, c, t, h, w = videos.shape
    x = videos.permute(0, 2, 1, 3, 4).reshape(b * t * c, 1, h, w)
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 5))
    x = F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), kernel.view(1, 1, 5, 1))
    return x.view(b, t, c, h, w).permute(0, 2, 1, 3, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=512)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    classifier = load_video_classifier(REFERENCE_CLASSIFIER)
    videos, labels = shapes_render.render_batch(
        range(10_000, 10_000 + args.clips), 0, 16, args.size
    )
    real = torch.from_numpy(videos).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    noise = torch.randn(real.shape, generator=torch.Generator().manual_seed(0))

    def score(x: torch.Tensor) -> tuple[float, float]:
        with torch.no_grad():
            probs = torch.cat([classifier(v)["probs"] for v in x.split(64)])
        accuracy = (probs.argmax(1) == torch.from_numpy(labels)).float().mean().item()
        return inception_score(probs)[0], accuracy

    cases = {
        "real clips": real,
        **{f"blur σ {s}": blur(real, s) for s in (0.5, 0.8, 1.2)},
        **{f"noise σ {a}": (real + a * noise).clamp(-1, 1) for a in (0.1, 0.2, 0.4)},
        "half brightness": (real + 1) * 0.5 - 1,
        "first frame held": real[:, :, :1].expand_as(real),
    }
    print(f"{'clips':<18} {'IS':>6} {'accuracy':>9}")
    for name, x in cases.items():
        inception, accuracy = score(x)
        print(f"{name:<18} {inception:>6.2f} {accuracy:>9.1%}")


if __name__ == "__main__":
    main()
