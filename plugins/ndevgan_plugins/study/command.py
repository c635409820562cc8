"""Running a study, and the ``ndevgan study`` command."""

from __future__ import annotations

import shlex
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import attrs
import click

from ndevgan_core.config import (
    dump_toml,
)
from ndevgan_core.errors import ConfigError
from ndevgan_core.files import (
    DirectoryLock,
    write_json_atomic,
    write_text_atomic,
)
from ndevgan_core.hookspecs import hookimpl
from ndevgan_core.options import OutputPath
from ndevgan_core.registry import Registry, default_registry

from .grid import (
    COMPARISON_NPZ,
    FINAL_JSON,
    METRIC_LABELS,
    METRICS,
    RUNS_DIR,
    TIMING_JSON,
    Grid,
    load_grid,
)
from .launch import (
    TRAIN_LOG,
    ChildRuns,
    RunState,
    _read_json,
    inspect_run,
    subprocess_command,
    torchrun_command,
    train_local,
    train_subprocess,
    train_torchrun,
)
from .plan import PlannedRun, plan_runs, select_runs
from .report import _pm, write_report
from .scoring import final_evaluation

# The study


@attrs.frozen
class StudyOutcome:
    """What :func:`run_study` did: the runs, which were finished, and whether it was stopped."""

    plans: tuple[PlannedRun, ...]
    finished: tuple[str, ...]
    interrupted: str | None
    report: dict[str, Path]


def _clean_new_run(run_dir: Path) -> None:
    """Remove what a run that never reached its first checkpoint left behind."""
    for name in ("log.jsonl", "eval.jsonl", "best.json", FINAL_JSON, TIMING_JSON, COMPARISON_NPZ):
        (run_dir / name).unlink(missing_ok=True)
    (run_dir / "checkpoints" / "best.pt").unlink(missing_ok=True)


def _add_timing(run_dir: Path, key: str, seconds: float) -> None:
    timing = _read_json(run_dir / TIMING_JSON) or {}
    timing[key] = round(timing.get(key, 0.0) + seconds, 3)
    write_json_atomic(run_dir / TIMING_JSON, timing)


def _summary(final: Mapping[str, Any]) -> str:
    parts = [f"{METRIC_LABELS[m]} {_pm(r['mean'], r['std'])}" for m, r in final["metrics"].items()]
    return ", ".join(parts) + f" (best step {final['step']:,})"


