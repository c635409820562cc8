"""Time TGAN's temporal generators and their solvers alone, and the ODE adjoint's memory.

Part 1 times forward + backward of the temporal generator alone (z → the latents of the
training grid, ``.square().mean().backward()``) at TGAN's latent size (100) for the original
``temporal.conv1d`` and for ``temporal.ode`` / ``temporal.sde`` under several orders, designs,
backends, solvers and adjoint settings. Every variant is built through the registry from the
same seed. Each first takes one untimed step that counts the calls of f (ODE) or μ (SDE) in
the forward and in the backward, then ``--warmup`` untimed steps; then timed blocks of
``--steps`` steps run round robin across all variants (the order rotated every block), so
machine noise hits all alike. It prints the parameter count, the evaluations, the median over
blocks of milliseconds per step, the spread (min–max of the blocks) and the ratio to conv1d; a
variant that raises shows its error in the table instead of a time.

Part 2 compares backpropagation of the order-1 ODE (single design, torchdiffeq rk4, one step
per frame on linspace(0, 1, frames)) with and without the adjoint method, at 16 and 64 frames:
the bytes of tensors autograd saves for backward during the forward (distinct storages, via
``torch.autograd.graph.saved_tensors_hooks``), the forward + backward wall time, and on CUDA
the peak of ``torch.cuda.max_memory_allocated`` above what was allocated before; then the
ratios direct / adjoint of memory and adjoint / direct of time.

Everything prints as Markdown tables.

    python tools/bench_temporal.py                  # batch 32, 16 frames, 7 blocks × 10 steps
    python tools/bench_temporal.py --quick          # smoke run (3 blocks × 1 step), ~10 s
    python tools/bench_temporal.py --device cuda --blocks 5 --steps 10
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import assemble, resolve

LATENT = 100  # TGAN's z and frame latent size (backbone.tgan latent_dim default)

ODE = "temporal.ode"
SDE = "temporal.sde"
CONV1D = "temporal.conv1d"

_ODE_BASE = {"order": 1, "form": "general", "design": "single", "backend": "torchdiffeq"}
_SDE_BASE = {"backend": "torchsde", "method": "euler", "dt": 2.5e-2}

VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("conv1d (reference)", CONV1D, {}),
    ("ode o1 rk4", ODE, {**_ODE_BASE, "method": "rk4"}),
    ("ode o2 rk4", ODE, {**_ODE_BASE, "order": 2, "method": "rk4"}),
    ("ode o3 rk4", ODE, {**_ODE_BASE, "order": 3, "method": "rk4"}),
    ("ode o1 unrolled rk4", ODE, {**_ODE_BASE, "backend": "unrolled", "method": "rk4"}),
    (
        "ode o1 unrolled rk4-classic",
        ODE,
        {**_ODE_BASE, "backend": "unrolled", "method": "rk4-classic"},
    ),
    ("ode o1 unrolled euler", ODE, {**_ODE_BASE, "backend": "unrolled", "method": "euler"}),
    ("ode o1 unrolled midpoint", ODE, {**_ODE_BASE, "backend": "unrolled", "method": "midpoint"}),
    ("ode o1 dopri5", ODE, {**_ODE_BASE, "method": "dopri5", "rtol": 1e-5, "atol": 1e-6}),
    ("ode o1 composed rk4", ODE, {**_ODE_BASE, "design": "composed", "method": "rk4"}),
    ("ode o1 matched rk4", ODE, {**_ODE_BASE, "design": "matched", "method": "rk4"}),
    ("ode o1 rk4 adjoint", ODE, {**_ODE_BASE, "method": "rk4", "adjoint": True}),
    ("sde torchsde euler", SDE, dict(_SDE_BASE)),
    (
        "sde unrolled euler-maruyama",
        SDE,
        {**_SDE_BASE, "backend": "unrolled", "method": "euler-maruyama"},
    ),
    ("sde unrolled milstein", SDE, {**_SDE_BASE, "backend": "unrolled", "method": "milstein"}),
    ("sde torchsde milstein", SDE, {**_SDE_BASE, "method": "milstein"}),
    ("sde torchsde euler adjoint", SDE, {**_SDE_BASE, "adjoint": True}),
]
"""(label, plugin, options of the plugin's config section) of every timed variant."""


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("|", "/").replace("\n", " ")
    return text if len(text) <= 160 else text[:157] + "..."


def build(
    registry: Registry, plugin: str, options: dict[str, Any], batch: int, frames: int, device: str
) -> torch.nn.Module:
    """The temporal generator of a TGAN assembled from a raw config (seed 0)."""
    tgan: dict[str, Any] = {"batch_size": batch, "frames": frames}
    if frames < 16:  # the paper's 64×64 critic needs 16 frames; the image size is not timed
        tgan["size"] = max(8, 4 * frames)
    raw: dict[str, Any] = {
        "plugins": {"backbone": "backbone.tgan", "temporal": plugin},
        "backbone": {"tgan": tgan},
    }
    if options:
        raw["temporal"] = {plugin.split(".", 1)[1]: dict(options)}
    config = resolve(raw, registry)
    torch.manual_seed(0)
    return assemble(config, registry).gan.generator.temporal.to(device)


class Case:
    """One variant: its generator and inputs, and a step of forward + backward."""

    def __init__(self, label: str, plugin: str, options: dict[str, Any]) -> None:
        self.label, self.plugin, self.options = label, plugin, options
        self.temporal: torch.nn.Module | None = None
        self.params: int | None = None
        self.error = ""
        self.times: list[float] = []
        self.calls = 0
        self.evals = ""

    def setup(self, registry: Registry, batch: int, frames: int, device: str) -> None:
        try:
            self.temporal = build(registry, self.plugin, self.options, batch, frames, device)
            self.params = sum(p.numel() for p in self.temporal.parameters() if p.requires_grad)
            self.z = (
                torch.rand(batch, LATENT, generator=torch.Generator().manual_seed(0)) * 2 - 1
            ).to(device)
            self.t = self.temporal.spec.times(device)
        except Exception as exc:
            self.error = error_text(exc)

    def step(self, between: Callable[[], None] | None = None) -> None:
        assert self.temporal is not None
        self.temporal.zero_grad(set_to_none=True)
        if getattr(self.temporal, "stochastic", False):
            g = torch.Generator().manual_seed(self.calls)
            out = self.temporal(self.z, self.t, generator=g)
        else:
            out = self.temporal(self.z, self.t)
        if between is not None:
            between()
        out.square().mean().backward()
        self.calls += 1

    def count_evals(self) -> None:
        """One untimed step counting calls of f (ODE) or μ (SDE): "forward + backward"."""
        net = getattr(self.temporal, "field", None) or getattr(self.temporal, "mu", None)
        if self.error or not isinstance(net, torch.nn.Module):
            return
        calls: list[int] = []
        handle = net.register_forward_hook(lambda *_: calls.append(1))
        try:
            forward: list[int] = []
            self.step(between=lambda: forward.append(len(calls)))
            self.evals = f"{forward[0]} + {len(calls) - forward[0]}"
        except Exception as exc:
            self.error = error_text(exc)
        finally:
            handle.remove()

    def run(self, steps: int, device: str) -> float | None:
        """Seconds per step over ``steps`` steps, or None (and the error kept) if it raises."""
        if self.error:
            return None
        try:
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                self.step()
            sync(device)
        except Exception as exc:
            self.error = error_text(exc)
            return None
        return (time.perf_counter() - t0) / steps


def describe(plugin: str, options: dict[str, Any]) -> str:
    if not options:
        return "channels=512 (TGAN's G0)"
    return " ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in options.items()
    )


