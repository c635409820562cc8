"""Time video IS/FID scoring: C3D feature extraction, a full 2048-sample IS, the shapes classifier.

Part 1 — C3D throughput. The full-size UCF101 C3D (78.4 M parameters, random weights from
``torch.manual_seed(0)``) scores batches of random 64×64, 16-frame videos in [-1, 1] (TGAN's
output size) exactly as ``metric.is`` / ``metric.fid`` do: :func:`ndevgan_plugins.c3d.preprocess`
(×128+128, bicubic to 128×128, RGB→BGR, mean clip, centre crop to 112) then the network, under
``torch.no_grad``. Variants: fp32; fp32 with the network and its input in ``channels_last_3d``;
bf16 autocast; on CUDA also bf16 autocast + channels_last_3d. Each variant takes one untimed
warm-up batch, then timed blocks of ``--steps`` batches run round robin across the variants (the
order rotated every block). The table gives videos per second from the median block, the
ratio to fp32 on the same device, and how far the variant's outputs are from fp32's on the same
batch (max |Δ| of the softmax probabilities and relative max |Δ| of fc7): a faster variant only
helps if the scores do not move.

Part 2 — one full IS under the protocol (2048 samples): ``ndevgan_core.evaluation.evaluate``
with a paper-size TGAN generator (``backbone.tgan``, 64×64, conv1d G_t, random weights) and the
C3D of part 1 in fp32, batch ``--batch-size``. It first times ``--is-probe`` samples; when that
extrapolates to more than ``--full-limit`` seconds (5 min) for 2048, it reports the
extrapolation and says so, otherwise it runs all 2048 and reports the measured time; and the
share of the probe's time that generating the videos alone takes.

Part 3 — the shapes classifier (``dataset.shapes``'s built-in one, when its weights file is
there): videos per second on the demo's 32×32 16-frame clips, and the measured time of a full
2048-sample IS + FID of the demo generator (TGAN-ODE ``tiny``, random weights) with it,
including the real-data statistics (no cache).

    python tools/bench_metrics.py                  # CPU: batch 2, 2 blocks × 1 batch (~3 min here)
    python tools/bench_metrics.py --quick          # smoke run: batch 1, 1 block
    python tools/bench_metrics.py --device cuda --batch-size 16 --blocks 5 --steps 5
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ndevgan_core.evaluation import evaluate
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import assemble, demo_config, make_dataset, resolve
from ndevgan_core.training.api import sample_videos
from ndevgan_plugins import c3d
from ndevgan_plugins.c3d_metrics import C3DClassifier, load_classifier


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _random_c3d(device: torch.device) -> tuple[c3d.C3D, torch.Tensor]:
    torch.manual_seed(0)
    net = c3d.C3D().eval().to(device)
    mean = (torch.rand(c3d.MEAN_SHAPE) * 255).to(device)
    return net, mean


def _variants(device: torch.device) -> dict[str, tuple[bool, bool]]:
    """name → (channels_last_3d, bf16 autocast)."""
    variants = {
        "fp32": (False, False),
        "fp32 channels_last_3d": (True, False),
        "bf16 autocast": (False, True),
    }
    if device.type == "cuda":
        variants["bf16 autocast + channels_last_3d"] = (True, True)
    return variants


def _scorer(
    net: c3d.C3D, mean: torch.Tensor, device: torch.device, channels_last: bool, bf16: bool
) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    layout = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = c3d.C3D().eval().to(device)
    model.load_state_dict(net.state_dict())
    model = model.to(memory_format=layout)

    @torch.no_grad()
    def run(videos: torch.Tensor) -> dict[str, torch.Tensor]:
        context = (
            torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        )
        with context:
            x = c3d.preprocess(videos, mean).contiguous(memory_format=layout)
            out = model(x)
        return {"fc7": out["fc7"].float(), "probs": out["probs"].float()}

    return run


def bench_c3d(device: torch.device, batch: int, blocks: int, steps: int) -> None:
    net, mean = _random_c3d(device)
    g = torch.Generator().manual_seed(1)
    videos = (torch.rand(batch, 3, 16, 64, 64, generator=g) * 2 - 1).to(device)
    scorers = {
        name: _scorer(net, mean, device, cl, bf16) for name, (cl, bf16) in _variants(device).items()
    }
    del net
    outputs: dict[str, dict[str, torch.Tensor]] = {}
    errors: dict[str, str] = {}
    for name, run in scorers.items():  # warm-up, and the outputs to compare
        try:
            outputs[name] = run(videos)
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:60]}"
    timed = [n for n in scorers if n not in errors]
    seconds: dict[str, list[float]] = {n: [] for n in timed}
    for block in range(blocks):
        order = timed[block % len(timed) :] + timed[: block % len(timed)]
        for name in order:
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                scorers[name](videos)
            _sync(device)
            seconds[name].append((time.perf_counter() - t0) / steps)
    threads = torch.get_num_threads() if device.type == "cpu" else None
    where = f"{device.type}" + (f", {threads} threads" if threads else "")
    print(f"\n### C3D feature extraction ({where}; batch {batch} of 64×64×16 videos)\n")
    print("| variant | videos/s | × fp32 | max abs Δ probs | max rel Δ fc7 |")
    print("|---|---:|---:|---:|---:|")
    base = statistics.median(seconds["fp32"]) if "fp32" in seconds else None
    ref = outputs.get("fp32")
    for name in scorers:
        if name in errors:
            print(f"| {name} | {errors[name]} | | | |")
            continue
        per_batch = statistics.median(seconds[name])
        ratio = f"{base / per_batch:.2f}×" if base else "–"
        if ref is not None:
            dp = (outputs[name]["probs"] - ref["probs"]).abs().max().item()
            scale = ref["fc7"].abs().max().clamp_min(1e-12)
            df = ((outputs[name]["fc7"] - ref["fc7"]).abs().max() / scale).item()
            diffs = f"{dp:.1e} | {df:.1e}"
        else:
            diffs = "– | –"
        print(f"| {name} | {batch / per_batch:.2f} | {ratio} | {diffs} |")
    spread = {n: f"{min(s):.2f}–{max(s):.2f}" for n, s in seconds.items()}
    print(f"\nseconds per batch, fastest–slowest block ({blocks} blocks × {steps}): {spread}")


def _tgan_generator(device: torch.device) -> torch.nn.Module:
    registry = Registry(entry_points=False, disabled=())
    config = resolve({"plugins": {"backbone": "backbone.tgan"}}, registry)
    torch.manual_seed(0)
    return assemble(config, registry).gan.generator.to(device).eval()


def _fmt_seconds(s: float) -> str:
    return f"{s:.0f} s ({s / 60:.1f} min)" if s >= 60 else f"{s:.1f} s"


def bench_full_is(device: torch.device, batch: int, probe: int, limit: float) -> None:
    net, mean = _random_c3d(device)
    classifier = C3DClassifier(net.state_dict(), mean, "bench").to(device)
    del net
    generator = _tgan_generator(device)
    registry = Registry(entry_points=False, disabled=())

    def run(samples: int) -> float:
        _sync(device)
        t0 = time.perf_counter()
        evaluate(
            generator,
            ("is",),
            classifier=classifier,
            samples=samples,
            batch_size=batch,
            device=device,
            progress=False,
            registry=registry,
        )
        _sync(device)
        return time.perf_counter() - t0

    run(2)  # warm-up
    measured = run(probe)
    estimate = measured / probe * 2048
    _sync(device)
    t0 = time.perf_counter()
    sample_videos(generator, probe, batch_size=batch)  # the generator alone, for its share
    _sync(device)
    share = (time.perf_counter() - t0) / measured
    print("\n### One IS under the protocol: 2048 samples, TGAN 64×64 generator + C3D (fp32)\n")
    if estimate > limit:
        print(
            f"- measured {probe} samples (batch {batch}) in {measured:.1f} s → 2048 samples "
            f"≈ **{_fmt_seconds(estimate)}**, extrapolated linearly (a full run would exceed "
            f"{limit / 60:.0f} min here, so it was not run); TGANv2's 10 loops ≈ "
            f"{_fmt_seconds(10 * estimate)}"
        )
    else:
        full = run(2048)
        print(f"- measured: 2048 samples (batch {batch}) in **{_fmt_seconds(full)}**")
    print(f"- of which generating the videos alone: {share:.0%} (timed on the probe)")


def _demo_setup(device: torch.device) -> tuple[Registry, torch.nn.Module, Any]:
    """The demo run's registry, generator (random weights) and dataset."""
    registry = Registry(entry_points=False, disabled=())
    config = resolve(demo_config(), registry)
    torch.manual_seed(0)
    parts = assemble(config, registry)
    dataset = make_dataset(config, registry, parts.backbone)
    return registry, parts.gan.generator.to(device).eval(), dataset


