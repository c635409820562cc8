"""The final figures of a run: IS/FID of its best checkpoint over several loops."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from ndevgan_core import media
from ndevgan_core.files import (
    write_bytes_atomic,
    write_json_atomic,
)
from ndevgan_core.registry import Registry
from ndevgan_core.training.checkpoint import list_checkpoints

from .grid import COMPARISON_NPZ, FINAL_JSON, Protocol
from .plan import PlannedRun

# Final figures of a run


def _generator_batch(generator: Any, n: int, seed: int) -> np.ndarray:
    from ndevgan_core.training.api import sample_videos

    return media.to_uint8(sample_videos(generator, n, seed=seed))


def final_evaluation(
    plan: PlannedRun,
    run_dir: Path,
    protocol: Protocol,
    registry: Registry,
    *,
    stats_cache: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score the run's best checkpoint over ``final_loops`` batches; write ``final.json``.

    Also draws the run's rows of the comparison grid (``comparison.npz``): the first
    ``comparison_videos`` latents of ``protocol.seed``.
    """
    from ndevgan_core.evaluation import evaluate
    from ndevgan_core.runconfig import make_dataset
    from ndevgan_core.training.api import load_generator
    from ndevgan_core.training.trainer import resolve_device

    t0 = time.perf_counter()
    best = run_dir / "checkpoints" / "best.pt"
    checkpoint = best if best.is_file() else list_checkpoints(run_dir)[-1]
    device = resolve_device(plan.config.run.device)
    loaded = load_generator(checkpoint, registry, device=device)
    backbone = registry.create(*loaded.config.component("backbone"))
    dataset = make_dataset(loaded.config, registry, backbone)
    results = evaluate(
        loaded.generator,
        protocol.metrics,
        dataset=dataset,
        samples=protocol.final_samples,
        loops=protocol.final_loops,
        batch_size=protocol.batch_size,
        seed=protocol.seed,
        device=device,
        progress=progress,
        registry=registry,
        stats_cache=stats_cache,
        classifier_options={"dropout_compat": protocol.dropout_compat},
        classifier=protocol.classifier or None,
        options=protocol.metric_options(),
    )
    videos = _generator_batch(loaded.generator, protocol.comparison_videos, protocol.seed)
    buffer = io.BytesIO()
    np.savez(buffer, videos=videos)
    comparison = run_dir / COMPARISON_NPZ
    write_bytes_atomic(comparison, buffer.getvalue())
    generator = loaded.generator
    record = {
        "run": plan.run_id,
        "checkpoint": str(checkpoint.relative_to(run_dir)),
        "step": loaded.step,
        "metrics": {
            name: {
                "mean": float(r.mean),
                "std": float(r.std),
                "values": [float(v) for v in r.values],
                "protocol": r.protocol,
            }
            for name, r in results.items()
        },
        "latent": {"shape": list(generator.z_shape), "distribution": generator.z_distribution},
        "seconds": round(time.perf_counter() - t0, 3),
        "protocol": protocol.final_record(),
        "config": plan.config.to_dict(),
    }
    write_json_atomic(run_dir / FINAL_JSON, record)
    return record