def bench_solvers(args: argparse.Namespace, registry: Registry) -> None:
    cases = [Case(*v) for v in VARIANTS]
    for case in cases:
        case.setup(registry, args.batch, args.frames, args.device)
        case.count_evals()
        case.run(args.warmup, args.device)  # warm-up: allocator, first-call overheads
    for block in range(args.blocks):
        shift = block % len(cases)
        for case in cases[shift:] + cases[:shift]:
            seconds = case.run(args.steps, args.device)
            if seconds is not None:
                case.times.append(seconds)

    print(
        f"\n### Temporal generator alone, forward + backward "
        f"({args.frames} frames, batch {args.batch}, z ∈ R^{LATENT})\n"
    )
    print(
        "| variant | plugin | options | params | f/μ evals fwd + bwd | ms / step (median) "
        "| min–max ms | × conv1d |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|")
    ref = cases[0]
    ref_ms = statistics.median(ref.times) * 1e3 if ref.times and not ref.error else None
    for case in cases:
        params = f"{case.params:,}" if case.params is not None else "—"
        opts = describe(case.plugin, case.options)
        hidden = getattr(case.temporal, "hidden", None)
        if case.options.get("design") == "matched" and hidden:
            opts += f" (hidden {hidden})"
        if case.error or not case.times:
            err = case.error or "no timed block"
            print(
                f"| {case.label} | {case.plugin} | {opts} | {params} | {case.evals or '—'} "
                f"| error: {err} | — | — |"
            )
            continue
        ms = [s * 1e3 for s in case.times]
        med = statistics.median(ms)
        ratio = f"{med / ref_ms:.2f}×" if ref_ms else "—"
        print(
            f"| {case.label} | {case.plugin} | {opts} | {params} | {case.evals or '—'} "
            f"| {med:.2f} | "
            f"{min(ms):.2f}–{max(ms):.2f} | {ratio} |"
        )


def saved_bytes(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, int, int]:
    """Run ``fn`` and return its output, the bytes of the distinct storages autograd saved for
    backward meanwhile, and how many tensors it saved."""
    storages: dict[tuple[str, int], int] = {}
    count = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal count
        count += 1
        try:
            storage = tensor.untyped_storage()
            key = (str(tensor.device), storage.data_ptr())
            storages[key] = max(storages.get(key, 0), storage.nbytes())
        except (RuntimeError, NotImplementedError):
            pass
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = fn()
    return out, sum(storages.values()), count


