"""The ``ndevgan`` command line: run, sample, plugins, info (and plugins' own commands)."""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ndevgan_core.config import describe_options
from ndevgan_core.errors import ConfigWarning, NdevganError
from ndevgan_core.files import DirectoryLock, describe_os_error
from ndevgan_core.options import OutputPath, device_option
from ndevgan_core.registry import PluginWarning, Registry, default_registry


def _show_warning(
    message: Any,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` for the CLI: plugin warnings as one line, others as usual."""
    if issubclass(category, (PluginWarning, ConfigWarning)):
        click.echo(f"Warning: {message}", err=True)
    else:
        text = warnings.formatwarning(message, category, filename, lineno, line)
        click.echo(text, err=True, nl=False)


class _Group(click.Group):
    """Turns ndevgan's input errors into one-line messages instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NdevganError as exc:
            raise click.ClickException(str(exc)) from None
        except BrokenPipeError:  # the reader went away (`ndevgan plugins | head`): not an error
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the exit's flush does not fail again
            sys.exit(1)
        except OSError as exc:
            raise click.ClickException(describe_os_error(exc)) from None
        except UnicodeDecodeError as exc:
            raise click.ClickException(
                f"a file is not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The commands defined here and those of built-in plugins (registry.toml [commands])."""
        return sorted(set(super().list_commands(ctx)) | set(_registry().command_catalogue))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """A command by name, importing the built-in plugin that provides it on first use."""
        command = super().get_command(ctx, name)
        if command is None and name in _registry().command_catalogue:
            try:
                _registry().load_command(name, self)
            except NdevganError as exc:
                raise click.ClickException(str(exc)) from None
            command = super().get_command(ctx, name)
        return command


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ndevgan")
def cli() -> None:
    """ndevgan: video GANs whose temporal generator is a neural ODE or SDE."""


def _registry() -> Registry:
    return default_registry()


def config_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options that select plugins and settings, shared by ``run`` and ``info``."""
    fn = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="SECTION.KEY=VALUE",
        help="Override one option, e.g. run.iterations=100 or temporal.ode.method=dopri5.",
    )(fn)
    fn = click.option(
        "--plugin",
        "plugins",
        multiple=True,
        metavar="KIND.NAME",
        help="Select a component, e.g. backbone.tgan, temporal.ode, dataset.shapes. Naming a "
        "backbone starts from its defaults (the paper's sizes, its original temporal generator) "
        "instead of the demo config.",
    )(fn)
    fn = click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help="A TOML config file. Without one (and without --plugin backbone.*), the embedded "
        "demo config (TGAN-ODE tiny on dataset.shapes) is the base.",
    )(fn)
    return fn


def cli_raw_config(
    config_file: str | None, plugins: Sequence[str], overrides: Sequence[str]
) -> dict[str, Any]:
    """Merge the demo base (when no file is given), the file, --plugin and --set (unchecked)."""
    from ndevgan_core.runconfig import demo_config, raw_config

    naming_backbone = any(p.startswith("backbone.") for p in plugins)
    base = None if config_file or naming_backbone else demo_config()
    return raw_config(config_file, plugins, overrides, base=base)


def resolve_cli_config(
    config_file: str | None, plugins: Sequence[str], overrides: Sequence[str], registry: Registry
) -> Any:
    """Merge the demo base (when no file is given), the file, --plugin and --set; validate."""
    from ndevgan_core.runconfig import resolve

    return resolve(
        cli_raw_config(config_file, plugins, overrides),
        registry,
        must_be_selected=set_plugins(overrides),
        warn_unselected=True,
    )


def set_plugins(overrides: Sequence[str]) -> frozenset[str]:
    """The plugins that ``--set KIND.NAME.KEY=VALUE`` options name."""
    from ndevgan_core.config import parse_override
    from ndevgan_core.registry import KINDS

    names = set()
    for expr in overrides:
        path, _ = parse_override(expr)
        if len(path) >= 3 and path[0] in KINDS:
            names.add(f"{path[0]}.{path[1]}")
    return frozenset(names)


@cli.command()
@config_options
@click.option(
    "--resume",
    type=click.Path(exists=True),
    metavar="RUN_DIR|CHECKPOINT",
    help="Continue a run from its newest checkpoint (or the one given).",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --resume: accept --set options that would not continue the run exactly "
    "(its seed, or any plugin option).",
)
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the fully resolved config (every option, as the run's config.toml) and exit "
    "without training.",
)
def run(
    config_file: str | None,
    plugins: tuple[str, ...],
    overrides: tuple[str, ...],
    resume: str | None,
    force: bool,
    print_config: bool,
) -> None:
    """Train a video GAN. With no arguments: TGAN-ODE `tiny` on the built-in shapes dataset.

    Each run writes its own directory (default runs/<time>-<backbone>-<temporal>): the
    resolved config.toml, log.jsonl, checkpoints/ and samples/ (MP4/GIF grids, PNG strips).
    Ctrl-C stops after the current step with a checkpoint; --resume continues it exactly.
    One process at a time writes a run directory.
    """
    from ndevgan_core.runconfig import raw_config, resolve
    from ndevgan_core.training.api import train
    from ndevgan_core.training.checkpoint import load_checkpoint
    from ndevgan_core.training.trainer import CONTINUATION_KEYS

    registry = _registry()
    if force and resume is None:
        raise click.UsageError("--force only applies with --resume")
    if resume is not None:
        if config_file or plugins:
            raise click.UsageError(
                "--resume takes the config from the checkpoint; use only "
                "--set run.KEY=VALUE with it"
            )
        resume_path = Path(resume)
        run_dir = resume_path if resume_path.is_dir() else resume_path.resolve().parent.parent
        if run_dir.is_dir():  # a run in progress there is named before anything else
            DirectoryLock(run_dir).acquire().release()
        checkpoint = load_checkpoint(resume)
        saved = checkpoint["config"]
        breaking = [
            expr.split("=", 1)[0].strip()
            for expr in overrides
            if not expr.startswith("run.")
            or expr.split("=", 1)[0].strip() in {f"run.{k}" for k in CONTINUATION_KEYS}
        ]
        if breaking and not force:
            raise click.UsageError(
                f"--set {', '.join(breaking)}: would not continue the run exactly; only the "
                f"other run.* settings may change on resume (--force to change them anyway)"
            )
        config = resolve(raw_config(None, (), overrides, base=saved), registry)
        if int(checkpoint["step"]) >= config.run.iterations and not print_config:
            click.echo(
                f"nothing to train: {resume} is at step {int(checkpoint['step']):,} and "
                f"run.iterations is {config.run.iterations:,}; continue with --set "
                f"run.iterations=N (N > {int(checkpoint['step']):,})"
            )
            return
    else:
        config = resolve_cli_config(config_file, plugins, overrides, registry)
    if print_config:
        from ndevgan_core.config import dump_toml

        click.echo(dump_toml(config.to_dict()), nl=False)
        return
    run_dir = train(config, registry, resume=resume, force=force)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for the run
        return
    click.echo(f"run directory: {run_dir}")
    if config.run.final_score:
        from ndevgan_core.evaluation.command import quick_score

        for line in quick_score(
            run_dir, config.run.final_score, config.run.device, config.run.progress
        ):
            click.echo(line)
    strips = sorted((run_dir / "samples").glob("step-*.png"))
    if strips:
        click.echo(f"samples of the last step: {strips[-1]}")


@cli.command()
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option(
    "--n", "n", default=16, show_default=True, type=click.IntRange(min=1), help="Number of videos."
)
@click.option(
    "--out",
    default="samples.mp4",
    show_default=True,
    type=OutputPath(),
    help="Output grid video (.mp4 or .gif); a PNG strip is written beside it.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the latents.")
@click.option(
    "--fps",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Frames per second of the MP4 and GIF files.",
)
@device_option
@click.option(
    "--t-start",
    type=float,
    default=None,
    help="Time of the first frame (default: the trained start, where z sits). Negative: "
    "integrate backwards to what came before the first frame. Continuous generators only.",
)
@click.option(
    "--t-end",
    type=float,
    default=None,
    help="Time of the last frame (default: the trained end); past it extrapolates.",
)
@click.option(
    "--frames",
    type=click.IntRange(min=1),
    default=None,
    help="Number of frames from --t-start to --t-end (default: the trained count).",
)
@click.option(
    "--fps-multiplier",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="K: render K× the frames over the same interval (intermediate states from the "
    "solver) and write the 1× and K× videos of the same z side by side.",
)
@click.option(
    "--interpolate",
    type=click.IntRange(min=2),
    default=None,
    metavar="STEPS",
    help="Instead of N videos: STEPS videos along the spherical path from the first to the "
    "second latent that --seed draws (the first and last are those two samples).",
)
def sample(
    checkpoint: str,
    n: int,
    out: str,
    seed: int,
    fps: int,
    device: str,
    t_start: float | None,
    t_end: float | None,
    frames: int | None,
    fps_multiplier: int,
    interpolate: int | None,
) -> None:
    """Generate videos from a checkpoint (a file, or a run directory's newest one).

    Continuous temporal generators (ODE, SDE) render any time grid: --t-start/--t-end/--frames
    and --fps-multiplier. The PNG beside the video marks the trained interval (green), frames
    outside it (orange) and the frame of z itself (blue).
    """
    import numpy as np

    from ndevgan_core import media
    from ndevgan_core.devices import resolve_device
    from ndevgan_core.training.api import (
        TrainedGenerator,
        load_generator,
        sample_videos,
        time_grid,
    )

    out_path = Path(out)
    if out_path.suffix.lower() not in media.VIDEO_SUFFIXES:
        raise click.BadParameter(
            f"expected a file ending in {' or '.join(media.VIDEO_SUFFIXES)}", param_hint="--out"
        )
    loaded = load_generator(checkpoint, _registry(), device=resolve_device(device, "--device"))
    generator = loaded.generator
    grid = time_grid(generator.spec, t_start, t_end, frames, fps_multiplier)
    generator.temporal.check_times(grid.times)
    if interpolate is not None:
        if grid.factor > 1:
            raise click.UsageError("--interpolate and --fps-multiplier do not combine")
        path = TrainedGenerator(loaded)
        ends = path.latents(2, seed)
        frames_uint8 = path.interpolate(
            ends[0], ends[1], interpolate, grid.times, seed=seed, dtype="uint8"
        )  # (K, T, C, H, W); media draws (K, T, H, W, C)
        shown = np.ascontiguousarray(frames_uint8.transpose(0, 1, 3, 4, 2))
        shown = media.mark_frames(shown, grid.times.numpy(), grid.trained)
        media.write_video(out_path, media.video_grid(shown, ncols=interpolate), fps=fps)
        strip = media.write_png(out_path.with_suffix(".png"), media.frame_strip(shown))
        click.echo(
            f"wrote {interpolate} videos from z₀ to z₁ of seed {seed} (step {loaded.step}): "
            f"{out_path}\n  strip: {strip}"
        )
        return
    videos = media.to_uint8(sample_videos(generator, n, seed=seed, times=grid.times))
    times = grid.times.numpy()
    custom = (t_start, t_end, frames) != (None, None, None) or grid.factor > 1
    shown = media.mark_frames(videos, times, grid.trained)
    reference = reference_times = None
    if grid.base is not None:
        base = media.to_uint8(sample_videos(generator, n, seed=seed, times=grid.base))
        reference, reference_times = base, grid.base.numpy()
        held = media.mark_frames(
            media.hold_frames(base, grid.factor), _held_times(grid), grid.trained
        )
        shown = media.side_by_side(held, shown)
    media.write_video(out_path, media.video_grid(shown), fps=fps * grid.factor)
    if custom:
        image = media.timeline_strip(
            videos[:4],
            times,
            grid.trained,
            reference=None if reference is None else reference[:4],
            reference_times=reference_times,
        )
    else:
        image = media.frame_strip(videos)
    strip = media.write_png(out_path.with_suffix(".png"), image)
    click.echo(f"wrote {n} videos from step {loaded.step} ({grid.describe()}): {out_path}")
    if grid.factor > 1:
        click.echo(f"  each cell: left 1× (held), right {grid.factor}×; strip: {strip}")
    else:
        click.echo(f"  strip: {strip}")


def _held_times(grid: Any) -> Any:
    """The time each frame of a held (1× stretched to K×) video shows: its base frame's time."""
    import numpy as np

    base = grid.base.numpy()
    return np.concatenate([np.repeat(base[:-1], grid.factor), base[-1:]])


def _option_records(config_class: type) -> list[dict[str, Any]]:
    return [
        {
            "name": o.name,
            "type": o.type,
            "default": o.default,
            "help": o.help,
            **({"choices": list(o.choices)} if o.choices else {}),
        }
        for o in describe_options(config_class)
    ]


def plugin_records(registry: Registry, kind: str | None = None) -> list[dict[str, Any]]:
    """Everything ``ndevgan plugins`` shows, as plain data: the plugins of ``kind`` (all when
    None), and with all of them (or with ``kind="run"``) the ``[run]`` settings as a record of
    kind ``run``."""
    from ndevgan_core import __version__
    from ndevgan_core.runconfig import RunConfig

    records = []
    if kind in (None, "run"):
        records.append(
            {
                "name": "run",
                "kind": "run",
                "package": "ndevgan",
                "version": __version__,
                "builtin": True,
                "module": "ndevgan_core.runconfig",
                "summary": "Settings of every run that belong to no plugin ([run] in a config "
                "file, --set run.KEY=VALUE)",
                "options": _option_records(RunConfig),
            }
        )
    for comp in registry.load_all():
        if kind and comp.kind != kind:
            continue
        records.append(
            {
                "name": comp.name,
                "kind": comp.kind,
                "package": comp.provider.package,
                "version": comp.provider.version,
                "builtin": comp.provider.builtin,
                "module": comp.provider.plugin,
                "summary": comp.summary,
                "options": _option_records(comp.config_class),
            }
        )
    return records


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--kind",
    type=click.Choice(["run", "backbone", "temporal", "dataset", "metric", "logger"]),
    help="Only this kind (run: the [run] settings).",
)
@click.option(
    "--options/--no-options",
    default=True,
    show_default=True,
    help="List each plugin's options under it.",
)
def plugins_command(as_json: bool, kind: str | None, options: bool) -> None:
    """List the installed plugins (name, kind, package, version, summary and options) and
    the [run] settings every run has."""
    registry = _registry()
    records = plugin_records(registry, kind)
    if as_json:
        click.echo(json.dumps(records, indent=2, default=str))
        return
    header = ("NAME", "KIND", "PACKAGE", "VERSION", "SUMMARY")
    rows = [(r["name"], r["kind"], r["package"], r["version"], r["summary"]) for r in records]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)][:4]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4])
        record = next((r for r in records if r["name"] == row[0]), None)
        if options and record:
            for o in record["options"]:
                click.echo(f"    {o['name']} = {o['default']!r}  ({o['type']}) {o['help']}")
    for broken in registry.broken:
        click.echo(f"skipped: {broken.provider.describe()}: {broken.error}", err=True)


@cli.command()
@config_options
@click.option(
    "--temporals/--no-temporals",
    "show_temporals",
    default=True,
    show_default=True,
    help="Also list every temporal generator variant (plugin × order × f design) with its "
    "parameter count for this backbone.",
)
def info(
    config_file: str | None,
    plugins: tuple[str, ...],
    overrides: tuple[str, ...],
    show_temporals: bool,
) -> None:
    """Print the parameter count of each module of the GAN a config builds, the temporal
    generator's resolved options, and every temporal generator (each order and f design) the
    backbone could use instead, with the options of the config file and --set applied."""
    from ndevgan_core.config import config_to_dict
    from ndevgan_core.runconfig import assemble, resolve

    registry = _registry()
    raw = cli_raw_config(config_file, plugins, overrides)
    config = resolve(raw, registry, must_be_selected=set_plugins(overrides), warn_unselected=True)
    import torch

    with torch.device("meta"):  # counting needs shapes only: paper-size TGANv2 is 0.8 GB
        parts = assemble(config, registry)
    counts = parts.gan.module_parameter_counts()
    p = config.plugins
    preset = getattr(config.components[p.backbone], "preset", None)
    click.echo(
        f"backbone {p.backbone}"
        + (f" ({preset} preset)" if preset else "")
        + f", temporal {p.temporal}"
    )
    width = max(len(k) for k in [*counts, "discriminators (total)"])
    for name, n in counts.items():
        click.echo(f"  {name.ljust(width)}  {n:>12,}")
    gen = sum(n for k, n in counts.items() if k.startswith("generator."))
    disc = sum(n for k, n in counts.items() if k.startswith("discriminator."))
    click.echo(f"  {'generator (total)'.ljust(width)}  {gen:>12,}")
    click.echo(f"  {'discriminators (total)'.ljust(width)}  {disc:>12,}")
    options = config_to_dict(config.components[p.temporal])
    click.echo(f"{p.temporal} as it would train (unset options: the backbone's published values):")
    click.echo("  " + " ".join(f"{k}={_toml_text(v)}" for k, v in options.items()))
    if show_temporals:
        user = {
            f"temporal.{short}": section
            for short, section in raw.get("temporal", {}).items()
            if isinstance(section, dict)
        }
        _echo_temporal_variants(parts.backbone, registry, user)


def _toml_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    return str(value).replace(" ", "")


def _echo_temporal_variants(
    backbone: Any, registry: Registry, user: dict[str, dict[str, Any]]
) -> None:
    from ndevgan_core.runconfig import temporal_variants

    variants = temporal_variants(backbone, registry, user)  # built on the meta device
    reference = backbone.temporal_spec().reference_params
    title = "temporal generators this backbone can use (trainable parameters"
    if reference is not None:
        title += f"; its original has {reference:,}"
    click.echo(title + "):")
    width = max(len(v.label) for v in variants)
    for v in variants:
        if v.parameters is None:
            click.echo(f"  {v.label.ljust(width)}  {'n/a':>12}  {v.note}")
            continue
        note = f"  {v.note}" if v.note else ""
        click.echo(f"  {v.label.ljust(width)}  {v.parameters:>12,}{note}")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``ndevgan`` console script."""
    warnings.showwarning = _show_warning
    try:
        registry = _registry()
        registry.hook.register_commands(cli=cli)
    except NdevganError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    cli.main(args=list(argv) if argv is not None else None, prog_name="ndevgan")
