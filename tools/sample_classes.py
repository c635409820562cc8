"""What the shipped shapes classifier sees in a run's samples: which shapes and motions, how
confidently, against real clips — so a low IS can be traced to missing shapes, missing motions
or unconfident (ambiguous) clips.

    python tools/sample_classes.py runs/RUN            # 512 generated and 512 real clips

Prints, for generated and real clips side by side: IS, the mean top probability, both again
for shape alone and motion alone (the class probabilities summed over the other factor), the
share of clips whose most likely class has each shape and each motion (the classifier's 25
classes are shape × motion), and how the frames change: the mean absolute change from one
frame to the next, and the mean absolute second difference (frame k+1 − 2·frame k + frame k−1)
as a share of it, a rough flicker measure: hard edges in steady motion keep it high too (real
clips score about 1.7). For the sprite image generator it also says how many videos turn their
sprite, and what is left of the motion when each part of the sprite's pose (position, angle,
scale) is held at its first frame's value. With a shape code (``shape_code = N``), it also
prints, for each of the code's values, the IS and the shape shares of clips whose latents carry
that value. Figures in docs/TINY_RECIPE.md.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch

import ndevgan_core as nd
from ndevgan_core.evaluation import load_video_classifier
from ndevgan_plugins import shapes_render
from ndevgan_plugins.c3d import inception_score
from ndevgan_plugins.shapes import REFERENCE_CLASSIFIER


def class_probabilities(videos: np.ndarray) -> torch.Tensor:
    """Class probabilities of videos (N, T, C, H, W) in [-1, 1]."""
    classifier = load_video_classifier(REFERENCE_CLASSIFIER)
    x = torch.from_numpy(np.ascontiguousarray(videos)).permute(0, 2, 1, 3, 4).float()
    with torch.no_grad():
        return torch.cat([classifier(v)["probs"] for v in x.split(64)])


def describe(probs: torch.Tensor) -> dict[str, object]:
    """IS, mean top probability, the same two for shape alone (the probabilities summed over
    motions) and motion alone, and the share of each shape and motion among the argmaxes."""
    per_factor = probs.view(-1, len(shapes_render.SHAPES), len(shapes_render.MOTIONS))
    shape_probs, motion_probs = per_factor.sum(2), per_factor.sum(1)
    top = probs.argmax(1).numpy()
    shapes = np.bincount(top // len(shapes_render.MOTIONS), minlength=len(shapes_render.SHAPES))
    motions = np.bincount(top % len(shapes_render.MOTIONS), minlength=len(shapes_render.MOTIONS))
    return {
        "IS": inception_score(probs)[0],
        "top probability": probs.max(1).values.mean().item(),
        "classes used": int(np.count_nonzero(np.bincount(top, minlength=probs.shape[1]))),
        "IS of shape alone": inception_score(shape_probs)[0],
        "top p. of shape": shape_probs.max(1).values.mean().item(),
        "IS of motion alone": inception_score(motion_probs)[0],
        "top p. of motion": motion_probs.max(1).values.mean().item(),
        **{f"shape {n}": c / len(top) for n, c in zip(shapes_render.SHAPES, shapes)},
        **{f"motion {n}": c / len(top) for n, c in zip(shapes_render.MOTIONS, motions)},
    }


def frame_changes(videos: np.ndarray) -> dict[str, float]:
    """Mean |frame k+1 − frame k| and mean |second difference| / mean |first difference| of
    videos (N, T, C, H, W) in [-1, 1]."""
    first = np.abs(np.diff(videos, axis=1)).mean()
    second = np.abs(np.diff(videos, n=2, axis=1)).mean()
    return {"frame change": float(first), "2nd diff / 1st": float(second / first)}


@contextlib.contextmanager
def recording_sprite_poses(generator: nd.TrainedGenerator) -> Iterator[list[torch.Tensor]]:
    """Collect the pose codes (B, T, 4) of every batch generated inside the block: an empty
    list for a generator without the sprite image generator."""
    poses: list[torch.Tensor] = []
    pose_mlp = getattr(generator.generator.image, "pose", None)
    hook = None
    if pose_mlp is not None:
        hook = pose_mlp.register_forward_hook(lambda _m, _i, out: poses.append(out.detach()))
    try:
        yield poses
    finally:
        if hook is not None:
            hook.remove()


POSE_PARTS: dict[str, tuple[int, ...]] = {"position": (0, 1), "angle": (2,), "scale": (3,)}
"""The sprite pose code's columns of each part of the pose."""


