"""Train the shapes classifier that scores IS/FID on ``dataset.shapes``; write the shipped file.

Every step renders a fresh batch of training clips (``shapes_render``, seed ``--seed``),
one shape per clip, each at a random size of 32, 48 or 64 px and on a random background, so
the classifier sees what any backbone's GAN is asked to generate. Mild augmentations that keep
the label (flips in x, y and time, transposition, colour-channel order, brightness/contrast,
pixel noise, blur) make it robust to imperfect generated videos. After training it is evaluated
on clips of another seed (``--seed + 1000``, 1024 clips over every size × background) and
saved with its seed, steps, accuracies and the command line in the file's metadata.

    python tools/train_shapes_c3d.py --threads 1       # the shipped file (9 min on one core)
    python tools/train_shapes_c3d.py --steps 200 --out /tmp/quick.pt

The result depends only on the arguments and the torch build (CPU, the set number of threads).
"""

from __future__ import annotations

import argparse
import math
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ndevgan_core.progress import progress_bar
from ndevgan_plugins import shapes_render
from ndevgan_plugins.shapes_classifier import (
    ShapesClassifier,
    ShapesClassifierConfig,
    resize_videos,
    save_shapes_classifier,
)

DEFAULT_OUT = (
    Path(__file__).resolve().parent.parent
    / "plugins"
    / "ndevgan_plugins"
    / "weights"
    / "shapes_c3d.pt"
)
SIZES = (32, 48, 64)
BACKGROUNDS = shapes_render.BACKGROUNDS
FRAMES = 16
VALIDATION_SEED_OFFSET = 1000
AUGMENTATIONS = (
    "flip x/y/t (p 0.5 each), transpose x↔y (p 0.5), RGB channel permutation, "
    "contrast ×U(0.8, 1.2) and brightness +U(-0.1, 0.1), gaussian noise std U(0, 0.1) (p 0.5), "
    "3×3 box blur (p 0.25)"
)


