"""The trainer: run directory contents, exact resume after a stop, checkpoints, events."""

from __future__ import annotations

import json
import os
import signal
import tomllib
from pathlib import Path

import attrs
import pytest
import torch

import ndevgan_core as nd
from ndevgan_core import media
from ndevgan_core.errors import CheckpointError, ConfigError
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import assemble, resolve
from ndevgan_core.training.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from ndevgan_core.training.trainer import ResumableBatchSampler, Trainer

from .conftest import fast_raw


@pytest.fixture
def registry() -> Registry:
    return Registry(entry_points=False, disabled=())


def config(registry, **run):
    return resolve(fast_raw(**run), registry)


class Recorder:
    """A plugin that records trainer events, and can send itself SIGINT at a step."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.steps: list[int] = []
        self.checkpoints: list[int] = []
        self.samples: list[list[Path]] = []
        self.interrupt_at = interrupt_at

    @nd.hookimpl
    def on_step(self, run, step, metrics):
        self.steps.append(step)
        assert {"loss_d", "loss_g", "step_time"} <= set(metrics)
        if step == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)

    @nd.hookimpl
    def on_checkpoint(self, run, step, path):
        assert Path(path).is_file()
        self.checkpoints.append(step)

    @nd.hookimpl
    def on_sample(self, run, step, paths):
        self.samples.append(paths)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir)["model"]


def test_run_directory_contents_and_events(tmp_path, registry):
    rec = Recorder()
    registry.add_plugin(rec)
    cfg = config(registry, iterations=6, log_every=2, sample_every=3, checkpoint_every=3)
    run_dir = nd.train(cfg, registry, run_dir=tmp_path / "run")
    assert rec.steps == [1, 2, 3, 4, 5, 6]
    assert rec.checkpoints == [3, 6]
    saved = tomllib.loads((run_dir / "config.toml").read_text())
    assert saved["plugins"]["temporal"] == "temporal.ode"
    assert saved["backbone"]["tgan"]["batch_size"] == 4
    lines = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4, 6]
    assert all(x["step_time"] > 0 and "loss_d" in x for x in lines)
    assert [p.name for p in list_checkpoints(run_dir)] == ["step-00000003.pt", "step-00000006.pt"]
    ckpt = load_checkpoint(run_dir)
    assert ckpt["step"] == 6 and ckpt["config"] == cfg.to_dict()
    # samples at 0, 3 and 6: a grid video and a PNG strip each, readable
    names = sorted(p.name for p in (run_dir / "samples").iterdir())
    assert names == [f"step-0000000{s}.{ext}" for s in (0, 3, 6) for ext in ("mp4", "png")]
    video = media.read_video(run_dir / "samples" / "step-00000006.mp4")
    assert video.shape[0] == 16 and video.ndim == 4
    strip = media.read_png(run_dir / "samples" / "step-00000006.png")
    assert strip.shape[0] > 32 and strip.shape[1] > 32 * 8


def test_sigint_stops_after_step_and_resume_matches_uninterrupted(tmp_path, registry):
    cfg = config(registry, iterations=8, checkpoint_every=100, sample_every=100)
    straight = nd.train(cfg, registry, run_dir=tmp_path / "straight")

    registry2 = Registry(entry_points=False, disabled=())
    registry2.add_plugin(Recorder(interrupt_at=3))
    stopped = nd.train(cfg, registry2, run_dir=tmp_path / "stopped")
    assert load_checkpoint(stopped)["step"] == 3
    resumed = nd.train(cfg, Registry(entry_points=False, disabled=()), resume=stopped)
    assert resumed == stopped
    a, b = final_weights(straight), final_weights(resumed)
    assert load_checkpoint(resumed)["step"] == 8
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_from_an_older_checkpoint_also_matches(tmp_path, registry):
    cfg = config(registry, iterations=6, checkpoint_every=2, sample_every=100)
    straight = nd.train(cfg, registry, run_dir=tmp_path / "a")
    # an uninterrupted run, then pretend it crashed after step 4: keep only step-2 and step-4
    nd.train(cfg, registry, run_dir=tmp_path / "b")
    (tmp_path / "b" / "checkpoints" / "step-00000006.pt").unlink()
    resumed = nd.train(cfg, registry, resume=tmp_path / "b" / "checkpoints" / "step-00000004.pt")
    a, b = final_weights(straight), final_weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_changed_plugin_config(tmp_path, registry):
    cfg = config(registry, iterations=2)
    run_dir = nd.train(cfg, registry, run_dir=tmp_path / "r")
    raw = fast_raw(iterations=4)
    raw["temporal"] = {"ode": {"method": "euler"}}
    with pytest.raises(ConfigError, match=r"cannot resume.*temporal\.ode\.method"):
        Trainer(resolve(raw, registry), registry, resume=run_dir)


def test_new_run_into_existing_run_dir_is_refused(tmp_path, registry):
    cfg = config(registry, iterations=1)
    nd.train(cfg, registry, run_dir=tmp_path / "r")
    with pytest.raises(ConfigError, match="already has checkpoints.*--resume"):
        nd.train(cfg, registry, run_dir=tmp_path / "r")


def test_batches_depend_only_on_seed_and_step():
    full = ResumableBatchSampler(10, 3, seed=5)
    it = iter(full)
    batches = [next(it) for _ in range(7)]  # crosses two epoch boundaries (3 per epoch)
    for start in range(7):
        it = iter(ResumableBatchSampler(10, 3, seed=5, start_step=start))
        assert next(it) == batches[start]
    assert batches[:3] != batches[3:6]  # each epoch draws a new permutation
    assert len({i for b in batches[:3] for i in b}) == 9  # no repeats within an epoch
    with pytest.raises(ConfigError, match="fewer than one batch"):
        ResumableBatchSampler(2, 3, seed=0)


def test_corrupt_truncated_and_foreign_checkpoints_are_refused(tmp_path, registry):
    cfg = config(registry, iterations=1)
    run_dir = nd.train(cfg, registry, run_dir=tmp_path / "r")
    good = list_checkpoints(run_dir)[-1]
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt is not a readable checkpoint"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not an ndevgan checkpoint"):
        load_checkpoint(foreign)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_checkpoint_loading_never_runs_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "ndevgan.checkpoint", "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="never runs code from a checkpoint"):
        load_checkpoint(path)


def test_checkpoint_write_is_atomic(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 1, "config": {}, "model": {}})

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, {"step": 2, "config": {}, "model": {"x": Boom()}})
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary left behind
    assert load_checkpoint(path)["step"] == 1  # the old checkpoint is intact


def test_uint8_batches_are_normalised_like_float_ones():
    from ndevgan_core.contracts import normalise_videos

    clips = torch.randint(0, 256, (2, 4, 5, 6, 3), dtype=torch.uint8)  # (B, T, H, W, C)
    out = normalise_videos(clips)
    assert out.shape == (2, 3, 4, 5, 6) and out.dtype == torch.float32
    assert torch.equal(out[1, 2, 3, 4, 5], (clips[1, 3, 4, 5, 2].float() - 128) / 128)
    assert out.min() >= -1 and out.max() <= 127 / 128
    floats = torch.rand(2, 3, 4, 5, 6) * 2 - 1
    assert normalise_videos(floats) is floats


def test_batch_sampler_passes_the_epoch_to_datasets_that_ask_for_it():
    from ndevgan_core.training.trainer import ResumableBatchSampler

    plain = iter(ResumableBatchSampler(8, 4, seed=0))
    marked = iter(ResumableBatchSampler(8, 4, seed=0, epoch_indices=True))
    first = [next(plain) + next(plain) for _ in range(3)]
    second = [next(marked) + next(marked) for _ in range(3)]
    for epoch, (a, b) in enumerate(zip(first, second, strict=True)):
        assert sorted(a) == list(range(8))  # the same permutation ...
        assert b == [i + 8 * epoch for i in a]  # ... with the epoch added
    resumed = iter(ResumableBatchSampler(8, 4, seed=0, start_step=3, epoch_indices=True))
    assert next(resumed) == second[1][4:]


def test_generator_ema_is_the_weight_average_saved_resumed_and_sampled(tmp_path, registry):
    from ndevgan_core.training.api import load_generator

    cfg = config(registry, iterations=6, checkpoint_every=3, sample_every=100, ema=0.5)
    straight = nd.train(cfg, registry, run_dir=tmp_path / "a")
    state = load_checkpoint(straight)
    ema = state["generator_ema"]
    live = {
        k[len("generator.") :]: v for k, v in state["model"].items() if k.startswith("generator.")
    }
    assert ema.keys() == live.keys()
    moving = [k for k in ema if ema[k].is_floating_point() and "running" not in k]
    assert any(not torch.equal(ema[k], live[k]) for k in moving)  # an average, not a copy
    # the average of a 0.5 decay after one step: halfway between the start and the weights
    one = nd.train(config(registry, iterations=1, sample_every=100, ema=0.5), registry,
                   run_dir=tmp_path / "one")  # fmt: skip
    torch.manual_seed(0)  # the trainer builds from run.seed = 0
    start = assemble(cfg, registry).gan.generator.state_dict()
    after = load_checkpoint(one)
    weights = {
        k[len("generator.") :]: v for k, v in after["model"].items() if k.startswith("generator.")
    }
    key = next(k for k in moving if k.endswith("weight"))
    torch.testing.assert_close(after["generator_ema"][key], (start[key] + weights[key]) / 2)
    # samples, scoring and export load the average
    loaded = load_generator(straight, registry).generator.state_dict()
    assert all(torch.equal(loaded[k], ema[k]) for k in ema)
    # resuming restores it exactly
    nd.train(cfg, registry, run_dir=tmp_path / "b")
    (tmp_path / "b" / "checkpoints" / "step-00000006.pt").unlink()
    resumed = nd.train(cfg, registry, resume=tmp_path / "b" / "checkpoints" / "step-00000003.pt")
    again = load_checkpoint(resumed)["generator_ema"]
    assert all(torch.equal(again[k], ema[k]) for k in ema)


def test_ema_must_be_a_decay_below_one(registry):
    with pytest.raises(ConfigError, match="ema: expected a decay in"):
        config(registry, ema=1.0)


class LearningRates:
    """A plugin that records every optimiser's learning rate at each step."""

    def __init__(self) -> None:
        self.rates: dict[int, dict[str, float]] = {}

    @nd.hookimpl
    def on_step(self, run, step, metrics):
        self.rates[step] = {k: o.param_groups[0]["lr"] for k, o in run.optimizers.items()}


