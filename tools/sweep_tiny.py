"""Find the `tiny` recipe by measurement: train recipe variants × seeds of the demo (TGAN-ODE
`tiny` on dataset.shapes) and score each with the shipped shapes classifier.

Each trial is the real command a user runs — ``ndevgan run`` with the variant's ``--set``
options, then ``ndevgan eval`` on its final checkpoint — in its own process with one thread,
``--parallel`` trials at a time (2 on a 2-core machine: each has a core). It says when each
trial starts and ends its training, prints one row per scored checkpoint (training minutes, IS
and FID with the samples asked for) and a summary per variant (mean ± std over seeds), and
writes both as JSON. A trial whose command fails is reported in one line (ndevgan's own error)
and left out; the others go on, and the sweep then exits non-zero.

    python tools/sweep_tiny.py --list
    python tools/sweep_tiny.py --variants baseline hinge-sn-adam-ema --seeds 0 --samples 512
    python tools/sweep_tiny.py --variants demo --seeds 0 1 2 --samples 2048 --iterations 0

``--iterations 0`` keeps each variant's own iteration count (the demo's, unless the variant
sets one). The table of the last full sweep is in docs/TINY_RECIPE.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REUSE = "backbone.tgan.generator_fakes=reuse"
NEAREST = "backbone.tgan.upsample=nearest"
TRANSPOSED = "backbone.tgan.upsample=transposed"
BEFORE_THE_DARK_START = ["backbone.tgan.sprite_size=half", "backbone.tgan.sprite_background=random"]
"""The sprite options the demo left at their defaults until session 16 (it now sets both): the
variants measured before then start from them, so rerunning them runs what was measured."""
BEFORE_THE_EDGES = ["backbone.tgan.critic_edges=0", "run.lr_decay=0"]
"""The demo's critic and learning rates until session 21 (it now sets ``critic_edges = 2``
and ``lr_decay = 0.5``): every variant measured before then starts from them."""
SPRITE = [*BEFORE_THE_EDGES, *BEFORE_THE_DARK_START, "backbone.tgan.image_generator=sprite"]
SPRITE_G32 = [*SPRITE, "backbone.tgan.g_channels=32"]
SPRITE_FULL = [*SPRITE, "backbone.tgan.g_channels=16", "backbone.tgan.sprite_size=full"]
SPRITE_DARK = [*SPRITE_FULL, "backbone.tgan.sprite_background=dark"]
DARK_POLAR = [*SPRITE_DARK, "backbone.tgan.sprite_shape=polar"]
EDGES_DECAY = [*SPRITE_DARK, "backbone.tgan.critic_edges=2", "run.lr_decay=0.5"]
"""The demo of session 21, spelt out so that the variants measured on it keep running it."""
# session 23: the feature critic's encoder learns to the run's end (from real frames only), and
# also from the critic step's fakes, held together apart from the real frames (ContraD's)
FEATURES_ALWAYS = [*EDGES_DECAY, "backbone.tgan.feature_encoder_steps=1000000"]
FEATURES_CONTRAD = [*FEATURES_ALWAYS, "backbone.tgan.feature_encoder_fakes=true"]
CONTRAD4 = [*FEATURES_CONTRAD, "backbone.tgan.feature_critic=4"]
"""Session 23's ``features4-contrad``, on which session 24's variants build."""
DARK_POLAR24 = [*DARK_POLAR, "backbone.tgan.sprite_outline_angles=24"]
NS_R1_ADAM = [
    "backbone.tgan.loss=nonsaturating",
    "backbone.tgan.critic_norm=none",
    "backbone.tgan.clip_every=0",
    "backbone.tgan.optimizer=adam",
    "backbone.tgan.beta1=0.0",
    "backbone.tgan.beta2=0.99",
]
ADAM = ["backbone.tgan.optimizer=adam", "backbone.tgan.beta1=0.0", "backbone.tgan.beta2=0.9"]
HINGE_SN = [
    "backbone.tgan.loss=hinge",
    "backbone.tgan.critic_norm=spectral",
    "backbone.tgan.clip_every=0",
]

ADAM_DCGAN = [
    "backbone.tgan.optimizer=adam",
    "backbone.tgan.beta1=0.5",
    "backbone.tgan.beta2=0.999",
]
NS_R1 = [
    "backbone.tgan.loss=nonsaturating",
    "backbone.tgan.critic_norm=none",
    "backbone.tgan.r1=1.0",
    "backbone.tgan.clip_every=0",
]

OLD_TINY = [
    "backbone.tgan.lr=2e-4",
    "backbone.tgan.upsample=transposed",
    "backbone.tgan.generator_fakes=fresh",
]
"""The `tiny` recipe before this search (ndevgan 0.1): the variants measured against it
start from it, so their rows stay what they were."""

BEFORE: dict[str, list[str]] = {
    # ndevgan 0.1's tiny recipe: WGAN + singular value clipping, RMSprop 2e-4, batch 8
    "baseline": [
        "backbone.tgan.loss=wgan",
        "backbone.tgan.critic_norm=batchnorm",
        "backbone.tgan.clip_every=5",
        "backbone.tgan.optimizer=rmsprop",
        "backbone.tgan.lr=2e-4",
        "run.ema=0.0",
    ],
    "wgan-adam": ["backbone.tgan.loss=wgan", "backbone.tgan.clip_every=5", *ADAM],
    "hinge-sn-adam": [*HINGE_SN, *ADAM, "run.ema=0.0"],
    "hinge-sn-adam-ema": [*HINGE_SN, *ADAM, "run.ema=0.99"],
    "hinge-sn-adam-ema-b16": [*HINGE_SN, *ADAM, "run.ema=0.99", "backbone.tgan.batch_size=16"],
    "hinge-sn-adam-ema-lr4": [*HINGE_SN, *ADAM, "run.ema=0.99", "backbone.tgan.lr=4e-4"],
    # the DCGAN recipe: non-saturating loss, batch-norm critic, Adam(0.5, 0.999), no clipping
    "ns-bn-adam": ["backbone.tgan.loss=nonsaturating", "backbone.tgan.clip_every=0", *ADAM_DCGAN],
    "hinge-bn-adam": ["backbone.tgan.loss=hinge", "backbone.tgan.clip_every=0", *ADAM_DCGAN],
    # StyleGAN's regulariser: no normalisation in the critic, R1 on real videos
    "ns-r1-adam": [*NS_R1, *ADAM_DCGAN],
    "ns-r1-adam-d32": [*NS_R1, *ADAM_DCGAN, "backbone.tgan.d_channels=32"],
    "ns-r1-adam-ttur": [*NS_R1, *ADAM_DCGAN, "backbone.tgan.lr=1e-4", "backbone.tgan.d_lr=4e-4"],
    "ns-r1-adam-ema": [*NS_R1, *ADAM_DCGAN, "run.ema=0.99"],
    # the shipped recipe's neighbours: learning rate, widths, batch
    "demo-lr5e-4": ["backbone.tgan.lr=5e-4"],
    "demo-lr1e-3": ["backbone.tgan.lr=1e-3"],
    "demo-lr1e-3-b16": ["backbone.tgan.lr=1e-3", "backbone.tgan.batch_size=16"],
    "demo-lr1e-3-g32": ["backbone.tgan.lr=1e-3", "backbone.tgan.g_channels=32"],
    "demo-lr5e-4-ema": ["backbone.tgan.lr=5e-4", "run.ema=0.99"],
    "demo-lr5e-4-d32": ["backbone.tgan.lr=5e-4", "backbone.tgan.d_channels=32"],
    "demo-g32": ["backbone.tgan.g_channels=32"],
    "demo-d32": ["backbone.tgan.d_channels=32"],
    "demo-b16": ["backbone.tgan.batch_size=16"],
}

CONVOLUTIONAL: dict[str, list[str]] = {
    **{name: [*OLD_TINY, *sets] for name, sets in BEFORE.items()},
    # this search: one rendering per iteration, higher rates, a frame critic, critic norms,
    # nearest-neighbour up-sampling (the variants without it use transposed convolutions)
    "lr1e-3-reuse": [TRANSPOSED, "backbone.tgan.lr=1e-3", REUSE],
    "lr2e-3-reuse": [TRANSPOSED, "backbone.tgan.lr=2e-3", REUSE],
    "lr3e-3-reuse": [TRANSPOSED, "backbone.tgan.lr=3e-3", REUSE],
    "lr2e-3-reuse-ema": [TRANSPOSED, "backbone.tgan.lr=2e-3", REUSE, "run.ema=0.99"],
    "lr2e-3-reuse-frame4": [
        TRANSPOSED,
        "backbone.tgan.lr=2e-3",
        REUSE,
        "backbone.tgan.frame_critic=4",
    ],
    "lr2e-3-reuse-d32": [TRANSPOSED, "backbone.tgan.lr=2e-3", REUSE, "backbone.tgan.d_channels=32"],
    "lr1e-3-reuse-frame4": [
        TRANSPOSED,
        "backbone.tgan.lr=1e-3",
        REUSE,
        "backbone.tgan.frame_critic=4",
    ],
    "lr1e-3-reuse-nearest": ["backbone.tgan.lr=1e-3", REUSE, NEAREST],
    "lr1e-3-reuse-nearest-ema": ["backbone.tgan.lr=1e-3", REUSE, NEAREST, "run.ema=0.99"],
    "lr1e-3-reuse-nonorm": [
        TRANSPOSED,
        "backbone.tgan.lr=1e-3",
        REUSE,
        "backbone.tgan.critic_norm=none",
    ],
    "ns-bn-adam1e-3-reuse": [
        TRANSPOSED,
        "backbone.tgan.loss=nonsaturating",
        "backbone.tgan.clip_every=0",
        "backbone.tgan.optimizer=adam",
        "backbone.tgan.lr=1e-3",
        REUSE,
    ],
    "hinge-sn-adam1e-3-reuse-ema": [
        TRANSPOSED,
        *HINGE_SN,
        *ADAM,
        "backbone.tgan.lr=1e-3",
        REUSE,
        "run.ema=0.99",
    ],
    # session 9: on the shipped recipe (nearest, reuse, lr 1e-3): a wider critic or image G,
    # and the textbook losses with nearest up-sampling
    "d32": ["backbone.tgan.d_channels=32"],
    "g32-d32": ["backbone.tgan.g_channels=32", "backbone.tgan.d_channels=32"],
    "ns-bn-adam-nearest": [
        "backbone.tgan.loss=nonsaturating",
        "backbone.tgan.clip_every=0",
        *ADAM_DCGAN,
        "backbone.tgan.lr=2e-4",
    ],
    "hinge-sn-adam-nearest-ema": [*HINGE_SN, *ADAM, "backbone.tgan.lr=2e-4", "run.ema=0.99"],
    "d32-frame4": ["backbone.tgan.d_channels=32", "backbone.tgan.frame_critic=4"],
    # the 0.1 demo, and it with the authors' choices where `tiny` keeps ndevgan's (measured
    # against each other in docs/FIDELITY.md)
    "demo-0.1": OLD_TINY,
    "published-gamma-clip": [*OLD_TINY, "backbone.tgan.gamma_clip=published"],
    "published-f-bias": [*OLD_TINY, "temporal.ode.init=xavier_uniform"],
    "published-both": [
        *OLD_TINY,
        "backbone.tgan.gamma_clip=published",
        "temporal.ode.init=xavier_uniform",
    ],
}

"""The searches before the sprite G1, on the demo of then (TGAN's convolutional G1)."""

CONVOLUTIONAL_DEMO = [
    *BEFORE_THE_EDGES,
    *BEFORE_THE_DARK_START,
    "backbone.tgan.image_generator=convolutional",
    "backbone.tgan.g_channels=16",
    "run.iterations=750",
]
"""The demo before the sprite G1 (the `tiny` preset as it is, 750 iterations): the variants of
the earlier searches start from it, so their rows stay what they were."""

VARIANTS: dict[str, list[str]] = {
    **{name: [*CONVOLUTIONAL_DEMO, *sets] for name, sets in CONVOLUTIONAL.items()},
    # the sprite image generator (a sprite per video, placed per frame)
    "sprite": [*SPRITE, "backbone.tgan.g_channels=16"],
    "sprite-d32": [*SPRITE, "backbone.tgan.g_channels=16", "backbone.tgan.d_channels=32"],
    "sprite-g32": [*SPRITE, "backbone.tgan.g_channels=32"],
    "sprite-g32-ema": [*SPRITE_G32, "run.ema=0.99"],
    "sprite-g32-lr2e-3": [*SPRITE_G32, "backbone.tgan.lr=2e-3"],
    "sprite-g32-lr2e-3-ema": [
        *SPRITE_G32,
        "backbone.tgan.lr=2e-3",
        "run.ema=0.999",
    ],
    "sprite-g32-frame4": [*SPRITE_G32, "backbone.tgan.frame_critic=4"],
    "sprite-g32-d32": [*SPRITE_G32, "backbone.tgan.d_channels=32"],
    "sprite-g32-flat": [*SPRITE_G32, "backbone.tgan.sprite_colour=flat"],
    "sprite-g32-b16": [*SPRITE_G32, "backbone.tgan.batch_size=16"],
    # session 11: the textbook losses again, now with the sprite G1
    "sprite-g32-ns-bn-adam": [
        *SPRITE_G32,
        "backbone.tgan.loss=nonsaturating",
        "backbone.tgan.clip_every=0",
        *ADAM_DCGAN,
        "backbone.tgan.lr=2e-4",
    ],
    "sprite-g32-hinge-sn-adam": [
        *SPRITE_G32,
        *HINGE_SN,
        *ADAM,
        "backbone.tgan.lr=2e-4",
    ],
    # a linear fall of the learning rates to zero (run.lr_decay) after a fast start
    "sprite-g32-lr2e-3-decay": [
        *SPRITE_G32,
        "backbone.tgan.lr=2e-3",
        "run.lr_decay=1.0",
    ],
    "sprite-g32-decay": [*SPRITE_G32, "run.lr_decay=0.5"],
    "sprite-g32-decay-full": [
        *SPRITE_G32,
        "run.lr_decay=0.5",
        "backbone.tgan.sprite_size=full",
    ],
    "sprite-g32-full": [*SPRITE_G32, "backbone.tgan.sprite_size=full"],
    "sprite-g16-full": SPRITE_FULL,
    # session 12: the full-size sprite with a non-saturating loss and R1 instead of clipping
    # (Adam with β = (0, 0.99), no critic normalisation), and a faster critic under WGAN
    "sprite-full-ns-r1": [*SPRITE_FULL, *NS_R1_ADAM, "backbone.tgan.r1=0.05"],
    "sprite-full-ns-r1-lr2e-3": [
        *SPRITE_FULL,
        *NS_R1_ADAM,
        "backbone.tgan.r1=0.05",
        "backbone.tgan.lr=2e-3",
    ],
    "sprite-full-ns-r1x10": [*SPRITE_FULL, *NS_R1_ADAM, "backbone.tgan.r1=0.5"],
    "sprite-full-dlr2e-3": [*SPRITE_FULL, "backbone.tgan.d_lr=2e-3"],
    # session 15: anti-aliased rendering (each pixel the mean of 2×2 or 4×4 bilinear samples);
    # a critic twice as wide with the full-size sprite (defined, not yet run)
    "sprite-full-ss2": [*SPRITE_FULL, "backbone.tgan.sprite_supersample=2"],
    "sprite-full-ss4": [*SPRITE_FULL, "backbone.tgan.sprite_supersample=4"],
    "sprite-full-dark": SPRITE_DARK,
    "dark-d32": [*SPRITE_DARK, "backbone.tgan.d_channels=32"],
    "dark-b16": [*SPRITE_DARK, "backbone.tgan.batch_size=16"],
    "dark-decay": [*SPRITE_DARK, "run.lr_decay=0.5"],
    "dark-mbstd": [*SPRITE_DARK, "backbone.tgan.minibatch_std=true"],
    "dark-still": [*SPRITE_DARK, "backbone.tgan.sprite_pose_init=still"],
    "dark-frame4": [*SPRITE_DARK, "backbone.tgan.frame_critic=4"],
    "dark-frame8": [*SPRITE_DARK, "backbone.tgan.frame_critic=8"],
    "dark-frame2": [*SPRITE_DARK, "backbone.tgan.frame_critic=2"],
    "dark-frame4-d32": [
        *SPRITE_DARK,
        "backbone.tgan.frame_critic=4",
        "backbone.tgan.d_channels=32",
    ],
    "dark-sde": [*SPRITE_DARK, "plugins.temporal=temporal.sde"],
    "dark-turn025": [*SPRITE_DARK, "backbone.tgan.sprite_turn_gain=0.25"],
    "dark-shift3": [*SPRITE_DARK, "backbone.tgan.sprite_shift_gain=3"],
    "dark-turn025-shift3": [
        *SPRITE_DARK,
        "backbone.tgan.sprite_turn_gain=0.25",
        "backbone.tgan.sprite_shift_gain=3",
    ],
    "dark-turn01-shift3": [
        *SPRITE_DARK,
        "backbone.tgan.sprite_turn_gain=0.1",
        "backbone.tgan.sprite_shift_gain=3",
    ],
    "dark-turn025-shift3-frame4": [
        *SPRITE_DARK,
        "backbone.tgan.sprite_turn_gain=0.25",
        "backbone.tgan.sprite_shift_gain=3",
        "backbone.tgan.frame_critic=4",
    ],
    # session 18: an average of the generator's weights, the textbook loss and one colour per
    # video, on the dark start
    "dark-ema99": [*SPRITE_DARK, "run.ema=0.99"],
    "dark-ema999": [*SPRITE_DARK, "run.ema=0.999"],
    "dark-ns-r1x10": [*SPRITE_DARK, *NS_R1_ADAM, "backbone.tgan.r1=0.5"],
    "dark-flat": [*SPRITE_DARK, "backbone.tgan.sprite_colour=flat"],
    # the sprite as a filled star-shaped outline of one colour instead of painted pixels
    "dark-polar": DARK_POLAR,
    "dark-polar24": DARK_POLAR24,
    # session 19: an InfoGAN categorical code for the sprite (the first coordinate of z picks
    # one of N values; a head on the video critic learns to tell it, and G is rewarded when it
    # can)
    "dark-code5": [*SPRITE_DARK, "backbone.tgan.shape_code=5"],
    "dark-code25": [*SPRITE_DARK, "backbone.tgan.shape_code=25"],
    "dark-polar24-code5": [*DARK_POLAR24, "backbone.tgan.shape_code=5"],
    "dark-flat-code5": [
        *SPRITE_DARK,
        "backbone.tgan.sprite_colour=flat",
        "backbone.tgan.shape_code=5",
    ],
    "dark-polar24-code5x3": [
        *DARK_POLAR24,
        "backbone.tgan.shape_code=5",
        "backbone.tgan.shape_code_weight=3",
    ],
    # session 20: a critic whose layers keep the shapes' detail (3×3 convolutions of stride 1,
    # each followed by a 2×2×2 max-pool, instead of 4×4 convolutions of stride 2)
    "dark-maxpool": [*SPRITE_DARK, "backbone.tgan.critic_downsample=maxpool"],
    "dark-maxpool-d8": [
        *SPRITE_DARK,
        "backbone.tgan.critic_downsample=maxpool",
        "backbone.tgan.d_channels=8",
    ],
    # ... whose score also reads each feature channel's maximum over time and space
    "dark-maxpool-maxscore": [
        *SPRITE_DARK,
        "backbone.tgan.critic_downsample=maxpool",
        "backbone.tgan.critic_max_score=true",
    ],
    # session 21: the critics score augmented videos, real and fake alike (DiffAugment), so
    # what tells them apart must survive a shift, a colour change or a hidden square
    "dark-aug-t": [*SPRITE_DARK, "backbone.tgan.critic_augment=translation"],
    "dark-aug-ct": [*SPRITE_DARK, "backbone.tgan.critic_augment=colour,translation"],
    "dark-aug-ctc": [*SPRITE_DARK, "backbone.tgan.critic_augment=colour,translation,cutout"],
    # ... and critics that also see each pixel's differences to its neighbours, times a gain,
    # so that within their Lipschitz bound edges and corners count for more
    "dark-edges2": [*SPRITE_DARK, "backbone.tgan.critic_edges=2"],
    "dark-edges4": [*SPRITE_DARK, "backbone.tgan.critic_edges=4"],
    # (gain 2 peaks by 2,000 steps and then falls: its learning rates decay over the second half)
    "dark-edges2-decay": EDGES_DECAY,
    "sprite-full-d32": [*SPRITE_FULL, "backbone.tgan.d_channels=32"],
    # session 22, from the demo of session 21: a third critic scores 4 frames of each video by
    # the features of a frame encoder that teaches itself the shapes from real frames (SimCLR)
    "features4": [*EDGES_DECAY, "backbone.tgan.feature_critic=4"],
    # session 23: the same critic with FEATURES_ALWAYS's and FEATURES_CONTRAD's encoders
    "features4-always": [*FEATURES_ALWAYS, "backbone.tgan.feature_critic=4"],
    "features4-contrad": CONTRAD4,
    "features8-contrad": [*FEATURES_CONTRAD, "backbone.tgan.feature_critic=8"],
    "features4-contrad-every2": [
        *FEATURES_CONTRAD,
        "backbone.tgan.feature_critic=4",
        "backbone.tgan.feature_encoder_every=2",
    ],
    # session 24: the generator also matches the spread of the kept real frames over the
    # ContraD encoder's contrastive space (feature_mmd) and of the batch's real videos over the
    # video critic's last features (video_mmd)
    "features4-contrad-mmd10": [*CONTRAD4, "backbone.tgan.feature_mmd=10"],
    "features4-contrad-mmd30": [*CONTRAD4, "backbone.tgan.feature_mmd=30"],
    "features4-contrad-mmd100": [*CONTRAD4, "backbone.tgan.feature_mmd=100"],
    "features4-contrad-mmd10-video10": [
        *CONTRAD4,
        "backbone.tgan.feature_mmd=10",
        "backbone.tgan.video_mmd=10",
    ],
    "features4-contrad-mmd30-video10": [
        *CONTRAD4,
        "backbone.tgan.feature_mmd=30",
        "backbone.tgan.video_mmd=10",
    ],
    # the demo as shipped: whatever the tiny preset and demo config say now
    "demo": [],
    # the demo's recipe with each other temporal family
    "demo-conv1d": ["plugins.temporal=temporal.conv1d"],
    "demo-ode2": ["temporal.ode.order=2"],
    "demo-ode3": ["temporal.ode.order=3"],
    "demo-sde": ["plugins.temporal=temporal.sde"],
    # session 24: the demo with video_mmd alone (no feature critic: its cost is one more pass
    # of the real batch through the video critic)
    "demo-video10": ["backbone.tgan.video_mmd=10"],
}


FAILED: list[str] = []
"""The trials whose training or scoring failed, one line each (the sweep goes on without them
and exits non-zero at the end)."""


def succeeded(command: list[str], env: dict[str, str], name: str, what: str) -> bool:
    """Run one of a trial's commands; on failure record and print one line with its last line
    of output (ndevgan's own one-line error) and return False."""
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode == 0:
        return True
    said = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
    line = f"{name}: {what} failed (exit {done.returncode}): {said}"
    FAILED.append(line)
    print(line, flush=True)
    return False


def trial(variant: str, seed: int, args: argparse.Namespace, root: Path) -> list[dict]:
    """Train and score one (variant, seed); returns its rows (one per scored checkpoint)."""
    name = f"{variant}-s{seed}"
    sets = [*VARIANTS[variant], f"run.seed={seed}", f"run.threads={args.threads}"]
    sets += ["run.progress=false", f"run.out={root}", f"run.name={name}"]
    sets += ["run.sample_every=100000"]
    if args.iterations:
        sets.append(f"run.iterations={args.iterations}")
    if args.every:
        sets += [f"run.checkpoint_every={args.every}", "run.keep_checkpoints=1000"]
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "NDEVGAN_CACHE": str(root / "cache")}
    command = [sys.executable, "-m", "ndevgan_core", "run"]
    for item in sets:
        command += ["--set", item]
    start_wall = time.time()
    start = time.perf_counter()
    print(f"{name}: training", flush=True)
    if not succeeded(command, env, name, "ndevgan run"):
        return []
    train_minutes = (time.perf_counter() - start) / 60
    run_dir = root / name
    checkpoints = sorted((run_dir / "checkpoints").glob("step-*.pt"))
    if not args.every:
        checkpoints = checkpoints[-1:]
    print(f"{name}: trained in {train_minutes:.2f} min, scoring", flush=True)
    clock = {}  # step → wall minutes since the command started, from the run's own log
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        clock[record["step"]] = (record["time"] - start_wall) / 60
    rows = []
    for checkpoint in checkpoints:
        step = int(checkpoint.stem.split("-")[1])
        out = root / f"{name}-{step}.json"
        score = [sys.executable, "-m", "ndevgan_core", "eval", str(checkpoint), "--n"]
        score += [str(args.samples), "--no-progress", "--out", str(out)]
        if not succeeded(score, env, name, f"ndevgan eval of step {step}"):
            return rows
        results = {r["metric"]: r["mean"] for r in json.loads(out.read_text())["results"]}
        minutes = train_minutes if checkpoint == checkpoints[-1] else clock.get(step, math.nan)
        row = {
            "variant": variant,
            "seed": seed,
            "step": step,
            "train_minutes": minutes,
            "is": results["is"],
            "fid": results["fid"],
            "samples": args.samples,
        }
        print(
            f"{variant:28s} seed {seed}  step {step:6d}  {minutes:5.2f} min  "
            f"IS {row['is']:6.2f}  FID {row['fid']:7.1f}",
            flush=True,
        )
        rows.append(row)
    return rows


