"""Exporting a trained generator to one self-contained ONNX file (``ndevgan export``).

Neither torchdiffeq's nor torchsde's solvers export (docs/BENCH_ONNX.md), so a continuous
temporal generator — one built on :class:`~ndevgan_core.contracts.ODETemporalGenerator` or
:class:`~ndevgan_core.contracts.SDETemporalGenerator` — is integrated in the graph by the
core's unrolled fixed-step solvers: a deep copy of the generator gets its solver options evolved
to the ``unrolled`` backend (the loaded model is never touched), and the plugin's vector fields
are traced as they are. Discrete temporal generators (conv1d, the GRU with its per-step noise
as an input, the ConvLSTM) export as they are.

The graph's inputs are ``z`` and, for stochastic generators, ``noise`` (standard normals; an
SDE scales them by √dt inside the graph), with a dynamic batch axis; its output is ``video``
``(B, T, C, H, W)`` in [-1, 1]. Frames, times, solver and steps are fixed per file and written
into the model's metadata (:mod:`ndevgan_core.export.runtime` reads it back) with the plugins,
config and checkpoint hash that made it. Before the file is moved into place ONNX Runtime runs it at
two batch sizes against the PyTorch generator with the same solver (:data:`PARITY_TOLERANCE`),
and the report also gives the error against the training-time solver.

The graph is traced with torch's TorchScript-based exporter by default: on these generators it
exports in about a fifth of the time of the torch.export-based one (which cannot trace the
discrete generators' time-grid checks) and gives the same parity (docs/BENCH_ONNX.md).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import torch

from ndevgan_core.contracts import ODETemporalGenerator, SDETemporalGenerator, VideoGenerator
from ndevgan_core.errors import CheckpointError, ConfigError, NdevganError
from ndevgan_core.export.runtime import (
    METADATA_KEY,
    open_session,
    parse_metadata,
)
from ndevgan_core.files import write_bytes_atomic
from ndevgan_core.registry import Registry, default_registry
from ndevgan_core.training.api import LoadedGenerator, load_generator
from ndevgan_core.training.checkpoint import latest_checkpoint

from .metadata import ExportReport, build_metadata
from .plan import (
    _TRACE_BATCH,
    EXPORT_SOLVERS,
    EXPORTERS,
    PARITY_BATCHES,
    PARITY_TOLERANCE,
    ExportError,
    ExportPlan,
    describe_solver,
    plan_export,
)
from .trace import GraphModule, _first_line, _random_ops, _Tracer, exportable_generator


def _inputs(
    generator: VideoGenerator, plan: ExportPlan, batch: int, seed: int
) -> dict[str, torch.Tensor]:
    rng = torch.Generator().manual_seed(seed)
    inputs = {"z": generator.sample_z(batch, rng)}
    if plan.noise_shape is not None:
        inputs["noise"] = torch.randn((batch, *plan.noise_shape), generator=rng)
    return inputs


def _training_reference(
    reference: VideoGenerator, plan: ExportPlan, inputs: dict[str, torch.Tensor]
) -> tuple[torch.Tensor | None, str]:
    """The training-time solver's videos ``(B, T, C, H, W)`` for ``inputs``, or None and why."""
    temporal = reference.temporal
    if not temporal.continuous:
        return None, "discrete: the graph is the trained generator itself"
    options = getattr(temporal, "solver", None)
    what = describe_solver(options) if options is not None else "its own forward"
    t = torch.tensor(plan.times, dtype=torch.float32)
    noise = inputs.get("noise")
    if temporal.stochastic:
        if options is not None and options.backend == "torchsde" and options.method == "srk":
            return None, f"{what} draws its own Brownian motion, so no noise is common to both"
        shape = tuple(temporal.noise_shape(noise.shape[0], t))
        if shape != tuple(noise.shape):
            return None, (
                f"{what} takes noise of shape {shape[1:]} per sample on this grid and the export "
                f"{tuple(noise.shape[1:])}, so no noise is common to both"
            )
    with torch.no_grad():
        video = reference(inputs["z"], t, noise=noise.float() if noise is not None else None)
    return video.transpose(1, 2), what


