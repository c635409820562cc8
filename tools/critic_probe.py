"""Does a TGAN run's video critic see the data's shapes? Linear probes on its last features.

    python tools/critic_probe.py runs/RUN/checkpoints/step-00004000.pt

Renders real `dataset.shapes` clips (4,000 to fit a probe, 1,000 held out), passes them through
the checkpoint's video critic (and, if the run has one, its frame critic on one frame of each
clip, and if it has a feature critic, its frame encoder on each clip's middle frame) up to the
layer before the score, and fits a linear classifier (a probe) on those features
for the shape and for the motion; prints the held-out accuracy of each (chance: 0.20), beside
the same critic at its initialisation. Then, as the control that says what an architecture could
see at all, it trains fresh networks with a linear head on the shape labels directly
(``--supervised-steps`` Adam steps) and prints their held-out accuracy: the video critic with
strided and with max-pooled layers (``critic_downsample``), each with the head on the flattened
features (as the critic's score reads them) and on their maximum over time and space, and the
shipped shapes classifier's architecture. Figures in docs/TINY_RECIPE.md.
"""

from __future__ import annotations

import argparse

import attrs
import numpy as np
import torch
from torch.nn import functional as F

from ndevgan_core.config import build_config
from ndevgan_core.training.checkpoint import load_checkpoint
from ndevgan_plugins import shapes_render
from ndevgan_plugins.shapes_classifier import ShapesClassifier
from ndevgan_plugins.tgan import Critic, FrameEncoder, TGANConfig

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


def weights_under(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of a model's ``state`` whose names start with ``prefix``, without it."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def encoder_features(
    weights: dict[str, torch.Tensor] | None, size: int, frames: torch.Tensor
) -> torch.Tensor:
    """A feature critic's frame encoder (``weights``; None: a fresh one) on ``frames``
    (N, 3, H, W): its features (N, 64, 4, 4)."""
    encoder = FrameEncoder(size)
    if weights is not None:
        encoder.load_state_dict(weights)
    with torch.no_grad():
        return torch.cat([encoder(batch) for batch in frames.split(100)])


def critic_features(critic: Critic, clips: torch.Tensor, peaks: bool = False) -> torch.Tensor:
    """The critic's last features (before the score), flattened: (N, F), or with ``peaks``
    each channel's maximum over time and space (what ``critic_max_score`` reads): (N, C).
    Batch norm uses each batch of 100 clips' statistics, as in training."""
    critic.train()
    with torch.no_grad():
        out = [critic.last_features(batch) for batch in clips.split(100)]
        return torch.cat([o.flatten(2).amax(2) if peaks else o.flatten(1) for o in out])


class CriticFeatures(torch.nn.Module):
    """A fresh critic up to the features its score reads (:meth:`Critic.last_features`)."""

    def __init__(self, config: TGANConfig) -> None:
        super().__init__()
        self.critic = Critic(config)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """clips (B, 3, T, H, W) → the critic's last features."""
        return self.critic.last_features(clips)


class ClassifierFeatures(torch.nn.Module):
    """The shipped shapes classifier's architecture (fresh weights) up to its feature layer."""

    def __init__(self) -> None:
        super().__init__()
        self.classifier = ShapesClassifier()

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """clips (B, 3, T, H, W) → features (B, feature_size)."""
        return self.classifier(clips)["features"]


def supervised_accuracy(
    features: torch.nn.Module,
    clips: torch.Tensor,
    shapes: torch.Tensor,
    steps: int,
    pooled: bool,
) -> float:
    """Held-out shape accuracy of a fresh network ``features`` trained with a linear head on
    the shape labels (Adam 1e-3, batches of 32): the head reads the flattened features, or with
    ``pooled`` their maximum over time and space."""
    features.train()
    with torch.no_grad():
        sample = features(clips[:2])
    width = sample.shape[1] if pooled else sample[0].numel()
    head = torch.nn.Linear(width, int(shapes.max()) + 1)

    def logits(batch: torch.Tensor) -> torch.Tensor:
        out = features(batch)
        return head(out.amax((2, 3, 4)) if pooled else out.flatten(1))

    optimizer = torch.optim.Adam([*features.parameters(), *head.parameters()], lr=1e-3)
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


def controls(config: TGANConfig) -> list[tuple[str, torch.nn.Module, bool]]:
    """The networks the supervised control trains, each with a name and whether its head
    reads the maximum over time and space: the video critic with each way of down-sampling
    (the run's own first), with both heads, then the shapes classifier's architecture."""
    choices = sorted(("strided", "maxpool"), key=lambda choice: choice != config.critic_downsample)
    rows: list[tuple[str, torch.nn.Module, bool]] = []
    for choice in choices:
        critic_config = attrs.evolve(config, critic_downsample=choice)
        for pooled in (False, True):
            head = "the maximum over time and space" if pooled else "the flattened features"
            name = f"video critic, {choice}, a linear head on {head}"
            rows.append((name, CriticFeatures(critic_config), pooled))
    rows.append(
        ("the shapes classifier's architecture, its feature layer", ClassifierFeatures(), False)
    )
    return rows


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
        weights = weights_under(saved["model"], f"discriminators.{name}.")
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
            peaks = probe_accuracy(critic_features(critic, inputs, True), shapes, TRAIN_CLIPS)
            line = f"  {name} critic, {state:<17}  shape {shape:.3f} (of the peaks {peaks:.3f})"
            if name == "video":
                line += f"  motion {probe_accuracy(features, motions, TRAIN_CLIPS):.3f}"
            print(line)
    encoder_weights = weights_under(saved["model"], "frame_encoder.")
    if encoder_weights:
        middle = clips[:, :, config.frames // 2]
        for state in ("trained", "at initialisation"):
            trained = encoder_weights if state == "trained" else None
            features = encoder_features(trained, config.size, middle)
            shape = probe_accuracy(features.flatten(1), shapes, TRAIN_CLIPS)
            peaks = probe_accuracy(features.amax((2, 3)), shapes, TRAIN_CLIPS)
            print(f"  frame encoder, {state:<17}  shape {shape:.3f} (of the peaks {peaks:.3f})")
    if not args.supervised_steps:
        return
    print(f"fresh networks trained on the shape labels ({args.supervised_steps} steps):")
    for name, network, pooled in controls(config):
        torch.manual_seed(0)
        accuracy = supervised_accuracy(network, clips, shapes, args.supervised_steps, pooled)
        print(f"  {name}: shape {accuracy:.3f}")


if __name__ == "__main__":
    main()
