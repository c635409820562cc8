"""Print the README's parameter tables: every backbone's modules, and every temporal variant.

For each installed backbone at the chosen preset, the modules of the GAN with its original
temporal generator, then each temporal plugin × order × f design with its parameter count (as
``ndevgan info`` lists them). Everything is built on the meta device, so the paper-size
TGANv2 costs no memory.

    python tools/param_table.py                 # paper presets
    python tools/param_table.py --preset tiny
"""

from __future__ import annotations

import argparse

import torch

from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import assemble, resolve, temporal_variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", help="preset of every backbone")
    args = parser.parse_args()
    registry = Registry(entry_points=False)
    backbones = [c.name for c in registry.load_all() if c.kind == "backbone"]
    modules: dict[str, dict[str, int]] = {}
    variants: dict[str, dict[str, str]] = {}
    for name in backbones:
        short = name.split(".", 1)[1]
        raw = {"plugins": {"backbone": name}, "backbone": {short: {"preset": args.preset}}}
        config = resolve(raw, registry)
        with torch.device("meta"):
            parts = assemble(config, registry)
        modules[name] = parts.gan.module_parameter_counts()
        rows = temporal_variants(parts.backbone, registry)  # on the meta device too
        variants[name] = {
            v.label: "n/a" if v.parameters is None else f"{v.parameters:,}" for v in rows
        }

    print(f"Modules with each backbone's original temporal generator ({args.preset} preset):\n")
    for name in backbones:
        print(f"| {name} | parameters |\n|---|---:|")
        for module, count in modules[name].items():
            print(f"| {module} | {count:,} |")
        print()
    labels = list(dict.fromkeys(label for rows in variants.values() for label in rows))
    print("Temporal generators per backbone (n/a: does not fit its latent):\n")
    print("| temporal generator | " + " | ".join(backbones) + " |")
    print("|---|" + "---:|" * len(backbones))
    for label in labels:
        cells = [variants[b].get(label, "") for b in backbones]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
