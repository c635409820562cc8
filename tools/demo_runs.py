"""Run the demo as `make demo` does (``ndevgan run``, no config) once per seed, one after the
other on the whole machine, and print each run's wall time, its own quick score and IS/FID on
2,048 samples with the shipped shapes classifier (``ndevgan eval``).

    python tools/demo_runs.py                        # seeds 0 1 2 → demo_runs.json
    python tools/demo_runs.py --seeds 0 --strip docs/demo_strip.png

``--strip`` copies the first seed's last sample strip (``samples/step-N.png``) to the given path:
the picture in the README comes from this command on a fresh clone. Figures in
docs/TINY_RECIPE.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_demo(seed: int, root: Path, samples: int) -> dict:
    """One demo run with ``seed`` under ``root``; returns its row."""
    env = {**os.environ, "NDEVGAN_CACHE": str(root / "cache")}
    command = [sys.executable, "-m", "ndevgan_core", "run", "--set", f"run.seed={seed}"]
    command += ["--set", f"run.out={root}", "--set", f"run.name=seed{seed}"]
    command += ["--set", "run.progress=false"]
    start = time.perf_counter()
    proc = subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = proc.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("quick score"))
    quick = {line.split()[0]: float(line.split()[1]) for line in lines[head + 1 : head + 3]}
    out = root / f"seed{seed}.json"
    score = [sys.executable, "-m", "ndevgan_core", "eval", str(root / f"seed{seed}")]
    score += ["--n", str(samples), "--no-progress", "--out", str(out)]
    subprocess.run(score, check=True, env=env, capture_output=True, text=True)
    results = {r["metric"]: r["mean"] for r in json.loads(out.read_text())["results"]}
    strips = sorted((root / f"seed{seed}" / "samples").glob("step-*.png"))
    row = {
        "seed": seed,
        "wall_minutes": wall / 60,
        "quick_is": quick["IS"],
        "quick_fid": quick["FID"],
        "is": results["is"],
        "fid": results["fid"],
        "samples": samples,
        "strip": str(strips[-1]),
    }
    print(
        f"seed {seed}: {row['wall_minutes']:.2f} min (ndevgan run, quick score included)  "
        f"quick IS {row['quick_is']:.2f} FID {row['quick_fid']:.1f}  |  {samples} samples: "
        f"IS {row['is']:.2f} FID {row['fid']:.1f}",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=2048, help="videos scored per run")
    parser.add_argument("--strip", type=Path, help="copy the first seed's last strip here")
    parser.add_argument("--out", default="demo_runs.json", help="JSON of every row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ndevgan-demo-") as tmp:
        rows = [run_demo(seed, Path(tmp), args.samples) for seed in args.seeds]
        if args.strip:
            shutil.copyfile(rows[0]["strip"], args.strip)
            print(f"copied {rows[0]['strip']} to {args.strip}")
    print("\n| seed | wall time | quick IS / FID (512) | IS | FID |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['seed']} | {r['wall_minutes']:.2f} min | {r['quick_is']:.2f} / "
            f"{r['quick_fid']:.1f} | {r['is']:.2f} | {r['fid']:.1f} |"
        )
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
