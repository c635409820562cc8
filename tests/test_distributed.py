"""Training under torchrun: data and latent sharding, DDP wrappers, parity with one process,
rank-0-only outputs, ranks kept in step, stop signals, and resume on another process count.

The multi-process tests start real ``torch.distributed.run`` (torchrun) subprocesses with two
gloo ranks on the CPU, one thread each.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import weakref
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import ndevgan_core as nd
from ndevgan_core.errors import ConfigError
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import resolve
from ndevgan_core.training import distributed
from ndevgan_core.training.checkpoint import list_checkpoints, load_checkpoint
from ndevgan_core.training.trainer import ResumableBatchSampler, Trainer

from .conftest import ROOT, fast_raw

ONE_THREAD = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

TGAN_TINY = [
    "--plugin", "backbone.tgan", "--set", "backbone.tgan.preset=tiny",
    "--set", "dataset.shapes.videos=64", "--set", "run.samples=4",
    "--set", "run.progress=false", "--set", "run.log_every=1", "--set", "run.threads=1",
    "--set", "run.sample_every=1000",
]  # fmt: skip
"""TGAN `tiny` (global batch 8) with its conv1d temporal generator: no random draws but z."""


def tgan_tiny_raw(**run: object) -> dict:
    """The raw config of :data:`TGAN_TINY` for in-process runs."""
    return {
        "run": {"progress": False, "samples": 4, "log_every": 1, "threads": 1,
                "sample_every": 1000, **run},
        "plugins": {"backbone": "backbone.tgan"},
        "backbone": {"tgan": {"preset": "tiny"}},
        "dataset": {"shapes": {"videos": 64}},
    }  # fmt: skip


def gloo_threads() -> list[str]:
    """Names of this process's threads that belong to gloo (Linux: /proc/self/task)."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        pytest.skip("needs /proc/self/task to list threads")
    names = [(t / "comm").read_text().strip() for t in tasks.iterdir()]
    return [n for n in names if "gloo" in n]


def registry() -> Registry:
    return Registry(entry_points=False, disabled=())


