"""Configuration: frozen attrs classes built from TOML files and ``--set`` overrides.

Every component's options are the fields of a frozen attrs class. :func:`build_config` turns a
mapping (a TOML section) into an instance, checking every key, type and value and raising a
:class:`~ndevgan_core.errors.ConfigError` that names the option, the bad value and what is
allowed — before any work starts. Field validators come from this module (:func:`positive`,
:func:`one_of`, …) so their messages read the same everywhere.

A config class may define ``PRESETS: ClassVar[dict[str, dict]]`` and a ``preset`` field: the
chosen preset's values replace the class defaults, and explicit keys replace the preset's.
"""

from __future__ import annotations

import difflib
import json
import math
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import attrs

from .errors import ConfigError

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# Field helpers and validators


def option(default: Any, help: str, validator: Callable[..., Any] | None = None) -> Any:
    """Declare a config field with a default, a one-line help text and an optional validator."""
    return attrs.field(default=default, validator=validator, metadata={"help": help})


def _fail(attribute: attrs.Attribute, value: Any, expected: str) -> None:
    raise ConfigError(f"{attribute.name}: expected {expected}, got {value!r}")


def positive(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """Validator: the value is a number > 0."""
    if not value > 0:
        _fail(attribute, value, "a number > 0")


def non_negative(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """Validator: the value is a number >= 0."""
    if not value >= 0:
        _fail(attribute, value, "a number >= 0")


def optional_positive(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """Validator: the value is None or a number > 0."""
    if value is not None and not value > 0:
        _fail(attribute, value, "a number > 0, or none")


def one_of(*choices: Any) -> Callable[[Any, attrs.Attribute, Any], None]:
    """Validator factory: the value is one of ``choices``."""

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in choices:
            _fail(attribute, value, "one of " + ", ".join(repr(c) for c in choices))

    check.choices = choices  # type: ignore[attr-defined]
    return check


def method_of(backends: Mapping[str, Sequence[str]]) -> Callable[[Any, attrs.Attribute, Any], None]:
    """Validator factory for a solver ``method`` whose choices depend on a ``backend`` field.

    Checks only that the value is a method of some backend (the union, listed per backend in
    the message); the config class checks the pairing in ``__attrs_post_init__`` once both
    fields are set. ``choices`` (for ``ndevgan plugins``) is the union, in order.
    """
    union = tuple(dict.fromkeys(m for methods in backends.values() for m in methods))

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in union:
            listed = " or ".join(
                f"{', '.join(methods)} (backend {name})" for name, methods in backends.items()
            )
            _fail(attribute, value, f"one of {listed}")

    check.choices = union  # type: ignore[attr-defined]
    return check


def power_of_two(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """Validator: the value is an integer power of two (>= 2)."""
    if value < 2 or value & (value - 1):
        _fail(attribute, value, "a power of two >= 2")


# --------------------------------------------------------------------------------------------
# Building config instances from mappings


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a TOML value to the field type ``tp``, or raise a ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        allowed = ", ".join(repr(a) for a in args)
        raise ConfigError(f"{where}: expected one of {allowed}, got {value!r}")
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_type = args[0] if args else Any
        items = [_coerce(v, item_type, where) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{where}: expected a finite number, got {value!r}")
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise TypeError(f"{where}: unsupported config field type {tp!r}")  # a bug in a plugin


def config_fields(cls: type) -> tuple[attrs.Attribute, ...]:
    """The fields of an attrs config class, with their annotations resolved to real types."""
    if not attrs.has(cls):
        raise TypeError(f"{cls!r} is not an attrs class")
    attrs.resolve_types(cls)
    return attrs.fields(cls)


def close_matches(name: str, candidates: Iterable[str]) -> str:
    """A ``did you mean …?`` phrase for ``name`` among ``candidates`` (empty if none)."""
    matches = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ""


def build_config(cls: type[T], data: Mapping[str, Any] | None = None, section: str = "") -> T:
    """Build and validate an instance of the attrs class ``cls`` from ``data``.

    ``section`` prefixes option names in error messages (``temporal.ode`` → ``temporal.ode.
    method``). Unknown keys, wrong types and invalid values raise :class:`ConfigError`.
    """
    data = dict(data or {})
    prefix = f"{section}." if section else ""
    fields = {f.name: f for f in config_fields(cls)}
    presets: Mapping[str, Mapping[str, Any]] | None = getattr(cls, "PRESETS", None)
    if presets and "preset" in fields:
        preset = data.get("preset", fields["preset"].default)
        if preset not in presets:
            allowed = ", ".join(repr(p) for p in presets)
            raise ConfigError(f"{prefix}preset: expected one of {allowed}, got {preset!r}")
        data = {**presets[preset], **data}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        raise ConfigError(
            f"unknown option {prefix}{key}.{close_matches(key, fields)} "
            f"Allowed: {', '.join(fields) or '(none)'}."
        )
    kwargs = {k: _coerce(v, fields[k].type, prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{section or cls.__name__}: {exc}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """The options of a config instance as a plain dict (tuples become lists)."""
    return {
        f.name: list(v) if isinstance(v := getattr(config, f.name), tuple) else v
        for f in attrs.fields(type(config))
    }


@attrs.frozen
class OptionInfo:
    """One option of a component, as listed by ``ndevgan plugins``."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None


def describe_options(cls: type) -> list[OptionInfo]:
    """List the options of a config class: name, type, default, help and allowed choices."""
    out = []
    for f in config_fields(cls):
        default = f.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if isinstance(default, tuple):
            default = list(default)
        out.append(
            OptionInfo(
                name=f.name,
                type=_type_name(f.type),
                default=default,
                help=f.metadata.get("help", ""),
                choices=getattr(f.validator, "choices", None),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# TOML in and out, and --set overrides


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file, naming the file in any error."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except PermissionError:
        raise ConfigError(f"config file {path} cannot be read: permission denied") from None


def parse_value(text: str) -> Any:
    """Parse the value of a ``--set key=value``: a TOML value, else the bare text as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_override(expr: str) -> tuple[list[str], Any]:
    """Split ``section.key=value`` into its dotted path and parsed value."""
    key, sep, value = expr.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {expr!r}: expected section.key=value, e.g. run.iterations=100")
    return key.split("."), parse_value(value.strip())


def set_nested(tree: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``tree[path[0]][path[1]]… = value``, creating tables on the way."""
    node = tree
    for i, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(path[: i + 1])} is a value, not a section")
        node = child
    node[path[-1]] = value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def dump_toml(tree: Mapping[str, Any]) -> str:
    """Write a two-level mapping (sections of scalars, dotted section names allowed) as TOML.

    ``None`` values are written as comments: TOML has no null, and an omitted option takes its
    default, which is ``None`` for every option that allows it.
    """
    lines: list[str] = []

    def emit(name: str, table: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
        if scalars or not table:
            lines.append(f"[{name}]")
            for k, v in scalars.items():
                lines.append(f"# {k} = none" if v is None else f"{k} = {_toml_value(v)}")
            lines.append("")
        for k, v in table.items():
            if isinstance(v, Mapping):
                emit(f"{name}.{json.dumps(k) if '.' in k else k}", v)

    for name, table in tree.items():
        emit(name, table)
    return "\n".join(lines)
