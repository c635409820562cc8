"""``logger.eval``: score the generator during training and keep its best checkpoint.

The paper's protocol (section 4) computes IS on 2,048 samples every 2,000 iterations and
reports final figures from the best of those evaluations. Selected with ``[plugins] loggers =
["logger.eval"]``, this logger evaluates the generator every ``every`` steps and at the last
step with :func:`ndevgan_core.evaluation.evaluate`, and writes into the run directory::

    eval.jsonl               one line per evaluation: {"step", "<metric>_mean", "<metric>_std",
                             "seconds"}
    checkpoints/best.pt      a full checkpoint of the best step so far, plus a "best" record
    best.json                {"step", "metric", "mean", "std", "checkpoint"}

Higher is better for IS, lower for FID. The checkpoint is named ``best.pt`` so that
:func:`~ndevgan_core.training.checkpoint.list_checkpoints` (``step-*.pt``) neither resumes
from it nor prunes it. On resume the logger reads ``best.json`` back, and drops evaluations
newer than the step it resumes from (they are repeated). Under ``torchrun`` every rank
evaluates (the features are gathered) and rank 0 writes the files.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import torch

import ndevgan_core as nd
from ndevgan_core import non_negative, one_of, option, positive, save_checkpoint, write_text_atomic

EVAL_LOG = "eval.jsonl"
BEST_JSON = "best.json"
BEST_CHECKPOINT = "checkpoints/best.pt"


@attrs.frozen
class EvalLoggerConfig:
    """Options of ``logger.eval`` (defaults: the paper's protocol)."""

    every: int = option(2000, "evaluate every N training steps (and at the last step)", positive)
    samples: int = option(2048, "generated videos per evaluation", positive)
    metric: str = option(
        "is",
        "the figure that picks the best checkpoint: is (higher), fid or fvd (lower)",
        one_of("is", "fid", "fvd"),
    )
    batch_size: int = option(32, "videos per generator/classifier batch", positive)
    seed: int = option(
        0, "seed of the evaluation latents (the same at every evaluation)", non_negative
    )
    classifier: str = option(
        "",
        "weights of the scoring classifier (UCF101: C3D from `ndevgan metrics import-c3d`); "
        "empty: the dataset's built-in one",
    )
    dropout_compat: bool = option(
        False, "score with the classifier's dropout on, as the paper's scoring code did"
    )


def read_eval_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """The evaluations recorded in a run directory's ``eval.jsonl``, oldest first.

    A line cut short by a crash is skipped rather than failing the reader.
    """
    path = Path(run_dir) / EVAL_LOG
    if not path.is_file():
        return []
    records = []
    for line in path.read_text("utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            if isinstance(record, dict) and "step" in record:
                records.append(record)
    return records


def read_best(run_dir: str | Path) -> dict[str, Any] | None:
    """The ``best.json`` record of a run directory, or None when there is none yet."""
    path = Path(run_dir) / BEST_JSON
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise nd.CheckpointError(f"{path} is not valid JSON: {exc}") from None


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class EvalLogger:
    """Trainer events → periodic evaluation, ``eval.jsonl``, ``best.json`` and ``best.pt``.

    ``evaluate`` is the evaluation function (default
    :func:`ndevgan_core.evaluation.evaluate`); tests may pass a scripted one with the same
    signature.
    """

    def __init__(self, config: EvalLoggerConfig, evaluate: Any = None) -> None:
        self.config = config
        self._evaluate = evaluate
        self.best: dict[str, Any] | None = None
        self._run_dir: Path | None = None

    # ---- state ----------------------------------------------------------------------------

    def _attach(self, run: nd.TrainingRun, step: int, is_main: bool) -> None:
        """First event of a (possibly resumed) run: read back what earlier sessions wrote."""
        self._run_dir = Path(run.run_dir)
        self.best = read_best(self._run_dir)
        start = step - 1  # on_step reports completed steps; this session began one earlier
        records = read_eval_log(self._run_dir)
        kept = [r for r in records if r["step"] <= start]
        if is_main and len(kept) != len(records):
            # evaluations after the checkpoint we resume from are repeated by this session
            text = "".join(json.dumps(r) + "\n" for r in kept)
            write_text_atomic(self._run_dir / EVAL_LOG, text)

    def _is_better(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if nd.higher_is_better(self.config.metric):
            return value > self.best["mean"]
        return value < self.best["mean"]

    # ---- the hook -------------------------------------------------------------------------

    @nd.hookimpl
    def on_step(self, run: nd.TrainingRun, step: int, metrics: dict[str, float]) -> None:
        """Evaluate every ``every`` steps and at the last step; keep the best checkpoint."""
        is_main = run.is_main
        if self._run_dir is None or Path(run.run_dir) != self._run_dir:
            self._attach(run, step, is_main)
        last = run.config.run.iterations
        if step % self.config.every != 0 and step != last:
            return
        t0 = time.perf_counter()
        result = self._score(run)
        seconds = time.perf_counter() - t0
        metric = self.config.metric
        run.registry.hook.on_evaluation(run=run, step=step, metric=metric, result=result)
        record = {
            "step": step,
            f"{metric}_mean": result.mean,
            f"{metric}_std": result.std,
            "seconds": round(seconds, 3),
        }
        better = self._is_better(result.mean)
        if better:
            self.best = {
                "step": step,
                "metric": metric,
                "mean": result.mean,
                "std": result.std,
                "checkpoint": BEST_CHECKPOINT,
            }
        if not is_main:
            return
        assert self._run_dir is not None
        with (self._run_dir / EVAL_LOG).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if better:
            payload = {**run.checkpoint_payload(), "best": dict(self.best)}
            save_checkpoint(self._run_dir / BEST_CHECKPOINT, payload)
            write_text_atomic(self._run_dir / BEST_JSON, json.dumps(self.best, indent=2) + "\n")
        if run.config.run.progress:
            from tqdm import tqdm

            mark = " (best)" if better else ""
            spread = f" ± {result.std:.2g}" if len(result.values) > 1 else ""
            tqdm.write(
                f"step {step}: {metric.upper()} {result.mean:.4g}{spread}{mark}", file=sys.stderr
            )

    def _score(self, run: nd.TrainingRun) -> Any:
        """The configured metric of the generator now (eval mode; training RNG untouched)."""
        evaluate = self._evaluate
        if evaluate is None:
            from ndevgan_core import evaluate
        generator = run.sampling_generator
        if isinstance(generator, torch.nn.parallel.DistributedDataParallel):
            generator = generator.module
        was_training = generator.training
        device = torch.device(run.device)
        rng_devices = []
        if device.type == "cuda":
            rng_devices = [torch.cuda.current_device() if device.index is None else device.index]
        generator.eval()
        # the evaluation must not shift the training RNG: with or without this logger, and
        # resumed or not, training sees the same random numbers
        try:
            with torch.random.fork_rng(devices=rng_devices):
                results = evaluate(
                    generator,
                    (self.config.metric,),
                    dataset=run.dataset,
                    samples=self.config.samples,
                    loops=1,
                    batch_size=self.config.batch_size,
                    seed=self.config.seed,
                    device=device,
                    progress=run.config.run.progress and run.is_main,
                    registry=run.registry,
                    classifier=self.config.classifier or None,
                    classifier_options={"dropout_compat": self.config.dropout_compat},
                    distributed=_distributed(),
                )
        finally:
            generator.train(was_training)
        return results[self.config.metric]


def build(config: EvalLoggerConfig) -> EvalLogger:
    """Factory of ``logger.eval``."""
    return EvalLogger(config)


@nd.hookimpl
def register_components(register: Any) -> None:
    """Register ``logger.eval``."""
    register("logger.eval", build, EvalLoggerConfig)