def torchrun(
    *args: str, nproc: int = 2, timeout: float = 240, check: bool = True
) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc-per-node N ARGS`` to completion."""
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc-per-node={nproc}", *args],
        capture_output=True, text=True, env={**os.environ, **ONE_THREAD}, cwd=ROOT,
        timeout=timeout,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"torchrun exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]


# ---- in one process -----------------------------------------------------------------------


def test_sampler_gives_each_rank_its_rows_of_the_same_global_batch():
    whole = iter(ResumableBatchSampler(20, 6, seed=3, start_step=2))
    ranks = [iter(ResumableBatchSampler(20, 6, 3, 2, rank=r, world_size=3)) for r in range(3)]
    for _ in range(5):  # crosses an epoch boundary (3 batches per epoch)
        parts = [next(it) for it in ranks]
        assert [len(p) for p in parts] == [2, 2, 2]
        assert [i for part in parts for i in part] == next(whole)
    with pytest.raises(ConfigError, match="does not split evenly over 4 processes"):
        ResumableBatchSampler(20, 6, seed=0, world_size=4)


def test_torchrun_environment_is_read_and_checked():
    assert distributed.setup("cpu", environ={}) is None
    assert not distributed.launched_by_torchrun({"RANK": "0", "WORLD_SIZE": "2"})
    bad = {"RANK": "one", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    with pytest.raises(ConfigError, match="RANK='one' is not a whole number"):
        distributed.setup("cpu", environ=bad)
    with pytest.raises(ConfigError, match="RANK=2 but WORLD_SIZE=2"):
        distributed.setup("cpu", environ={"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            distributed.torchrun_device("cuda", 0, 2)
        assert distributed.torchrun_device("auto", 1, 2) == torch.device("cpu")
    with pytest.raises(ConfigError, match="names one GPU, but torchrun started 2"):
        distributed.torchrun_device("cuda:1", 0, 2)
    seeds = {distributed.noise_seed(0, r, s) for r in range(4) for s in range(50)}
    assert len(seeds) == 200 and distributed.noise_seed(0, 1, 7) == distributed.noise_seed(0, 1, 7)


def test_bf16_is_refused_on_the_cpu_and_autocast_wraps_forward_only():
    cfg = resolve(fast_raw(amp="bf16", device="cpu"), registry())
    with pytest.raises(ConfigError, match="run.amp = 'bf16' needs a CUDA device"):
        Trainer(cfg, registry())

    class Probe(torch.nn.Linear):
        def forward(self, x):
            self.seen = x.dtype
            out = super().forward(x)
            self.produced = out.dtype
            return out

    probe = Probe(4, 3)
    wrapped = distributed.AutocastModule(probe, "cpu")  # the CPU has bf16 autocast too
    out = wrapped(torch.randn(2, 4))
    assert probe.produced == torch.bfloat16 and out.dtype == torch.float32
    assert wrapped.in_features == 4  # attributes fall through to the network
    assert out.sum().isfinite()


@pytest.fixture
def torchrun_of_one(monkeypatch):
    """The environment torchrun gives a single process; the group is gone afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port)}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_one_torchrun_process_trains_bitwise_like_a_plain_run(
    tmp_path, torchrun_of_one, monkeypatch
):
    # With one rank the DDP wrappers, gradient sync and metric agreement are all identities,
    # and the latents come from the same stream: the weights must be the very same bits.
    cfg = resolve(fast_raw(iterations=2, sample_every=100), registry())
    trainer = Trainer(cfg, registry(), run_dir=tmp_path / "torchrun")
    assert dist.is_initialized() and trainer.distributed.active
    assert (trainer.rank, trainer.world_size, trainer.is_main) == (0, 1, True)
    model = trainer.model
    assert isinstance(model.generator, distributed.DistributedVideoGenerator)
    assert isinstance(model.discriminators["video"], distributed.DistributedModule)
    assert model.generator.spec is trainer.gan.generator.spec  # backbone code's attributes
    assert model.generator.temporal is trainer.gan.generator.temporal
    assert trainer.unwrapped is trainer.gan and not isinstance(
        trainer.gan.generator, torch.nn.parallel.DistributedDataParallel
    )
    # a rank's latents are its rows of the global draw from the shared stream
    stream, step_rng = torch.Generator().manual_seed(5), trainer.noise_rng
    model.generator.sharding = distributed.LatentSharding(stream, step_rng, rank=1, world_size=2)
    rows = model.generator.sample_z(3, step_rng)
    assert torch.equal(
        rows, trainer.gan.generator.sample_z(6, torch.Generator().manual_seed(5))[3:]
    )
    other = torch.Generator().manual_seed(9)  # any other generator: the network's own draw
    assert torch.equal(
        model.generator.sample_z(2, other),
        trainer.gan.generator.sample_z(2, torch.Generator().manual_seed(9)),
    )
    model.generator.sharding = distributed.LatentSharding(trainer.rng, step_rng, 0, 1)
    wrapper = weakref.ref(model.generator)
    del model, rows
    run_dir = trainer.fit()
    assert not dist.is_initialized()  # fit leaves the group it joined
    # ...after dropping its DDP wrappers: left to the interpreter's shutdown, they hold gloo's
    # threads and once in a few runs aborted a finished two-process job
    assert trainer.model is trainer.gan and wrapper() is None
    # ...and no hidden reference keeps the group: its threads are gone (torch's
    # distributed.nn binds the live group as a default argument if imported under one)
    assert gloo_threads() == []

    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k)
    plain = nd.train(cfg, registry(), run_dir=tmp_path / "plain")
    a, b = load_checkpoint(run_dir)["model"], load_checkpoint(plain)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


UNUSED_PARAMETERS_SCRIPT = """
import gc
import torch
import torch.distributed as dist
from ndevgan_core.training import distributed
from ndevgan_core.errors import ConfigError

context = distributed.setup("cpu")
assert context is not None and context.owns_group


class HalfUsed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.unused = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)

    def forward(self, x):
        return self.used(x)


x = torch.randn(4, 3)
strict = distributed.DistributedModule(HalfUsed())
try:
    with distributed.translate_ddp_errors():
        for _ in range(2):
            strict(x).sum().backward()
except ConfigError as exc:
    print("ERROR:", exc)
tolerant = distributed.DistributedModule(HalfUsed(), find_unused_parameters=True)
for _ in range(2):
    tolerant(x).sum().backward()
tolerant.requires_grad_(False)  # frozen (a discriminator in the generator's step): no DDP
for _ in range(2):
    tolerant(x.requires_grad_(True)).sum().backward()
del strict, tolerant
gc.collect()
context.close()
assert not dist.is_initialized()
print("CLOSED")
"""


