"""Every CUDA path of ndevgan in one run: a report to make the day a GPU is lent.

Each check runs on its own (a failure is recorded and the next check runs), prints one line
and goes into a JSON report:

- ``environment``: torch and its CUDA, the device, onnxruntime and its providers;
- ``train-<backbone>-ode-<precision>``: the backbone's ``paper`` preset with a first-order ODE
  (``tiny`` with ``--quick``) trained by the real trainer for a few steps in fp32 and bf16
  (``run.amp``): steps/s, peak memory, losses finite, and bf16's loss against fp32's;
- ``compile``: ``torch.compile`` of TGAN's generator and critic against eager (ratio);
- ``ddp-1`` / ``ddp-N``: ``torchrun`` with one process (NCCL on a GPU, gloo on the CPU),
  and with every GPU when there are several;
- ``onnx``: export of the trained TGAN-ODE, the provider ONNX Runtime really loaded, IO
  binding (torch tensors in and out on the device), parity with PyTorch and videos/s against
  eager PyTorch;
- ``c3d``: C3D (random weights, the real cost) videos/s, and one IS over ``--is-samples``
  generated videos, timed;
- ``study-estimate``: the hours of both paper grids from the measured step and scoring
  times (the formula of ``tools/bench_study_cost.py``).

    python tools/gpu_check.py                       # on a GPU machine: ≤ 8 minutes on an H100
    python tools/gpu_check.py --device cpu --quick  # what CI runs: < 2 minutes, same checks

Exit status 1 when a check failed; the report is written either way (``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
BACKBONES = ("tgan", "mocogan", "tganv2")
PAPER_GRIDS = ("paper_finding_f.toml", "paper_family_order.toml")


class NotApplicableError(Exception):
    """A check that does not apply here (the reason is reported)."""


class Checks:
    """The checks, the state they share (trained runs, measured times) and the report."""

    def __init__(self, device: torch.device, quick: bool, steps: int, is_samples: int) -> None:
        self.device = device
        self.quick = quick
        self.steps = steps
        self.is_samples = is_samples
        self.work = Path(tempfile.mkdtemp(prefix="ndevgan-gpu-check-"))
        self.results: list[dict[str, Any]] = []
        self.step_seconds: dict[str, float] = {}
        self.video_seconds: float | None = None
        self.final_losses: dict[str, dict[str, float]] = {}
        self.run_dirs: dict[str, Path] = {}

    # ---- running ------------------------------------------------------------------------

    def run(self, name: str, check: Callable[[], dict[str, Any]]) -> None:
        """Run one check; record pass, fail (with the error) or skip, and its duration."""
        start = time.perf_counter()
        record: dict[str, Any] = {"name": name}
        try:
            record["details"] = check()
            record["status"] = "pass"
        except NotApplicableError as reason:
            record["status"] = "skip"
            record["reason"] = str(reason)
        except Exception as exc:  # every failure is reported, and the next check runs
            record["status"] = "fail"
            record["error"] = f"{type(exc).__name__}: {exc}"
            record["traceback"] = traceback.format_exc(limit=8)
        record["seconds"] = round(time.perf_counter() - start, 2)
        self.results.append(record)
        detail = record.get("reason") or record.get("error") or _summary(record.get("details"))
        print(f"{record['status'].upper():<5} {name:<28} {record['seconds']:>7.1f} s  {detail}")
        sys.stdout.flush()

    @property
    def preset(self) -> str:
        return "tiny" if self.quick else "paper"

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ---- the checks ---------------------------------------------------------------------

    def environment(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available(),
            "device": str(self.device),
            "threads": torch.get_num_threads(),
        }
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info.update(
                gpu=props.name,
                gpus=torch.cuda.device_count(),
                memory_gib=round(props.total_memory / 2**30, 1),
                capability=f"{props.major}.{props.minor}",
                bf16=torch.cuda.is_bf16_supported(),
                cudnn=torch.backends.cudnn.version(),
            )
        try:
            import onnxruntime as ort

            info["onnxruntime"] = ort.__version__
            info["ort_providers"] = ort.get_available_providers()
        except ImportError as exc:
            info["onnxruntime"] = f"not importable: {exc}"
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"asked for {self.device} but torch {torch.__version__} has no CUDA")
        return info

    def train(self, backbone: str, precision: str) -> dict[str, Any]:
        import ndevgan_core as nd
        from ndevgan_core.registry import Registry
        from ndevgan_core.runconfig import resolve

        if precision == "bf16" and self.device.type != "cuda":
            raise NotApplicableError("bf16 autocast is a CUDA path (run.amp refuses it on the CPU)")
        name = f"{backbone}-{precision}"
        run_dir = self.work / "runs" / name
        raw = {
            "run": {
                "iterations": self.steps,
                "device": str(self.device),
                "amp": "bf16" if precision == "bf16" else "none",
                "progress": False,
                "log_every": 1,
                "samples": 2,
                "sample_every": 10**6,
                "checkpoint_every": 10**6,
                "seed": 0,
            },
            "plugins": {"backbone": f"backbone.{backbone}", "temporal": "temporal.ode"},
            "backbone": {backbone: {"preset": self.preset}},
            "dataset": {"shapes": {"videos": 256}},
        }
        registry = Registry(entry_points=False)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        nd.train(resolve(raw, registry), registry, run_dir=run_dir)
        log = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
        losses = {k: v for k, v in log[-1].items() if k.startswith("loss")}
        if not all(math.isfinite(v) for v in losses.values()):
            raise RuntimeError(f"non-finite losses at step {log[-1]['step']}: {losses}")
        timed = [r["step_time"] for r in log[1:]] or [log[0]["step_time"]]
        step = sorted(timed)[len(timed) // 2]
        self.step_seconds[name] = step
        self.final_losses[name] = losses
        self.run_dirs[name] = run_dir
        details: dict[str, Any] = {
            "preset": self.preset,
            "steps": len(log),
            "step_s": round(step, 4),
            "steps_per_s": round(1 / step, 2),
            "final_losses": {k: round(v, 5) for k, v in losses.items()},
        }
        if self.device.type == "cuda":
            details["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        fp32 = self.final_losses.get(f"{backbone}-fp32")
        if precision == "bf16" and fp32:
            details["loss_difference_vs_fp32"] = {
                k: round(abs(losses[k] - fp32[k]), 5) for k in losses if k in fp32
            }
        return details

    def compile(self) -> dict[str, Any]:
        from ndevgan_core.registry import Registry
        from ndevgan_core.runconfig import assemble, resolve

        if self.quick:
            raise NotApplicableError("--quick: compiling takes minutes on a CPU")
        raw = {
            "plugins": {"backbone": "backbone.tgan", "temporal": "temporal.ode"},
            "backbone": {"tgan": {"preset": self.preset}},
            "temporal": {"ode": {"backend": "unrolled"}},
        }
        registry = Registry(entry_points=False)
        gan = assemble(resolve(raw, registry), registry).gan.to(self.device)
        generator, critic = gan.generator, gan.discriminators["video"]
        z = generator.sample_z(16, torch.Generator().manual_seed(0), self.device)

        def step(g: Any, d: Any) -> None:
            d(g(z)).mean().backward()

        eager = self._time(lambda: step(generator, critic))
        compiled_g, compiled_d = torch.compile(generator), torch.compile(critic)
        start = time.perf_counter()
        step(compiled_g, compiled_d)
        self.sync()
        compile_s = time.perf_counter() - start
        fast = self._time(lambda: step(compiled_g, compiled_d))
        return {
            "eager_s": round(eager, 4),
            "compiled_s": round(fast, 4),
            "speedup": round(eager / fast, 2),
            "compile_s": round(compile_s, 1),
        }

    def ddp(self, processes: int) -> dict[str, Any]:
        if processes > 1 and (self.device.type != "cuda" or torch.cuda.device_count() < processes):
            raise NotApplicableError(f"needs {processes} GPUs")
        out = self.work / "ddp"
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={processes}", "-m", "ndevgan_core", "run",
            "--plugin", "backbone.tgan", "--plugin", "temporal.ode",
            "--set", f"backbone.tgan.preset={self.preset}",
            "--set", "backbone.tgan.batch_size=8",
            "--set", "run.iterations=3", "--set", "run.log_every=1",
            "--set", f"run.device={'cuda' if self.device.type == 'cuda' else 'cpu'}",
            "--set", "run.progress=false", "--set", "run.samples=2",
            "--set", "run.sample_every=1000000", "--set", f"run.out={out}",
            "--set", f"run.name=world{processes}", "--set", "dataset.shapes.videos=64",
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"torchrun exited {proc.returncode}: {proc.stderr.strip()[-600:]}")
        log = (out / f"world{processes}" / "log.jsonl").read_text().splitlines()
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        return {"processes": processes, "backend": backend, "steps": len(log)}

    def onnx(self) -> dict[str, Any]:
        import numpy as np

        import ndevgan_core as nd

        source = self.run_dirs.get("tgan-fp32")
        if source is None:
            raise RuntimeError("needs the run of train-tgan-ode-fp32, which failed")
        path = self.work / "tgan-ode.onnx"
        nd.export_onnx(source, path)
        provider = "cuda" if self.device.type == "cuda" else "cpu"
        runtime = nd.OnnxVideoGenerator(path, provider)
        details: dict[str, Any] = {"provider": runtime.provider, "fallback": runtime.fallback}
        if self.device.type == "cuda" and not runtime.on_cuda:
            raise RuntimeError(f"the CUDA provider did not load: {runtime.fallback}")
        loaded = nd.load_generator(source, device=self.device)
        generator = loaded.generator.eval()
        batch = 16
        z = generator.sample_z(batch, torch.Generator().manual_seed(1), self.device)
        with torch.no_grad():
            reference = generator(z, generator.spec.times(self.device)).transpose(1, 2)
        if self.device.type == "cuda":  # IO binding: torch tensors in, a CUDA tensor out
            out = runtime(z)
            details["io_binding"] = bool(isinstance(out, torch.Tensor) and out.is_cuda)
            difference = float((out.float() - reference).abs().max())
        else:
            out = runtime(z.cpu().numpy())
            difference = float(np.abs(out - reference.cpu().numpy()).max())
        details["max_abs_difference"] = difference
        if difference > 1e-3:
            raise RuntimeError(f"ONNX Runtime differs from PyTorch by {difference:.2e}")
        with torch.no_grad():
            eager = self._time(lambda: generator(z))
        ort_input = z if self.device.type == "cuda" else z.cpu().numpy()
        ort_time = self._time(lambda: runtime(ort_input))
        details.update(
            eager_videos_per_s=round(batch / eager, 1),
            ort_videos_per_s=round(batch / ort_time, 1),
            ort_vs_eager=round(eager / ort_time, 2),
        )
        return details

    def c3d(self) -> dict[str, Any]:
        import ndevgan_core as nd
        from ndevgan_core.evaluation import evaluate
        from ndevgan_plugins import c3d
        from ndevgan_plugins.c3d_metrics import C3DClassifier

        torch.manual_seed(0)
        state = c3d.C3D().state_dict()
        classifier = C3DClassifier(state, torch.zeros(c3d.MEAN_SHAPE), "random").to(self.device)
        batch = 32 if self.device.type == "cuda" else 2
        videos = torch.rand(batch, 3, 16, 64, 64, device=self.device) * 2 - 1
        with torch.no_grad():
            per_batch = self._time(lambda: classifier(videos))
        self.video_seconds = per_batch / batch
        source = self.run_dirs.get("tgan-fp32")
        if source is None:
            raise RuntimeError("needs the run of train-tgan-ode-fp32, which failed")
        generator = nd.load_generator(source, device=self.device).generator
        start = time.perf_counter()
        result = evaluate(
            generator,
            ("is",),
            classifier=classifier,
            samples=self.is_samples,
            batch_size=batch,
            device=self.device,
            progress=False,
        )["is"]
        seconds = time.perf_counter() - start
        return {
            "c3d_videos_per_s": round(batch / per_batch, 1),
            "is_samples": self.is_samples,
            "is_seconds": round(seconds, 1),
            "is_random_weights": round(result.mean, 4),
        }

    def study_estimate(self) -> dict[str, Any]:
        from ndevgan_core.registry import Registry
        from ndevgan_plugins import study

        if self.video_seconds is None:
            raise RuntimeError("needs the C3D timing, which failed")
        estimates = {}
        for grid_name in PAPER_GRIDS:
            grid = study.load_grid(ROOT / "examples" / "studies" / grid_name)
            p = grid.protocol
            hours = 0.0
            unmeasured = set()
            for plan in study.plan_runs(grid, Registry(entry_points=False)):
                backbone = plan.config.plugins.backbone.split(".")[1]
                step = self.step_seconds.get(f"{backbone}-fp32")
                if step is None:
                    unmeasured.add(backbone)
                    continue
                iterations = plan.config.run.iterations
                scored = iterations // p.eval_every * p.eval_samples
                scored += p.final_loops * p.final_samples
                hours += (iterations * step + scored * self.video_seconds) / 3600
            stem = grid_name.removesuffix(".toml")
            estimates[f"{stem}_hours"] = round(hours, 1)
            estimates[f"{stem}_unmeasured"] = sorted(unmeasured)
        estimates["preset_timed"] = self.preset
        return estimates

    def _time(self, fn: Callable[[], Any], repeats: int = 3) -> float:
        fn()  # warm-up
        self.sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]


def _summary(details: Any) -> str:
    if not isinstance(details, dict):
        return ""
    text = ", ".join(f"{k}={v}" for k, v in details.items() if not isinstance(v, (dict, list)))
    return text[:160]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument(
        "--quick", action="store_true", help="tiny presets, fewer steps and samples (for CI)"
    )
    parser.add_argument("--out", default="gpu_check.json", help="the JSON report")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    steps = 3 if args.quick else 20
    checks = Checks(device, args.quick, steps, is_samples=4 if args.quick else 2048)
    started = time.time()
    print(f"ndevgan GPU check on {device}{' (quick)' if args.quick else ''}; work in {checks.work}")
    checks.run("environment", checks.environment)
    for backbone in BACKBONES:
        for precision in ("fp32", "bf16"):
            checks.run(
                f"train-{backbone}-ode-{precision}",
                lambda b=backbone, p=precision: checks.train(b, p),
            )
    checks.run("compile", checks.compile)
    checks.run("ddp-1", lambda: checks.ddp(1))
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    checks.run(f"ddp-{max(gpus, 2)}", lambda: checks.ddp(max(gpus, 2)))
    checks.run("onnx", checks.onnx)
    checks.run("c3d", checks.c3d)
    checks.run("study-estimate", checks.study_estimate)
    counts = {s: sum(r["status"] == s for r in checks.results) for s in ("pass", "fail", "skip")}
    report = {
        "device": str(device),
        "quick": args.quick,
        "seconds": round(time.time() - started, 1),
        "summary": counts,
        "checks": checks.results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped in "
        f"{report['seconds']} s; report: {args.out}"
    )
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
