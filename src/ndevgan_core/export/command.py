"""``ndevgan export``."""

from __future__ import annotations

import click

from ndevgan_core.hookspecs import hookimpl
from ndevgan_core.options import OutputPath

from .onnx import export_onnx
from .plan import EXPORT_SOLVERS, EXPORTERS


@click.command("export")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option(
    "--out",
    default="generator.onnx",
    show_default=True,
    type=OutputPath(),
    help="The ONNX file to write (one file, weights inside).",
)
@click.option(
    "--frames", type=click.IntRange(min=1), default=None, help="Frames (default: as trained)."
)
@click.option("--t-start", type=float, default=None, help="Time of the first frame.")
@click.option("--t-end", type=float, default=None, help="Time of the last frame.")
@click.option(
    "--steps-per-frame",
    type=click.IntRange(min=1),
    default=None,
    help="Solver steps per frame interval (default: the training step size, or one step; an "
    "SDE keeps its dt).",
)
@click.option(
    "--solver",
    type=click.Choice(EXPORT_SOLVERS),
    default=None,
    help="Unrolled solver in the graph (ODE: euler, midpoint, rk4, rk4-classic; SDE: "
    "euler-maruyama, milstein). Default: nearest to the training solver.",
)
@click.option(
    "--opset",
    type=click.IntRange(min=13),
    default=18,
    show_default=True,
    help="ONNX opset version of the file (13 or newer).",
)
@click.option("--fp16", is_flag=True, help="Export in half precision (inputs and output too).")
@click.option(
    "--exporter",
    type=click.Choice(EXPORTERS),
    default="torchscript",
    show_default=True,
    help="torch's TorchScript-based exporter, or the torch.export-based one (slower; "
    "continuous temporal generators only).",
)
def export_command(
    checkpoint: str,
    out: str,
    frames: int | None,
    t_start: float | None,
    t_end: float | None,
    steps_per_frame: int | None,
    solver: str | None,
    opset: int,
    fp16: bool,
    exporter: str,
) -> None:
    """Export a checkpoint's generator (a file, or a run directory's newest) to ONNX.

    Inputs z (and noise for stochastic generators) with a dynamic batch axis, output video
    (B, T, C, H, W) in [-1, 1]. ODE and SDE temporal generators are integrated by unrolled
    fixed-step solvers; the file is checked in ONNX Runtime against PyTorch before it is
    written. `ndevgan infer FILE` runs it.
    """
    report = export_onnx(
        checkpoint,
        out,
        frames=frames,
        t_start=t_start,
        t_end=t_end,
        steps_per_frame=steps_per_frame,
        solver=solver,
        opset=opset,
        fp16=fp16,
        exporter=exporter,
        progress=True,
    )
    for line in report.lines():
        click.echo(line)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``ndevgan export``."""
    cli.add_command(export_command)
