"""Training under ``torchrun``: process group, DDP wrappers, gradient sync and batch norm.

``torchrun --nproc-per-node N ndevgan run …`` starts N processes, each with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment. :func:`setup` reads them, picks the
device (``cuda:LOCAL_RANK`` on GPUs, else the CPU) and joins the process group (NCCL on CUDA,
gloo on the CPU). The trainer then trains a *view* of the GAN (:func:`training_view`) whose
generator and discriminators are each wrapped separately:

- :class:`DistributedModule` (a ``DistributedDataParallel``) averages gradients across ranks
  during ``backward``, overlapped with it. Attribute access falls through to the wrapped
  network, so backbone code (``generator.sample_z``, ``generator.temporal``, ``spec``) works
  unchanged. A call with gradients disabled, or on a network whose parameters are all frozen
  (a GAN's discriminator during the generator step), runs the network directly: DDP would
  otherwise wait for gradients that never come.
- :class:`GradientSync` hooks every optimiser's ``step``: gradients that DDP did not average
  in this step — a backbone that calls ``torch.autograd.grad`` (TGANv2's simultaneous update
  and R1) or drives a network through its submodules — are averaged there, in flat buckets.
  Averaging is idempotent on gradients that are already equal across ranks, so this never
  double-counts; DDP's own reduction only saves the second pass.
- Batch norm sees the global batch: :func:`convert_batchnorm` swaps every BatchNorm layer
  for ``torch.nn.SyncBatchNorm`` on CUDA and for :class:`CrossRankBatchNorm` on the CPU
  (``SyncBatchNorm`` runs on GPUs only). State-dict keys do not change.
- ``run.amp = "bf16"`` runs each wrapped network's forward under ``torch.autocast``
  (:class:`AutocastModule`), returning float32 (a network a backbone drives through its
  submodules' methods, as TGANv2's generator, stays in float32).

Each rank's loss is the backbone's loss on its share of the batch and gradients are averaged,
which is the single-process gradient for losses that are batch means; a loss summed over the
batch (TGANv2's R1 with ``r1_reduction = "sum"``) weighs 1/N of its single-process value.

Randomness. Weights start equal on every rank (same seed; DDP broadcasts rank 0's anyway).
The data of step ``s`` is the same global batch for any N and rank ``r`` takes rows
``[r·B/N, (r+1)·B/N)`` (:class:`~ndevgan_core.training.trainer.ResumableBatchSampler`). Latents the
backbone draws from the step's generator come from the run's latent stream, shared by all
ranks: each draw is made for the global batch and the rank keeps its rows
(:class:`DistributedVideoGenerator`), so rank ``r`` gets exactly the latents a single process
would give those rows. Everything else the backbone draws from the step's generator (temporal
noise, MoCoGAN's frame choices, TGANv2's subsampling offsets) comes from a per-rank generator
reseeded every step from ``(run.seed, rank, step)`` (:func:`noise_seed`), so it is
independent across ranks and needs no state in checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import torch
import torch.distributed as dist

# Imported before any process group exists, on purpose: torch.distributed.nn.functional
# binds ``group.WORLD`` as a default argument when first imported (DDP imports it lazily), so
# importing it under a live group keeps that group, and gloo's threads, alive past
# destroy_process_group to the interpreter's shutdown, where they abort the process now and
# then ("terminate called without an active exception").
import torch.distributed.nn
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ndevgan_core.contracts import VideoGAN
from ndevgan_core.errors import ConfigError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
"""The environment variables torchrun sets in every process it starts."""

BUCKET_BYTES = 25 * 2**20
"""Size of the flat buffers :class:`GradientSync` averages gradients in (DDP's default)."""

# torch 2.13 renamed DDP's broadcast_buffers (and warns about the old name); older releases
# know only broadcast_buffers.
_SYNC_BUFFERS_ARGUMENT = (
    "forward_sync_buffers"
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else "broadcast_buffers"
)


# --------------------------------------------------------------------------------------------
# The process group


@attrs.frozen
class DistributedContext:
    """Where this process stands: its rank among ``world_size`` processes and its device.

    ``active`` is True when the process was started by torchrun (even with one process);
    ``owns_group`` when :func:`setup` created the process group (and :meth:`close` destroys
    it).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    active: bool = False
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and shows progress."""
        return self.rank == 0

    def close(self, *, wait_for_peers: bool = False) -> None:
        """Destroy the process group if this context created it.

        With ``wait_for_peers`` every rank first waits at a barrier until all have finished
        (rank 0 may still be writing the last checkpoint and samples): a gloo rank that tears
        its connections down while a peer still holds them can abort the whole job. Leave it
        off on the way out of an error, when the other ranks may never arrive.
        """
        if self.owns_group and dist.is_initialized():
            if wait_for_peers and self.world_size > 1:
                dist.barrier()
            dist.destroy_process_group()


def launched_by_torchrun(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment holds torchrun's RANK, WORLD_SIZE and LOCAL_RANK."""
    env = os.environ if environ is None else environ
    return all(name in env for name in TORCHRUN_VARIABLES)


def _env_int(env: Mapping[str, str], name: str) -> int:
    try:
        value = int(env[name])
    except ValueError:
        raise ConfigError(
            f"torchrun environment: {name}={env[name]!r} is not a whole number"
        ) from None
    if value < 0:
        raise ConfigError(f"torchrun environment: {name}={value} is negative")
    return value


def torchrun_device(device: str, local_rank: int, world_size: int) -> torch.device:
    """The device of the process with ``local_rank`` for the ``run.device`` setting.

    ``auto`` and ``cuda`` give ``cuda:LOCAL_RANK`` (``auto`` falls back to the CPU without
    CUDA); ``cpu`` gives the CPU; ``cuda:N`` is accepted only for a single process.
    """
    if device == "cpu":
        return torch.device("cpu")
    if device == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if device not in ("auto", "cuda"):
        if world_size > 1:
            raise ConfigError(
                f"run.device = {device!r} names one GPU, but torchrun started {world_size} "
                "processes; use cuda or auto (each process takes cuda:LOCAL_RANK)"
            )
        return torch.device(device)
    if not torch.cuda.is_available():
        raise ConfigError(f"run.device is {device!r} but this machine has no CUDA device")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ConfigError(
            f"torchrun process LOCAL_RANK={local_rank} needs cuda:{local_rank}, but this "
            f"machine has {count} GPU(s); start at most {count} processes per node"
        )
    return torch.device("cuda", local_rank)


def setup(device: str, environ: Mapping[str, str] | None = None) -> DistributedContext | None:
    """Join torchrun's process group; None when this process was not started by torchrun.

    ``device`` is the ``run.device`` setting. Uses NCCL on CUDA and gloo on the CPU; a
    process group that already exists (made by the caller) is used as it is — make it after
    importing this module, so the group can be freed when destroyed (see the imports).
    """
    env = os.environ if environ is None else environ
    if not launched_by_torchrun(env):
        return None
    rank, world_size, local_rank = (_env_int(env, name) for name in TORCHRUN_VARIABLES)
    if rank >= world_size:
        raise ConfigError(f"torchrun environment: RANK={rank} but WORLD_SIZE={world_size}")
    chosen = torchrun_device(device, local_rank, world_size)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    owns = False
    if not dist.is_initialized():
        if chosen.type == "cuda":
            dist.init_process_group("nccl", device_id=chosen)
        else:
            dist.init_process_group("gloo")
        owns = True
    return DistributedContext(
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        device=chosen,
        active=True,
        owns_group=owns,
    )


def noise_seed(seed: int, rank: int, step: int) -> int:
    """The seed of rank ``rank``'s noise generator at ``step``: a hash of all three, so
    streams of different ranks, steps and runs do not overlap."""
    digest = hashlib.blake2b(f"{seed}/{rank}/{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def broadcast_object(value: Any, context: DistributedContext) -> Any:
    """Rank 0's ``value`` on every rank (picklable plain data only)."""
    if not context.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree(
    metrics: Mapping[str, float], stop: bool, context: DistributedContext
) -> tuple[dict[str, float], bool]:
    """Average ``metrics`` over the ranks and OR their ``stop`` flags, in one all-reduce.

    Every rank must pass the same metric names. Returns what every rank then agrees on.
    """
    names = sorted(metrics)
    values = [float(metrics[k]) for k in names] + [1.0 if stop else 0.0]
    packed = torch.tensor(values, dtype=torch.float64, device=context.device)
    dist.all_reduce(packed)
    averaged = (packed[:-1] / context.world_size).tolist()
    return dict(zip(names, averaged, strict=True)), bool(packed[-1].item() > 0)


# --------------------------------------------------------------------------------------------
# Batch norm over the global batch


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over all ranks, with gradients flowing back to every rank (torch's
    differentiable all-reduce: the gradient of a sum over ranks is the sum over ranks of the
    gradients, to any order)."""
    return torch.distributed.nn.functional.all_reduce(tensor)


class CrossRankBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics cover the batch of every rank (CPU and CUDA).

    A drop-in for BatchNorm1d/2d/3d with the same parameters, buffers and state-dict keys.
    In training mode under an initialised process group with more than one rank, the mean
    and (biased) variance come from sums all-reduced across ranks — two small all-reduces
    forward and two backward — so the output equals single-process batch norm over the
    concatenated batch; running statistics are updated with the global figures, identically
    on every rank. Otherwise it is plain batch norm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input of at least 2 dimensions, got {input.dim()}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Normalise ``input`` (N, C, …) per channel."""
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = input.new_tensor([input.numel() // input.shape[1]])
        totals = all_reduce_sum(torch.cat([input.sum(dims), count]))
        n = totals[-1]
        mean = totals[:-1] / n
        centred = input - mean.view(shape)
        var = all_reduce_sum(centred.square().sum(dims)) / n
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                if self.momentum is None:
                    factor = 1.0 / float(self.num_batches_tracked)
                else:
                    factor = self.momentum
                unbiased = var.detach() * (n / (n - 1).clamp(min=1))
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        return out


_PLAIN_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _cross_rank_copy(layer: nn.modules.batchnorm._BatchNorm) -> CrossRankBatchNorm:
    new = CrossRankBatchNorm(
        layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats
    )
    # the same Parameter and buffer objects: optimisers and state dicts see no change
    if layer.affine:
        new.weight, new.bias = layer.weight, layer.bias
    if layer.track_running_stats:
        new.running_mean = layer.running_mean
        new.running_var = layer.running_var
        new.num_batches_tracked = layer.num_batches_tracked
    new.train(layer.training)
    return new


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm1d/2d/3d in ``module`` (in place) by one that normalises over
    all ranks' batches: ``torch.nn.SyncBatchNorm`` on CUDA, :class:`CrossRankBatchNorm` on
    the CPU. Parameters and buffers are kept (the same objects); returns ``module``."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, _PLAIN_BATCHNORM):
        return _cross_rank_copy(module)
    for name, child in module.named_children():
        if isinstance(child, _PLAIN_BATCHNORM):
            setattr(module, name, _cross_rank_copy(child))
        else:
            convert_batchnorm(child, device)
    return module


# --------------------------------------------------------------------------------------------
# Wrappers


class _Transparent:
    """Mixin: attributes the wrapper lacks are read from the wrapped ``module``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)  # type: ignore[misc]
        except AttributeError:
            modules = self.__dict__.get("_modules", {})
            if name == "module" or "module" not in modules:
                raise
            return getattr(modules["module"], name)


def _to_float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, tuple | list):
        return type(value)(_to_float32(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_float32(v) for k, v in value.items()}
    return value


class AutocastModule(_Transparent, nn.Module):
    """Runs ``module``'s forward under ``torch.autocast(device_type, bfloat16)`` and returns
    its floating-point outputs as float32, so losses, optimiser steps and weight clipping
    outside the forward stay in full precision."""

    def __init__(self, module: nn.Module, device_type: str) -> None:
        super().__init__()
        self.module = module
        self.device_type = device_type

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped module's forward in bfloat16 autocast; float outputs as float32."""
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            out = self.module(*args, **kwargs)
        return _to_float32(out)


class DistributedModule(_Transparent, DistributedDataParallel):
    """One network under DDP, transparent to the code that uses it.

    Attributes the wrapper lacks come from the network. Forward passes that produce no
    gradient for the network (gradients disabled, or every parameter frozen) skip DDP and
    call the network directly. ``reduced`` becomes True when DDP averages this network's
    gradients in a backward; :class:`GradientSync` reads and clears it.

    ``device_ids`` is ``[index]`` on CUDA and None on the CPU; ``sync_buffers`` makes DDP copy
    rank 0's buffers to every rank before each forward (not needed when batch norm is
    synchronised: its running statistics are then the same everywhere);
    ``find_unused_parameters`` lets a backward leave some parameters without a gradient.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        device_ids: list[int] | None = None,
        sync_buffers: bool = True,
        find_unused_parameters: bool = False,
    ) -> None:
        super().__init__(
            module,
            device_ids=device_ids,
            find_unused_parameters=find_unused_parameters,
            **{_SYNC_BUFFERS_ARGUMENT: sync_buffers},
        )
        # The hook's state is a separate flag, not the module: DDP's C++ reducer keeps the
        # state alive, and a module -> reducer -> module cycle through C++ is invisible to
        # Python's collector, so the wrapper (and gloo's threads) would live until shutdown.
        self._reduction = _ReductionFlag()
        self._own_parameters = [p for p in module.parameters()]
        self.register_comm_hook(self._reduction, _average_and_mark)

    @property
    def reduced(self) -> bool:
        """Whether DDP averaged this network's gradients since the flag was last cleared."""
        return self._reduction.reduced

    @reduced.setter
    def reduced(self, value: bool) -> None:
        self._reduction.reduced = value

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """DDP's forward, or the network's own when no gradient can reach it."""
        if not torch.is_grad_enabled() or not any(p.requires_grad for p in self._own_parameters):
            return self.module(*args, **kwargs)
        return super().forward(*args, **kwargs)


@attrs.define
class _ReductionFlag:
    """The comm hook's state: set when DDP has averaged a network's gradients."""

    reduced: bool = False


# Unannotated on purpose: DDP compares the hook's annotations with the real classes, and this
# module's postponed (string) annotations would fail that check.
def _average_and_mark(state, bucket):  # type: ignore[no-untyped-def]
    """DDP's default all-reduce of one gradient bucket (sum / world size), marking the
    module as reduced in this backward."""
    state.reduced = True
    buffer = bucket.buffer().div_(dist.get_world_size())
    future = dist.all_reduce(buffer, async_op=True).get_future()
    return future.then(lambda done: done.value()[0])


@attrs.define
class LatentSharding:
    """What :class:`DistributedVideoGenerator` needs to serve a rank its share of latents:
    the run's shared latent ``stream``, the per-rank generator the trainer hands the backbone
    this step (``step_rng``), and the rank's position."""

    stream: torch.Generator
    step_rng: torch.Generator
    rank: int
    world_size: int


class DistributedVideoGenerator(DistributedModule):
    """The generator under DDP; latents drawn from the step's generator are this rank's rows
    of a global draw from the shared latent stream (see the module docstring)."""

    def __init__(self, module: nn.Module, sharding: LatentSharding, **kwargs: Any) -> None:
        """``kwargs`` as :class:`DistributedModule`'s."""
        super().__init__(module, **kwargs)
        self.sharding = sharding

    def sample_z(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``n`` latents: rows ``[rank·n, (rank+1)·n)`` of ``n·world_size`` drawn from the shared
        stream when ``generator`` is the step's generator; otherwise the network's own draw."""
        shard = self.sharding
        if generator is None or generator is not shard.step_rng:
            return self.module.sample_z(n, generator, device)
        z = self.module.sample_z(n * shard.world_size, shard.stream)
        mine = z[shard.rank * n : (shard.rank + 1) * n]
        return mine.to(device) if device is not None else mine


def training_view(gan: VideoGAN, wrap: Callable[[nn.Module, bool], nn.Module]) -> VideoGAN:
    """A shallow copy of ``gan`` whose ``generator`` and each of whose ``discriminators`` is
    ``wrap(network, is_generator)``.

    Everything else — the modules themselves, their parameters, config and methods — is
    shared, so ``training_step`` runs on the wrapped networks while ``gan`` keeps its plain
    structure and state-dict keys (checkpoints are the same as in one process).
    """
    view = copy.copy(gan)
    modules = dict(gan._modules)
    modules["generator"] = wrap(gan.generator, True)
    modules["discriminators"] = nn.ModuleDict(
        {name: wrap(d, False) for name, d in gan.discriminators.items()}
    )
    view.__dict__["_modules"] = modules
    return view


# --------------------------------------------------------------------------------------------
# Gradients DDP did not average


def _buckets(tensors: list[torch.Tensor], limit: int) -> Iterator[list[torch.Tensor]]:
    bucket: list[torch.Tensor] = []
    size = 0
    for t in tensors:
        if bucket and (
            size + t.numel() * t.element_size() > limit
            or t.dtype != bucket[0].dtype
            or t.device != bucket[0].device
        ):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += t.numel() * t.element_size()
    if bucket:
        yield bucket


def average_gradients(grads: list[torch.Tensor], bucket_bytes: int = BUCKET_BYTES) -> None:
    """Replace each tensor in ``grads`` by its mean over the ranks, in flat buckets."""
    world = dist.get_world_size()
    for bucket in _buckets(grads, bucket_bytes):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        flat.div_(world)
        offset = 0
        for g in bucket:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


class GradientSync:
    """Makes every optimiser step use gradients averaged over the ranks.

    Before each ``step`` of the given optimisers, the gradients of its parameters that DDP
    has not averaged in this training step are averaged (a backbone's
    ``torch.autograd.grad`` + ``p.grad = …``, submodules driven directly, parameters outside
    the wrapped networks). Every rank runs the same training step, so every rank makes the
    same all-reduces in the same order.
    """

    def __init__(
        self,
        optimizers: Mapping[str, torch.optim.Optimizer],
        wrappers: list[DistributedModule],
    ) -> None:
        self.wrappers = wrappers
        self._owner = {id(p): w for w in wrappers for p in w._own_parameters}
        self._handles = [
            opt.register_step_pre_hook(self._before_step) for opt in optimizers.values()
        ]

    def begin_step(self) -> None:
        """Forget reductions of an earlier training step."""
        for w in self.wrappers:
            w.reduced = False

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        pending: list[torch.Tensor] = []
        consumed: list[DistributedModule] = []
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                owner = self._owner.get(id(p))
                if owner is not None and owner.reduced:
                    consumed.append(owner)
                    continue
                pending.append(p.grad)
        if pending:
            average_gradients(pending)
        for w in consumed:
            w.reduced = False

    def remove(self) -> None:
        """Unhook the optimisers."""
        for handle in self._handles:
            handle.remove()


@contextlib.contextmanager
def translate_ddp_errors() -> Iterator[None]:
    """Turn DDP's error for parameters that got no gradient into a one-line ConfigError."""
    try:
        yield
    except RuntimeError as exc:
        if "finished reduction in the prior iteration" in str(exc):
            raise ConfigError(
                "a network has parameters that received no gradient in a DDP backward; set "
                "run.find_unused_parameters = true (slower) for this configuration"
            ) from None
        raise
