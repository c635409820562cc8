"""``ndevgan study GRID.toml``: the paper's experimental protocol (section 4) as one command.

A grid file names a study, its protocol, a base run config and the axes of the ablation::

    [study]
    name = "tiny"

    [protocol]                 # Protocol: the paper's numbers are the defaults
    eval_every = 2000          # IS on eval_samples videos every eval_every steps ...
    eval_samples = 2048
    final_loops = 5            # ... then IS/FID of the best step over 5 batches of 2,048
    final_samples = 2048
    metrics = ["is", "fid"]

    [base.run]                 # the shared run config: the sections of an ndevgan run config
    iterations = 100000
    [base.backbone.tgan]
    preset = "paper"

    [axes]                     # backbones × temporal plugins × f designs × orders × seeds
    backbones = ["backbone.tgan", "backbone.mocogan"]
    temporals = ["original", "temporal.ode", "temporal.sde"]
    designs = ["single"]       # only for temporal plugins with a `design` option
    orders = [1, 2, 3]         # only for temporal plugins with an `order` option
    seeds = [0]

    [[override]]               # per-run settings or exclusions, by glob over run ids
    runs = "tganv2-sde-*"
    set = { "temporal.sde.dt" = 5e-2 }

Each run is independent: ``OUT/runs/<run id>`` is an ordinary run directory (``ndevgan run``
writes the same) trained with :class:`~ndevgan_core.training.trainer.Trainer` in this process
(``--launcher local``) or by ``torchrun … -m ndevgan_core run`` in a subprocess; the
``logger.eval`` plugin scores it during training and keeps ``checkpoints/best.pt``. The final
figures of the best checkpoint go to ``final.json``. Re-running the study skips finished runs
and resumes interrupted ones. ``OUT`` then holds ``results.md``, ``results.csv``, plots as
PNG, and a video grid of every configuration on the same latents.
"""

from __future__ import annotations

from .command import StudyOutcome, register_commands, run_study, study_command
from .grid import (
    COMPARISON_NPZ,
    EVAL_LOGGER,
    FINAL_JSON,
    GRID_SECTIONS,
    METRIC_LABELS,
    METRICS,
    RUNS_DIR,
    TIMING_JSON,
    UNCOMPARED_RUN_KEYS,
    Axes,
    Grid,
    Override,
    Protocol,
    StudyInfo,
    load_grid,
)
from .launch import (
    TRAIN_LOG,
    ChildRuns,
    RunState,
    checkpoint_step,
    holds_result_of,
    inspect_run,
    run_command,
    subprocess_command,
    torchrun_command,
    train_local,
    train_subprocess,
    train_torchrun,
)
from .plan import PlannedRun, plan_runs, select_runs
from .report import (
    CSV_COLUMNS,
    SEED_CSV_COLUMNS,
    ComparisonGroup,
    late_trend,
    markdown_table,
    plot_final_metrics,
    plot_training_curves,
    read_eval_log,
    result_rows,
    seed_markdown_table,
    seed_rows,
    steps_per_second,
    write_comparison,
    write_csv,
    write_report,
)
from .scoring import final_evaluation

__all__ = [
    "COMPARISON_NPZ",
    "CSV_COLUMNS",
    "EVAL_LOGGER",
    "FINAL_JSON",
    "GRID_SECTIONS",
    "METRICS",
    "METRIC_LABELS",
    "RUNS_DIR",
    "SEED_CSV_COLUMNS",
    "TIMING_JSON",
    "TRAIN_LOG",
    "UNCOMPARED_RUN_KEYS",
    "Axes",
    "ChildRuns",
    "ComparisonGroup",
    "Grid",
    "Override",
    "PlannedRun",
    "Protocol",
    "RunState",
    "StudyInfo",
    "StudyOutcome",
    "checkpoint_step",
    "final_evaluation",
    "holds_result_of",
    "inspect_run",
    "late_trend",
    "load_grid",
    "markdown_table",
    "plan_runs",
    "plot_final_metrics",
    "plot_training_curves",
    "read_eval_log",
    "register_commands",
    "result_rows",
    "run_command",
    "run_study",
    "seed_markdown_table",
    "seed_rows",
    "select_runs",
    "steps_per_second",
    "study_command",
    "subprocess_command",
    "torchrun_command",
    "train_local",
    "train_subprocess",
    "train_torchrun",
    "write_comparison",
    "write_csv",
    "write_report",
]
