"""``dataset.shapes``: procedurally generated videos of moving shapes, the embedded default.

Clip ``i`` is rendered on demand from (seed, i) by :mod:`ndevgan_plugins.shapes_render`, so the
dataset needs no download and no disk, and is identical on every machine. Its resolution and
length follow the backbone unless set here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch

import ndevgan_core as nd
from ndevgan_core import non_negative, one_of, option, positive

from . import shapes_render

REFERENCE_CLASSIFIER = Path(__file__).resolve().parent / "weights" / "shapes_c3d.pt"
"""The shipped classifier of these clips (trained by ``tools/train_shapes_c3d.py``), that IS and
FID score ``dataset.shapes`` runs with; it is read by the metric plugins, not here."""


@attrs.frozen
class ShapesConfig:
    """Options of ``dataset.shapes``."""

    videos: int = option(4096, "number of distinct clips (an epoch)", positive)
    seed: int = option(0, "seed of the clips (independent of the run's seed)", non_negative)
    size: int = option(0, "frame size in pixels (0: what the backbone needs)", non_negative)
    frames: int = option(0, "frames per clip (0: what the backbone needs)", non_negative)
    num_shapes: int = option(1, "shapes per clip (the first one defines the label)", positive)
    background: str = option(
        "dark", "dark (faint gradient) or noise (low static)", one_of("dark", "noise")
    )


class ShapesDataset(nd.VideoDataset):
    """Moving-shapes clips as float (3, T, H, W) in [-1, 1], labelled shape × motion."""

    def __init__(self, config: ShapesConfig, spec: nd.VideoSpec) -> None:
        size = config.size or spec.height
        frames = config.frames or spec.frames
        if size != spec.height or size != spec.width or frames != spec.frames:
            raise nd.ConfigError(
                f"dataset.shapes: the backbone needs {spec.frames}×{spec.height}×{spec.width} "
                f"clips but dataset.shapes.size/frames ask for {frames}×{size}×{size}; leave "
                "them at 0 to follow the backbone"
            )
        self.config = config
        self.spec = nd.VideoSpec(frames, size, size, 3)
        self.class_names = tuple(
            shapes_render.class_name(i) for i in range(shapes_render.NUM_CLASSES)
        )

    def __len__(self) -> int:
        return self.config.videos

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"dataset.shapes has {len(self)} clips; asked for {index}")
        video, label = shapes_render.render_video(
            index,
            self.config.seed,
            self.spec.frames,
            self.spec.height,
            num_shapes=self.config.num_shapes,
            background=self.config.background,
        )
        clip = torch.from_numpy(video).permute(3, 0, 1, 2).float().div_(127.5).sub_(1.0)
        return {"video": clip, "label": label}

    def reference_classifier(self) -> str:
        """Path of the shipped shapes classifier (:data:`REFERENCE_CLASSIFIER`): it takes
        clips of any size and length, so it scores every backbone's shapes videos."""
        return str(REFERENCE_CLASSIFIER)


def build(config: ShapesConfig, spec: nd.VideoSpec) -> ShapesDataset:
    """Factory of ``dataset.shapes``."""
    return ShapesDataset(config, spec)


@nd.hookimpl
def register_components(register: Any) -> None:
    """Register ``dataset.shapes``."""
    register("dataset.shapes", build, ShapesConfig)