def render_clips(
    indices: Sequence[int], seed: int, sizes: Sequence[int], backgrounds: Sequence[str]
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Clips ``indices`` of seed ``seed`` as float (3, T, S, S) in [-1, 1], clip ``i`` at size
    ``sizes[i]`` on ``backgrounds[i]``, with their labels."""
    clips, labels = [], []
    for index, size, background in zip(indices, sizes, backgrounds, strict=True):
        video, label = shapes_render.render_video(
            index, seed, FRAMES, size, num_shapes=1, background=background
        )
        clips.append(torch.from_numpy(video).permute(3, 0, 1, 2).float().div_(127.5).sub_(1.0))
        labels.append(label)
    return clips, torch.tensor(labels, dtype=torch.int64)


def augment(clip: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """A label-preserving random variant of one clip (3, T, H, W): every motion class looks
    the same mirrored, transposed or played backwards, and colours are random anyway."""
    u = torch.rand(10, generator=rng).tolist()
    for axis, draw in ((1, u[0]), (2, u[1]), (3, u[2])):
        if draw < 0.5:
            clip = clip.flip(axis)
    if u[3] < 0.5:
        clip = clip.transpose(2, 3)
    clip = clip[torch.randperm(3, generator=rng)]
    clip = clip * (0.8 + 0.4 * u[4]) + (0.2 * u[5] - 0.1)
    if u[6] < 0.5:
        clip = clip + torch.randn(clip.shape, generator=rng) * (0.1 * u[7])
    if u[8] < 0.25:
        clip = F.avg_pool3d(
            clip[None], (1, 3, 3), stride=1, padding=(0, 1, 1), count_include_pad=False
        )[0]
    return clip.clamp(-1.0, 1.0)


def training_batch(
    step: int, batch_size: int, seed: int, rng: torch.Generator, config: ShapesClassifierConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``step``: clips ``step·B … step·B + B - 1`` of seed ``seed`` at random sizes and
    backgrounds, resized to the network's input, then augmented (at that size: cheaper)."""
    draws = torch.randint(0, len(SIZES) * len(BACKGROUNDS), (batch_size,), generator=rng)
    sizes = [SIZES[d % len(SIZES)] for d in draws.tolist()]
    backgrounds = [BACKGROUNDS[d // len(SIZES)] for d in draws.tolist()]
    indices = range(step * batch_size, (step + 1) * batch_size)
    clips, labels = render_clips(indices, seed, sizes, backgrounds)
    inputs = [
        augment(resize_videos(c[None], config.input_size, config.input_frames)[0], rng)
        for c in clips
    ]
    return torch.stack(inputs), labels


def validation_settings(clips: int) -> tuple[list[int], list[str]]:
    """Sizes and backgrounds of the validation clips: every combination equally often."""
    combos = [(s, b) for s in SIZES for b in BACKGROUNDS]
    chosen = [combos[i % len(combos)] for i in range(clips)]
    return [s for s, _ in chosen], [b for _, b in chosen]


@torch.no_grad()
def evaluate(
    model: ShapesClassifier, seed: int, clips: int, batch_size: int = 64, progress: bool = True
) -> dict[str, float]:
    """Accuracy of ``model`` on ``clips`` fresh clips of ``seed`` (no augmentation), overall
    and per size and background; the model is put in eval mode."""
    model.eval()
    sizes, backgrounds = validation_settings(clips)
    correct = torch.zeros(clips, dtype=torch.bool)
    with progress_bar(clips, desc="validate", unit="clip", disable=not progress) as bar:
        for start in range(0, clips, batch_size):
            stop = min(start + batch_size, clips)
            batch, labels = render_clips(
                range(start, stop), seed, sizes[start:stop], backgrounds[start:stop]
            )
            inputs = torch.cat(
                [
                    resize_videos(c[None], model.config.input_size, model.config.input_frames)
                    for c in batch
                ]
            )
            predicted = model(inputs)["logits"].argmax(dim=1)
            correct[start:stop] = predicted == labels
            bar.update(stop - start)
    result = {"all": correct.float().mean().item()}
    for size in SIZES:
        mask = torch.tensor([s == size for s in sizes])
        result[f"size{size}"] = correct[mask].float().mean().item()
    for background in BACKGROUNDS:
        mask = torch.tensor([b == background for b in backgrounds])
        result[background] = correct[mask].float().mean().item()
    return result


def train(
    seed: int = 0,
    steps: int = 1500,
    batch_size: int = 32,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    config: ShapesClassifierConfig | None = None,
    progress: bool = True,
) -> tuple[ShapesClassifier, dict[str, Any]]:
    """Train a classifier from ``seed``: AdamW, linear warm-up over 5 % of the steps then
    cosine decay. Returns the model (in train mode) and a summary with the accuracy over the
    last 100 training batches."""
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    config = config or ShapesClassifierConfig()
    model = ShapesClassifier(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    warmup = max(1, steps // 20)

    def rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    recent: list[float] = []
    model.train()
    with progress_bar(steps, desc="train", unit="step", disable=not progress) as bar:
        for step in range(steps):
            inputs, labels = training_batch(step, batch_size, seed, rng, config)
            logits = model(inputs)["logits"]
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            recent = [*recent[-99:], (logits.argmax(1) == labels).float().mean().item()]
            bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{np.mean(recent):.3f}", refresh=False)
            bar.update()
    summary = {"train_accuracy_last_100_batches": float(np.mean(recent)) if recent else 0.0}
    return model, summary


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: train, validate on a held-out seed, save, print the accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, clips and order")
    parser.add_argument("--steps", type=int, default=1500, help="training steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (AdamW)")
    parser.add_argument("--val-clips", type=int, default=1024, help="held-out clips")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = ShapesClassifierConfig()
    started = time.perf_counter()
    model, summary = train(
        args.seed, args.steps, args.batch_size, args.lr, config=config, progress=not args.quiet
    )
    train_seconds = time.perf_counter() - started
    val_seed = args.seed + VALIDATION_SEED_OFFSET
    accuracy = evaluate(model, val_seed, args.val_clips, progress=not args.quiet)
    parameters = sum(p.numel() for p in model.parameters())
    command = "python tools/train_shapes_c3d.py " + shlex.join(
        sys.argv[1:] if argv is None else list(argv)
    )
    metadata = {
        "command": command.strip(),
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "optimizer": "AdamW (weight decay 1e-4), 5 % linear warm-up, cosine decay",
        "train_seconds": round(train_seconds, 1),
        "threads": args.threads,
        "parameters": parameters,
        "train_accuracy": summary["train_accuracy_last_100_batches"],
        "val_accuracy": accuracy["all"],
        "val_accuracy_by_setting": {k: v for k, v in accuracy.items() if k != "all"},
        "val_seed": val_seed,
        "val_clips": args.val_clips,
        "dataset": {
            "renderer": "ndevgan_plugins.shapes_render",
            "train_seed": args.seed,
            "train_clips": args.steps * args.batch_size,
            "frames": FRAMES,
            "sizes": list(SIZES),
            "backgrounds": list(BACKGROUNDS),
            "num_shapes": 1,
        },
        "augmentations": AUGMENTATIONS,
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
    }
    path = save_shapes_classifier(args.out, model.eval(), metadata)
    size_kib = path.stat().st_size / 1024
    print(
        f"trained {parameters:,} parameters in {train_seconds:.0f} s; held-out accuracy "
        f"{accuracy['all']:.4f} on {args.val_clips} clips of seed {val_seed} ("
        + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items() if k != "all")
        + f"); wrote {path} ({size_kib:.0f} KiB)"
    )


if __name__ == "__main__":
    main()
