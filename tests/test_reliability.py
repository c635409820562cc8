"""Nothing lost, nothing mixed, nothing silent: one writer per run directory, exact resume or a
refusal naming the changed options, self-verifying checkpoints, checked options and one-line
file-system errors."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from ndevgan_core.errors import CheckpointError, DirectoryInUseError
from ndevgan_core.files import LOCK_NAME, DirectoryLock, describe_os_error, write_bytes_atomic
from ndevgan_core.registry import Registry
from ndevgan_core.runconfig import resolve
from ndevgan_core.training.checkpoint import (
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    payload_digest,
    save_checkpoint,
)
from ndevgan_core.training.trainer import Trainer, changed_options

from .conftest import FAST, fast_raw, ndevgan


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(entry_points=False, disabled=())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, registry) -> Path:
    """A fast run of 6 steps with checkpoints at 2, 4 and 6 (copied by each test)."""
    run_dir = tmp_path_factory.mktemp("run") / "r"
    raw = fast_raw(iterations=6, checkpoint_every=2, sample_every=100, log_every=1)
    Trainer(resolve(raw, registry), registry, run_dir=run_dir).fit()
    return run_dir


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    return out


def _fails_cleanly(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode not in (0, None) and proc.returncode > 0, proc.returncode
    assert "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------- one writer


HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from ndevgan_core.files import DirectoryLock
    DirectoryLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(120)
    """
)


