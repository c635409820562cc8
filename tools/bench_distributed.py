"""Time whole training steps under torchrun and with bf16 autocast, side by side in one run.

Each variant is a real ``ndevgan run`` (``python -m ndevgan_core run``, or under
``python -m torch.distributed.run`` for several processes) on ``dataset.shapes``; the figure is
the median of the step times the run logs (``log.jsonl``: the training step alone, after
``--warmup`` steps), over ``--rounds`` rounds that alternate the variants. It prints ms/step and
each variant's ratio to the first of its group.

    python tools/bench_distributed.py                  # CPU: 1 process vs 2 torchrun ranks
    python tools/bench_distributed.py --mode gpu       # one GPU: fp32 vs bf16, DDP at world 1

CPU mode trains TGAN ``tiny`` at a global batch of 8: one process with 1 and with 2 threads,
and two gloo ranks of one thread each (4 videos per rank). GPU mode trains TGAN and MoCoGAN at
the paper's sizes (64×64, batch 32) and TGANv2 ``64px`` (batch 32): fp32 in one process, bf16
in one process, and fp32 under torchrun with one process (the DDP wrappers' own cost).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

COMMON = ["--set", "run.progress=false", "--set", "run.log_every=1", "--set", "run.samples=4"]
COMMON += ["--set", "run.sample_every=100000", "--set", "run.checkpoint_every=100000"]


TGANV2_64 = "backbone.tganv2.preset=64px"


def variants(mode: str) -> dict[str, list[tuple[str, int | None, list[str], dict[str, str]]]]:
    """Groups of (label, torchrun processes or None for a plain process, ndevgan arguments,
    environment) to time."""
    if mode == "cpu":
        base = ["--plugin", "backbone.tgan", "--set", "backbone.tgan.preset=tiny"]
        base += ["--set", "dataset.shapes.videos=256"]
        one = {"OMP_NUM_THREADS": "1"}
        two = {"OMP_NUM_THREADS": "2"}
        return {
            "TGAN tiny, global batch 8 (CPU)": [
                ("1 process, 1 thread", None, [*base, "--set", "run.threads=1"], one),
                ("1 process, 2 threads", None, [*base, "--set", "run.threads=2"], two),
                ("torchrun 2 ranks × 1 thread (gloo)", 2, [*base, "--set", "run.threads=1"], one),
            ]
        }
    groups = {
        "TGAN paper (64×64, batch 32)": ["--plugin", "backbone.tgan"],
        "MoCoGAN paper (64×64, batch 32)": ["--plugin", "backbone.mocogan"],
        "TGANv2 64px (batch 32)": ["--plugin", "backbone.tganv2", "--set", TGANV2_64],
    }
    out = {}
    for name, args in groups.items():
        args = [*args, "--set", "dataset.shapes.videos=256", "--set", "run.device=cuda"]
        out[name] = [
            ("fp32, 1 process", None, args, {}),
            ("bf16 autocast, 1 process", None, [*args, "--set", "run.amp=bf16"], {}),
            ("fp32, torchrun 1 process (DDP)", 1, args, {}),
        ]
    return out


def run_once(
    processes: int | None, args: list[str], env: dict[str, str], steps: int, out: Path
) -> list[float]:
    """Train ``steps`` iterations (under torchrun with ``processes``, else in a plain
    process); return the logged step times in seconds."""
    run = [*args, *COMMON, "--set", f"run.iterations={steps}", "--set", f"run.out={out}"]
    run += ["--set", "run.name=bench"]
    module = [sys.executable, "-m", "ndevgan_core", "run", *run]
    if processes is not None:
        module = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                  f"--nproc-per-node={processes}", "-m", "ndevgan_core", "run", *run]  # fmt: skip
    proc = subprocess.run(
        module, capture_output=True, text=True, env={**os.environ, **env}, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(module)} failed:\n{proc.stderr[-3000:]}")
    log = out / "bench" / "log.jsonl"
    return [json.loads(line)["step_time"] for line in log.read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--steps", type=int, default=0, help="iterations per run (default 25/40)")
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per variant")
    args = parser.parse_args()
    steps = args.steps or (25 if args.mode == "cpu" else 40)
    device = torch.cuda.get_device_name() if args.mode == "gpu" else f"{os.cpu_count()} CPUs"
    print(f"torch {torch.__version__}, {device}; {args.rounds} rounds × {steps} steps, median "
          f"of steps after {args.warmup}")  # fmt: skip
    for group, items in variants(args.mode).items():
        times: dict[str, list[float]] = {label: [] for label, *_ in items}
        for _ in range(args.rounds):
            for label, processes, run_args, env in items:
                with tempfile.TemporaryDirectory() as tmp:
                    logged = run_once(processes, run_args, env, steps, Path(tmp))
                times[label] += logged[args.warmup :]
        print(f"\n{group}")
        print(f"  {'variant':<38} {'ms/step':>9} {'× first':>8}")
        first = statistics.median(times[items[0][0]])
        for label, *_ in items:
            ms = statistics.median(times[label])
            print(f"  {label:<38} {ms * 1e3:9.1f} {ms / first:8.2f}")


if __name__ == "__main__":
    main()
