"""Generator throughput: PyTorch eager against the exported ONNX file in ONNX Runtime.

For each model — the demo config (TGAN-ODE ``tiny``: 32×32, 16 frames) and TGAN-ODE at the
paper's size (64×64, 16 frames, latent 100) — a generator is built through the registry from
seed 0 (random weights: speed does not depend on training) and exported with
:func:`ndevgan_core.export.onnx.export_onnx` (unrolled rk4, one step per frame, which is what the
training solver, torchdiffeq's rk4 on the frame grid, computes). Then, at batch 1, 8 and 32,
three ways of generating a batch run round robin in timed blocks (the order rotated every
block, so machine noise hits all alike):

- ``eager``: the PyTorch generator as ``ndevgan sample`` runs it (torchdiffeq rk4), under
  ``torch.inference_mode``;
- ``eager unrolled``: the same with the core's unrolled rk4 (the traced module), to separate
  the solver library's overhead from the graph's;
- ``ORT``: :class:`ndevgan_core.export.runtime.OnnxVideoGenerator` on the file (CPU provider, or
  CUDA with IO binding: torch CUDA tensors in and out, nothing copied to the host).

Each block times enough calls for about ``--block-seconds``; the table gives the median over
blocks of videos per second and the ratios to eager. Part 2 (CPU) times ONNX Runtime at batch 8
under other session settings (graph optimisation level, threads), part 3 the export itself
with each of torch's exporters. Markdown tables; docs/BENCH_ONNX.md has a run.

    python tools/bench_onnx.py                       # CPU, both models, batches 1 8 32
    python tools/bench_onnx.py --quick               # smoke run (~1 min)
    python tools/bench_onnx.py --device cuda         # eager CUDA vs ORT CUDA (IO binding)
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ndevgan_core.export.onnx import export_onnx, exportable_generator, plan_export
from ndevgan_core.export.runtime import OnnxVideoGenerator, open_session
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import assemble, resolve

MODELS: dict[str, dict[str, Any]] = {
    "demo (TGAN-ODE tiny)": {"tgan": {"preset": "tiny"}},
    "paper (TGAN-ODE 64×64)": {"tgan": {"preset": "paper"}},
}
"""Label → the ``[backbone]`` section of a TGAN + temporal.ode config."""


def build(registry: Registry, backbone: dict[str, Any]) -> Any:
    """The generator of TGAN-ODE with these backbone options, seed 0, eval mode."""
    raw = {
        "plugins": {"backbone": "backbone.tgan", "temporal": "temporal.ode"},
        "backbone": backbone,
    }
    config = resolve(raw, registry)
    torch.manual_seed(0)
    return assemble(config, registry).gan.generator.eval()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed_blocks(
    runners: dict[str, Callable[[], Any]],
    device: str,
    blocks: int,
    block_seconds: float,
) -> dict[str, list[float]]:
    """Seconds per call of every runner: ``blocks`` round-robin blocks, rotated each block."""
    calls = {}
    for name, run in runners.items():
        run()  # warm-up (and first-call allocations)
        sync(device)
        start = time.perf_counter()
        run()
        sync(device)
        calls[name] = max(1, round(block_seconds / max(time.perf_counter() - start, 1e-6)))
    per_call: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for block in range(blocks):
        order = names[block % len(names) :] + names[: block % len(names)]
        for name in order:
            sync(device)
            start = time.perf_counter()
            for _ in range(calls[name]):
                runners[name]()
            sync(device)
            per_call[name].append((time.perf_counter() - start) / calls[name])
    return per_call


def throughput(
    label: str,
    generator: Any,
    onnx_path: Path,
    batches: list[int],
    device: str,
    blocks: int,
    block_seconds: float,
) -> None:
    """Part 1: one table of videos/s per batch size for one model."""
    provider = "cuda" if device == "cuda" else "cpu"
    ort_gen = OnnxVideoGenerator(onnx_path, provider)
    eager = copy.deepcopy(generator).to(device)
    plan = plan_export(generator)
    unrolled = exportable_generator(generator, plan)[0].to(device)
    times = generator.spec.times(device)
    print(f"\n### {label}: videos per second on {device} (ONNX Runtime: {ort_gen.provider})\n")
    print("| batch | eager | eager unrolled | ORT | ORT / eager | unrolled / eager |")
    print("|---:|---:|---:|---:|---:|---:|")
    for batch in batches:
        z = generator.sample_z(batch, torch.Generator().manual_seed(batch)).to(device)
        z_ort: Any = z if device == "cuda" else z.numpy()

        def run_eager(z: torch.Tensor = z) -> Any:
            with torch.inference_mode():
                return eager(z, times)

        def run_unrolled(z: torch.Tensor = z) -> Any:
            with torch.inference_mode():
                return unrolled(z)

        def run_ort(z: Any = z_ort) -> Any:
            return ort_gen(z)

        per_call = timed_blocks(
            {"eager": run_eager, "unrolled": run_unrolled, "ort": run_ort},
            device,
            blocks,
            block_seconds,
        )
        rate = {k: batch / statistics.median(v) for k, v in per_call.items()}
        print(
            f"| {batch} | {rate['eager']:.1f} | {rate['unrolled']:.1f} | {rate['ort']:.1f} | "
            f"{rate['ort'] / rate['eager']:.2f}× | {rate['unrolled'] / rate['eager']:.2f}× |"
        )


def session_settings(
    label: str, generator: Any, onnx_path: Path, blocks: int, block_seconds: float
) -> None:
    """Part 2: ONNX Runtime at batch 8 on the CPU under other session settings."""
    import onnxruntime as ort

    z = generator.sample_z(8, torch.Generator().manual_seed(8)).numpy()
    cores = os.cpu_count() or 1
    variants: dict[str, tuple[Any, int | None]] = {
        "all optimisations, default threads": (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, None),
        "basic optimisations": (ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, None),
        "no optimisation": (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, None),
        "all, 1 thread": (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, 1),
        f"all, {cores} threads": (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, cores),
    }
    runners = {}
    for name, (level, threads) in variants.items():
        session, _, _ = open_session(onnx_path, "cpu", threads=threads)
        if level != ort.GraphOptimizationLevel.ORT_ENABLE_ALL:
            from ndevgan_core.export.runtime import session_options

            options = session_options(threads)
            options.graph_optimization_level = level
            session = ort.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
        runners[name] = lambda s=session: s.run(["video"], {"z": z})
    per_call = timed_blocks(runners, "cpu", blocks, block_seconds)
    base = 8 / statistics.median(per_call[next(iter(variants))])
    print(f"\n### {label}: ONNX Runtime session settings, batch 8, CPU\n")
    print("| settings | videos/s | vs default |")
    print("|---|---:|---:|")
    for name, values in per_call.items():
        rate = 8 / statistics.median(values)
        print(f"| {name} | {rate:.1f} | {rate / base:.2f}× |")


def export_times(generators: dict[str, Any], where: Path) -> None:
    """Part 3: seconds of export_onnx (trace, check at two batch sizes, write) per exporter."""
    print("\n### Export time (export_onnx end to end: trace, parity check, write)\n")
    print(
        "| model | torchscript (default) | dynamo | dynamo / torchscript | parity (ts / dynamo) |"
    )
    print("|---|---:|---:|---:|---|")
    for label, generator in generators.items():
        seconds, errors = {}, {}
        for exporter in ("torchscript", "dynamo"):
            start = time.perf_counter()
            report = export_onnx(generator, where / f"{exporter}.onnx", exporter=exporter)
            seconds[exporter] = time.perf_counter() - start
            errors[exporter] = report.max_error
        print(
            f"| {label} | {seconds['torchscript']:.1f} s | {seconds['dynamo']:.1f} s | "
            f"{seconds['dynamo'] / seconds['torchscript']:.1f}× | "
            f"{errors['torchscript']:.1e} / {errors['dynamo']:.1e} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batches", default="1,8,32", help="comma-separated batch sizes")
    parser.add_argument("--blocks", type=int, default=5, help="timed blocks per way")
    parser.add_argument("--block-seconds", type=float, default=1.0, help="target block length")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated labels")
    parser.add_argument("--quick", action="store_true", help="3 short blocks, demo model only")
    parser.add_argument(
        "--torch-threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    parser.add_argument("--skip-export-times", action="store_true")
    args = parser.parse_args()
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    if args.quick:
        args.blocks, args.block_seconds = 3, 0.3
        args.models = next(iter(MODELS))
    labels = [m for m in MODELS if m in args.models.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
        f"{os.cpu_count()} CPUs; {args.blocks} blocks of ~{args.block_seconds:g} s per way"
    )
    registry = Registry(entry_points=False)
    generators = {label: build(registry, MODELS[label]) for label in labels}
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        for i, (label, generator) in enumerate(generators.items()):
            path = where / f"model-{i}.onnx"
            report = export_onnx(generator, path)
            print(
                f"\n{label}: exported in {report.seconds:.1f} s, {report.size_bytes / 1e6:.1f} MB,"
                f" parity {report.max_error:.1e}"
            )
            throughput(
                label, generator, path, batches, args.device, args.blocks, args.block_seconds
            )
            if args.device == "cpu":
                session_settings(label, generator, path, args.blocks, args.block_seconds)
        if not args.skip_export_times:
            export_times(generators, where)


if __name__ == "__main__":
    main()