def _hold_lock(directory: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(directory)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_of_a_run_directory_fails_at_once_naming_the_holder(tmp_path):
    run_dir = tmp_path / "runs" / "shared"
    holder = _hold_lock(run_dir)
    try:
        start = time.perf_counter()
        proc = ndevgan(
            "run", *FAST, "--set", f"run.out={tmp_path / 'runs'}", "--set", "run.name=shared",
            "--set", "run.iterations=2", check=False,
        )  # fmt: skip
        _fails_cleanly(proc, f"run directory {run_dir} is in use by pid {holder.pid} on")
        assert time.perf_counter() - start < 60
        assert not (run_dir / "checkpoints").exists() and not (run_dir / "log.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed: its lock is gone with it, and the next run takes the directory
    ndevgan(
        "run", *FAST, "--set", f"run.out={tmp_path / 'runs'}", "--set", "run.name=shared",
        "--set", "run.iterations=2",
    )  # fmt: skip
    assert [p.name for p in list_checkpoints(run_dir)] == ["step-00000002.pt"]


def test_resume_and_study_take_the_same_lock(trained, tmp_path):
    run_dir = _copy(trained, tmp_path)
    holder = _hold_lock(run_dir)
    try:
        proc = ndevgan("run", "--resume", str(run_dir), "--set", "run.iterations=8", check=False)
        _fails_cleanly(proc, f"is in use by pid {holder.pid}")
        study_dir = tmp_path / "study"
        holder2 = _hold_lock(study_dir)
        try:
            proc = ndevgan(
                "study", str(Path(__file__).parent.parent / "examples/studies/tiny.toml"),
                "--out", str(study_dir), "--only", "tgan-conv1d-s0", check=False,
            )  # fmt: skip
            _fails_cleanly(proc, f"study directory {study_dir} is in use by pid {holder2.pid}")
        finally:
            holder2.kill()
            holder2.wait()
    finally:
        holder.kill()
        holder.wait()


def test_directory_lock_is_exclusive_and_released(tmp_path):
    first = DirectoryLock(tmp_path / "d").acquire()
    with pytest.raises(DirectoryInUseError, match=f"pid {os.getpid()} on"):
        DirectoryLock(tmp_path / "d").acquire()
    first.release()
    with DirectoryLock(tmp_path / "d"):
        assert (tmp_path / "d" / LOCK_NAME).read_text().split()[0] == str(os.getpid())


# ---------------------------------------------------------------------------- exact resume


def test_resume_refuses_a_changed_seed_unless_forced(trained, tmp_path):
    run_dir = _copy(trained, tmp_path)
    proc = ndevgan(
        "run", "--resume", str(run_dir), "--set", "run.seed=7", "--set", "run.iterations=8",
        check=False,
    )  # fmt: skip
    _fails_cleanly(proc, "--set run.seed: would not continue the run exactly", "--force")
    proc = ndevgan("run", "--resume", str(run_dir), "--set", "backbone.tgan.lr=5e-4", check=False)
    _fails_cleanly(proc, "--set backbone.tgan.lr: would not continue the run exactly")
    ndevgan(
        "run", "--resume", str(run_dir), "--set", "run.seed=7", "--set", "run.iterations=8",
        "--force",
    )  # fmt: skip
    assert load_checkpoint(run_dir)["config"]["run"]["seed"] == 7


def test_resume_in_process_names_every_changed_option(trained, tmp_path, registry):
    run_dir = _copy(trained, tmp_path)
    raw = fast_raw(iterations=8, seed=3)
    raw["backbone"]["tgan"]["lr"] = 5e-4  # the tiny preset has 1e-3
    with pytest.raises(Exception, match=r"backbone\.tgan\.lr, run\.seed"):
        Trainer(resolve(raw, registry), registry, resume=run_dir)


def test_a_checkpoint_of_another_run_is_refused_and_config_toml_kept(trained, tmp_path):
    run_dir = _copy(trained, tmp_path)
    other = tmp_path / "other"
    ndevgan(
        "run", *FAST, "--set", "run.iterations=2", "--set", f"run.out={other}",
        "--set", "run.name=o", "--set", "temporal.ode.order=2",
    )  # fmt: skip
    foreign = list_checkpoints(other / "o")[-1]
    target = run_dir / "checkpoints" / "step-00000010.pt"
    target.write_bytes(foreign.read_bytes())
    before = (run_dir / "config.toml").read_bytes()
    proc = ndevgan("run", "--resume", str(run_dir), "--set", "run.iterations=12", check=False)
    _fails_cleanly(proc, "does not belong to the run in", "temporal.ode.order")
    assert (run_dir / "config.toml").read_bytes() == before


def test_resume_truncates_the_log_and_removes_orphaned_temporary_files(trained, tmp_path):
    run_dir = _copy(trained, tmp_path)
    checkpoint_path(run_dir, 6).unlink()  # as if killed after logging steps 5 and 6
    with (run_dir / "log.jsonl").open("a") as fh:
        fh.write('{"step": 7, "loss')  # a line cut short by the kill
    orphan = run_dir / "checkpoints" / ".step-00000006.pt.abc123.tmp.pt"
    orphan.write_bytes(b"half a checkpoint")
    ndevgan("run", "--resume", str(run_dir), "--set", "run.iterations=6")
    steps = [json.loads(x)["step"] for x in (run_dir / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert not orphan.exists()


def test_changed_options_lists_dotted_names_and_ignores_harmless_run_settings():
    a = {"run": {"seed": 0, "iterations": 5}, "backbone": {"tgan": {"lr": 1.0, "x": [1, 2]}}}
    b = {"run": {"seed": 1, "iterations": 9}, "backbone": {"tgan": {"lr": 2.0, "x": (1, 2)}}}
    assert changed_options(a, b) == ["backbone.tgan.lr", "run.seed"]
    assert changed_options(a, a) == []


# ---------------------------------------------------------------------------- checkpoints


def test_a_flipped_byte_in_a_weight_is_detected_by_every_command(trained, tmp_path):
    run_dir = _copy(trained, tmp_path)
    newest = list_checkpoints(run_dir)[-1]
    state = load_checkpoint(newest)
    weight = next(k for k, v in state["model"].items() if v.dtype == torch.float32)
    raw = bytearray(newest.read_bytes())
    needle = state["model"][weight].contiguous().numpy().tobytes()[:16]
    at = raw.find(needle)
    assert at > 0
    raw[at + 3] ^= 0x10  # one bit of one float: torch.load alone would not notice
    newest.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="does not match the SHA-256"):
        load_checkpoint(newest)
    for args in (
        ["sample", str(newest), "--out", str(tmp_path / "s.mp4")],
        ["export", str(newest), "--out", str(tmp_path / "g.onnx")],
        ["eval", str(newest), "--n", "8", "--out", str(tmp_path / "e.json")],
    ):
        _fails_cleanly(ndevgan(*args, check=False), "is corrupt", newest.name)
    # resuming the directory names the newest intact checkpoint and how to use it
    proc = ndevgan("run", "--resume", str(run_dir), "--set", "run.iterations=8", check=False)
    intact = checkpoint_path(run_dir, 4)
    _fails_cleanly(proc, "is corrupt", f"The newest intact checkpoint is {intact}")
    assert f"ndevgan run --resume {intact}" in proc.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"step": "sixty"}, "'step' must be a non-negative integer, got 'sixty'"),
        ({"rng": {}}, "'rng' must hold the 'torch' and 'train' generator states"),
        ({"model": {"w": "not a tensor"}}, "'model' must map parameter names to tensors"),
        ({"config": []}, "'config' must be a table"),
    ],
)
def test_malformed_fields_are_one_line_errors(trained, tmp_path, change, message):
    state = load_checkpoint(trained)
    payload = {k: v for k, v in state.items() if k not in ("format", "version", "sha256")}
    bad = save_checkpoint(tmp_path / "bad.pt", {**payload, **change})  # a valid digest
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_checkpoint(bad)
    _fails_cleanly(
        ndevgan("sample", str(bad), "--out", str(tmp_path / "s.mp4"), check=False), message
    )


