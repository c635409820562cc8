"""Where each run stands, and training it here or under torchrun."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ndevgan_core.config import (
    load_toml,
)
from ndevgan_core.errors import ConfigError, NdevganError
from ndevgan_core.registry import Registry
from ndevgan_core.training.checkpoint import list_checkpoints
from ndevgan_core.training.trainer import CONTINUATION_KEYS

from .grid import FINAL_JSON, UNCOMPARED_RUN_KEYS, Protocol
from .plan import PlannedRun, _deep_copy

TRAIN_LOG = "train.log"
"""What a run trained in a subprocess of its own (``--jobs``) printed, in its directory."""

# Where each run stands


@attrs.frozen
class RunState:
    """What a run directory says about a planned run.

    ``status``: ``done`` (final.json matches the config and protocol), ``evaluate`` (trained,
    final figures missing or stale), ``resume`` (a checkpoint before the last step) or
    ``new``. ``step`` is the newest checkpoint's step.
    """

    status: str
    step: int
    final: dict[str, Any] | None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid JSON ({exc}); delete it to redo that step"
        ) from None


def _comparable(tree: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if tree is None:
        return None
    out = _deep_copy(tree)
    run = out.get("run", {})
    for key in UNCOMPARED_RUN_KEYS:
        run.pop(key, None)
    return out


def holds_result_of(
    final: Mapping[str, Any] | None, plan: PlannedRun, protocol: Protocol, registry: Registry
) -> bool:
    """Whether a run's ``final.json`` record is ``plan``'s result under ``protocol``: the same
    protocol and config. The saved config is read through ``registry`` first, so an option
    added since the record was written counts at its default (which reproduces the behaviour
    from before it existed) instead of making every earlier result look foreign."""
    from ndevgan_core.runconfig import resolve

    if final is None or final.get("protocol") != protocol.final_record():
        return False
    try:
        saved = resolve(final["config"], registry).to_dict()
    except (NdevganError, KeyError, TypeError):
        return False
    return _comparable(saved) == _comparable(plan.config.to_dict())


def checkpoint_step(path: Path) -> int:
    """The step of a ``step-NNNNNNNN.pt`` checkpoint, from its name."""
    return int(path.stem.split("-", 1)[1])


def inspect_run(
    plan: PlannedRun, run_dir: Path, protocol: Protocol, registry: Registry
) -> RunState:
    """Where ``plan`` stands in ``run_dir``; a directory trained with other non-[run] settings
    is an error (retraining over it would mix two runs)."""
    from ndevgan_core.runconfig import resolve

    final = _read_json(run_dir / FINAL_JSON)
    checkpoints = list_checkpoints(run_dir)
    step = checkpoint_step(checkpoints[-1]) if checkpoints else 0
    wanted = plan.config.to_dict()
    saved_file = run_dir / "config.toml"
    if checkpoints and saved_file.is_file():
        try:
            saved = resolve(load_toml(saved_file), registry).to_dict()
        except NdevganError as exc:
            raise ConfigError(f"run {plan.run_id}: {saved_file} cannot be read: {exc}") from None
        changed = sorted(
            key for key in (set(saved) | set(wanted)) - {"run"} if saved.get(key) != wanted.get(key)
        )
        if changed:
            raise ConfigError(
                f"run {plan.run_id}: {run_dir} was trained with other settings in "
                f"[{'], ['.join(changed)}] than the grid now gives; delete that directory to "
                "retrain it, or write the study to another --out"
            )
    if holds_result_of(final, plan, protocol, registry):
        return RunState("done", step, final)
    if checkpoints:
        status = "evaluate" if step >= plan.config.run.iterations else "resume"
        return RunState(status, step, None)
    return RunState("new", 0, None)


# --------------------------------------------------------------------------------------------
# Training a run


def train_local(plan: PlannedRun, run_dir: Path, resume: bool, registry: Registry) -> int:
    """Train (or continue) a run in this process; return the step it stopped at (the
    trainer unregisters its loggers when it ends, so the next run's events do not reach
    them)."""
    from ndevgan_core.training.trainer import Trainer

    trainer = Trainer(plan.config, registry, run_dir=run_dir, resume=run_dir if resume else None)
    trainer.resume_hint = "the same `ndevgan study` command (finished runs are skipped)"
    trainer.fit()
    return trainer.step


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)  # a JSON string is a TOML basic string


def run_command(plan: PlannedRun, run_dir: Path, resume: bool) -> list[str]:
    """The ``ndevgan run`` arguments that train (or continue) a run in its directory."""
    command = ["run"]
    if resume:
        # the config comes from the checkpoint; the [run] settings that do not change what
        # training computes may change (e.g. iterations); the others are the checkpoint's
        settings = {
            k: v
            for k, v in plan.config.to_dict()["run"].items()
            if v is not None and k not in (*CONTINUATION_KEYS, "out", "name")
        }
        command += ["--resume", str(run_dir)]
    else:
        command += ["--config", str(run_dir / "config.toml")]
        settings = {"out": str(run_dir.parent), "name": run_dir.name}
    for key, value in settings.items():
        command += ["--set", f"run.{key}={_toml_literal(value)}"]
    return command


def torchrun_command(plan: PlannedRun, run_dir: Path, resume: bool, nproc: int) -> list[str]:
    """The command that trains a run under torchrun (``python -m torch.distributed.run``)."""
    prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    return [*prefix, str(nproc), "-m", "ndevgan_core", *run_command(plan, run_dir, resume)]


def subprocess_command(plan: PlannedRun, run_dir: Path, resume: bool) -> list[str]:
    """The command that trains a run in a subprocess of its own (``--jobs``): no progress
    bar, since several runs share the terminal."""
    command = [sys.executable, "-m", "ndevgan_core", *run_command(plan, run_dir, resume)]
    return [*command, "--set", "run.progress=false"]


class ChildRuns:
    """The training subprocesses of ``--jobs``, each in a session of its own so that a
    terminal's Ctrl-C reaches only the study, which passes it on to each run exactly once
    (a second one would make a trainer stop without its checkpoint)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self._interrupted = False

    def run(self, command: list[str], log: Path) -> int:
        """Run ``command`` to its end, its output appended to ``log``; its exit status (130,
        as for Ctrl-C, without starting it once :meth:`interrupt` was called)."""
        with log.open("ab") as sink:
            with self._lock:  # so that no run starts between an interrupt and its signals
                if self._interrupted:
                    return 130
                proc = subprocess.Popen(
                    command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
                )
                self._running.add(proc)
            try:
                return proc.wait()
            finally:
                with self._lock:
                    self._running.discard(proc)

    @property
    def interrupted(self) -> bool:
        """Whether :meth:`interrupt` was called (the study is stopping)."""
        return self._interrupted

    def interrupt(self) -> None:
        """Ask every running run to checkpoint and stop (SIGINT, as Ctrl-C would); start no
        other."""
        with self._lock:
            self._interrupted = True
            for proc in self._running:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)