def bench_shapes(device: torch.device, blocks: int) -> None:
    registry, generator, dataset = _demo_setup(device)
    path = dataset.reference_classifier()
    print("\n### The shapes classifier (dataset.shapes's built-in one)\n")
    if path is None or not Path(path).is_file():
        print(f"- skipped: its weights file is not there ({path})")
        return
    classifier = load_classifier(path).to(device)
    batch = 32
    videos = torch.stack([dataset[i]["video"] for i in range(batch)]).to(device)
    with torch.no_grad():
        classifier(videos)
        times = []
        for _ in range(max(blocks, 3)):
            _sync(device)
            t0 = time.perf_counter()
            classifier(videos)
            _sync(device)
            times.append(time.perf_counter() - t0)
    spec = dataset.spec
    print(
        f"- {batch / statistics.median(times):.0f} videos/s ({spec.height}×{spec.width}×"
        f"{spec.frames} clips, batch {batch}, median of {len(times)}); weights_id "
        f"{classifier.weights_id}"
    )
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        results = evaluate(
            generator,
            ("is", "fid"),
            dataset=dataset,
            classifier=classifier,
            samples=2048,
            batch_size=batch,
            device=device,
            progress=False,
            registry=registry,
            stats_cache=cache,
        )
        total = time.perf_counter() - t0
    print(
        f"- full IS + FID of the demo generator (TGAN-ODE tiny, untrained): 2048 generated + "
        f"2048 real clips, batch {batch}: **{_fmt_seconds(total)}** measured (IS "
        f"{results['is'].mean:.3f}, FID {results['fid'].mean:.2f})"
    )


def main() -> None:
    """Parse the options and run the three parts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="C3D batch (CPU 2, GPU 16)")
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--is-probe", type=int, default=None, help="samples timed for part 2")
    parser.add_argument("--full-limit", type=float, default=300.0)
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 1, one block")
    parser.add_argument("--skip", action="append", default=[], choices=["c3d", "is", "shapes"])
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    batch = args.batch_size or (1 if args.quick else 16 if gpu else 2)
    blocks = 1 if args.quick else args.blocks
    probe = args.is_probe or (batch if args.quick else 4 * batch if gpu else 8)
    print(
        f"torch {torch.__version__}, device {device}"
        + (
            f" ({torch.cuda.get_device_name(device)})"
            if gpu
            else f", {torch.get_num_threads()} threads"
        )
    )
    if "c3d" not in args.skip:
        bench_c3d(device, batch, blocks, args.steps)
    if "is" not in args.skip:
        bench_full_is(device, max(batch, 8) if not args.quick else batch, probe, args.full_limit)
    if "shapes" not in args.skip:
        bench_shapes(device, blocks)


if __name__ == "__main__":
    main()