def test_digest_is_stable_across_a_round_trip_and_covers_everything(tmp_path):
    payload = {"step": 3, "model": {"w": torch.arange(6.0).view(2, 3)}, "opt": [(0.9, 0.99)]}
    path = save_checkpoint(tmp_path / "c.pt", {"config": {}, **payload})
    data = load_checkpoint(path)
    assert payload_digest(data) == data["sha256"]
    data["model"]["w"][0, 0] = 0.5
    assert payload_digest(data) != data["sha256"]


def test_version_1_checkpoints_without_a_digest_still_load(trained, tmp_path):
    state = load_checkpoint(trained)
    old = {k: v for k, v in state.items() if k != "sha256"}
    old["version"] = 1
    torch.save(old, tmp_path / "v1.pt")
    assert load_checkpoint(tmp_path / "v1.pt")["step"] == state["step"]


def test_the_weights_only_refusal_does_not_repeat_torchs_advice(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"format": "ndevgan.checkpoint", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "evil.pt")
    message = str(err.value)
    assert "it references posix.system" in message or "it references nt.system" in message
    assert "Re-running" not in message and "set to `False`" not in message
    assert "\n" not in message


# ---------------------------------------------------------------------------- options


def test_set_on_a_plugin_the_run_does_not_use_names_the_one_it_uses(tmp_path):
    proc = ndevgan(
        "run", "--plugin", "backbone.tgan", "--set", "temporal.ode.order=2",
        "--set", f"run.out={tmp_path}", check=False,
    )  # fmt: skip
    _fails_cleanly(proc, "this run does not use temporal.ode (its temporal is temporal.conv1d)")
    assert not any(tmp_path.iterdir())


def test_typos_in_an_unselected_plugin_section_fail(tmp_path):
    proc = ndevgan(
        "run", "--set", "temporal.sde.methd=x", "--set", f"run.out={tmp_path}", check=False
    )
    _fails_cleanly(proc, "unknown option temporal.sde.methd", "'method'")
    config = tmp_path / "c.toml"
    config.write_text('[plugins]\nbackbone = "backbone.tgan"\n[temporal.sde]\nmethd = "x"\n')
    _fails_cleanly(ndevgan("info", "--config", str(config), check=False), "temporal.sde.methd")


def test_a_config_file_section_for_an_unselected_plugin_is_one_warning(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        '[plugins]\nbackbone = "backbone.tgan"\n[backbone.tgan]\npreset = "tiny"\n'
        "[temporal.sde]\ndt = 0.1\n"
    )
    proc = ndevgan("info", "--config", str(config), "--no-temporals")
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    assert warnings == [
        "Warning: options for temporal.sde are ignored: this run's temporal is temporal.conv1d"
    ]