@contextlib.contextmanager
def holding_sprite_pose(generator: nd.TrainedGenerator, part: str) -> Iterator[None]:
    """Inside the block, every frame of a sprite video takes ``part`` of its pose (a key of
    POSE_PARTS) from the video's first frame: what is left of the motion without that part."""
    columns = list(POSE_PARTS[part])

    def hold(_module: torch.nn.Module, _inputs: object, codes: torch.Tensor) -> torch.Tensor:
        held = codes.clone()
        held[:, :, columns] = codes[:, :1, columns]
        return held

    hook = generator.generator.image.pose.register_forward_hook(hold)
    try:
        yield
    finally:
        hook.remove()


def clips_of_code(generator: nd.TrainedGenerator, code: int, n: int, seed: int) -> np.ndarray:
    """``n`` clips (N, T, C, H, W) of a shape-code generator whose latents carry ``code``: the
    first coordinate of each z drawn uniformly inside the code's interval of [-1, 1]."""
    video_generator = generator.generator
    values = video_generator.image.shape_code
    rng = torch.Generator().manual_seed(seed)
    z = video_generator.sample_z(n, rng)
    z[:, 0] = -1 + (code + torch.rand(n, generator=rng)) * 2 / values
    with torch.no_grad():
        return video_generator(z).transpose(1, 2).numpy()


def turns_per_frame(poses: list[torch.Tensor], radians_per_code: float) -> torch.Tensor:
    """Turns per frame of each video's sprite (the mean over its frames) from its pose codes:
    the sprite turns by ``radians_per_code`` × code radians."""
    angle_code = torch.cat(poses)[..., 2]
    return angle_code.diff(dim=1).mean(1).abs() * radians_per_code / (2 * math.pi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run directory or checkpoint file")
    parser.add_argument("--n", type=int, default=512, help="clips of each kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    generator = nd.load(args.run)
    with recording_sprite_poses(generator) as poses:
        fake = generator.generate(args.n, seed=args.seed)
    _, frames, _, size, _ = fake.shape
    real, _ = shapes_render.render_batch(range(10_000, 10_000 + args.n), 0, frames, size)
    real = real.transpose(0, 1, 4, 2, 3).astype(np.float32) / 127.5 - 1
    rows = {"generated": {**describe(class_probabilities(fake)), **frame_changes(fake)}}
    rows["real"] = {**describe(class_probabilities(real)), **frame_changes(real)}
    print(f"step {generator.step}, {args.n} clips each")
    print(f"{'':<18} {'generated':>10} {'real':>10}")
    for key in rows["real"]:
        g, r = rows["generated"][key], rows["real"][key]
        fmt = "{:>10.0%}" if key.startswith(("shape", "motion")) else "{:>10.3g}"
        print(f"{key:<18} " + fmt.format(g) + " " + fmt.format(r))
    if poses:
        turns = turns_per_frame(poses, generator.generator.image.radians_per_angle_code)
        print(
            f"sprite turning: {(turns > 0.01).float().mean().item():.0%} of the videos turn more "
            f"than 0.01 turn a frame (median {turns.median().item():.3f}); in the data only the "
            f"rotate clips turn, 0.4-1 turn a clip ({0.4 / (frames - 1):.3f}-"
            f"{1 / (frames - 1):.3f} a frame)"
        )
        print("with one part of the pose held at its first frame's value:")
        for part in POSE_PARTS:
            with holding_sprite_pose(generator, part):
                held = describe(class_probabilities(generator.generate(args.n, seed=args.seed)))
            shares = ", ".join(f"{m} {held[f'motion {m}']:.0%}" for m in shapes_render.MOTIONS)
            print(
                f"  {part:<9} IS {held['IS']:.3g}, of motion alone "
                f"{held['IS of motion alone']:.3g} ({shares})"
            )
    values = getattr(generator.generator.image, "shape_code", 0)
    if values:
        print(f"clips of each value of the shape code ({args.n // values} each):")
        for code in range(values):
            seen = describe(
                class_probabilities(clips_of_code(generator, code, args.n // values, args.seed))
            )
            shares = ", ".join(f"{s} {seen[f'shape {s}']:.0%}" for s in shapes_render.SHAPES)
            print(
                f"  code {code:<3} IS {seen['IS']:.3g}, top p. of shape "
                f"{seen['top p. of shape']:.2f} ({shares})"
            )


if __name__ == "__main__":
    main()