def test_lr_decay_falls_linearly_to_zero_over_the_runs_end_and_resumes_exactly(tmp_path, registry):
    base = config(registry).components["backbone.tgan"].lr
    seen = LearningRates()
    registry.add_plugin(seen)
    cfg = config(registry, iterations=8, checkpoint_every=4, sample_every=100, lr_decay=0.5)
    straight = nd.train(cfg, registry, run_dir=tmp_path / "a")
    # iteration i (0-based) trains at min(1, (8 − i) / 4) of the base rate
    expected = [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]
    for name in ("generator", "discriminator"):
        rates = [seen.rates[step][name] for step in range(1, 9)]
        assert rates == pytest.approx([base * f for f in expected])
    # the schedule is a function of the step: a resumed run trains exactly as the straight one
    nd.train(cfg, registry, run_dir=tmp_path / "b")
    (tmp_path / "b" / "checkpoints" / "step-00000008.pt").unlink()
    resumed = nd.train(cfg, registry, resume=tmp_path / "b" / "checkpoints" / "step-00000004.pt")
    a, b = final_weights(straight), final_weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # and a constant rate gives other weights
    constant = nd.train(config(registry, iterations=8, sample_every=100), registry,
                        run_dir=tmp_path / "c")  # fmt: skip
    c = final_weights(constant)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_lr_decay_must_be_a_fraction(registry):
    with pytest.raises(ConfigError, match=r"lr_decay: expected a fraction in \[0, 1\]"):
        config(registry, lr_decay=1.5)


def test_a_runs_loggers_are_unregistered_when_it_ends(tmp_path, registry):
    seen: list[tuple[str, int]] = []

    @attrs.frozen
    class RecorderConfig:
        tag: str = "a"

    class RecorderLogger:
        def __init__(self, config: RecorderConfig) -> None:
            self.tag = config.tag

        @nd.hookimpl
        def on_step(self, run, step, metrics):
            seen.append((str(run.run_dir.name), step))

    class Provides:
        @nd.hookimpl
        def register_components(self, register):
            register("logger.recorder", RecorderLogger, RecorderConfig)

    registry.add_plugin(Provides())
    raw = fast_raw(iterations=2)
    raw["plugins"]["loggers"] = ["logger.recorder"]
    Trainer(resolve(raw, registry), registry, run_dir=tmp_path / "first").fit()
    Trainer(config(registry, iterations=3), registry, run_dir=tmp_path / "second").fit()
    assert seen == [("first", 1), ("first", 2)]  # none of the second run's steps