def bench_adjoint_memory(args: argparse.Namespace, registry: Registry) -> None:
    cuda = args.device.startswith("cuda")
    frame_counts = [16] if args.quick else [16, 64]
    modes = [("direct", False), ("adjoint", True)]
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    runs: list[tuple[int, str, Callable[[], None]]] = []
    for frames in frame_counts:
        for mode, adjoint in modes:
            row: dict[str, Any] = {"times": []}
            rows[frames, mode] = row
            try:
                options = {**_ODE_BASE, "method": "rk4", "adjoint": adjoint}
                temporal = build(registry, ODE, options, args.batch, frames, args.device)
                z = torch.rand(args.batch, LATENT, generator=torch.Generator().manual_seed(0))
                z = (z * 2 - 1).to(args.device)
                t = torch.linspace(0, 1, frames, device=args.device)

                def forward(temporal=temporal, z=z, t=t) -> torch.Tensor:
                    return temporal(z, t)

                def step(temporal=temporal, forward=forward) -> None:
                    temporal.zero_grad(set_to_none=True)
                    forward().square().mean().backward()

                step()  # warm-up (first-call allocations, e.g. cuBLAS workspaces)
                temporal.zero_grad(set_to_none=True)
                if cuda:
                    sync(args.device)
                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                out, nbytes, count = saved_bytes(forward)
                out.square().mean().backward()
                if cuda:
                    sync(args.device)
                    row["peak"] = torch.cuda.max_memory_allocated() - base
                row["saved"], row["count"] = nbytes, count
                del out
                runs.append((frames, mode, step))
            except Exception as exc:
                row["error"] = error_text(exc)
    for block in range(args.blocks):  # interleaved timing, as in part 1
        shift = block % max(len(runs), 1)
        for frames, mode, step in runs[shift:] + runs[:shift]:
            row = rows[frames, mode]
            if "error" in row:
                continue
            try:
                sync(args.device)
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    step()
                sync(args.device)
                row["times"].append((time.perf_counter() - t0) / args.steps)
            except Exception as exc:
                row["error"] = error_text(exc)

    print(
        f"\n### ODE backprop memory: direct vs adjoint (order 1, single design, torchdiffeq "
        f"rk4, one step per frame, t = linspace(0, 1, frames), batch {args.batch})\n"
    )
    head = "| frames | backprop | saved for backward (MiB) | saved tensors | fwd+bwd ms (median) |"
    rule = "|---:|---|---:|---:|---:|"
    if cuda:
        head += " CUDA peak above start (MiB) |"
        rule += "---:|"
    print(head)
    print(rule)
    mib = 2.0**20
    for frames in frame_counts:
        for mode, _ in modes:
            row = rows[frames, mode]
            if "error" in row:
                cells = [str(frames), mode, f"error: {row['error']}", "—", "—"]
                cells += ["—"] if cuda else []
            else:
                med = f"{statistics.median(row['times']) * 1e3:.2f}" if row["times"] else "—"
                cells = [str(frames), mode, f"{row['saved'] / mib:.3f}", str(row["count"]), med]
                cells += [f"{row['peak'] / mib:.3f}"] if cuda else []
            print("| " + " | ".join(cells) + " |")

    print("\n| frames | saved bytes direct / adjoint | time adjoint / direct |", end="")
    print(" CUDA peak direct / adjoint |" if cuda else "")
    print("|---:|---:|---:|" + ("---:|" if cuda else ""))
    for frames in frame_counts:
        d, a = rows[frames, "direct"], rows[frames, "adjoint"]
        if "error" in d or "error" in a or not d["times"] or not a["times"]:
            print(f"| {frames} | — | — |" + (" — |" if cuda else ""))
            continue
        mem = f"{d['saved'] / a['saved']:.1f}×" if a["saved"] else "—"
        tim = f"{statistics.median(a['times']) / statistics.median(d['times']):.2f}×"
        line = f"| {frames} | {mem} | {tim} |"
        if cuda:
            line += f" {d['peak'] / a['peak']:.1f}× |" if a["peak"] else " — |"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="videos per batch")
    parser.add_argument("--frames", type=int, default=16, help="frames of the training grid")
    parser.add_argument("--blocks", type=int, default=7, help="timed blocks per variant")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed block")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant first")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 3 blocks × 1 step, memory at 16 frames only",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--skip-memory", action="store_true", help="only part 1 (timing)")
    args = parser.parse_args()
    if args.quick:
        args.blocks, args.steps = 3, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    registry = Registry(entry_points=False)
    device = args.device
    if device.startswith("cuda"):
        device += f" ({torch.cuda.get_device_name(torch.device(args.device))})"
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"batch {args.batch}, frames {args.frames}, {args.blocks} blocks × {args.steps} steps"
        + (" (quick)" if args.quick else "")
    )
    bench_solvers(args, registry)
    if not args.skip_memory:
        bench_adjoint_memory(args, registry)


if __name__ == "__main__":
    main()
