"""The registry: every component (backbone, temporal generator, dataset, …) by qualified name.

Built-in components are catalogued in ``registry.toml`` (name → module, summary) and their
module is imported only when a component is asked for. Third-party plugins are found through
the entry-point group ``ndevgan`` and loaded when the registry is made; one that fails to
import is skipped with a warning, and named in the error if a run then selects what it would
have provided. ``NDEVGAN_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point name, package,
module or component name.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import importlib.resources
import os
import tomllib
import traceback
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .config import close_matches, config_fields
from .errors import PluginError

KINDS = ("backbone", "temporal", "dataset", "metric", "logger")
"""The kinds of component a plugin may register."""

ENTRY_POINT_GROUP = "ndevgan"
DISABLE_ENV = "NDEVGAN_DISABLE_PLUGINS"


class PluginWarning(UserWarning):
    """A third-party plugin could not be loaded and was skipped."""


@attrs.frozen
class Provider:
    """Where a component comes from: a built-in module or a third-party distribution."""

    plugin: str
    package: str
    version: str
    builtin: bool

    def describe(self) -> str:
        """A human phrase naming the provider, for error messages."""
        if self.builtin:
            return f"built-in module {self.plugin}"
        return f"plugin {self.plugin!r} from package {self.package} {self.version}"


@attrs.frozen
class Component:
    """A registered component: its name, how to build it, its options and its provider."""

    name: str
    factory: Callable[..., Any]
    config_class: type
    summary: str
    provider: Provider

    @property
    def kind(self) -> str:
        """The part of the name before the dot (``temporal`` in ``temporal.ode``)."""
        return self.name.split(".", 1)[0]


@attrs.frozen
class BrokenPlugin:
    """A third-party plugin that failed to load, kept to explain a later lookup failure."""

    provider: Provider
    error: str


@attrs.frozen
class CatalogueEntry:
    """A built-in component as ``registry.toml`` lists it (before its module is imported)."""

    name: str
    module: str
    summary: str


def _version() -> str:
    try:
        return metadata.version("ndevgan")
    except metadata.PackageNotFoundError:
        return "0+unknown"


CATALOGUE_GROUP = "ndevgan.catalogues"
"""Entry-point group of packages that ship a ``registry.toml`` catalogue: the built-in plugins
package names itself there (its components load lazily, from that table), so the kernel needs
no plugin's name."""


def read_catalogue(table_name: str = "components") -> dict[str, CatalogueEntry]:
    """Read a table of every installed catalogue (``registry.toml`` in each package that the
    ``ndevgan.catalogues`` entry points name): ``components`` (name → module, summary) or
    ``commands`` (CLI sub-command → the module whose ``register_commands`` adds it)."""
    entries: dict[str, CatalogueEntry] = {}
    for point in sorted(metadata.entry_points(group=CATALOGUE_GROUP), key=lambda e: e.name):
        resource = importlib.resources.files(point.value).joinpath("registry.toml")
        table = tomllib.loads(resource.read_text("utf-8")).get(table_name, {})
        for name, entry in table.items():
            entries.setdefault(
                name,
                CatalogueEntry(name=name, module=entry["module"], summary=entry.get("summary", "")),
            )
    return entries


