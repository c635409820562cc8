"""Export and runtime: a checkpoint's generator as one ONNX file, and that file in ONNX Runtime.

- :mod:`.onnx`: :func:`export_onnx` (``ndevgan export``), with the unrolled solvers;
- :mod:`.runtime`: :class:`OnnxVideoGenerator` (``ndevgan infer``), which needs only numpy and
  onnxruntime — so nothing here is imported before it is asked for.

Not loaded by ``import ndevgan_core``.
"""

from __future__ import annotations

import importlib

_WHERE = {"ExportError": "onnx", "export_onnx": "onnx", "OnnxVideoGenerator": "runtime"}


def __getattr__(name: str) -> object:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ExportError", "OnnxVideoGenerator", "export_onnx"]
