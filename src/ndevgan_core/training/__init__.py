"""Training: the trainer loop, torchrun support, checkpoints and the Python entry points.

- :mod:`.api`: :func:`train` (a config → a trained run directory) and :func:`load_generator`
  (a checkpoint → its generator), re-exported as ``nd.train`` / ``nd.load_generator``;
- :mod:`.trainer`: :class:`~.trainer.Trainer`, which owns the optimiser mechanics, EMA,
  logging, sampling, checkpoints and the run-directory lock;
- :mod:`.distributed`: process group, DDP wrappers and batch norm across ranks (torchrun);
- :mod:`.checkpoint`: atomic, verified checkpoint files.

Not loaded by ``import ndevgan_core``.
"""

from ndevgan_core.training.api import (
    LoadedGenerator,
    RealClips,
    TrainedGenerator,
    dataset,
    load,
    load_generator,
    sample_videos,
    train,
)

__all__ = [
    "LoadedGenerator",
    "RealClips",
    "TrainedGenerator",
    "dataset",
    "load",
    "load_generator",
    "sample_videos",
    "train",
]
