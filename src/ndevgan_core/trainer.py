"""One trainer for every backbone: the loop, checkpoints, resume, logs, samples and events.

The backbone's :class:`~ndevgan_core.contracts.VideoGAN` does the protocol-specific work in
``training_step``; the trainer feeds it batches, keeps time, and writes a run directory::

    runs/<name>/config.toml        the full resolved config
    runs/<name>/log.jsonl          one JSON object per log interval (losses, step time)
    runs/<name>/checkpoints/step-NNNNNNNN.pt
    runs/<name>/samples/step-NNNNNNNN.{mp4,gif,png}

Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes a checkpoint and stops;
``Trainer(..., resume=run_dir)`` continues from the newest checkpoint to the same weights,
optimiser state, RNG state and data order as a run that was never stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from . import media
from .checkpoint import (
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from .config import dump_toml
from .contracts import VideoGAN, normalise_videos
from .errors import CheckpointError, ConfigError
from .progress import progress_bar
from .registry import Registry
from .runconfig import Assembled, ResolvedConfig, assemble, make_dataset


class ResumableBatchSampler(Sampler[list[int]]):
    """Endless shuffled batches whose order depends only on (seed, step).

    Epoch ``e`` is a permutation drawn from a generator seeded with ``(seed, e)``; step ``s``
    takes the ``s``-th full batch of that sequence. Starting at any step reproduces exactly
    the batches an uninterrupted run would have seen, with no sampler state to save.
    """

    def __init__(self, length: int, batch_size: int, seed: int, start_step: int = 0) -> None:
        if length < batch_size:
            raise ConfigError(
                f"the dataset has {length} clips, fewer than one batch of {batch_size}"
            )
        self.length = length
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.per_epoch = length // batch_size

    def _epoch(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.length, generator=g)

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        epoch, pos = divmod(step, self.per_epoch)
        perm = self._epoch(epoch)
        while True:
            if pos == self.per_epoch:
                epoch, pos = epoch + 1, 0
                perm = self._epoch(epoch)
            yield perm[pos * self.batch_size : (pos + 1) * self.batch_size].tolist()
            pos += 1

    def __len__(self) -> int:  # DataLoader asks; the sampler is endless
        return sys.maxsize


def resolve_device(name: str, option: str = "run.device") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` as given.

    ``option`` names the setting in error messages (``run.device``, ``--device``).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"{option}: expected auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{option} is {name!r} but this machine has no CUDA device")
    return device


class Trainer:
    """Trains the GAN a resolved config describes.

    ``run_dir`` defaults to a new directory under ``run.out``; ``resume`` is a run directory
    or checkpoint file to continue from (its config must match, except ``[run]`` settings).
    """

    def __init__(
        self,
        config: ResolvedConfig,
        registry: Registry,
        run_dir: str | Path | None = None,
        resume: str | Path | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.device = resolve_device(config.run.device)
        if config.run.threads:
            torch.set_num_threads(config.run.threads)
        state = None
        if resume is not None:
            state = load_checkpoint(resume)
            if Path(resume).is_dir():
                run_dir = Path(resume)
            elif run_dir is None:
                run_dir = Path(resume).resolve().parent.parent
            self._check_resumable(state)
        self.run_dir = Path(run_dir) if run_dir is not None else self._new_run_dir()
        if state is None and list_checkpoints(self.run_dir):
            raise ConfigError(
                f"run directory {self.run_dir} already has checkpoints; resume it with "
                f"--resume {self.run_dir}, or choose another run.name"
            )
        torch.manual_seed(config.run.seed)
        self.parts: Assembled = assemble(config, registry)
        self.gan: VideoGAN = self.parts.gan.to(self.device)
        self.optimizers = self.gan.configure_optimizers()
        self.dataset = make_dataset(config, registry, self.parts.backbone)
        self.rng = torch.Generator().manual_seed(config.run.seed + 1)
        self.step = 0
        for name in config.plugins.loggers:
            registry.add_plugin(registry.create(name, config.components[name]))
        if state is not None:
            self._restore(state)
        self._stop_requested = False

    # ---- set-up ---------------------------------------------------------------------------

    def _new_run_dir(self) -> Path:
        run = self.config.run
        if run.name:
            return Path(run.out) / run.name
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        parts = [self.config.plugins.backbone, self.config.plugins.temporal]
        base = Path(run.out) / "-".join([stamp, *(p.split(".", 1)[1] for p in parts)])
        path, n = base, 1
        while path.exists():
            path, n = base.with_name(f"{base.name}-{n}"), n + 1
        return path

    def _check_resumable(self, state: dict[str, Any]) -> None:
        saved = {k: v for k, v in state["config"].items() if k != "run"}
        current = {k: v for k, v in self.config.to_dict().items() if k != "run"}
        if saved != current:
            changed = sorted(
                f"{section}"
                for section in set(saved) | set(current)
                if saved.get(section) != current.get(section)
            )
            raise ConfigError(
                "cannot resume: the checkpoint was made with a different configuration in "
                f"[{'], ['.join(changed)}]; only [run] settings may change on resume"
            )

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.gan.load_state_dict(state["model"])
            for name, opt in self.optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint does not fit this model: {exc}") from None
        torch.set_rng_state(state["rng"]["torch"])
        self.rng.set_state(state["rng"]["train"])
        if torch.cuda.is_available() and "cuda" in state["rng"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.step = int(state["step"])

    # ---- the loop -------------------------------------------------------------------------

    def _loader(self) -> DataLoader:
        run = self.config.run
        sampler = ResumableBatchSampler(
            len(self.dataset), self.parts.backbone.batch_size, run.seed, self.step
        )
        return DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=run.workers,
            persistent_workers=run.workers > 0,
            pin_memory=self.device.type == "cuda",
        )

    @contextlib.contextmanager
    def _stop_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM ask the loop to stop after the current step (twice: stop now)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def fit(self) -> Path:
        """Train until ``run.iterations`` (or a stop signal); return the run directory."""
        run = self.config.run
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.toml").write_text(dump_toml(self.config.to_dict()), "utf-8")
        self.sample_z = self.gan.generator.sample_z(
            run.samples, torch.Generator().manual_seed(run.seed + 2)
        )
        if self.step == 0:
            self.write_samples()
        window: dict[str, list[float]] = {}
        last_step_time = math.nan
        self.gan.train()
        with (
            self._stop_signals(),
            progress_bar(
                total=run.iterations,
                initial=min(self.step, run.iterations),
                disable=not run.progress,
                desc="train",
                unit="it",
            ) as bar,
        ):
            batches = iter(self._loader()) if self.step < run.iterations else iter(())
            while self.step < run.iterations and not self._stop_requested:
                t0 = time.perf_counter()
                real = normalise_videos(next(batches)["video"].to(self.device, non_blocking=True))
                t1 = time.perf_counter()
                metrics = self.gan.training_step(real, self.step, self.optimizers, self.rng)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                last_step_time = time.perf_counter() - t1
                metrics = {**metrics, "step_time": last_step_time, "data_time": t1 - t0}
                self.step += 1
                for k, v in metrics.items():
                    window.setdefault(k, []).append(float(v))
                self.registry.hook.on_step(run=self, step=self.step, metrics=metrics)
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items() if "loss" in k})
                if self.step % run.log_every == 0 or self.step == run.iterations:
                    self._log(window)
                    window = {}
                if self.step % run.sample_every == 0 or self.step == run.iterations:
                    self.write_samples()
                if self.step % run.checkpoint_every == 0 or self.step == run.iterations:
                    self.save()
        if self._stop_requested and self.step < run.iterations:
            if window:
                self._log(window)
            path = self.save()
            print(
                f"stopped at step {self.step}; checkpoint {path}. Continue with: "
                f"ndevgan run --resume {self.run_dir}",
                file=sys.stderr,
            )
        return self.run_dir

    # ---- outputs --------------------------------------------------------------------------

    def _log(self, window: dict[str, list[float]]) -> None:
        record = {"step": self.step, "time": time.time()}
        record.update({k: sum(v) / len(v) for k, v in window.items()})
        with (self.run_dir / "log.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def checkpoint_payload(self) -> dict[str, Any]:
        """The state that :meth:`save` writes: everything needed to continue exactly."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "train": self.rng.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "step": self.step,
            "config": self.config.to_dict(),
            "model": self.gan.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "rng": rng,
        }

    def save(self) -> Path:
        """Write a checkpoint of the current step atomically and prune old ones."""
        path = save_checkpoint(checkpoint_path(self.run_dir, self.step), self.checkpoint_payload())
        for old in list_checkpoints(self.run_dir)[: -self.config.run.keep_checkpoints]:
            old.unlink(missing_ok=True)
        self.registry.hook.on_checkpoint(run=self, step=self.step, path=path)
        return path

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Videos for latents ``z`` with the generator in eval mode (training mode restored).

        A stochastic temporal generator gets the same noise at every call (seeded from the run's
        seed), so successive sample grids differ only by training, not by a new Brownian path.
        """
        generator = self.gan.generator
        was_training = generator.training
        generator.eval()
        noise_rng = torch.Generator().manual_seed(self.config.run.seed + 3)
        try:
            return generator(z.to(self.device), generator=noise_rng).float().cpu()
        finally:
            generator.train(was_training)

    def write_samples(self) -> list[Path]:
        """Write the fixed-latent sample grid (video) and frame strip (PNG) of this step."""
        run = self.config.run
        videos = media.to_uint8(self.generate(self.sample_z))
        stem = self.run_dir / "samples" / f"step-{self.step:08d}"
        paths = [
            media.write_video(
                stem.with_suffix(f".{run.sample_format}"), media.video_grid(videos), fps=run.fps
            ),
            media.write_png(stem.with_suffix(".png"), media.frame_strip(videos[:8])),
        ]
        self.registry.hook.on_sample(run=self, step=self.step, paths=paths)
        return paths