def disabled_from_env() -> frozenset[str]:
    """The names listed in ``NDEVGAN_DISABLE_PLUGINS`` (comma separated)."""
    raw = os.environ.get(DISABLE_ENV, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def qualify(name: str, kind: str | None = None) -> str:
    """``ode`` with kind ``temporal`` → ``temporal.ode``; a qualified name is returned as is."""
    if "." in name or kind is None:
        return name
    return f"{kind}.{name}"


class DuplicateNameError(PluginError):
    """Two plugins registered one component name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class Registry:
    """All components known to this process, with lazy loading of the built-in ones.

    ``Registry()`` reads the catalogue, the environment's ``NDEVGAN_DISABLE_PLUGINS`` and the
    ``ndevgan`` entry points. Tests pass ``entry_points=False`` or their own ``disabled`` set.
    """

    def __init__(self, *, entry_points: bool = True, disabled: Iterable[str] | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.disabled = frozenset(disabled) if disabled is not None else disabled_from_env()
        catalogue = read_catalogue()
        self.catalogue = {n: e for n, e in catalogue.items() if not self._is_disabled(n, e.module)}
        self.disabled_builtins = frozenset(set(catalogue) - set(self.catalogue))
        """Built-in components blocked by ``NDEVGAN_DISABLE_PLUGINS`` (by name or module)."""
        self.contested: dict[str, str] = {}
        """Names two plugins registered: the name → the error a lookup of it raises."""
        self.command_catalogue = {
            n: e
            for n, e in read_catalogue("commands").items()
            if not self._is_disabled(n, e.module)
        }
        self.components: dict[str, Component] = {}
        self.broken: list[BrokenPlugin] = []
        self._current: Provider | None = None
        self._added: list[str] = []
        self._builtin = Provider("", "ndevgan", _version(), builtin=True)
        self.pm.hook.register_components.call_historic(kwargs={"register": self._register})
        if entry_points:
            self._load_entry_points()

    # ---- registration ---------------------------------------------------------------------

    def _is_disabled(self, *names: str) -> bool:
        return any(n in self.disabled for n in names)

    def _register(
        self,
        name: str,
        factory: Callable[..., Any],
        config_class: type,
        summary: str = "",
    ) -> None:
        """The ``register`` callback handed to every plugin's ``register_components`` hook."""
        provider = self._current or Provider("<in-process>", "<in-process>", "", builtin=False)
        kind, dot, short = name.partition(".")
        if not dot or not short or kind not in KINDS:
            raise PluginError(
                f"{provider.describe()} registered {name!r}: names are 'kind.name' with kind one "
                f"of {', '.join(KINDS)}"
            )
        if not attrs.has(config_class):
            raise PluginError(
                f"{provider.describe()} registered {name} with a config class "
                "that is not an attrs class"
            )
        missing = [f.name for f in config_fields(config_class) if f.default is attrs.NOTHING]
        if missing:
            raise PluginError(
                f"{provider.describe()} registered {name} with options without defaults: "
                f"{', '.join(missing)}"
            )
        if self._is_disabled(name):
            return
        other = self.components.get(name)
        if other is None and not provider.builtin and name in self.catalogue:
            other_desc = f"built-in module {self.catalogue[name].module}"
        elif other is not None:
            other_desc = other.provider.describe()
        else:
            other_desc = None
        if other_desc is not None:
            raise DuplicateNameError(
                name,
                f"{name} is registered twice: by {other_desc} and by {provider.describe()}. "
                f"Uninstall one, or block one with {DISABLE_ENV}=<plugin or package name>.",
            )
        if not summary and provider.builtin and name in self.catalogue:
            summary = self.catalogue[name].summary
        self.components[name] = Component(name, factory, config_class, summary, provider)
        self._added.append(name)

    def add_plugin(self, plugin: object, provider: Provider | None = None) -> list[str]:
        """Register a plugin object (a module or instance with hook implementations).

        Returns the names of the components it registered. Used for the entry points, the
        lazily imported built-ins, and by tests and applications that plug in at run time.
        """
        self._current = provider
        self._added = []
        try:
            self.pm.register(plugin, name=provider.plugin if provider else None)
        except Exception:
            for name in self._added:  # do not leave a half-registered plugin behind
                self.components.pop(name, None)
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            raise
        finally:
            self._current = None
        return list(self._added)

    def remove_plugin(self, plugin: object) -> None:
        """Unregister a plugin object added with :meth:`add_plugin` (its hooks stop firing;
        components it registered stay known). Removing one that is not registered is a no-op."""
        if self.pm.is_registered(plugin):
            self.pm.unregister(plugin)

    def _load_entry_points(self) -> None:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            package = dist.metadata["Name"] if dist is not None else "<unknown>"
            version = dist.version if dist is not None else ""
            provider = Provider(ep.name, package, version, builtin=False)
            if self._is_disabled(ep.name, package, ep.module):
                continue
            try:
                plugin = ep.load()
                self.add_plugin(plugin, provider)
            except DuplicateNameError as exc:
                # skip this plugin (every command still works) and refuse the contested name
                self.contested[exc.name] = str(exc)
                self.broken.append(BrokenPlugin(provider, str(exc)))
                warnings.warn(f"skipping {provider.describe()}: {exc}", PluginWarning, stacklevel=2)
            except PluginError:
                raise
            except Exception as exc:
                error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                self.broken.append(BrokenPlugin(provider, error))
                warnings.warn(
                    f"skipping {provider.describe()}: it failed to load ({error})",
                    PluginWarning,
                    stacklevel=2,
                )

    def _import_builtin(self, entry: CatalogueEntry) -> None:
        try:
            module = importlib.import_module(entry.module)
        except Exception as exc:
            raise PluginError(
                f"built-in plugin {entry.name} could not be imported from {entry.module}: {exc}"
            ) from exc
        if not self.pm.is_registered(module):
            provider = attrs.evolve(self._builtin, plugin=entry.module)
            self.add_plugin(module, provider)
        if entry.name not in self.components:
            raise PluginError(
                f"module {entry.module} does not register {entry.name} as registry.toml says"
            )

    def load_command(self, name: str, cli: Any) -> None:
        """Import the built-in module that provides CLI sub-command ``name`` and let it add its
        commands to ``cli`` (built-in command modules load only when their command runs)."""
        entry = self.command_catalogue[name]
        try:
            module = importlib.import_module(entry.module)
        except Exception as exc:
            raise PluginError(
                f"built-in command {name!r} could not be imported from {entry.module}: {exc}"
            ) from exc
        if not self.pm.is_registered(module):
            self.add_plugin(module, attrs.evolve(self._builtin, plugin=entry.module))
        others = [p for p in self.pm.get_plugins() if p is not module]
        self.pm.subset_hook_caller("register_commands", remove_plugins=others)(cli=cli)

    # ---- lookup ---------------------------------------------------------------------------

    def names(self, kind: str | None = None) -> list[str]:
        """Every available component name (built-in and third-party), optionally of one kind."""
        names = set(self.catalogue) | set(self.components)
        return sorted(n for n in names if kind is None or n.startswith(kind + "."))

    def get(self, name: str, kind: str | None = None) -> Component:
        """The component called ``name`` (``kind.name``, or just ``name`` when ``kind`` given).

        Imports the built-in module that provides it on first use. An unknown name raises a
        :class:`PluginError` listing close matches, the installed names of that kind, and any
        broken plugin that might have provided it.
        """
        name = qualify(name, kind)
        if name in self.contested:
            raise PluginError(self.contested[name])
        if kind is not None and not name.startswith(kind + "."):
            raise PluginError(
                f"{name!r} is not a {kind} plugin; available: {', '.join(self.names(kind))}"
            )
        if name in self.components:
            return self.components[name]
        if name in self.catalogue:
            self._import_builtin(self.catalogue[name])
            return self.components[name]
        raise PluginError(self._unknown_message(name))

    def _unknown_message(self, name: str) -> str:
        if name in self.disabled or name in self.disabled_builtins:
            return f"plugin {name} is disabled by {DISABLE_ENV}={','.join(sorted(self.disabled))}"
        kind = name.split(".", 1)[0]
        pool = self.names(kind) if kind in KINDS else self.names()
        msg = f"unknown plugin {name!r}.{close_matches(name, self.names())}"
        msg += f" Installed: {', '.join(pool) or '(none)'}."
        short = name.split(".", 1)[-1]
        suspects = [b for b in self.broken if b.provider.plugin in (name, short)] or self.broken
        for b in suspects:
            msg += f" Note: {b.provider.describe()} failed to load and may provide it: {b.error}"
        return msg

    def load_all(self) -> list[Component]:
        """Import every built-in module and return all components, sorted by name."""
        for entry in self.catalogue.values():
            if entry.name not in self.components:
                self._import_builtin(entry)
        return [self.components[n] for n in sorted(self.components)]

    def create(self, name: str, config: Any, *args: Any, **kwargs: Any) -> Any:
        """Build the component ``name`` from its config instance (and extra factory args)."""
        component = self.get(name)
        if not isinstance(config, component.config_class):
            raise TypeError(f"{name} expects a {component.config_class.__name__} config")
        return component.factory(config, *args, **kwargs)

    @property
    def hook(self) -> Any:
        """The pluggy hook relay, for calling trainer events and command hooks."""
        return self.pm.hook


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry (created on first use)."""
    global _default
    if _default is None:
        _default = Registry()
    return _default


def list_plugins(kind: str | None = None) -> list[str]:
    """Names of all available components, optionally of one kind (``temporal``, …)."""
    return default_registry().names(kind)


def get_plugin(name: str, kind: str | None = None) -> Component:
    """The component registered under ``name`` (see :meth:`Registry.get`)."""
    return default_registry().get(name, kind)
