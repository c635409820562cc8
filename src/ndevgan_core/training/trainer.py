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

Under ``torchrun`` (see :mod:`ndevgan_core.training.distributed`) every process trains its slice of
each global batch with the networks wrapped in DDP; rank 0 alone writes the run directory and
shows progress, logged figures are averaged over the ranks, and a stop signal stops every
rank after the same step. Checkpoints hold the plain networks' state (the keys of a
single-process run) with the RNG state of rank 0, so they load in one process and resume on
any number of processes: on the same number the continuation is exact; on another, the data
and latents still continue exactly where they stopped, the per-rank noise and the order of
floating-point sums differ.
"""

from __future__ import annotations

import contextlib
import copy
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
from torch import nn
from torch.utils.data import DataLoader, Sampler

from ndevgan_core import media
from ndevgan_core.config import dump_toml, load_toml
from ndevgan_core.contracts import VideoGAN, normalise_videos
from ndevgan_core.devices import resolve_device
from ndevgan_core.errors import CheckpointError, ConfigError
from ndevgan_core.files import DirectoryLock, write_text_atomic
from ndevgan_core.progress import progress_bar
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import Assembled, ResolvedConfig, assemble, make_dataset
from ndevgan_core.training import distributed
from ndevgan_core.training.checkpoint import (
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)

CONTINUATION_KEYS = ("seed", "amp", "sync_batchnorm")
"""The ``[run]`` settings that change what training computes: a resume must keep them (the
others — iterations, output, logging, workers, threads, device, ema — may change)."""


def changed_options(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The dotted names of the options in which two config trees differ, among everything but
    the ``[run]`` settings outside :data:`CONTINUATION_KEYS` (e.g. ``run.seed``,
    ``backbone.tgan.lr``, ``plugins.temporal``). Lists and tuples compare alike (TOML has
    only arrays)."""
    out: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                name = f"{prefix}.{key}" if prefix else str(key)
                if name == "run":
                    run_a, run_b = a.get("run") or {}, b.get("run") or {}
                    out.extend(
                        f"run.{k}" for k in CONTINUATION_KEYS if run_a.get(k) != run_b.get(k)
                    )
                    continue
                walk(a.get(key), b.get(key), name)
        elif _plain(a) != _plain(b):
            out.append(prefix)

    walk(before, after, "")
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class ResumableBatchSampler(Sampler[list[int]]):
    """Endless shuffled batches whose order depends only on (seed, step).

    Epoch ``e`` is a permutation drawn from a generator seeded with ``(seed, e)``; step ``s``
    takes the ``s``-th full batch of that sequence. Starting at any step reproduces exactly
    the batches an uninterrupted run would have seen, with no sampler state to save. With
    ``epoch_indices`` (a dataset's :attr:`~ndevgan_core.contracts.VideoDataset.epoch_indices`)
    epoch ``e`` yields ``i + e·length``, so the dataset can draw a new clip in every epoch.

    With ``world_size`` processes, ``batch_size`` is the global batch and process ``rank``
    gets rows ``[rank·b, (rank+1)·b)`` of it, ``b = batch_size / world_size``: the same data
    is seen in each step whatever the number of processes.
    """

    def __init__(
        self,
        length: int,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epoch_indices: bool = False,
    ) -> None:
        if length < batch_size:
            raise ConfigError(
                f"the dataset has {length} clips, fewer than one batch of {batch_size}"
            )
        if batch_size % world_size:
            raise ConfigError(
                f"the batch of {batch_size} does not split evenly over {world_size} processes"
            )
        self.length = length
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.per_epoch = length // batch_size
        self.epoch_indices = epoch_indices
        share = batch_size // world_size
        self._rows = slice(rank * share, (rank + 1) * share)

    def _epoch(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.length, generator=g)
        return perm + epoch * self.length if self.epoch_indices else perm

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        epoch, pos = divmod(step, self.per_epoch)
        perm = self._epoch(epoch)
        while True:
            if pos == self.per_epoch:
                epoch, pos = epoch + 1, 0
                perm = self._epoch(epoch)
            yield perm[pos * self.batch_size : (pos + 1) * self.batch_size][self._rows].tolist()
            pos += 1

    def __len__(self) -> int:  # DataLoader asks; the sampler is endless
        return sys.maxsize