def run_study(
    grid: Grid,
    out: Path,
    *,
    registry: Registry | None = None,
    only: Sequence[str] = (),
    overrides: Sequence[str] = (),
    launcher: str = "local",
    nproc_per_node: int = 1,
    jobs: int = 1,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> StudyOutcome:
    """Plan the grid, train and score every selected run that is not finished, then report.

    ``jobs`` > 1 (local launcher only) trains that many runs at a time, each in a subprocess
    of its own with its output in ``train.log`` of its directory; the final figures of each
    are computed here as soon as it finishes, one run at a time. Stops after a run that was
    interrupted (Ctrl-C: the trainer checkpoints first); calling it again resumes that run
    and skips the finished ones.
    """
    registry = registry or default_registry()
    if launcher not in ("local", "torchrun"):
        raise ConfigError(f"--launcher: expected local or torchrun, got {launcher!r}")
    if jobs < 1:
        raise ConfigError(f"--jobs: expected a whole number >= 1, got {jobs}")
    if jobs > 1 and launcher != "local":
        raise ConfigError(
            "--jobs: runs at a time are for the local launcher; torchrun runs one study run "
            "at a time on --nproc-per-node processes"
        )
    plans = plan_runs(grid, registry, overrides)
    selected = select_runs(plans, only)
    study = _Study(grid, out, registry, plans, selected, launcher, nproc_per_node, jobs, echo)
    if dry_run:
        return study.run(dry_run=True)
    with DirectoryLock(out, "study directory"):  # one study process per directory
        return study.run(dry_run=False)


@attrs.define
class _Study:
    grid: Grid
    out: Path
    registry: Registry
    plans: Sequence[PlannedRun]
    selected: Sequence[PlannedRun]
    launcher: str
    nproc_per_node: int
    jobs: int
    echo: Callable[[str], None]
    finished: list[str] = attrs.field(factory=list)
    interrupted: str | None = None
    _children: ChildRuns = attrs.field(factory=ChildRuns)

    def prefix(self, index: int, plan: PlannedRun) -> str:
        width = len(str(len(self.selected)))
        return f"[{index:>{width}}/{len(self.selected)}] {plan.run_id}:"

    def run(self, dry_run: bool) -> StudyOutcome:
        t0 = time.perf_counter()
        training: list[tuple[int, PlannedRun, RunState]] = []
        for index, plan in enumerate(self.selected, 1):
            run_dir = self.out / RUNS_DIR / plan.run_id
            state = inspect_run(plan, run_dir, self.grid.protocol, self.registry)
            if dry_run:
                self.describe(index, plan, run_dir, state)
            elif state.status == "done":
                echo_line = f"finished earlier, skipped — {_summary(state.final)}"
                self.echo(f"{self.prefix(index, plan)} {echo_line}")
                self.finished.append(plan.run_id)
            elif state.status == "evaluate" or self.jobs == 1:
                if not self.train_here(index, plan, run_dir, state):
                    break
            else:
                training.append((index, plan, state))
        if training and self.interrupted is None:
            self.train_in_parallel(training)
        report: dict[str, Path] = {}
        if not dry_run:
            report = write_report(
                self.out,
                self.grid,
                self.plans,
                self.registry,
                wall_seconds=time.perf_counter() - t0,
            )
        return StudyOutcome(tuple(self.plans), tuple(self.finished), self.interrupted, report)

    def describe(self, index: int, plan: PlannedRun, run_dir: Path, state: RunState) -> None:
        iterations = plan.config.run.iterations
        what = {
            "done": "finished — would skip",
            "evaluate": f"trained to step {state.step:,} — would compute the final figures",
            "resume": f"would resume from step {state.step:,} of {iterations:,}",
            "new": f"would train {iterations:,} steps",
        }[state.status]
        self.echo(
            f"{self.prefix(index, plan)} {what}; G_t {plan.params_temporal:,} / G "
            f"{plan.params_generator:,} parameters"
        )
        if state.status in ("new", "resume"):
            resume = state.status == "resume"
            if self.launcher == "torchrun":
                command = torchrun_command(plan, run_dir, resume, self.nproc_per_node)
                self.echo("    " + shlex.join(command))
            elif self.jobs > 1:
                self.echo("    " + shlex.join(subprocess_command(plan, run_dir, resume)))

    def start(self, index: int, plan: PlannedRun, run_dir: Path, state: RunState) -> bool:
        """Announce a run's training and prepare its directory; True when it resumes."""
        iterations = plan.config.run.iterations
        resume = state.status == "resume"
        log = f" (output: {run_dir / TRAIN_LOG})" if self.jobs > 1 else ""
        if resume:
            self.echo(
                f"{self.prefix(index, plan)} resuming from step {state.step:,} of "
                f"{iterations:,}{log}"
            )
        else:
            self.echo(f"{self.prefix(index, plan)} training {iterations:,} steps{log}")
            _clean_new_run(run_dir)
            write_text_atomic(run_dir / "config.toml", dump_toml(plan.config.to_dict()))
        return resume

    def trained(self, index: int, plan: PlannedRun, step: int) -> bool:
        """Whether the run reached its last step; says so when it was interrupted."""
        iterations = plan.config.run.iterations
        if step >= iterations:
            return True
        self.echo(
            f"{self.prefix(index, plan)} interrupted at step {step:,} of {iterations:,} "
            "(checkpointed); run the same command again to resume it"
        )
        if self.interrupted is None:
            self.interrupted = plan.run_id
        return False

    def evaluate(self, index: int, plan: PlannedRun, run_dir: Path) -> None:
        self.echo(f"{self.prefix(index, plan)} final figures of the best checkpoint")
        started = time.perf_counter()
        final = final_evaluation(
            plan,
            run_dir,
            self.grid.protocol,
            self.registry,
            stats_cache=self.out / "cache",
            progress=plan.config.run.progress and self.jobs == 1,
        )
        _add_timing(run_dir, "final_seconds", time.perf_counter() - started)
        self.echo(f"{self.prefix(index, plan)} done — {_summary(final)}")
        self.finished.append(plan.run_id)

    def train_here(self, index: int, plan: PlannedRun, run_dir: Path, state: RunState) -> bool:
        """Train (one run at a time) and score a run; False when it was interrupted."""
        if state.status in ("new", "resume"):
            resume = self.start(index, plan, run_dir, state)
            started = time.perf_counter()
            try:
                if self.launcher == "local":
                    step = train_local(plan, run_dir, resume, self.registry)
                else:
                    step = train_torchrun(plan, run_dir, resume, self.nproc_per_node)
            finally:
                _add_timing(run_dir, "train_seconds", time.perf_counter() - started)
            if not self.trained(index, plan, step):
                return False
        self.evaluate(index, plan, run_dir)
        return True

    def train_in_parallel(self, training: Sequence[tuple[int, PlannedRun, RunState]]) -> None:
        """Train ``jobs`` runs at a time in subprocesses; score each as it finishes. Ctrl-C
        (SIGINT to this process) is passed on to the running runs, which checkpoint and stop;
        no new run starts, and the interrupted ones are reported."""

        def stop(signum: int, frame: Any) -> None:
            self._children.interrupt()

        ignore = signal.signal(signal.SIGINT, stop) if sys.platform != "win32" else None
        try:
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                futures = {
                    pool.submit(self._train_one, index, plan, state): (index, plan)
                    for index, plan, state in training
                }
                try:
                    for future in as_completed(futures):
                        index, plan = futures[future]
                        step = future.result()
                        if step is None:  # never started: the study was stopped first
                            continue
                        if self.trained(index, plan, step) and not self._children.interrupted:
                            self.evaluate(index, plan, self.out / RUNS_DIR / plan.run_id)
                        elif step >= plan.config.run.iterations and self.interrupted is None:
                            self.interrupted = plan.run_id
                except BaseException:
                    # one run failed (or scoring did): the others checkpoint and stop
                    stop(signal.SIGINT, None)
                    raise
        finally:
            if ignore is not None:
                signal.signal(signal.SIGINT, ignore)

    def _train_one(self, index: int, plan: PlannedRun, state: RunState) -> int | None:
        if self._children.interrupted:
            return None
        run_dir = self.out / RUNS_DIR / plan.run_id
        resume = self.start(index, plan, run_dir, state)
        started = time.perf_counter()
        try:
            return train_subprocess(plan, run_dir, resume, self._children)
        finally:
            _add_timing(run_dir, "train_seconds", time.perf_counter() - started)


@click.command("study")
@click.argument("grid_file", metavar="GRID.toml", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    type=OutputPath(directory=True),
    default=None,
    help="Output directory (default: studies/<study name>). Runs go to OUT/runs/<run id>.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="GLOB",
    help="Train/score only the runs whose id matches (repeatable); the report covers all.",
)
@click.option("--dry-run", is_flag=True, help="List the runs and what would happen; do nothing.")
@click.option(
    "--launcher",
    type=click.Choice(["local", "torchrun"]),
    default="local",
    show_default=True,
    help="local: train in this process; torchrun: one torchrun subprocess per run.",
)
@click.option(
    "--nproc-per-node",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="torchrun: processes (GPUs) per run.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="local: runs trained at a time, each in a subprocess of its own (output in its "
    "train.log); on a CPU give each run.threads cores.",
)
@click.option("--eval-every", type=click.IntRange(min=1), help="Replaces protocol.eval_every.")
@click.option("--eval-samples", type=click.IntRange(min=1), help="Replaces protocol.eval_samples.")
@click.option("--final-loops", type=click.IntRange(min=1), help="Replaces protocol.final_loops.")
@click.option(
    "--final-samples", type=click.IntRange(min=1), help="Replaces protocol.final_samples."
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    type=click.Choice(list(METRICS)),
    help="Final figures to compute (repeatable); replaces protocol.metrics.",
)
@click.option(
    "--classifier",
    type=click.Path(dir_okay=False),
    metavar="WEIGHTS",
    help="Replaces protocol.classifier: the scoring classifier's weights (C3D for UCF101).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Override an option of every run, e.g. run.iterations=200 (after the grid's own).",
)
def study_command(
    grid_file: str,
    out: str | None,
    only: tuple[str, ...],
    dry_run: bool,
    launcher: str,
    nproc_per_node: int,
    jobs: int,
    eval_every: int | None,
    eval_samples: int | None,
    final_loops: int | None,
    final_samples: int | None,
    metrics: tuple[str, ...],
    classifier: str | None,
    overrides: tuple[str, ...],
) -> None:
    """Run the paper's ablation protocol over the grid of runs GRID.toml describes.

    Every run (backbone × temporal plugin × f design × order × seed) trains in its own
    directory, is scored every protocol.eval_every steps (logger.eval keeps the best
    checkpoint), and gets final IS/FID of its best checkpoint over protocol.final_loops
    batches. Writes results.md, results.csv, PNG plots and a comparison video grid to OUT.
    Running it again skips finished runs and resumes an interrupted one.
    """
    changes: dict[str, Any] = {
        key: value
        for key, value in {
            "eval_every": eval_every,
            "eval_samples": eval_samples,
            "final_loops": final_loops,
            "final_samples": final_samples,
            "classifier": classifier,
        }.items()
        if value is not None
    }
    if metrics:
        changes["metrics"] = list(dict.fromkeys(metrics))
    grid = load_grid(grid_file, changes)
    out_dir = Path(out) if out else Path("studies") / grid.info.name
    outcome = run_study(
        grid,
        out_dir,
        registry=default_registry(),
        only=only,
        overrides=overrides,
        launcher=launcher,
        nproc_per_node=nproc_per_node,
        jobs=jobs,
        dry_run=dry_run,
        echo=click.echo,
    )
    if dry_run:
        return
    click.echo(f"results: {outcome.report['md']} and {outcome.report['csv']}")
    if outcome.interrupted is not None:
        sys.exit(130)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``ndevgan study``."""
    cli.add_command(study_command)
