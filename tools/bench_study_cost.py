"""Estimate what a study grid costs: time each run's training step and the scoring of one video.

For every run of a grid file (``ndevgan study`` format) this builds the GAN at the grid's sizes,
times ``--steps`` training steps on random clips at batch ``--batch`` after one warm-up step,
and times generating one video plus one pass of C3D (random weights: the same cost as the real
ones) at batch ``--batch``. It prints both side by side and the study's cost on this device:

    run hours = (iterations · t_step
                 + iterations / eval_every · eval_samples · t_video
                 + final_loops · final_samples · t_video) / 3600

with t_step measured at ``--batch`` (the step of the grid's own batch size costs roughly
batch_size / --batch times as much when the device is saturated, as a CPU is). On a GPU run it
with ``--device cuda --batch 32`` to get the paper's per-step time directly; the same formula
then gives GPU-hours (divide t_step by the number of GPUs under torchrun, minus the overhead).

    python tools/bench_study_cost.py examples/studies/tiny.toml --batch 8
    python tools/bench_study_cost.py examples/studies/paper_finding_f.toml --batch 2 --only 'tgan-*'
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import assemble
from ndevgan_plugins import study

BATCH_KEYS = ("backbone.tgan", "backbone.mocogan", "backbone.tganv2")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(plan: study.PlannedRun, batch: int, steps: int, device: torch.device) -> float:
    """Median seconds of one training step on random clips (after one warm-up step)."""
    registry = Registry(entry_points=False)
    torch.manual_seed(0)
    parts = assemble(plan.config, registry)
    gan = parts.gan.to(device)
    optimizers = gan.configure_optimizers()
    spec = parts.backbone.video_spec()
    real = torch.rand(batch, spec.channels, spec.frames, spec.height, spec.width, device=device)
    real = real * 2 - 1
    rng = torch.Generator().manual_seed(0)
    gan.train()
    gan.training_step(real, 0, optimizers, rng)
    times = []
    for step in range(1, steps + 1):
        sync(device)
        t0 = time.perf_counter()
        gan.training_step(real, step, optimizers, rng)
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.no_grad()
def time_video(plan: study.PlannedRun, batch: int, device: torch.device) -> tuple[float, float]:
    """Seconds per video of generating and of C3D scoring (preprocessing included)."""
    from ndevgan_plugins import c3d

    registry = Registry(entry_points=False)
    torch.manual_seed(0)
    generator = assemble(plan.config, registry).gan.generator.to(device).eval()
    net = c3d.C3D().to(device).eval()
    mean = torch.zeros(c3d.MEAN_SHAPE)
    z = generator.sample_z(batch, torch.Generator().manual_seed(0), device)
    videos = generator(z)  # warm-up
    net(c3d.preprocess(videos, mean))
    sync(device)
    t0 = time.perf_counter()
    videos = generator(z)
    sync(device)
    t1 = time.perf_counter()
    net(c3d.preprocess(videos, mean))
    sync(device)
    t2 = time.perf_counter()
    return (t1 - t0) / batch, (t2 - t1) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid", help="a study grid file")
    parser.add_argument("--batch", type=int, default=2, help="videos per timed batch")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per run")
    parser.add_argument("--only", action="append", default=[], help="glob over run ids")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    grid = study.load_grid(args.grid)
    overrides = [f"{key}.batch_size={args.batch}" for key in BATCH_KEYS]
    overrides.append("run.device=" + device.type)
    plans = study.select_runs(
        study.plan_runs(grid, Registry(entry_points=False), overrides), args.only
    )
    p = grid.protocol
    print(
        f"{grid.path}: torch {torch.__version__}, device {device}, threads "
        f"{torch.get_num_threads()}, batch {args.batch} (the grid's own batch sizes are larger)"
    )
    header = (
        f"{'run':<28} {'step s':>8} {'gen s/video':>12} {'C3D s/video':>12} "
        f"{'train h':>9} {'scoring h':>10} {'total h':>9}"
    )
    print(header)
    print("-" * len(header))
    total = 0.0
    for plan in plans:
        step = time_steps(plan, args.batch, args.steps, device)
        gen, c3d_time = time_video(plan, args.batch, device)
        iterations = plan.config.run.iterations
        per_video = gen + c3d_time
        scored = iterations // p.eval_every * p.eval_samples + p.final_loops * p.final_samples
        train_h = iterations * step / 3600
        score_h = scored * per_video / 3600
        total += train_h + score_h
        print(
            f"{plan.run_id:<28} {step:>8.3f} {gen:>12.4f} {c3d_time:>12.4f} "
            f"{train_h:>9.1f} {score_h:>10.1f} {train_h + score_h:>9.1f}"
        )
    print(f"all {len(plans)} runs at batch {args.batch} on {device}: {total:,.1f} hours")


if __name__ == "__main__":
    main()