def _load(
    source: str | os.PathLike[str] | LoadedGenerator | VideoGenerator, registry: Registry | None
) -> tuple[VideoGenerator, LoadedGenerator | None, Path | None]:
    if isinstance(source, VideoGenerator):
        return source, None, None
    if isinstance(source, LoadedGenerator):
        return source.generator, source, None
    path = Path(source)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    checkpoint = latest_checkpoint(path) if path.is_dir() else path
    loaded = load_generator(checkpoint, registry or default_registry())
    return loaded.generator, loaded, checkpoint


def export_onnx(
    source: str | os.PathLike[str] | LoadedGenerator | VideoGenerator,
    out: str | os.PathLike[str],
    *,
    frames: int | None = None,
    t_start: float | None = None,
    t_end: float | None = None,
    steps_per_frame: int | None = None,
    solver: str | None = None,
    opset: int = 18,
    fp16: bool = False,
    exporter: str = "torchscript",
    registry: Registry | None = None,
    progress: bool = False,
) -> ExportReport:
    """Export a generator to one self-contained ONNX file at ``out`` and verify it.

    ``source`` is a checkpoint file or run directory (its newest checkpoint), a
    :class:`~ndevgan_core.training.api.LoadedGenerator`, or a :class:`VideoGenerator`. Frames, times
    and solver are fixed per file (:func:`plan_export` gives the defaults). ``fp16`` exports in
    half precision (inputs and output too). The file is written only after ONNX Runtime
    reproduced PyTorch (same solver) within :data:`PARITY_TOLERANCE` at two batch sizes;
    otherwise :class:`ExportError`. A plugin whose ops do not export fails with its name and
    the op.
    """
    from ndevgan_core.progress import progress_bar

    if exporter not in EXPORTERS:
        raise ConfigError(f"exporter: expected one of {', '.join(EXPORTERS)}, got {exporter!r}")
    if not isinstance(opset, int) or opset < 13:
        raise ConfigError(f"opset: expected an ONNX opset >= 13, got {opset!r}")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"out: expected a file ending in .onnx, got {out.name!r}")
    started = time.perf_counter()
    generator, loaded, checkpoint = _load(source, registry)
    dtype = torch.float16 if fp16 else torch.float32
    plan = plan_export(
        generator,
        frames=frames,
        t_start=t_start,
        t_end=t_end,
        steps_per_frame=steps_per_frame,
        solver=solver,
        dtype=dtype,
    )
    module, reference = exportable_generator(generator, plan)
    temporal = generator.temporal
    example = _inputs(reference, plan, _TRACE_BATCH, seed=0)
    tracer = _Tracer(
        module=module,
        args=tuple(v.to(dtype) for v in example.values()),
        names=list(example),
        opset=opset,
        exporter=exporter,
        temporal=loaded.config.plugins.temporal if loaded else temporal.plugin_name,
        backbone=loaded.config.plugins.backbone if loaded else "the backbone",
        field="its vector field"
        if isinstance(temporal, ODETemporalGenerator | SDETemporalGenerator)
        else "its forward",
    )
    with progress_bar(3, desc="export", unit="stage", disable=not progress) as bar:
        bar.set_postfix_str("trace")
        model, notes = _traced_model(tracer)
        bar.update()
        bar.set_postfix_str("check in ONNX Runtime")
        check = _check(model.SerializeToString(), module, reference, plan, notes)
        bar.update()
        bar.set_postfix_str("write")
        meta = build_metadata(
            module.generator,
            plan,
            loaded=loaded,
            checkpoint=checkpoint,
            registry=registry or (default_registry() if loaded else None),
            opset=opset,
            exporter=exporter,
            video_shape=check.video_shape,
            checks=check.as_metadata(),
        )
        text = json.dumps(meta, default=str)
        del model.metadata_props[:]
        model.metadata_props.add(key=METADATA_KEY, value=text)
        model.doc_string = f"ndevgan generator: {parse_metadata(text, str(out)).summary()}"
        data = model.SerializeToString()
        write_bytes_atomic(out, data)
        bar.update()
    return ExportReport(
        path=out,
        metadata=parse_metadata(text, str(out)),
        parity=check.parity,
        tolerance=check.tolerance,
        training_error=check.training_error,
        training_reference=check.training_reference,
        provider=check.provider,
        trace_warnings=tuple(notes),
        seconds=time.perf_counter() - started,
        size_bytes=len(data),
    )


