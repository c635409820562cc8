"""Long tests (`make test-slow`): the README's demo exactly as a user runs it, and the paper-size
TGAN training for real."""

from __future__ import annotations

import json

import pytest
import torch

import ndevgan_core as nd
from ndevgan_core import media
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import demo_config, resolve
from ndevgan_core.training.checkpoint import load_checkpoint

from .conftest import ndevgan

pytestmark = pytest.mark.slow


def test_demo_command_with_no_arguments(tmp_path):
    proc = ndevgan("run", cwd=tmp_path, timeout=900)
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert f"run directory: {run_dir.relative_to(tmp_path)}" in proc.stdout
    assert run_dir.name.endswith("-tgan-ode")
    iterations = demo_config()["run"]["iterations"]
    ckpt = load_checkpoint(run_dir)
    assert ckpt["step"] == iterations
    assert ckpt["config"]["backbone"]["tgan"]["size"] == 32
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == iterations
    assert all(abs(r["loss_d"]) < 1e3 for r in log)  # finite, no blow-up
    first = media.read_png(run_dir / "samples" / "step-00000000.png").astype(float)
    last = media.read_png(run_dir / "samples" / f"step-{iterations:08d}.png").astype(float)
    assert abs(first - last).mean() > 10  # the samples changed visibly
    assert media.read_video(run_dir / "samples" / f"step-{iterations:08d}.mp4").shape[0] == 16
    # the demo ends with its quick score (run.final_score) and the path of the last samples
    lines = proc.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("quick score at step"))
    assert f"step {iterations:,} (512 videos, dataset.shapes's classifier" in lines[head]
    score = {line.split()[0]: float(line.split()[1]) for line in lines[head + 1 : head + 3]}
    assert score["IS"] > 1.5 and score["FID"] < 200, score  # untrained: IS ≈ 1, FID ≈ 250
    strip = run_dir / "samples" / f"step-{iterations:08d}.png"
    assert lines[head + 3] == f"samples of the last step: {strip.relative_to(tmp_path)}"
    assert not (run_dir / "eval").exists()  # the quick score writes nothing into the run


def test_paper_size_tgan_trains_and_resumes(tmp_path):
    registry = Registry(entry_points=False, disabled=())
    raw = {
        "run": {"iterations": 2, "progress": False, "samples": 2},
        "plugins": {"backbone": "backbone.tgan", "temporal": "temporal.ode"},
        "backbone": {"tgan": {"batch_size": 2, "clip_every": 1}},
    }
    run_dir = nd.train(resolve(raw, registry), registry, run_dir=tmp_path / "paper")
    ckpt = load_checkpoint(run_dir)
    assert ckpt["step"] == 2
    critic = {k: v for k, v in ckpt["model"].items() if k.startswith("discriminators.")}
    for k, w in critic.items():
        if w.ndim == 5:  # every 3-D convolution was clipped to spectral norm <= 1
            assert torch.linalg.svdvals(w.flatten(1)).max() <= 1 + 1e-4, k
    video = media.read_video(run_dir / "samples" / "step-00000002.mp4")
    assert video.shape[0] == 16 and video.shape[1] >= 64
