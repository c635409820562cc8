"""Command-line options shared by ndevgan's commands and its plugins' commands.

One definition each, so every command spells, documents and checks them alike:
:class:`OutputPath` (an ``--out`` checked for writability when the command line is parsed),
:func:`progress_option`, :func:`device_option` and :func:`stats_cache_option`. Plugins reach
them as ``nd.OutputPath``, ``nd.progress_option``, ``nd.device_option`` and
``nd.stats_cache_option``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from .files import output_problem

F = TypeVar("F", bound=Callable[..., Any])


class OutputPath(click.Path):
    """A click parameter type for an output file (or ``directory=True``: an output directory)
    that is checked for writability when the command line is parsed (:func:`output_problem`)."""

    def __init__(self, directory: bool = False) -> None:
        super().__init__(file_okay=not directory, dir_okay=directory)
        self.directory = directory

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The path, or a usage error naming it and why it cannot be written."""
        if value is None:
            return value
        problem = output_problem(value, self.directory)
        if problem:
            self.fail(f"cannot write {value}: {problem}", param, ctx)
        return value


def progress_option(fn: F) -> F:
    """``--progress/--no-progress`` (default on): a progress bar on the terminal."""
    return click.option(
        "--progress/--no-progress",
        default=True,
        show_default=True,
        help="Show a progress bar (on a terminal).",
    )(fn)


def device_option(fn: F) -> F:
    """``--device`` (default ``auto``): where to compute; resolve it with
    ``resolve_device(value, "--device")``."""
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        help="auto (cuda when available), cpu, cuda or cuda:N.",
    )(fn)


def stats_cache_option(fn: F) -> F:
    """``--stats-cache DIR``: where cached real-data statistics live (default
    ``$NDEVGAN_CACHE/fid-stats``, else ``~/.cache/ndevgan/fid-stats``)."""
    return click.option(
        "--stats-cache",
        type=click.Path(file_okay=False),
        default=None,
        help="Directory of cached real-data statistics  [default: $NDEVGAN_CACHE/fid-stats or "
        "~/.cache/ndevgan/fid-stats]",
    )(fn)
