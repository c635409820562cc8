"""Time one TGAN training step with its original temporal generator and with temporal.ode.

Both variants are built from the same seed and timed in alternating blocks in one process, so
machine noise hits both alike; the script prints milliseconds per step (median of blocks) and
the ratio ODE / original. It also times the temporal generator alone (forward + backward), where
the ODE's own cost is not diluted by the image generator and the critic.

    python tools/bench_step.py                      # tiny and paper presets, batch 8
    python tools/bench_step.py --preset paper --batch 32 --blocks 5 --device cuda

With the tiny preset it also times the `tiny` recipe's choices side by side (RECIPES).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import assemble, resolve

TEMPORALS = ("temporal.conv1d", "temporal.ode")

SPRITE_FULL_G16 = {
    "image_generator": "sprite",
    "sprite_size": "full",
    "g_channels": 16,
    "generator_fakes": "reuse",
}
"""The demo's image generator: a full-size sprite at ``g_channels`` 16."""

RECIPES = {
    "0.1 (transposed, fresh)": {"upsample": "transposed", "generator_fakes": "fresh"},
    "nearest, fresh": {"upsample": "nearest", "generator_fakes": "fresh"},
    "nearest, reuse (tiny)": {"upsample": "nearest", "generator_fakes": "reuse"},
    "transposed, reuse": {"upsample": "transposed", "generator_fakes": "reuse"},
    "sprite G1 (g32), reuse": {
        "image_generator": "sprite",
        "g_channels": 32,
        "generator_fakes": "reuse",
    },
    "sprite G1 full (g16) (the demo to session 20)": SPRITE_FULL_G16,
    "sprite G1 full (g16), frame critic 8": {**SPRITE_FULL_G16, "frame_critic": 8},
    "sprite G1 full (g16), frame critic 4": {**SPRITE_FULL_G16, "frame_critic": 4},
    "sprite G1 full (g16), 2×2 supersampled": {**SPRITE_FULL_G16, "sprite_supersample": 2},
    "sprite G1 full (g16), 4×4 supersampled": {**SPRITE_FULL_G16, "sprite_supersample": 4},
    "sprite G1 full (g16), max-pool critic": {
        **SPRITE_FULL_G16,
        "critic_downsample": "maxpool",
    },
    "sprite G1 full (g16), max-pool critic + max": {
        **SPRITE_FULL_G16,
        "critic_downsample": "maxpool",
        "critic_max_score": True,
    },
    "sprite G1 full (g16), max-pool critic d8": {
        **SPRITE_FULL_G16,
        "critic_downsample": "maxpool",
        "d_channels": 8,
    },
    "sprite G1 full (g16), augment translation": {
        **SPRITE_FULL_G16,
        "critic_augment": "translation",
    },
    "sprite G1 full (g16), augment all three": {
        **SPRITE_FULL_G16,
        "critic_augment": "colour,translation,cutout",
    },
    "sprite G1 full (g16), critic edges ×2 (the demo)": {**SPRITE_FULL_G16, "critic_edges": 2.0},
    "sprite G1 full (g32)": {
        "image_generator": "sprite",
        "sprite_size": "full",
        "g_channels": 32,
        "generator_fakes": "reuse",
    },
}
"""The `tiny` recipe's costs, side by side: G1's up-sampling, how many batches of videos an
iteration renders, and the demo's sprite image generator with its options (docs/TINY_RECIPE.md)."""


def build(
    registry: Registry,
    preset: str,
    batch: int,
    temporal: str,
    device: str,
    options: dict | None = None,
):
    raw = {
        "plugins": {"backbone": "backbone.tgan", "temporal": temporal},
        "backbone": {"tgan": {"preset": preset, "batch_size": batch, **(options or {})}},
    }
    config = resolve(raw, registry)
    torch.manual_seed(0)
    gan = assemble(config, registry).gan.to(device)
    return gan, gan.configure_optimizers()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(gan, opts, real, steps: int, start: int, device: str) -> float:
    rng = torch.Generator().manual_seed(start)
    sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        gan.training_step(real, start + i, opts, rng)
    sync(device)
    return (time.perf_counter() - t0) / steps


def time_temporal(gan, batch: int, steps: int, device: str) -> float:
    g = gan.generator
    z = g.sample_z(batch, torch.Generator().manual_seed(0), device)
    t = g.spec.times(device)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        g.temporal(z, t).square().mean().backward()
    sync(device)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset",
        action="append",
        choices=["tiny", "paper"],
        help="TGAN preset(s) to time (default: tiny and paper)",
    )
    parser.add_argument("--batch", type=int, default=8, help="videos per batch")
    parser.add_argument("--steps", type=int, default=5, help="steps per timed block")
    parser.add_argument("--blocks", type=int, default=3, help="alternating blocks per variant")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    registry = Registry(entry_points=False)
    print(
        f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
        f"batch {args.batch}, {args.blocks} blocks × {args.steps} steps"
    )
    header = f"{'preset':<7} {'what':<20} {'conv1d ms':>10} {'ode ms':>10} {'ode/conv1d':>11}"
    print(header)
    print("-" * len(header))
    for preset in args.preset or ["tiny", "paper"]:
        variants = {t: build(registry, preset, args.batch, t, args.device) for t in TEMPORALS}
        size = variants[TEMPORALS[0]][0].config.size
        real = torch.rand(args.batch, 3, 16, size, size, device=args.device) * 2 - 1
        for gan, opts in variants.values():  # warm-up (allocator, first-call overheads)
            time_steps(gan, opts, real, 2, 0, args.device)
        step_times: dict[str, list[float]] = {t: [] for t in TEMPORALS}
        temporal_times: dict[str, list[float]] = {t: [] for t in TEMPORALS}
        for block in range(args.blocks):
            for name, (gan, opts) in variants.items():
                step_times[name].append(
                    time_steps(gan, opts, real, args.steps, 2 + block * args.steps, args.device)
                )
                temporal_times[name].append(time_temporal(gan, args.batch, 20, args.device))
        for what, table in (("training step", step_times), ("temporal G fwd+bwd", temporal_times)):
            a, b = (statistics.median(table[t]) * 1e3 for t in TEMPORALS)
            print(f"{preset:<7} {what:<20} {a:>10.2f} {b:>10.2f} {b / a:>10.3f}×")
    if "tiny" in (args.preset or ["tiny"]):
        recipe_table(registry, args)


def recipe_table(registry: Registry, args: argparse.Namespace) -> None:
    """TGAN-ODE `tiny` steps under each of :data:`RECIPES`, timed in alternating blocks."""
    variants = {
        name: build(registry, "tiny", args.batch, "temporal.ode", args.device, options)
        for name, options in RECIPES.items()
    }
    real = torch.rand(args.batch, 3, 16, 32, 32, device=args.device) * 2 - 1
    for gan, opts in variants.values():
        time_steps(gan, opts, real, 2, 0, args.device)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for block in range(args.blocks):
        for name, (gan, opts) in variants.items():
            start = 2 + block * args.steps
            times[name].append(time_steps(gan, opts, real, args.steps, start, args.device))
    base = statistics.median(times[next(iter(RECIPES))])
    print(f"\n{'tiny TGAN-ODE step':<48} {'ms':>8} {'ratio':>7}")
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"{name:<48} {ms * 1e3:>8.1f} {ms / base:>6.2f}×")


if __name__ == "__main__":
    main()