def test_unused_parameters_give_a_one_line_error_naming_the_option(torchrun_of_one):
    # In its own interpreter, with a bounded wait: DDP objects left mid-reduction by the error
    # share gloo's worker threads with whatever the test process does next.
    proc = subprocess.run(
        [sys.executable, "-c", UNUSED_PARAMETERS_SCRIPT],
        capture_output=True, text=True, env={**os.environ, **ONE_THREAD}, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ERROR: a network has parameters that received no gradient")
    assert "set run.find_unused_parameters = true" in lines[0]
    assert lines[-1] == "CLOSED"


# ---- two processes ------------------------------------------------------------------------


def test_two_processes_match_one_process_and_checkpoint_works_in_one(tmp_path):
    """The smoke test: 2 gloo ranks, 2 steps of TGAN tiny through the CLI."""
    out = tmp_path / "runs"
    torchrun("-m", "ndevgan_core", "run", *TGAN_TINY, "--set", "run.iterations=2",
                    "--set", f"run.out={out}", "--set", "run.name=two")  # fmt: skip
    two = out / "two"
    one = nd.train(resolve(tgan_tiny_raw(iterations=3), registry()), registry(), tmp_path / "one")
    # rank 0 alone writes: one log line per step, one config, the checkpoint and step-0 samples
    two_log, one_log = read_log(two), read_log(one)
    assert [r["step"] for r in two_log] == [1, 2]
    samples = sorted(p.name for p in (two / "samples").iterdir())
    assert samples == [f"step-0000000{s}.{e}" for s in (0, 2) for e in ("mp4", "png")]
    # Same data rows, same latents, batch norm over both ranks, averaged gradients: the loss
    # curve is the single-process one up to float32 summation order. RMSprop's first step moves
    # every weight by ±10·lr whatever the size of its gradient, so a gradient whose sign is
    # decided by rounding moves 20·lr apart between the runs: the critic's next score of real
    # videos still agrees to 1e-6, the generator's videos (d_fake, loss_g) to ~5e-4 at the tiny
    # recipe's lr of 1e-3 (measured: 1.5e-4 to 1.1e-3; 2e-6 at lr 2e-4 with transposed
    # convolutions) — against 0.19 at step 1 when batch norm is not synchronised.
    for key in ("loss_d", "d_real", "d_fake", "loss_g"):
        assert two_log[0][key] == pytest.approx(one_log[0][key], rel=1e-4, abs=1e-5), key
    assert two_log[1]["d_real"] == pytest.approx(one_log[1]["d_real"], rel=1e-5), "d_real"
    for key in ("loss_d", "d_fake", "loss_g"):
        assert two_log[1][key] == pytest.approx(one_log[1][key], rel=5e-3), key

    state = load_checkpoint(two)
    assert state["step"] == 2
    assert state["model"].keys() == load_checkpoint(one)["model"].keys()
    loaded = nd.load_generator(two)
    video = loaded.generator(loaded.generator.sample_z(2, torch.Generator().manual_seed(0)))
    assert video.shape == (2, 3, 16, 32, 32) and video.isfinite().all()
    # ... and resumes in one process (the config's [run] may change)
    cfg = resolve(tgan_tiny_raw(iterations=3, out=str(out), name="two"), registry())
    nd.train(cfg, registry(), resume=two)
    assert load_checkpoint(two)["step"] == 3
    assert [r["step"] for r in read_log(two)] == [1, 2, 3]


WORKER = textwrap.dedent(
    '''
    """Trains the config in argv[1] (JSON) and checks in every step that the ranks hold the
    very same weights and buffers; writes what it saw to argv[2] (rank 0)."""
    import hashlib, json, pathlib, sys
    import torch, torch.distributed as dist
    import ndevgan_core as nd
    from ndevgan_core.training import distributed
    from ndevgan_core.registry import Registry
    from ndevgan_core.runconfig import resolve
    from ndevgan_core.training.trainer import Trainer


    class RankCheck:
        def __init__(self):
            self.steps, self.identical, self.metrics = [], [], []

        @nd.hookimpl
        def on_step(self, run, step, metrics):
            digest = hashlib.sha256()
            for value in run.unwrapped.state_dict().values():
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
            digests = [None] * run.world_size
            dist.all_gather_object(digests, (digest.hexdigest(), metrics))  # a collective
            self.steps.append(step)
            self.identical.append(len({d for d, _ in digests}) == 1)
            self.metrics.append(len({json.dumps(m, sort_keys=True) for _, m in digests}) == 1)


    def check_batchnorm():
        """Cross-rank batch norm on this rank's half = batch norm on the whole batch."""
        rank, world = dist.get_rank(), dist.get_world_size()
        g = torch.Generator().manual_seed(0)
        full = torch.randn(4 * world, 3, 5, 2, generator=g).requires_grad_(True)
        upstream = torch.randn(full.shape, generator=g)
        plain = torch.nn.BatchNorm2d(3)
        plain.weight.data.uniform_(0.5, 1.5, generator=g)
        crossed = distributed.convert_batchnorm(torch.nn.Sequential(plain), torch.device("cpu"))
        reference = torch.nn.functional.batch_norm(
            full, None, None, plain.weight, plain.bias, True, 0.1, plain.eps)
        (reference * upstream).sum().backward()
        ref_grad, full.grad = full.grad[rank * 4:(rank + 1) * 4].clone(), None
        mine = full.detach()[rank * 4:(rank + 1) * 4].requires_grad_(True)
        out = crossed(mine)
        (out * upstream[rank * 4:(rank + 1) * 4]).sum().backward()
        ok = torch.allclose(out, reference[rank * 4:(rank + 1) * 4], atol=1e-5)
        ok &= torch.allclose(mine.grad, ref_grad, atol=1e-5)
        ok &= torch.allclose(crossed[0].running_var, 0.9 + 0.1 * full.detach().var((0, 2, 3)))
        return bool(ok)


    raw, report = json.loads(sys.argv[1]), sys.argv[2]
    registry = Registry(entry_points=False, disabled=())
    check = RankCheck()
    registry.add_plugin(check)
    trainer = Trainer(resolve(raw, registry), registry)
    bn_ok = check_batchnorm()
    where = (trainer.rank, trainer.world_size, trainer.is_main)
    trainer.fit()
    # a process group still alive here (gloo's threads running) can abort the exit
    tasks = pathlib.Path("/proc/self/task")
    threads = [(t / "comm").read_text().strip() for t in tasks.iterdir()] if tasks.is_dir() else []
    left = [name for name in threads if "gloo" in name]
    if where[0] == 0:
        with open(report, "w") as fh:
            json.dump({"steps": check.steps, "identical": check.identical, "where": where,
                       "same_metrics": check.metrics, "batchnorm": bn_ok, "gloo_left": left}, fh)
    elif left:
        sys.exit(f"rank {where[0]}: gloo threads alive after fit: {left}")
    '''
)


def run_worker(tmp_path: Path, raw: dict) -> dict:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    report = tmp_path / "report.json"
    torchrun(str(script), json.dumps(raw), str(report))
    return json.loads(report.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["tganv2", "mocogan", "tgan"])
def test_ranks_stay_identical_on_every_backbone(tmp_path, backbone):
    # TGANv2 takes its gradients with torch.autograd.grad (with R1's double backward) and
    # drives its generator through submodules, so DDP averages nothing and GradientSync must;
    # MoCoGAN steps three networks; TGAN clips weights from batch-norm buffers.
    raw = {
        "run": {"iterations": 3, "progress": False, "samples": 2, "threads": 1,
                "out": str(tmp_path), "name": "r", "sample_every": 1000},
        "plugins": {"backbone": f"backbone.{backbone}"},
        "backbone": {backbone: {"preset": "tiny"}},
        "dataset": {"shapes": {"videos": 32}},
    }  # fmt: skip
    if backbone == "tgan":
        raw["backbone"]["tgan"]["clip_every"] = 2
    report = run_worker(tmp_path, raw)
    assert report["where"] == [0, 2, True]
    assert report["steps"] == [1, 2, 3]  # on_step ran on both ranks (else all_gather hangs)
    assert report["identical"] == [True] * 3 and report["same_metrics"] == [True] * 3
    assert report["batchnorm"] and report["gloo_left"] == []
    state = load_checkpoint(tmp_path / "r")
    assert state["step"] == 3 and all(v.isfinite().all() for v in state["model"].values())


@pytest.mark.slow
def test_loss_curve_over_six_steps_and_resume_in_one_process(tmp_path):
    out = tmp_path / "runs"
    # the earlier tiny recipe (RMSprop 2e-4, transposed convolutions, fresh fakes), where the
    # drifts below were measured: at 1e-3 RMSprop's sign-like steps amplify rounding ~5× more
    earlier = {"lr": 2e-4, "upsample": "transposed", "generator_fakes": "fresh"}
    sets = [a for k, v in earlier.items() for a in ("--set", f"backbone.tgan.{k}={v}")]

    def raw(**run: object) -> dict:
        config = tgan_tiny_raw(**run)
        config["backbone"]["tgan"].update(earlier)
        return config

    torchrun("-m", "ndevgan_core", "run", *TGAN_TINY, *sets, "--set", "run.iterations=6",
             "--set", f"run.out={out}", "--set", "run.name=two")  # fmt: skip
    one = nd.train(resolve(raw(iterations=8), registry()), registry(), tmp_path / "one")
    # the 2-rank run continued in one process to step 8
    cfg = resolve(raw(iterations=8, out=str(out), name="two"), registry())
    nd.train(cfg, registry(), resume=out / "two")
    one_log, two_log = read_log(one), read_log(out / "two")
    assert [r["step"] for r in two_log] == list(range(1, 9))
    # Beyond two updates, float32 summation order (the very thing that differs between one
    # process with 1 and with 2 threads) is amplified by RMSprop's sign-like first steps and
    # by the singular value clip after step 6, where loss_g falls from ~7 to ~0.2 (a relative
    # comparison is meaningless there). Measured against each loss's scale, one process at 1
    # vs 2 threads drifts 0.2% by step 3 and 6% by step 8, two ranks 7% by step 8. The curve
    # must stay within 10% of the loss scale; a missing gradient sync or per-rank batch norm
    # is off by more than that from step 1.
    scale_d = max(abs(r["loss_d"]) for r in one_log)
    scale_g = max(abs(r["loss_g"]) for r in one_log)
    for a, b in zip(one_log, two_log, strict=True):
        assert abs(a["loss_d"] - b["loss_d"]) <= 0.1 * scale_d, (a["step"], a, b)
        assert abs(a["loss_g"] - b["loss_g"]) <= 0.1 * scale_g, (a["step"], a, b)


def wait_for_log_step(run_dir: Path, step: int, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        log = run_dir / "log.jsonl"
        if log.is_file() and any(r["step"] >= step for r in read_log(run_dir)):
            return
        time.sleep(0.2)
    raise AssertionError(f"no step {step} in {run_dir} after {timeout} s")


@pytest.mark.slow
def test_sigterm_stops_both_ranks_and_resume_on_two_is_exact(tmp_path):
    out = tmp_path / "runs"
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
            "-m", "ndevgan_core", "run", *TGAN_TINY, "--set", f"run.out={out}",
            "--set", "run.checkpoint_every=1000"]  # fmt: skip
    proc = subprocess.Popen(
        [*args, "--set", "run.iterations=500", "--set", "run.name=stopped"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, **ONE_THREAD},
    )  # fmt: skip
    wait_for_log_step(out / "stopped", 2, proc, timeout=180)
    proc.send_signal(signal.SIGTERM)  # torchrun forwards it to both ranks
    _, stderr = proc.communicate(timeout=120)
    state = load_checkpoint(out / "stopped")
    stopped_at = state["step"]
    assert 2 <= stopped_at < 500
    assert stderr.count("stopped at step") == 1  # rank 0 alone saves and says so
    assert read_log(out / "stopped")[-1]["step"] == stopped_at
    assert [p.name for p in list_checkpoints(out / "stopped")] == [f"step-{stopped_at:08d}.pt"]

    end = stopped_at + 2
    torchrun("-m", "ndevgan_core", "run", "--resume", str(out / "stopped"),
             "--set", f"run.iterations={end}")  # fmt: skip
    torchrun("-m", "ndevgan_core", "run", *TGAN_TINY, "--set", f"run.out={out}",
             "--set", f"run.iterations={end}", "--set", "run.name=straight")  # fmt: skip
    a, b = load_checkpoint(out / "stopped"), load_checkpoint(out / "straight")
    assert a["step"] == b["step"] == end
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


@pytest.mark.slow
def test_single_process_checkpoint_resumes_on_two(tmp_path):
    cfg = resolve(tgan_tiny_raw(iterations=2, out=str(tmp_path), name="r"), registry())
    nd.train(cfg, registry())
    torchrun("-m", "ndevgan_core", "run", "--resume", str(tmp_path / "r"),
             "--set", "run.iterations=4")  # fmt: skip
    assert load_checkpoint(tmp_path / "r")["step"] == 4
    assert [r["step"] for r in read_log(tmp_path / "r")] == [1, 2, 3, 4]
