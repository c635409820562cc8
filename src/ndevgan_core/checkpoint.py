"""Checkpoints: written atomically, loaded without executing pickled code.

A checkpoint is a ``torch.save`` of plain data and tensors only::

    {"format": "ndevgan.checkpoint", "version": 1, "ndevgan": "0.1.0", "step": int,
     "config": {...resolved config...}, "model": state_dict, "optimizers": {name: state},
     "rng": {...}}

and is read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError
from .files import atomic_open

FORMAT = "ndevgan.checkpoint"
VERSION = 1


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename into place."""
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)
    return Path(path)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write a checkpoint (``payload`` plus the format header) atomically."""
    from . import __version__

    return atomic_torch_save(
        {"format": FORMAT, "version": VERSION, "ndevgan": __version__, **payload}, path
    )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read an ndevgan checkpoint safely, with a clear error for anything else."""
    path = Path(path)
    if path.is_dir():
        path = latest_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain data; ndevgan does not run "
            f"pickled code from checkpoints ({str(exc).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or corrupt?): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an ndevgan checkpoint (no '{FORMAT}' header)")
    if data.get("version") != VERSION:
        raise CheckpointError(
            f"{path} is checkpoint format version {data.get('version')}; this ndevgan reads "
            f"version {VERSION}"
        )
    for key in ("step", "config", "model"):
        if key not in data:
            raise CheckpointError(f"{path} is missing its '{key}' entry")
    return data


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """Where the checkpoint of ``step`` lives in a run directory."""
    return Path(run_dir) / "checkpoints" / f"step-{step:08d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """A run directory's checkpoints, oldest first."""
    return sorted((Path(run_dir) / "checkpoints").glob("step-*.pt"))


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The newest checkpoint of a run directory."""
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"{run_dir} has no checkpoints (expected checkpoints/step-*.pt)")
    return found[-1]
