"""``metric.fvd``: Fréchet Video Distance, the figure video-generation papers report.

The Fréchet distance between Gaussians fitted to a video network's features of generated and
of real clips. With StyleGAN-V's I3D (``i3d_torchscript.pt``, Kinetics-400, brought by the
user: ``ndevgan eval RUN --metric fvd --classifier i3d_torchscript.pt``) it is StyleGAN-V's
``fvd2048_16f``: 16-frame clips as uint8, the detector called with ``rescale`` and ``resize``
(it scales to [-1, 1] and resizes to 224 inside) returning its 400 logit features, 2,048
generated against 2,048 real clips (``--n 2048``), real statistics cached like FID's. Any
classifier file a metric plugin reads works the same way; with the shipped shapes classifier
(the default on ``dataset.shapes``) it is an FVD-style distance on that classifier's
features, so the demo and the tiny study report one without a download.

The distance needs the classifier's features, not its probabilities; the clips are the
generator's whole videos, which have 16 frames for every backbone here (the metric refuses
other lengths unless ``frames = 0``).
"""

from __future__ import annotations

from typing import Any

import attrs

import ndevgan_core as nd
from ndevgan_core import non_negative, option

from .c3d_metrics import FrechetDistance


@attrs.frozen
class FVDConfig:
    """Options of ``metric.fvd``."""

    frames: int = option(
        16,
        "the clip length the protocol scores (StyleGAN-V's fvd2048_16f: 16); 0 accepts any",
        non_negative,
    )


class FrechetVideoDistance(FrechetDistance):
    """``metric.fvd``: Fréchet distance of a video network's features, generated against
    real clips; mean ± std over loops (``metric.fid``'s computation, on 16-frame clips)."""

    figure = "fvd"
    config: FVDConfig

    def check_generator(self, generator: nd.VideoGenerator) -> None:
        """Refuse videos of another length than the protocol's (``frames = 0``: any)."""
        frames = generator.spec.frames
        if self.config.frames and frames != self.config.frames:
            raise nd.ConfigError(
                f"metric.fvd scores {self.config.frames}-frame clips (StyleGAN-V's "
                f"fvd2048_16f); this generator makes {frames}-frame videos (set "
                "metric.fvd.frames=0 to score them anyway)"
            )


def build(config: FVDConfig) -> FrechetVideoDistance:
    """Factory of ``metric.fvd``."""
    return FrechetVideoDistance(config)


@nd.hookimpl
def register_components(register: Any) -> None:
    """Register ``metric.fvd``."""
    register("metric.fvd", build, FVDConfig)
