"""Where to compute: the ``auto``/``cpu``/``cuda``/``cuda:N`` setting of ``run.device`` and of
every command's ``--device``."""

from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(name: str, option: str = "run.device") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` as given.

    ``option`` names the setting in error messages (``run.device``, ``--device``).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"{option}: expected auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{option} is {name!r} but this machine has no CUDA device")
    return device
