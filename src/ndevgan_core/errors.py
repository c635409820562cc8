"""The errors ndevgan raises for bad input: each message names the file, option or plugin at
fault and what was expected, so the CLI can print it as one line instead of a traceback."""

from __future__ import annotations


class NdevganError(Exception):
    """Base class of every error caused by the user's input rather than a bug in ndevgan."""


class ConfigError(NdevganError, ValueError):
    """A configuration key, type or value is wrong (raised before any work starts)."""


class PluginError(NdevganError, LookupError):
    """A plugin is unknown, duplicated, disabled, or failed to import."""


class CheckpointError(NdevganError, OSError):
    """A checkpoint file is missing, truncated, foreign or incompatible with this version."""


class DirectoryInUseError(NdevganError, RuntimeError):
    """Another process holds the lock of a run or study directory."""


class ConfigWarning(UserWarning):
    """A config is valid but probably not what was meant (e.g. options for a plugin the run
    does not use); the CLI shows it as one line."""
