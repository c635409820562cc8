"""The export report and the metadata written into the file."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path
from typing import Any

import attrs
import torch

from ndevgan_core.contracts import ODETemporalGenerator, SDETemporalGenerator, VideoGenerator
from ndevgan_core.errors import NdevganError
from ndevgan_core.export.runtime import (
    FORMAT,
    FORMAT_VERSION,
    OnnxMetadata,
)
from ndevgan_core.registry import Registry
from ndevgan_core.sde_solvers import SDESolverOptions
from ndevgan_core.solvers import ODESolverOptions
from ndevgan_core.training.api import LoadedGenerator

from .plan import ExportPlan, describe_solver


@attrs.frozen
class ExportReport:
    """What an export wrote and how well the file reproduces the generator.

    ``parity`` maps each checked batch size to the max abs difference between ONNX Runtime and
    PyTorch with the same (unrolled) solver; ``training_error`` is the max abs difference
    between ONNX Runtime and the generator with its training-time solver (None where no common
    input exists; ``training_reference`` says which solver, or why not). ``trace_warnings``
    are the tracer's warnings from plugin code (Python control flow on tensor values).
    """

    path: Path
    metadata: OnnxMetadata
    parity: dict[int, float]
    tolerance: float
    training_error: float | None
    training_reference: str
    provider: str
    trace_warnings: tuple[str, ...]
    seconds: float
    size_bytes: int

    @property
    def max_error(self) -> float:
        """The largest parity error over the checked batch sizes."""
        return max(self.parity.values())

    def lines(self) -> list[str]:
        """The report for people, one fact a line."""
        meta = self.metadata
        temporal = meta.temporal
        solver = temporal.get("solver")
        how = "exported as it is"
        if solver:
            how = describe_solver(_solver_from_dict(solver, temporal["kind"]))
            if temporal.get("steps_per_frame"):
                how += f", {temporal['steps_per_frame']} steps per frame"
        parity = ", ".join(f"{e:.1e} (batch {b})" for b, e in self.parity.items())
        lines = [
            f"wrote {self.path} ({self.size_bytes / 1e6:.1f} MB, {self.seconds:.1f} s): "
            f"{meta.summary()}",
            f"  inputs: {meta.describe_inputs()}",
            f"  temporal: {temporal['plugin']} ({temporal['kind']}): {how}",
            f"  ONNX Runtime ({self.provider}) vs PyTorch, same solver: max abs error {parity}; "
            f"limit {self.tolerance:g}",
        ]
        if self.training_error is not None:
            lines.append(
                f"  vs the training-time solver ({self.training_reference}): max abs error "
                f"{self.training_error:.1e}"
            )
        else:
            lines.append(f"  vs the training-time solver: n/a ({self.training_reference})")
        return lines


def _solver_from_dict(data: dict[str, Any], kind: str) -> Any:
    cls = SDESolverOptions if kind == "sde" else ODESolverOptions
    names = {f.name for f in attrs.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def _kind(temporal: Any) -> str:
    if isinstance(temporal, ODETemporalGenerator):
        return "ode"
    if isinstance(temporal, SDETemporalGenerator):
        return "sde"
    return "continuous" if temporal.continuous else "discrete"


def _solver_dict(options: Any) -> dict[str, Any] | None:
    if options is None:
        return None
    fields = attrs.fields(
        SDESolverOptions if isinstance(options, SDESolverOptions) else ODESolverOptions
    )
    return {f.name: getattr(options, f.name) for f in fields}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _provider_of(registry: Registry | None, name: str) -> str | None:
    if registry is None or not name:
        return None
    try:
        provider = registry.get(name).provider
    except NdevganError:
        return None
    return f"{provider.package} {provider.version}".strip()


def build_metadata(
    generator: VideoGenerator,
    plan: ExportPlan,
    *,
    loaded: LoadedGenerator | None,
    checkpoint: Path | None,
    registry: Registry | None,
    opset: int,
    exporter: str,
    video_shape: tuple[int, ...],
    checks: dict[str, Any],
) -> dict[str, Any]:
    """The ``ndevgan`` metadata of an export (JSON-able): inputs, output (per-sample
    ``video_shape`` (T, C, H, W)), times, solver, plugins, config, checkpoint and the parity
    figures in ``checks``."""
    from ndevgan_core import __version__

    temporal = generator.temporal
    dtype = "float16" if plan.dtype == torch.float16 else "float32"
    inputs: dict[str, Any] = {
        "z": {
            "shape": ["batch", *generator.z_shape],
            "dtype": dtype,
            "distribution": generator.z_distribution,
            "description": "the latent: uniform on [-1, 1]"
            if generator.z_distribution == "uniform"
            else "the latent: standard normal",
        }
    }
    if plan.noise_shape is not None:
        inputs["noise"] = {
            "shape": ["batch", *plan.noise_shape],
            "dtype": dtype,
            "distribution": "normal",
            "description": "standard-normal increments, one row per solver step, scaled by "
            "sqrt(dt) inside the graph"
            if isinstance(temporal, SDETemporalGenerator)
            else "standard-normal noise, one row per step",
        }
    spec = generator.spec
    plugins: dict[str, Any] = {"temporal": temporal.plugin_name}
    config = None
    if loaded is not None:
        p = loaded.config.plugins
        plugins = {"backbone": p.backbone, "temporal": p.temporal, "dataset": p.dataset}
        config = loaded.config.to_dict()
    packages = {
        name: pkg for name in plugins.values() if (pkg := _provider_of(registry, name)) is not None
    }
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ndevgan_version": __version__,
        "inputs": inputs,
        "outputs": {
            "video": {
                "shape": ["batch", *video_shape],
                "layout": "batch, frames, channels, height, width",
                "dtype": dtype,
                "range": [-1.0, 1.0],
            }
        },
        "frames": len(plan.times),
        "times": list(plan.times),
        "trained_interval": [spec.t_start, spec.t_end],
        "z_time": spec.t_start,
        "temporal": {
            "plugin": temporal.plugin_name,
            "kind": _kind(temporal),
            "continuous": bool(temporal.continuous),
            "stochastic": bool(temporal.stochastic),
            "solver": _solver_dict(plan.solver),
            "steps_per_frame": plan.steps_per_frame,
            "training_solver": _solver_dict(getattr(temporal, "solver", None)),
        },
        "plugins": plugins,
        "plugin_packages": packages,
        "config": config,
        "checkpoint": None
        if checkpoint is None
        else {
            "file": checkpoint.name,
            "sha256": _sha256(checkpoint),
            "step": loaded.step if loaded is not None else None,
        },
        "export": {
            "opset": opset,
            "exporter": exporter,
            "fp16": plan.dtype == torch.float16,
            "torch": torch.__version__,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            **checks,
        },
    }