def _ended(plan: PlannedRun, run_dir: Path, command: list[str], status: int, where: str) -> int:
    """The run's newest step after its process exited with ``status``; an exit that is
    neither success nor an interruption is an error naming the run and the command."""
    checkpoints = list_checkpoints(run_dir)
    step = checkpoint_step(checkpoints[-1]) if checkpoints else 0
    interrupted = status in (130, -signal.SIGINT, -signal.SIGTERM)
    if status != 0 and step < plan.config.run.iterations and not interrupted:
        raise NdevganError(
            f"run {plan.run_id}: training exited with status {status} at step {step} "
            f"({where}); command: {shlex.join(command)}"
        )
    return step


def train_subprocess(plan: PlannedRun, run_dir: Path, resume: bool, children: ChildRuns) -> int:
    """Train (or continue) a run in a subprocess, its output appended to ``train.log`` in
    the run's directory; return its newest step."""
    log = run_dir / TRAIN_LOG
    command = subprocess_command(plan, run_dir, resume)
    status = children.run(command, log)
    return _ended(plan, run_dir, command, status, f"its output is in {log}")


def train_torchrun(plan: PlannedRun, run_dir: Path, resume: bool, nproc: int) -> int:
    """Train (or continue) a run with torchrun in a subprocess; return its newest step.

    Ctrl-C reaches the workers (they checkpoint and stop); this process waits for them.
    """
    command = torchrun_command(plan, run_dir, resume, nproc)
    ignore = None
    if sys.platform != "win32":
        # a Python handler (not SIG_IGN, which children would inherit) keeps the study alive
        ignore = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        status = subprocess.run(command, check=False).returncode
    finally:
        if ignore is not None:
            signal.signal(signal.SIGINT, ignore)
    return _ended(plan, run_dir, command, status, "its output is above")
