"""Does a TGAN run's video critic see the data's shapes? Linear probes on its last features.

    python tools/critic_probe.py runs/RUN/checkpoints/step-00004000.pt

Renders real `dataset.shapes` clips (4,000 to fit a probe, 1,000 held out), passes them through
the checkpoint's video critic (and, if the run has one, its frame critic on one frame of each
clip) up to the layer before the score, and fits a linear classifier (a probe) on those
features for the shape and for the motion; prints the held-out accuracy of each (chance: 0.20),
beside the same critic at its initialisation. Then, as the control that says what the critic's
architecture could see at all, it trains a fresh video critic with a linear head on the shape
labels directly (``--supervised-steps`` Adam steps) and prints its held-out accuracy, with the
head on the flattened features (as the critic's score reads them) and on their maximum over
time and space. Figures in docs/TINY_RECIPE.md.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.nn import functional as F

from ndevgan_core.config import build_config
from ndevgan_core.training.checkpoint import load_checkpoint
from ndevgan_plugins import shapes_render
from ndevgan_plugins.tgan import Critic, TGANConfig

TRAIN_CLIPS = 4000
HELD_OUT_CLIPS = 1000
FIRST_INDEX = 20_000  # clips the runs' own batches are unlikely to have shown the critic


def probe_accuracy(
    features: torch.Tensor, labels: torch.Tensor, train: int, steps: int = 300
) -> float:
    """Held-out accuracy of a linear classifier fitted (Adam, weight decay 1e-3) to the first
    ``train`` rows of ``features`` (N, F), standardised on those rows, and scored on the rest."""
    mean, std = features[:train].mean(0), features[:train].std(0) + 1e-6
    x = (features - mean) / std
    classes = int(labels.max()) + 1
    head = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(head(x[:train]), labels[:train]).backward()
        optimizer.step()
    with torch.no_grad():
        return head(x[train:]).argmax(1).eq(labels[train:]).float().mean().item()


def critic_features(critic: Critic, clips: torch.Tensor) -> torch.Tensor:
    """The critic's last features (before the score), flattened: (N, F). Batch norm uses each
    batch of 100 clips' statistics, as in training."""
    critic.train()
    with torch.no_grad():
        return torch.cat([critic.features(batch).flatten(1) for batch in clips.split(100)])


def supervised_accuracy(
    config: TGANConfig, clips: torch.Tensor, shapes: torch.Tensor, steps: int, pooled: bool
) -> float:
    """Held-out shape accuracy of a fresh video critic trained with a linear head on the shape
    labels (Adam 1e-3, batches of 32): the head reads the flattened features, or with
    ``pooled`` their maximum over time and space."""
    critic = Critic(config)
    critic.train()
    with torch.no_grad():
        sample = critic.features(clips[:2])
    width = sample.shape[1] if pooled else sample[0].numel()
    head = torch.nn.Linear(width, int(shapes.max()) + 1)

    def logits(batch: torch.Tensor) -> torch.Tensor:
        features = critic.features(batch)
        return head(features.amax((2, 3, 4)) if pooled else features.flatten(1))

    optimizer = torch.optim.Adam([*critic.parameters(), *head.parameters()], lr=1e-3)
    rng = torch.Generator().manual_seed(0)
    for _ in range(steps):
        picks = torch.randint(0, TRAIN_CLIPS, (32,), generator=rng)
        optimizer.zero_grad()
        F.cross_entropy(logits(clips[picks]), shapes[picks]).backward()
        optimizer.step()
    with torch.no_grad():
        held_out = clips[TRAIN_CLIPS:].split(100)
        guesses = torch.cat([logits(batch).argmax(1) for batch in held_out])
    return guesses.eq(shapes[TRAIN_CLIPS:]).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a backbone.tgan checkpoint (step-*.pt)")
    parser.add_argument(
        "--supervised-steps", type=int, default=1500, help="0: skip the supervised control"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    saved = load_checkpoint(args.checkpoint)
    config = build_config(TGANConfig, dict(saved["config"]["backbone"]["tgan"]), "backbone.tgan")
    indices = range(FIRST_INDEX, FIRST_INDEX + TRAIN_CLIPS + HELD_OUT_CLIPS)
    videos, labels = shapes_render.render_batch(indices, 0, config.frames, config.size)
    clips = torch.from_numpy(videos.transpose(0, 4, 1, 2, 3).astype(np.float32) / 127.5 - 1)
    labels = torch.as_tensor(labels)
    shapes, motions = labels // len(shapes_render.MOTIONS), labels % len(shapes_render.MOTIONS)
    print(f"linear probes, held-out accuracy on {HELD_OUT_CLIPS} real clips (chance 0.20)")
    for name in ("video", "frame"):
        prefix = f"discriminators.{name}."
        weights = {k[len(prefix) :]: v for k, v in saved["model"].items() if k.startswith(prefix)}
        if not weights:
            continue
        frames, code = (0, 0) if name == "frame" else (None, config.shape_code)
        inputs = clips if name == "video" else clips[:, :, config.frames // 2]
        for state in ("trained", "at initialisation"):
            critic = Critic(config, frames=frames, code_values=code)
            if state == "trained":
                critic.load_state_dict(weights)
            features = critic_features(critic, inputs)
            shape = probe_accuracy(features, shapes, TRAIN_CLIPS)
            line = f"  {name} critic, {state:<17}  shape {shape:.3f}"
            if name == "video":
                line += f"  motion {probe_accuracy(features, motions, TRAIN_CLIPS):.3f}"
            print(line)
    if not args.supervised_steps:
        return
    print(f"a fresh video critic trained on the shape labels ({args.supervised_steps} steps):")
    for pooled in (False, True):
        accuracy = supervised_accuracy(config, clips, shapes, args.supervised_steps, pooled)
        head = "the maximum over time and space" if pooled else "the flattened features"
        print(f"  a linear head on {head}: shape {accuracy:.3f}")


if __name__ == "__main__":
    main()