def _traced_model(tracer: _Tracer) -> tuple[Any, list[str]]:
    """Trace, load the ONNX model and refuse random ops: (model, trace warnings)."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.onnx"
        try:
            notes = tracer.trace(path)
        except NdevganError:
            raise
        except Exception as exc:
            raise tracer.failure(exc) from None
        model = onnx.load(str(path))
    random_ops = _random_ops(model)
    if random_ops:
        raise tracer.random_failure(random_ops)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises several types; all mean an unusable file
        raise ExportError(
            f"the exported graph is not a valid ONNX model: {_first_line(exc)}"
        ) from None
    return model, notes


@attrs.frozen
class _Check:
    """The outcome of :func:`_check`."""

    parity: dict[int, float]
    tolerance: float
    provider: str
    training_error: float | None
    training_reference: str
    video_shape: tuple[int, ...]

    def as_metadata(self) -> dict[str, Any]:
        """The figures as the metadata records them."""
        return {
            "parity_max_abs_error": {str(b): e for b, e in self.parity.items()},
            "parity_tolerance": self.tolerance,
            "parity_provider": self.provider,
            "training_solver_error": self.training_error,
            "training_solver_reference": self.training_reference,
        }


def _check(
    data: bytes,
    module: GraphModule,
    reference: VideoGenerator,
    plan: ExportPlan,
    notes: list[str],
) -> _Check:
    """Run the serialized model in ONNX Runtime (CPU) at :data:`PARITY_BATCHES` against
    ``module`` in PyTorch (same solver), and at the last one against ``reference`` (the
    training-time solver); raise :class:`ExportError` above the tolerance."""
    session, provider, _ = open_session(data, "cpu")
    dtype = plan.dtype
    tolerance = PARITY_TOLERANCE["float16" if dtype == torch.float16 else "float32"]
    parity: dict[int, float] = {}
    for batch in PARITY_BATCHES:
        inputs = _inputs(reference, plan, batch, seed=batch)
        with torch.no_grad():
            expected = module(*(v.to(dtype) for v in inputs.values())).double()
        feed = {k: v.to(dtype).numpy() for k, v in inputs.items()}
        got = torch.from_numpy(session.run(["video"], feed)[0]).double()
        if got.shape != expected.shape:
            raise ExportError(
                f"ONNX Runtime returned shape {tuple(got.shape)} at batch {batch}, PyTorch "
                f"{tuple(expected.shape)}: the traced graph does not generalise over the batch"
                + _hint(notes)
            )
        parity[batch] = float((got - expected).abs().max())
        if not parity[batch] <= tolerance:
            raise ExportError(
                f"ONNX Runtime differs from PyTorch (same solver) by {parity[batch]:.2e} at "
                f"batch {batch}, above the limit {tolerance:g}: the graph does not reproduce "
                "the generator" + _hint(notes)
            )
    video, training_reference = _training_reference(reference, plan, inputs)
    training_error = None
    if video is not None:
        training_error = float((got - video.double()).abs().max())
    return _Check(
        parity, tolerance, provider, training_error, training_reference, tuple(got.shape[1:])
    )


def _hint(notes: list[str]) -> str:
    if not notes:
        return ""
    return "; the tracer warned about Python control flow on tensor values at " + ", ".join(
        n.split(": ", 1)[0] for n in notes
    )


__all__ = [
    "EXPORTERS",
    "EXPORT_SOLVERS",
    "PARITY_BATCHES",
    "PARITY_TOLERANCE",
    "ExportError",
    "ExportPlan",
    "ExportReport",
    "GraphModule",
    "build_metadata",
    "describe_solver",
    "export_onnx",
    "exportable_generator",
    "plan_export",
]
