"""``logger.tensorboard``: losses, timings and sample strips as TensorBoard events.

``ndevgan run --plugin logger.tensorboard`` writes ``RUN_DIR/tensorboard/events.*`` while the
run trains (rank 0 only): every step's metrics as scalars under ``train/`` (losses, ``d_real``,
``d_fake``, ``step_time``, ``data_time``), the figures a scoring logger computes (``logger.eval``:
IS, FID or FVD) under ``eval/``, and each sample strip the trainer writes as an image under
``samples/``. Watch them with ``tensorboard --logdir runs``. Needs the optional
``tensorboard`` package (``pip install 'ndevgan[tensorboard]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

import ndevgan_core as nd
from ndevgan_core import option, positive

EVENTS_DIR = "tensorboard"


@attrs.frozen
class TensorBoardConfig:
    """Options of ``logger.tensorboard``."""

    every: int = option(1, "write the step's metrics every N training steps", positive)
    images: bool = option(True, "also write each sample strip (PNG) as an image")
    flush_seconds: int = option(10, "write buffered events to disk at least this often", positive)


class TensorBoardLogger:
    """Trainer events → a TensorBoard event file in the run directory."""

    def __init__(self, config: TensorBoardConfig) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise nd.ConfigError(
                "logger.tensorboard needs the tensorboard package: pip install "
                "'ndevgan[tensorboard]' (or pip install tensorboard)"
            ) from None
        self.config = config
        self._writer_class = SummaryWriter
        self._writer: Any = None
        self._run_dir: Path | None = None

    def _writer_for(self, run: nd.TrainingRun) -> Any:
        if self._writer is None or Path(run.run_dir) != self._run_dir:
            if self._writer is not None:
                self._writer.close()
            self._run_dir = Path(run.run_dir)
            self._writer = self._writer_class(
                str(self._run_dir / EVENTS_DIR), flush_secs=self.config.flush_seconds
            )
        return self._writer

    @nd.hookimpl
    def on_step(self, run: nd.TrainingRun, step: int, metrics: dict[str, float]) -> None:
        """Every ``every`` steps: each metric as a scalar ``train/NAME``."""
        if not run.is_main or step % self.config.every:
            return
        writer = self._writer_for(run)
        for name, value in metrics.items():
            writer.add_scalar(f"train/{name}", float(value), step)

    @nd.hookimpl
    def on_evaluation(
        self, run: nd.TrainingRun, step: int, metric: str, result: nd.MetricResult
    ) -> None:
        """A figure a scoring logger computed (``logger.eval``): scalar ``eval/METRIC``."""
        if not run.is_main:
            return
        writer = self._writer_for(run)
        writer.add_scalar(f"eval/{metric}", float(result.mean), step)
        writer.flush()

    @nd.hookimpl
    def on_sample(self, run: nd.TrainingRun, step: int, paths: list[Path]) -> None:
        """Each PNG sample strip as an image ``samples/NAME``."""
        if not run.is_main or not self.config.images:
            return
        from ndevgan_core import media

        writer = self._writer_for(run)
        for path in paths:
            if Path(path).suffix.lower() == ".png":
                writer.add_image("samples/strip", media.read_png(path), step,
                                 dataformats="HWC")  # fmt: skip
        writer.flush()

    @nd.hookimpl
    def on_checkpoint(self, run: nd.TrainingRun, step: int, path: Path) -> None:
        """Flush, so that what a checkpoint holds is also on disk as events."""
        if run.is_main and self._writer is not None:
            self._writer.flush()


def build(config: TensorBoardConfig) -> TensorBoardLogger:
    """Factory of ``logger.tensorboard``."""
    return TensorBoardLogger(config)


@nd.hookimpl
def register_components(register: Any) -> None:
    """Register ``logger.tensorboard``."""
    register("logger.tensorboard", build, TensorBoardConfig)