def test_a_non_utf8_config_file_is_one_line(tmp_path):
    config = tmp_path / "c.toml"
    config.write_bytes(b"[run]\niterations = 5 # \xff\xfe\n")
    _fails_cleanly(ndevgan("run", "--config", str(config), check=False), "is not UTF-8 text")


def test_sample_times_must_be_finite(trained, tmp_path):
    proc = ndevgan(
        "sample", str(trained), "--t-start", "nan", "--out", str(tmp_path / "s.mp4"), check=False
    )
    _fails_cleanly(proc, "--t-start: expected a finite time, got nan")


def test_blocking_a_builtin_by_module_name_says_disabled(tmp_path):
    proc = ndevgan(
        "run", "--set", f"run.out={tmp_path}", check=False,
        env={"NDEVGAN_DISABLE_PLUGINS": "ndevgan_plugins.ode"},
    )  # fmt: skip
    _fails_cleanly(proc, "plugin temporal.ode is disabled by NDEVGAN_DISABLE_PLUGINS")


# ---------------------------------------------------------------------------- file systems


def _read_only_dir(tmp_path: Path) -> Path:
    """A directory no file can be created in: a read-only tmpfs when this process may mount
    one (root in a container), else a chmod 555 directory for an ordinary user."""
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() != 0:
        target.chmod(0o555)
        return target
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip("running as root without permission to mount a read-only file system")
    return target


def _unmount(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["umount", str(path)], capture_output=True)


def test_every_output_on_a_read_only_directory_is_one_line_before_any_work(trained, tmp_path):
    ro = _read_only_dir(tmp_path)
    try:
        cases = {
            "run": ["run", *FAST, "--set", f"run.out={ro}"],
            "sample": ["sample", str(trained), "--out", str(ro / "s.mp4")],
            "export": ["export", str(trained), "--out", str(ro / "g.onnx")],
            "eval": ["eval", str(trained), "--n", "4096", "--out", str(ro / "e.json")],
            "study": ["study", "examples/studies/tiny.toml", "--out", str(ro / "study")],
        }
        for name, args in cases.items():
            start = time.perf_counter()
            proc = ndevgan(*args, check=False, cwd=Path(__file__).parent.parent)
            _fails_cleanly(proc, str(ro))
            assert "read-only" in proc.stderr or "not writable" in proc.stderr, (name, proc.stderr)
            assert time.perf_counter() - start < 60, name  # eval does not score first
    finally:
        _unmount(ro)


def test_missing_and_file_as_directory_outputs(trained, tmp_path):
    (tmp_path / "file").write_text("x")
    proc = ndevgan("run", *FAST, "--set", f"run.out={tmp_path / 'file'}", check=False)
    _fails_cleanly(proc, "cannot write the run directory", "a part of the path is a file")
    proc = ndevgan("sample", str(trained), "--out", str(tmp_path / "file" / "s.mp4"), check=False)
    _fails_cleanly(proc, f"{tmp_path / 'file'} is a file, not a directory")
    proc = ndevgan("export", str(trained), "--out", str(tmp_path), check=False)
    _fails_cleanly(proc, "it is a directory")


def test_a_full_disk_during_a_checkpoint_is_one_line_naming_the_file(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs a small tmpfs (root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        proc = ndevgan(
            "run", *FAST, "--set", f"run.out={disk}", "--set", "run.name=r",
            "--set", "run.iterations=2", "--set", "backbone.tgan.g_channels=32", check=False,
        )  # fmt: skip
        _fails_cleanly(proc, f"cannot write {disk}/r/", "no space left on the device")
        assert len(proc.stderr.strip().splitlines()) == 1
        assert not list((disk / "r" / "checkpoints").glob(".*tmp*"))  # no half-written file
    finally:
        _unmount(disk)


def test_a_simulated_enospc_inside_a_library_names_the_target(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", lambda fd: full(fd, b""))
    with pytest.raises(OSError) as err:
        write_bytes_atomic(target, b"data")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert describe_os_error(err.value) == (
        f"cannot write {target}: no space left on the device; free some space and run the "
        "command again"
    )
    assert not target.exists() and list(tmp_path.iterdir()) == []