class Trainer:
    """Trains the GAN a resolved config describes.

    ``run_dir`` defaults to a new directory under ``run.out``; ``resume`` is a run directory
    or checkpoint file to continue from. Its config must match, except ``[run]`` settings that
    do not change the computation (:data:`CONTINUATION_KEYS` must match too) — unless
    ``force``. One process at a time writes a run directory: the trainer holds its lock
    (:class:`~ndevgan_core.files.DirectoryLock`) from construction until :meth:`fit` returns
    (or :meth:`close`).

    Started by torchrun, the trainer joins the process group (and leaves it when :meth:`fit`
    ends). ``rank``, ``world_size`` and ``is_main`` say where this process stands (0, 1 and
    True in a single process); ``gan`` (also :attr:`unwrapped`) is always the plain
    :class:`~ndevgan_core.contracts.VideoGAN`, while ``model`` is what ``training_step`` runs
    on: ``gan`` itself in one process, or a view of it whose networks are DDP (and autocast)
    wrappers. ``on_step`` reaches plugins on every rank, after the ranks have agreed on the
    step's averaged metrics, so a plugin may run collective operations from it;
    ``on_checkpoint`` and ``on_sample`` fire on rank 0 only.

    ``rng`` is the training step's generator in one process; under torchrun it is the latent
    stream shared by the ranks, and ``noise_rng`` (reseeded every step from the seed, rank
    and step) is the generator the backbone's step receives.
    """

    def __init__(
        self,
        config: ResolvedConfig,
        registry: Registry,
        run_dir: str | Path | None = None,
        resume: str | Path | None = None,
        force: bool = False,
    ) -> None:
        self.config = config
        self.registry = registry
        self.force = force
        self._lock: DirectoryLock | None = None
        self._loggers: list[Any] = []
        self.resume_hint: str | None = None
        """What the stop message tells the user to run to continue (default: ``ndevgan run
        --resume RUN_DIR``); a caller that drives the trainer, as a study, sets its own."""
        context = distributed.setup(config.run.device)
        self.distributed = context or distributed.DistributedContext(
            rank=0, world_size=1, local_rank=0, device=resolve_device(config.run.device)
        )
        try:
            self._build(config, registry, run_dir, resume)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Unregister this run's loggers, release the run directory's lock and leave the
        process group (idempotent): a later run in this process sends its events to its own
        loggers only."""
        for logger in self._loggers:
            self.registry.remove_plugin(logger)
        self._loggers = []
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self.distributed.close()

    @property
    def rank(self) -> int:
        """This process's rank among :attr:`world_size` (0 in a single process)."""
        return self.distributed.rank

    @property
    def world_size(self) -> int:
        """Number of training processes (1 unless started by torchrun)."""
        return self.distributed.world_size

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run directory (rank 0)."""
        return self.distributed.is_main

    @property
    def unwrapped(self) -> VideoGAN:
        """The plain VideoGAN (no DDP or autocast wrappers), as checkpoints store it."""
        return self.gan

    def _build(
        self,
        config: ResolvedConfig,
        registry: Registry,
        run_dir: str | Path | None,
        resume: str | Path | None,
    ) -> None:
        run = config.run
        self.device = self.distributed.device
        if run.amp == "bf16" and self.device.type != "cuda":
            raise ConfigError(
                f"run.amp = 'bf16' needs a CUDA device; this run is on {self.device.type}. "
                "Use run.amp = 'none'"
            )
        if config.run.threads:
            torch.set_num_threads(config.run.threads)
        state = None
        if resume is not None:
            resume = Path(resume)
            if run_dir is None:
                run_dir = resume if resume.is_dir() else resume.resolve().parent.parent
        if run_dir is None:
            run_dir = distributed.broadcast_object(
                str(self._new_run_dir()) if self.is_main else None, self.distributed
            )
        self.run_dir = Path(run_dir)
        if self.is_main:
            self._lock = DirectoryLock(self.run_dir).acquire()
        if resume is not None:
            state = load_checkpoint(resume)
            self._check_resumable(state)
            self._check_same_run(state)
        if state is None and list_checkpoints(self.run_dir):
            raise ConfigError(
                f"run directory {self.run_dir} already has checkpoints; resume it with "
                f"--resume {self.run_dir}, or choose another run.name"
            )
        if self.is_main:
            self._tidy_run_dir(int(state["step"]) if state is not None else 0)
        torch.manual_seed(config.run.seed)
        self.parts: Assembled = assemble(config, registry)
        gan = self.parts.gan
        if self.distributed.active and run.sync_batchnorm:
            gan = distributed.convert_batchnorm(gan, self.device)
        self.gan: VideoGAN = gan.to(self.device)
        self.generator_ema: nn.Module | None = None
        if run.ema:
            self.generator_ema = copy.deepcopy(self.gan.generator).requires_grad_(False).eval()
        self.optimizers = self.gan.configure_optimizers()
        self._base_lrs = {
            name: [group["lr"] for group in opt.param_groups]
            for name, opt in self.optimizers.items()
        }
        self.dataset = make_dataset(config, registry, self.parts.backbone)
        batch = self.parts.backbone.batch_size
        if batch % self.world_size:
            raise ConfigError(
                f"{config.plugins.backbone}.batch_size = {batch} (the global batch) does not "
                f"split evenly over the {self.world_size} torchrun processes"
            )
        self.rng = torch.Generator().manual_seed(config.run.seed + 1)
        self.noise_rng = torch.Generator()
        self.step = 0
        for name in config.plugins.loggers:  # unregistered by close(), when the run ends
            logger = registry.create(name, config.components[name])
            registry.add_plugin(logger)
            self._loggers.append(logger)
        if state is not None:
            self._restore(state)
        self.model: VideoGAN = self._training_model()
        self._stop_requested = False
        self._stop_agreed = False

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
        """Refuse (unless ``force``) a config that would not continue the checkpoint's run
        exactly, naming every changed option."""
        if self.force:
            return
        changed = changed_options(state["config"], self.config.to_dict())
        if changed:
            raise ConfigError(
                "cannot resume: these options differ from the checkpoint's and would not "
                f"continue its run exactly: {', '.join(changed)} (only other [run] settings may "
                "change on resume; --force resumes anyway)"
            )

    def _check_same_run(self, state: dict[str, Any]) -> None:
        """A checkpoint from another run (copied into this directory) is refused: resuming it
        would overwrite this run's config.toml."""
        saved_path = self.run_dir / "config.toml"
        if not saved_path.is_file():
            return
        try:
            saved = load_toml(str(saved_path))
        except ConfigError:
            return  # an unreadable config.toml is rewritten from the checkpoint's config
        changed = changed_options(saved, state["config"])
        if changed:
            raise CheckpointError(
                f"the checkpoint does not belong to the run in {self.run_dir}: it differs from "
                f"{saved_path} in {', '.join(changed)}; resume it in its own run directory"
            )

    def _tidy_run_dir(self, step: int) -> None:
        """Remove what a killed process left behind: temporary checkpoint files, and log
        lines of steps after the checkpoint this run continues from (they will be redone)."""
        for orphan in (self.run_dir / "checkpoints").glob(".*.tmp*"):
            orphan.unlink(missing_ok=True)
        log = self.run_dir / "log.jsonl"
        if not log.is_file():
            return
        kept: list[str] = []
        dropped = False
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record_step = json.loads(line).get("step", 0)
            except (json.JSONDecodeError, AttributeError):
                dropped = True  # a line cut short by a kill
                continue
            if isinstance(record_step, int) and record_step > step:
                dropped = True
                continue
            kept.append(line)
        if dropped:
            write_text_atomic(log, "".join(f"{line}\n" for line in kept))

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.gan.load_state_dict(state["model"])
            if self.generator_ema is not None:
                # a checkpoint without an average (ema set on resume) starts it from the weights
                ema = state.get("generator_ema") or self.gan.generator.state_dict()
                self.generator_ema.load_state_dict(ema)
            for name, opt in self.optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint does not fit this model: {exc}") from None
        torch.set_rng_state(state["rng"]["torch"])
        self.rng.set_state(state["rng"]["train"])
        saved_cuda = state["rng"].get("cuda")
        # a checkpoint from a machine with another GPU count keeps this machine's CUDA state
        if (
            saved_cuda is not None
            and torch.cuda.is_available()
            and len(saved_cuda) == torch.cuda.device_count()
        ):
            torch.cuda.set_rng_state_all(saved_cuda)
        self.step = int(state["step"])

    def _training_model(self) -> VideoGAN:
        """``gan`` in one process without autocast; otherwise a view with wrapped networks."""
        run = self.config.run
        amp = run.amp == "bf16"
        self._gradient_sync: distributed.GradientSync | None = None
        if not self.distributed.active and not amp:
            return self.gan
        wrappers: list[distributed.DistributedModule] = []
        sharding = distributed.LatentSharding(self.rng, self.noise_rng, self.rank, self.world_size)

        options = {
            "device_ids": [self.device.index] if self.device.type == "cuda" else None,
            "sync_buffers": not run.sync_batchnorm,
            "find_unused_parameters": run.find_unused_parameters,
        }

        def wrap(network: nn.Module, is_generator: bool) -> nn.Module:
            if amp:
                network = distributed.AutocastModule(network, self.device.type)
            if not self.distributed.active or not any(
                p.requires_grad for p in network.parameters()
            ):
                return network
            wrapped = (
                distributed.DistributedVideoGenerator(network, sharding, **options)
                if is_generator
                else distributed.DistributedModule(network, **options)
            )
            wrappers.append(wrapped)
            return wrapped

        view = distributed.training_view(self.gan, wrap)
        if self.distributed.active:
            self._gradient_sync = distributed.GradientSync(self.optimizers, wrappers)
        return view

    # ---- the loop -------------------------------------------------------------------------

    def _loader(self) -> DataLoader:
        run = self.config.run
        sampler = ResumableBatchSampler(
            len(self.dataset),
            self.parts.backbone.batch_size,
            run.seed,
            self.step,
            rank=self.rank,
            world_size=self.world_size,
            epoch_indices=getattr(self.dataset, "epoch_indices", False),
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
        """SIGINT/SIGTERM ask the loop to stop after the current step (twice: stop now).

        Under torchrun the launcher forwards its signals to every process; the processes may
        see one at different moments, so they stop after the first step at whose end any
        rank had seen it (:meth:`_should_stop`).
        """
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

    def _should_stop(self) -> bool:
        """A stop was asked for: at once in one process; under torchrun, as agreed by all
        ranks at the end of the last step."""
        return self._stop_agreed if self.distributed.active else self._stop_requested

    def _train_one_step(self, real: torch.Tensor) -> dict[str, float]:
        if not self.distributed.active:
            return self.model.training_step(real, self.step, self.optimizers, self.rng)
        self.noise_rng.manual_seed(
            distributed.noise_seed(self.config.run.seed, self.rank, self.step)
        )
        assert self._gradient_sync is not None
        self._gradient_sync.begin_step()
        with distributed.translate_ddp_errors():
            return self.model.training_step(real, self.step, self.optimizers, self.noise_rng)

    def fit(self) -> Path:
        """Train until ``run.iterations`` (or a stop signal); return the run directory.

        Under torchrun every rank calls this; it leaves the process group when done. The run
        directory's lock is released when it returns.
        """
        try:
            run_dir = self._fit()
        except BaseException:
            self._leave_process_group(wait_for_peers=False)
            self.close()
            raise
        self._leave_process_group(wait_for_peers=True)
        self.close()
        return run_dir

    def _leave_process_group(self, *, wait_for_peers: bool) -> None:
        # The DDP wrappers hold the process group and gloo's threads; left to the interpreter's
        # shutdown they can abort the process. Drop the last references while Python is alive.
        if self.distributed.active:
            if self._gradient_sync is not None:
                self._gradient_sync.remove()
                self._gradient_sync = None
            self.model = self.gan
        self.distributed.close(wait_for_peers=wait_for_peers)

    def _fit(self) -> Path:
        run = self.config.run
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.run_dir / "config.toml", dump_toml(self.config.to_dict()))
        self.sample_z = self.gan.generator.sample_z(
            run.samples, torch.Generator().manual_seed(run.seed + 2)
        )
        if self.step == 0 and self.is_main:
            self.write_samples()
        window: dict[str, list[float]] = {}
        last_step_time = math.nan
        self.gan.train()
        self.model.train()
        with (
            self._stop_signals(),
            progress_bar(
                total=run.iterations,
                initial=min(self.step, run.iterations),
                disable=not run.progress or not self.is_main,
                desc="train",
                unit="it",
            ) as bar,
        ):
            batches = iter(self._loader()) if self.step < run.iterations else iter(())
            while self.step < run.iterations and not self._should_stop():
                t0 = time.perf_counter()
                real = normalise_videos(next(batches)["video"].to(self.device, non_blocking=True))
                t1 = time.perf_counter()
                self._set_learning_rates()
                metrics = self._train_one_step(real)
                self._update_ema()
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                last_step_time = time.perf_counter() - t1
                metrics = {**metrics, "step_time": last_step_time, "data_time": t1 - t0}
                if self.distributed.active:
                    metrics, self._stop_agreed = distributed.agree(
                        metrics, self._stop_requested, self.distributed
                    )
                self.step += 1
                self.registry.hook.on_step(run=self, step=self.step, metrics=metrics)
                if not self.is_main:
                    continue
                for k, v in metrics.items():
                    window.setdefault(k, []).append(float(v))
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items() if "loss" in k})
                if self.step % run.log_every == 0 or self.step == run.iterations:
                    self._log(window)
                    window = {}
                if self.step % run.sample_every == 0 or self.step == run.iterations:
                    self.write_samples()
                if self.step % run.checkpoint_every == 0 or self.step == run.iterations:
                    self.save()
        if self._should_stop() and self.step < run.iterations and self.is_main:
            if window:
                self._log(window)
            path = self.save()
            print(
                f"stopped at step {self.step}; checkpoint {path}. Continue with: "
                f"{self.resume_hint or f'ndevgan run --resume {self.run_dir}'}",
                file=sys.stderr,
            )
        return self.run_dir

    def learning_rate_factor(self, step: int) -> float:
        """The factor on every base learning rate at iteration ``step`` (0-based): 1, then
        over the run's last ``lr_decay`` fraction a linear fall that would reach 0 at
        ``iterations``. A function of the step alone, so a resumed run continues the schedule."""
        run = self.config.run
        decay_steps = run.lr_decay * run.iterations
        if decay_steps <= 0:
            return 1.0
        return min(1.0, (run.iterations - step) / decay_steps)

    def _set_learning_rates(self) -> None:
        if not self.config.run.lr_decay:
            return
        factor = self.learning_rate_factor(self.step)
        for name, opt in self.optimizers.items():
            for group, base in zip(opt.param_groups, self._base_lrs[name], strict=True):
                group["lr"] = base * factor

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.generator_ema is None:
            return
        weight = 1.0 - self.config.run.ema
        live = self.gan.generator
        for average, current in zip(
            self.generator_ema.parameters(), live.parameters(), strict=True
        ):
            average.lerp_(current, weight)
        for average, current in zip(self.generator_ema.buffers(), live.buffers(), strict=True):
            average.copy_(current)

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator that samples, scoring and export use: the weight average when
        ``run.ema`` is set, else the trained generator itself."""
        return self.generator_ema if self.generator_ema is not None else self.gan.generator

    # ---- outputs --------------------------------------------------------------------------

    def _log(self, window: dict[str, list[float]]) -> None:
        record = {"step": self.step, "time": time.time()}
        record.update({k: sum(v) / len(v) for k, v in window.items()})
        with (self.run_dir / "log.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def checkpoint_payload(self) -> dict[str, Any]:
        """The state that :meth:`save` writes: everything needed to continue exactly.

        The networks' state is the plain :attr:`unwrapped` one (single-process keys); the RNG
        state is this process's. Makes no collective call, so rank 0 may call it alone.
        """
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "train": self.rng.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "step": self.step,
            "config": self.config.to_dict(),
            "model": self.gan.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "rng": rng,
            **(
                {"generator_ema": self.generator_ema.state_dict()}
                if self.generator_ema is not None
                else {}
            ),
        }

    def save(self) -> Path:
        """Write a checkpoint of the current step atomically and prune old ones (under
        torchrun the trainer calls this on rank 0 only)."""
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
        generator = self.sampling_generator
        was_training = generator.training
        generator.eval()
        noise_rng = torch.Generator().manual_seed(self.config.run.seed + 3)
        try:
            return generator(z.to(self.device), generator=noise_rng).float().cpu()
        finally:
            generator.train(was_training)

    def write_samples(self) -> list[Path]:
        """Write the fixed-latent sample grid (video) and frame strip (PNG) of this step
        (under torchrun the trainer calls this on rank 0 only)."""
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
