"""Checkpoints: written atomically, loaded without executing pickled code.

A checkpoint is a ``torch.save`` of plain data and tensors only::

    {"format": "ndevgan.checkpoint", "version": 2, "ndevgan": "0.1.0", "sha256": hex,
     "step": int, "config": {...resolved config...}, "model": state_dict,
     "optimizers": {name: state}, "rng": {...}}

and is read back with ``torch.load(weights_only=True)``. ``sha256`` is :func:`payload_digest`
of everything else in the file: a flipped byte in a weight (which torch.load would return
silently) fails the check on load. Version 1 files (ndevgan 0.1, no digest) are still read.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ndevgan_core.errors import CheckpointError
from ndevgan_core.files import atomic_open

FORMAT = "ndevgan.checkpoint"
VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Version 1 (ndevgan 0.1) had no ``sha256``; it is read without that check."""


def payload_digest(data: Mapping[str, Any]) -> str:
    """SHA-256 of a checkpoint's content (every entry but ``sha256`` itself), computed the
    same way before writing and after reading: entries in key order, tensors by dtype, shape
    and raw bytes, everything else by type and ``repr`` (lists and tuples alike, since a
    round trip may turn one into the other)."""
    digest = hashlib.sha256()

    def feed(tag: bytes, payload: bytes) -> None:
        digest.update(tag + struct.pack("<Q", len(payload)) + payload)

    def walk(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            feed(b"T", f"{t.dtype}{tuple(t.shape)}".encode())
            feed(b"B", t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, Mapping):
            keys = sorted((k for k in value if value is not data or k != "sha256"), key=repr)
            feed(b"D", str(len(keys)).encode())
            for key in keys:
                feed(b"K", repr(key).encode())
                walk(value[key])
        elif isinstance(value, (list, tuple)):
            feed(b"L", str(len(value)).encode())
            for item in value:
                walk(item)
        else:
            feed(b"V", f"{type(value).__name__}:{value!r}".encode())

    walk(data)
    return digest.hexdigest()


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename into place."""
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)
    return Path(path)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write a checkpoint (``payload`` plus the format header) atomically."""
    from ndevgan_core import __version__

    data = {"format": FORMAT, "version": VERSION, "ndevgan": __version__, **payload}
    data["sha256"] = payload_digest(data)
    return atomic_torch_save(data, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read an ndevgan checkpoint safely and verify it, with a one-line error for anything
    else. A run directory means its newest checkpoint; if that one is damaged, the error
    names the newest intact one."""
    path = Path(path)
    if not path.is_dir():
        return _load_file(path, map_location)
    candidates = list_checkpoints(path)
    if not candidates:
        raise CheckpointError(f"{path} has no checkpoints (expected checkpoints/step-*.pt)")
    try:
        return _load_file(candidates[-1], map_location)
    except CheckpointError as exc:
        for older in reversed(candidates[:-1]):
            try:
                _load_file(older, map_location)
            except CheckpointError:
                continue
            raise CheckpointError(
                f"{exc}. The newest intact checkpoint is {older}: use it instead "
                f"(e.g. ndevgan run --resume {older})"
            ) from None
        raise CheckpointError(f"{exc}. No older checkpoint of {path} is intact either") from None


def _load_file(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain data"
            f"{_unpickling_culprit(exc)}; ndevgan never runs code from a checkpoint, so it "
            "does not read this file"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or corrupt?): {_first_line(exc)}"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an ndevgan checkpoint (no '{FORMAT}' header)")
    if data.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path} is checkpoint format version {data.get('version')!r}; this ndevgan reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    if data["version"] >= 2:
        stored = data.get("sha256")
        if not isinstance(stored, str):
            raise CheckpointError(f"{path} is missing its 'sha256' entry")
        if payload_digest(data) != stored:
            raise CheckpointError(
                f"{path} is corrupt: its content does not match the SHA-256 written with it"
            )
    _check_fields(path, data)
    return data


def _check_fields(path: Path, data: dict[str, Any]) -> None:
    """The entries the trainer and loaders rely on, with the types they need."""
    for key in ("step", "config", "model"):
        if key not in data:
            raise CheckpointError(f"{path} is missing its '{key}' entry")
    step = data["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{path}: 'step' must be a non-negative integer, got {step!r}")
    if not isinstance(data["config"], dict):
        raise CheckpointError(f"{path}: 'config' must be a table, got {type(data['config'])}")
    model = data["model"]
    if not isinstance(model, dict) or not all(isinstance(v, torch.Tensor) for v in model.values()):
        raise CheckpointError(f"{path}: 'model' must map parameter names to tensors")
    if "optimizers" in data and not isinstance(data["optimizers"], dict):
        raise CheckpointError(f"{path}: 'optimizers' must be a table of optimizer states")
    rng = data.get("rng")
    states_ok = isinstance(rng, dict) and all(
        isinstance(rng.get(k), torch.Tensor) and rng[k].dtype == torch.uint8
        for k in ("torch", "train")
    )
    if rng is not None and not states_ok:
        raise CheckpointError(
            f"{path}: 'rng' must hold the 'torch' and 'train' generator states (uint8 tensors)"
        )


def _unpickling_culprit(exc: BaseException) -> str:
    """`` (it references module.name)`` from torch's weights_only refusal, without its advice."""
    match = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return f" (it references {match.group(1)})" if match else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