def group_by_step(rows: list[dict]) -> dict[tuple[str, int], list[dict]]:
    """Rows grouped by (variant, step), in order of appearance and step."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["step"]):
        groups.setdefault((r["variant"], r["step"]), []).append(r)
    return dict(sorted(groups.items(), key=lambda kv: (list(VARIANTS).index(kv[0][0]), kv[0][1])))


def summary(rows: list[dict]) -> list[dict]:
    """Mean ± std over seeds per variant."""
    out = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]

        def stats(key: str, mine: list[dict] = mine) -> tuple[float, float]:
            values = [r[key] for r in mine]
            return statistics.mean(values), statistics.pstdev(values)

        out.append(
            {
                "variant": variant,
                "seeds": len(mine),
                "train_minutes": stats("train_minutes"),
                "is": stats("is"),
                "fid": stats("fid"),
                "min_is": min(r["is"] for r in mine),
                "max_fid": max(r["fid"] for r in mine),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--iterations", type=int, default=0, help="0: each variant's own")
    parser.add_argument("--samples", type=int, default=512, help="videos scored per trial")
    parser.add_argument("--parallel", type=int, default=2, help="trials at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per trial")
    parser.add_argument(
        "--every",
        type=int,
        default=0,
        help="also score the checkpoint of every N steps (the IS/FID-against-minutes frontier)",
    )
    parser.add_argument("--out", default="sweep_tiny.json", help="JSON of every row")
    parser.add_argument("--list", action="store_true", help="print the variants and exit")
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="train the runs in DIR and keep them (default: a temporary "
        "directory, removed at the end)",
    )
    args = parser.parse_args()
    if args.list:
        for name, sets in VARIANTS.items():
            print(f"{name}: {' '.join(sets) or '(the shipped demo)'}")
        return
    jobs = [(v, s) for v in args.variants for s in args.seeds]
    with tempfile.TemporaryDirectory(prefix="ndevgan-sweep-") as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            rows = [
                row for rows in pool.map(lambda job: trial(*job, args, root), jobs) for row in rows
            ]
    last_step = {}
    for r in rows:
        key = (r["variant"], r["seed"])
        last_step[key] = max(last_step.get(key, 0), r["step"])
    table = summary([r for r in rows if r["step"] == last_step[(r["variant"], r["seed"])]])
    if args.every:
        print("\n| variant | step | minutes | IS | FID |  (mean over seeds)")
        print("|---|---:|---:|---:|---:|")
        for (variant, step), mine in group_by_step(rows).items():
            print(
                f"| {variant} | {step:,} | {statistics.mean(r['train_minutes'] for r in mine):.1f}"
                f" | {statistics.mean(r['is'] for r in mine):.2f}"
                f" | {statistics.mean(r['fid'] for r in mine):.1f} |"
            )
    print("\n| variant | seeds | train min | IS | FID | worst IS | worst FID |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in table:
        print(
            f"| {r['variant']} | {r['seeds']} | {r['train_minutes'][0]:.2f} | "
            f"{r['is'][0]:.2f} ± {r['is'][1]:.2f} | {r['fid'][0]:.1f} ± {r['fid'][1]:.1f} | "
            f"{r['min_is']:.2f} | {r['max_fid']:.1f} |"
        )
    Path(args.out).write_text(json.dumps({"rows": rows, "summary": table}, indent=1) + "\n")
    if FAILED:
        sys.exit(
            f"sweep: {len(FAILED)} of {len(jobs)} trials failed (above); the rest are in {args.out}"
        )


if __name__ == "__main__":
    main()
