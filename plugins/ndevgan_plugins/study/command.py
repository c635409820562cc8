"""Running a study, and the ``ndevgan study`` command."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
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
from .launch import _read_json, inspect_run, torchrun_command, train_local, train_torchrun
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
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> StudyOutcome:
    """Plan the grid, train and score every selected run that is not finished, then report.

    Stops after a run that was interrupted (Ctrl-C: the trainer checkpoints first); calling
    it again resumes that run and skips the finished ones.
    """
    registry = registry or default_registry()
    if launcher not in ("local", "torchrun"):
        raise ConfigError(f"--launcher: expected local or torchrun, got {launcher!r}")
    plans = plan_runs(grid, registry, overrides)
    selected = select_runs(plans, only)
    if dry_run:
        return _run_study(
            grid, out, registry, plans, selected, launcher, nproc_per_node, True, echo
        )
    with DirectoryLock(out, "study directory"):  # one study process per directory
        return _run_study(
            grid, out, registry, plans, selected, launcher, nproc_per_node, False, echo
        )


def _run_study(
    grid: Grid,
    out: Path,
    registry: Registry,
    plans: Sequence[PlannedRun],
    selected: Sequence[PlannedRun],
    launcher: str,
    nproc_per_node: int,
    dry_run: bool,
    echo: Callable[[str], None],
) -> StudyOutcome:
    t0 = time.perf_counter()
    width = len(str(len(selected)))
    finished: list[str] = []
    interrupted = None
    for index, plan in enumerate(selected, 1):
        run_dir = out / RUNS_DIR / plan.run_id
        state = inspect_run(plan, run_dir, grid.protocol, registry)
        prefix = f"[{index:>{width}}/{len(selected)}] {plan.run_id}:"
        iterations = plan.config.run.iterations
        if dry_run:
            what = {
                "done": "finished — would skip",
                "evaluate": f"trained to step {state.step:,} — would compute the final figures",
                "resume": f"would resume from step {state.step:,} of {iterations:,}",
                "new": f"would train {iterations:,} steps",
            }[state.status]
            echo(
                f"{prefix} {what}; G_t {plan.params_temporal:,} / G {plan.params_generator:,} "
                "parameters"
            )
            if launcher == "torchrun" and state.status in ("new", "resume"):
                command = torchrun_command(plan, run_dir, state.status == "resume", nproc_per_node)
                echo("    " + shlex.join(command))
            continue
        if state.status == "done":
            echo(f"{prefix} finished earlier, skipped — {_summary(state.final)}")
            finished.append(plan.run_id)
            continue
        if state.status in ("new", "resume"):
            resume = state.status == "resume"
            if resume:
                echo(f"{prefix} resuming from step {state.step:,} of {iterations:,}")
            else:
                echo(f"{prefix} training {iterations:,} steps")
                _clean_new_run(run_dir)
                write_text_atomic(run_dir / "config.toml", dump_toml(plan.config.to_dict()))
            started = time.perf_counter()
            try:
                if launcher == "local":
                    step = train_local(plan, run_dir, resume, registry)
                else:
                    step = train_torchrun(plan, run_dir, resume, nproc_per_node)
            finally:
                _add_timing(run_dir, "train_seconds", time.perf_counter() - started)
            if step < iterations:
                echo(
                    f"{prefix} interrupted at step {step:,} of {iterations:,} (checkpointed); "
                    "run the same command again to resume it"
                )
                interrupted = plan.run_id
                break
        echo(f"{prefix} final figures of the best checkpoint")
        started = time.perf_counter()
        final = final_evaluation(
            plan,
            run_dir,
            grid.protocol,
            registry,
            stats_cache=out / "cache",
            progress=plan.config.run.progress,
        )
        _add_timing(run_dir, "final_seconds", time.perf_counter() - started)
        echo(f"{prefix} done — {_summary(final)}")
        finished.append(plan.run_id)
    report: dict[str, Path] = {}
    if not dry_run:
        report = write_report(out, grid, plans, wall_seconds=time.perf_counter() - t0)
    return StudyOutcome(tuple(plans), tuple(finished), interrupted, report)


# --------------------------------------------------------------------------------------------
# The command


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
