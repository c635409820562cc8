"""logger.tensorboard: a real run writes TensorBoard events that TensorBoard's reader reads back."""

from __future__ import annotations

import json

import pytest

import ndevgan_core as nd
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import resolve

from .conftest import fast_raw, ndevgan

pytest.importorskip("tensorboard")


def read_events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    events = EventAccumulator(str(files[0]), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_losses_and_sample_strips_reach_the_event_file(tmp_path):
    registry = Registry(entry_points=False, disabled=())
    raw = fast_raw(iterations=4, sample_every=2, log_every=1)
    raw["plugins"]["loggers"] = ["logger.eval", "logger.tensorboard"]
    raw["logger"] = {"eval": {"every": 2, "samples": 6, "batch_size": 6}}
    run_dir = nd.train(resolve(raw, registry), registry, run_dir=tmp_path / "r")
    events = read_events(run_dir)
    tags = events.Tags()
    assert {"train/loss_d", "train/loss_g", "train/step_time"} <= set(tags["scalars"])
    log = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    loss_d = events.Scalars("train/loss_d")
    assert [e.step for e in loss_d] == [r["step"] for r in log] == [1, 2, 3, 4]
    assert [e.value for e in loss_d] == pytest.approx([r["loss_d"] for r in log], rel=1e-6)
    # IS as logger.eval scored it, at its steps, with its values
    scored = [json.loads(x) for x in (run_dir / "eval.jsonl").read_text().splitlines()]
    is_events = events.Scalars("eval/is")
    assert [e.step for e in is_events] == [r["step"] for r in scored] == [2, 4]
    assert [e.value for e in is_events] == pytest.approx([r["is_mean"] for r in scored])
    strips = events.Images("samples/strip")
    assert [e.step for e in strips] == [0, 2, 4] and all(e.width > 0 for e in strips)


def test_selected_from_the_command_line_with_its_options(tmp_path):
    ndevgan("run", "--plugin", "logger.tensorboard", "--set", "logger.tensorboard.images=false",
            "--set", "backbone.tgan.g_channels=4", "--set", "backbone.tgan.d_channels=4",
            "--set", "backbone.tgan.batch_size=4", "--set", "backbone.tgan.latent_dim=16",
            "--set", "dataset.shapes.videos=64", "--set", "run.samples=4",
            "--set", "run.progress=false", "--set", "run.iterations=2",
            "--set", f"run.out={tmp_path}", "--set", "run.name=cli")  # fmt: skip
    events = read_events(tmp_path / "cli")
    assert events.Tags()["images"] == [] and "train/loss_g" in events.Tags()["scalars"]
