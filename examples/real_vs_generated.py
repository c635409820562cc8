"""Real clips beside generated ones, from Python: the notebook API in a dozen lines.

    python examples/real_vs_generated.py runs/RUN --out real_vs_generated.gif

Loads the run's generator with ``nd.load``, takes the same number of real clips of the run's
dataset with ``nd.dataset``, and writes one GIF (and a PNG strip): real clips in the left
column, generated ones in the right. Both come as ``(N, T, C, H, W)``.
"""

from __future__ import annotations

import argparse

import numpy as np

import ndevgan_core as nd
from ndevgan_core import media


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run directory or checkpoint file")
    parser.add_argument("--n", type=int, default=4, help="clips of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="real_vs_generated.gif")
    args = parser.parse_args()

    generator = nd.load(args.run)
    fake = generator.generate(args.n, seed=args.seed, dtype="uint8")  # (N, T, C, H, W)
    _, frames, _, height, width = fake.shape
    name, options = generator.config.component("dataset")
    real_clips = nd.dataset(name, (frames, height, width), **nd.config_to_dict(options))
    real = real_clips.videos(args.n, dtype="uint8")

    pairs = np.stack([real, fake], axis=1).reshape(2 * args.n, *fake.shape[1:])
    tiles = np.ascontiguousarray(pairs.transpose(0, 1, 3, 4, 2))  # media wants (N, T, H, W, 3)
    media.write_video(args.out, media.video_grid(tiles, ncols=2), fps=8)
    strip = media.write_png(args.out.rsplit(".", 1)[0] + ".png", media.frame_strip(tiles))
    print(f"step {generator.step}: real (left) and generated (right) in {args.out}, {strip}")


if __name__ == "__main__":
    main()
