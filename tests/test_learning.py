"""Training does something: on dataset.shapes, a short TGAN-ODE tiny run moves the critic's
real/fake gap and the samples the way a working GAN does."""

from __future__ import annotations

import json

import torch

import ndevgan_core as nd
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import make_dataset, resolve
from ndevgan_core.training.api import load_generator, sample_videos
from ndevgan_core.training.trainer import Trainer

STEPS = 80


def test_short_run_separates_then_closes_the_gap_and_moves_samples(tmp_path):
    registry = Registry(entry_points=False, disabled=())
    raw = {
        "run": {
            "iterations": STEPS,
            "log_every": 5,
            "sample_every": STEPS,
            "checkpoint_every": 10,
            "keep_checkpoints": 100,
            "progress": False,
        },
        "plugins": {"backbone": "backbone.tgan", "temporal": "temporal.ode"},
        "backbone": {"tgan": {"preset": "tiny"}},
    }
    config = resolve(raw, registry)
    trainer = Trainer(config, registry, run_dir=tmp_path / "run")
    trainer.save()  # step 0: the untrained generator
    run_dir = trainer.fit()
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    gap = [r["d_real"] - r["d_fake"] for r in log]
    # the critic learns to tell real from fake…
    assert max(gap) > 1.0, gap
    # …and the generator then closes much of that gap. With the WGAN critic at lr 1e-3 the gap
    # then opens and closes again as both improve (measured: 4.35 at step 5, 0.33 at step 10,
    # then 0.03–4.1), so what must hold is that a separation is followed by a closing; a
    # generator that does not learn leaves the gap growing
    assert any(
        later < 0.5 * gap[i] for i in range(len(gap)) if gap[i] > 1.0 for later in gap[i + 1 :]
    ), gap

    dataset = make_dataset(
        config, registry, nd.get_plugin("backbone.tgan").factory(config.components["backbone.tgan"])
    )
    real = torch.stack([dataset[i]["video"] for i in range(32)])

    def distance_to_real(step: int) -> float:
        gen = load_generator(run_dir / "checkpoints" / f"step-{step:08d}.pt", registry)
        fake = sample_videos(gen.generator, 32, seed=0)
        # per-channel mean and spread of pixels: a generator that learned nothing is far off
        stats = [(v.mean(dim=(0, 2, 3, 4)), v.std(dim=(0, 2, 3, 4))) for v in (fake, real)]
        return float(sum((a - b).abs().sum() for a, b in zip(*stats)))

    # (from step 0: at lr 1e-3 the colour statistics are close by step 20 and then oscillate
    # around the real ones — measured 0.18–1.16 at steps 10–80)
    first, last = distance_to_real(0), distance_to_real(STEPS)
    assert last < 0.5 * first, (first, last)
