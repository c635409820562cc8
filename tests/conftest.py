"""Shared fixtures: the CLI executable, fast run settings, and fake plugin distributions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# A TGAN small enough that a training step takes milliseconds: the tests check behaviour,
# the demo and benchmarks check speed.
FAST = [
    "--set",
    "backbone.tgan.g_channels=4",
    "--set",
    "backbone.tgan.d_channels=4",
    "--set",
    "backbone.tgan.batch_size=4",
    "--set",
    "backbone.tgan.latent_dim=16",
    "--set",
    "dataset.shapes.videos=64",
    "--set",
    "run.samples=4",
    "--set",
    "run.progress=false",
]

FAST_MODEL = [
    arg for pair in zip(FAST[::2], FAST[1::2]) if "dataset." not in pair[1] for arg in pair
]
"""FAST without its ``dataset.shapes`` setting, for runs on another dataset (``--set`` on a
dataset the run does not use is an error)."""

TEMPORAL_SOURCE = """
import attrs
import ndevgan_core as nd

@attrs.frozen
class Config:
    speed: float = 1.0

@nd.hookimpl
def register_components(register):
    register("{name}", lambda config, spec: None, Config, summary="test plugin")
"""
"""Source of a minimal plugin module registering one temporal component ``{name}``."""


def load_tool(name: str):
    """``tools/<name>.py`` as a module (tools/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fast_raw(**run: object) -> dict:
    """The raw config tree of a fast TGAN-ODE tiny run (for in-process tests)."""
    return {
        "run": {"progress": False, "samples": 4, **run},
        "plugins": {"backbone": "backbone.tgan", "temporal": "temporal.ode"},
        "backbone": {
            "tgan": {
                "preset": "tiny",
                "g_channels": 4,
                "d_channels": 4,
                "batch_size": 4,
                "latent_dim": 16,
            }
        },
        "dataset": {"shapes": {"videos": 64}},
    }


def ndevgan(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """Run the installed ``ndevgan`` console script in a real subprocess."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(
        [str(BIN / "ndevgan"), *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"ndevgan {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def make_fake_distribution(
    where: Path, name: str, module: str, source: str, entry_point: str | None = None
) -> Path:
    """Write an installed-looking distribution (module + dist-info with an ndevgan entry
    point) into ``where``, so importlib.metadata finds it when ``where`` is on the path."""
    where.mkdir(parents=True, exist_ok=True)
    (where / f"{module}.py").write_text(source, "utf-8")
    info = where / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ndevgan]\n{entry_point or module} = {module}\n")
    return where


@pytest.fixture
def fake_dist(tmp_path: Path):
    """Factory fixture: ``fake_dist(name, module, source)`` → a directory for PYTHONPATH."""

    def make(name: str, module: str, source: str, entry_point: str | None = None) -> Path:
        return make_fake_distribution(tmp_path / "site", name, module, source, entry_point)

    return make
