"""The traced module (the generator with unrolled solvers, a fixed grid and explicit noise),
and tracing it to ONNX with a diagnosis of what does not export."""

from __future__ import annotations

import copy
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from ndevgan_core.contracts import ODETemporalGenerator, SDETemporalGenerator, VideoGenerator
from ndevgan_core.errors import ConfigError, NdevganError
from ndevgan_core.export.runtime import (
    captured_native_stderr,
)

from .plan import _CORE_DIR, _RANDOM_OPS, ExportError, ExportPlan


class GraphModule(nn.Module):
    """What the exported graph computes: ``(z[, noise])`` → ``video`` ``(B, T, C, H, W)``.

    The same steps as :meth:`VideoGenerator.forward` on the fixed ``times`` (checked when the
    export was planned). ODE and SDE generators get the times as Python floats, which the core's
    solvers trace without reading tensor values; other generators get a constant tensor. With
    ``temporal_only`` it stops at the frame latents (used to tell which plugin an op belongs to).
    """

    def __init__(
        self, generator: VideoGenerator, times: tuple[float, ...], temporal_only: bool = False
    ) -> None:
        super().__init__()
        self.generator = generator
        self.times = list(times)
        self.temporal_only = temporal_only

    def forward(self, z: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Videos ``(B, T, C, H, W)`` (or the latents with ``temporal_only``)."""
        g = self.generator
        temporal = g.temporal
        start = z if g.temporal_slice is None else z[:, slice(*g.temporal_slice)]
        t: Any = self.times
        if not isinstance(temporal, ODETemporalGenerator | SDETemporalGenerator):
            t = torch.tensor(self.times, dtype=z.dtype, device=z.device)
        latents = temporal(start, t, noise=noise) if temporal.stochastic else temporal(start, t)
        if self.temporal_only:
            return latents
        return g.image(latents, z)


def exportable_generator(
    generator: VideoGenerator, plan: ExportPlan
) -> tuple[GraphModule, VideoGenerator]:
    """The module that is traced for ``plan`` and the eval-mode fp32 copy of ``generator`` it
    was made from (the reference with the training-time solver). Both are deep copies."""
    reference = copy.deepcopy(generator).float().eval()
    exported = copy.deepcopy(reference).to(plan.dtype)
    if plan.solver is not None:
        exported.temporal.solver = plan.solver
    return GraphModule(exported, plan.times).eval(), reference


def _trace(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    names: list[str],
    path: Path,
    opset: int,
    exporter: str,
) -> list[str]:
    """Export ``module`` to ``path``; returns the trace warnings raised from plugin code."""
    with (
        torch.no_grad(),
        warnings.catch_warnings(record=True) as caught,
        captured_native_stderr(),
    ):
        warnings.simplefilter("always")
        if exporter == "torchscript":
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=names,
                output_names=["video"],
                dynamic_axes={n: {0: "batch"} for n in [*names, "video"]},
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
        else:
            batch = torch.export.Dim("batch", min=1)
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=names,
                output_names=["video"],
                dynamic_shapes={n: {0: batch} for n in names},
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    notes = []
    for w in caught:
        if issubclass(w.category, torch.jit.TracerWarning) and not str(w.filename).startswith(
            (_CORE_DIR, str(Path(torch.__file__).parent))
        ):
            notes.append(f"{w.filename}:{w.lineno}: {str(w.message).splitlines()[0]}")
    return sorted(set(notes))


def _random_ops(model: Any) -> list[str]:
    """The random-number ops anywhere in an ONNX model (subgraphs included)."""
    import onnx

    found: set[str] = set()

    def scan(graph: Any) -> None:
        for node in graph.node:
            if node.op_type in _RANDOM_OPS:
                found.add(node.op_type)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    scan(attr.g)
                for sub in attr.graphs:
                    scan(sub)

    scan(model.graph)
    return sorted(found)


def _first_line(exc: BaseException) -> str:
    """``Type: first line`` of the innermost cause (torch.export wraps the real error)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _op_of(exc: BaseException) -> str | None:
    found = re.search(r"operator '([\w:.]+)'", str(exc))
    return found.group(1) if found else None


@attrs.frozen
class _Tracer:
    """Traces one module with fixed example inputs and settings, and explains failures.

    ``temporal``/``backbone`` name the plugins to blame (from the checkpoint's config) and
    ``field`` what of the temporal plugin is traced ("its vector field" for ODE/SDE plugins).
    A problem is blamed on the temporal plugin when its generator, exported alone, shows it
    too; otherwise on the backbone's image generator.
    """

    module: GraphModule
    args: tuple[torch.Tensor, ...]
    names: list[str]
    opset: int
    exporter: str
    temporal: str
    backbone: str
    field: str

    def trace(self, path: Path, module: nn.Module | None = None) -> list[str]:
        """Export the module (or ``module``) to ``path``; see :func:`_trace`."""
        return _trace(module or self.module, self.args, self.names, path, self.opset, self.exporter)

    def _culprit(self, shows_problem: Callable[[Exception | None, Any], bool]) -> tuple[str, str]:
        """(plugin, part) to blame: ``shows_problem(error, model)`` is asked about the
        temporal generator exported alone (error None when it exported, model None when not)."""
        alone = GraphModule(self.module.generator, tuple(self.module.times), temporal_only=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "temporal.onnx"
            try:
                self.trace(path, alone.eval())
            except NdevganError:
                raise
            except Exception as exc:
                temporal = shows_problem(exc, None)
            else:
                import onnx

                temporal = shows_problem(None, onnx.load(str(path)))
        return (self.temporal, self.field) if temporal else (self.backbone, "its image generator")

    def failure(self, exc: Exception) -> NdevganError:
        """The error to raise for an exception from the exporter."""
        op = _op_of(exc)
        text = str(exc).lower()
        if op is None and "opset" in text and "unsupported" in text:
            return ConfigError(f"opset {self.opset}: torch's exporter cannot write it ({exc})")

        def same(other: Exception | None, _model: Any) -> bool:
            if other is None:
                return False
            return _op_of(other) == op if op else type(other) is type(exc)

        plugin, part = self._culprit(same)
        if op is not None:
            return ExportError(
                f"{plugin}: cannot export to ONNX: {part} uses the op {op}, which has no ONNX "
                f"equivalent at opset {self.opset}; write it with exportable torch ops"
            )
        hint = " (the torchscript exporter may trace it)" if self.exporter == "dynamo" else ""
        return ExportError(
            f"{plugin}: tracing {part} for ONNX export failed: {_first_line(exc)}{hint}"
        )

    def random_failure(self, ops: list[str]) -> ExportError:
        """The error for a graph that draws random numbers (ops ``ops``)."""
        plugin, part = self._culprit(lambda _exc, model: model is not None and _random_ops(model))
        return ExportError(
            f"{plugin}: cannot export to ONNX: {part} draws random numbers inside the graph (op "
            f"{', '.join(ops)}), which no caller could seed; an exported generator takes its "
            "noise as an input — make the randomness a stochastic generator's noise, or remove it"
        )
