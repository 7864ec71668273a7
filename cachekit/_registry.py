"""The plugin registry: pluggy, entry points, and name -> class resolution.

Entry points of the group ``cachekit`` are loaded on first use (the first
cache that opens), never at ``import cachekit``.  Names resolve once per
cache open; nothing here runs on the get/set path.
"""

from __future__ import annotations

import difflib
import importlib
import os
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._errors import PluginError, UnknownPluginError
from ._interfaces import RANK_FIELDS, EvictionPolicy, Serializer, Store

if TYPE_CHECKING:
    import pluggy

__all__ = ["ENTRY_POINT_GROUP", "PluginInfo", "Registry", "registry"]

ENTRY_POINT_GROUP = "cachekit"
Kind = Literal["store", "serializer", "eviction_policy"]
_HOOKS: Mapping[Kind, str] = {
    "store": "cachekit_stores",
    "serializer": "cachekit_serializers",
    "eviction_policy": "cachekit_eviction_policies",
}
_BASES: Mapping[Kind, type] = {
    "store": Store,
    "serializer": Serializer,
    "eviction_policy": EvictionPolicy,
}
_PLURAL: Mapping[Kind, str] = {
    "store": "stores",
    "serializer": "serializers",
    "eviction_policy": "eviction policies",
}
#: Names the core stores natively; no serializer may take them.
RESERVED_SERIALIZER_NAMES = frozenset({"bytes", "str", "int", "float"})


@dataclass(frozen=True)
class PluginInfo:
    """One name a plugin provides, as listed by :func:`cachekit.plugins.installed`."""

    kind: str
    """``store``, ``serializer`` or ``eviction_policy``."""
    name: str
    target: str
    """The ``module:Class`` that provides it."""
    plugin: str
    """The plugin (entry point name, or the name given to ``register``)."""
    distribution: str | None
    version: str | None


@dataclass(frozen=True)
class _Provided:
    target: object
    plugin: str

    def describe(self, registry: Registry) -> str:
        dist = registry._distributions.get(self.plugin)
        origin = f" from {dist[0]} {dist[1]}" if dist else ""
        return f"plugin {self.plugin!r}{origin} ({_target_name(self.target)})"


def _target_name(target: object) -> str:
    if isinstance(target, str):
        return target
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"


class Registry:
    """What the installed and run-time registered plugins provide."""

    def __init__(self, group: str = ENTRY_POINT_GROUP) -> None:
        self.group = group
        self._manager: pluggy.PluginManager | None = None
        self._lock = threading.RLock()
        self._entry_points_loaded = False
        self._failed: dict[str, BaseException] = {}
        self._distributions: dict[str, tuple[str, str]] = {}
        self._tables: dict[Kind, dict[str, _Provided]] | None = None
        self._resolved: dict[tuple[Kind, str], type] = {}

    @property
    def manager(self) -> pluggy.PluginManager:
        """The pluggy manager, created on first use so that ``import cachekit`` stays cheap."""
        if self._manager is None:
            with self._lock:
                if self._manager is None:
                    import pluggy

                    from . import _builtins, _hookspecs

                    manager = pluggy.PluginManager("cachekit")
                    manager.add_hookspecs(_hookspecs)
                    manager.register(_builtins, name="cachekit")
                    self._manager = manager
        return self._manager

    # -- loading ----------------------------------------------------------
    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        from ._entry_points import entry_points  # here, not at import: only the first open needs it

        strict = os.environ.get("CACHEKIT_STRICT_PLUGINS", "") not in ("", "0")
        for entry_point in entry_points(self.group):
            if self.manager.has_plugin(entry_point.name):
                continue
            try:
                plugin = entry_point.load()
            except Exception as error:
                self._failed[entry_point.name] = error
                message = (
                    f"cachekit plugin {entry_point.name!r} ({entry_point.value}) failed to load: "
                    f"{type(error).__name__}: {error}"
                )
                if strict:
                    self._entry_points_loaded = False  # keep failing loudly, not half-loaded
                    raise PluginError(message + " (CACHEKIT_STRICT_PLUGINS is set)") from error
                warnings.warn(message, RuntimeWarning, stacklevel=4)
                continue
            if entry_point.distribution is not None:
                self._distributions[entry_point.name] = (entry_point.distribution, entry_point.version or "")
            self._register(plugin, entry_point.name)

    def _register(self, plugin: object, name: str | None) -> str:
        registered = self.manager.register(plugin, name=name)
        if registered is None:  # pragma: no cover - pluggy returns None only when blocked
            raise PluginError(f"plugin {name!r} is blocked and cannot be registered")
        self._tables = None
        self._resolved.clear()
        try:
            self._build_tables()
        except PluginError:
            self.manager.unregister(plugin)
            self._tables = None
            raise
        return registered

    # -- public operations --------------------------------------------------
    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin object (a module or an instance with hook implementations).

        Registering the same object twice is a no-op; a name that another
        plugin already provides with a different target raises
        :class:`PluginError` naming both.
        """
        with self._lock:
            self._load_entry_points()
            if self.manager.is_registered(plugin):
                existing = self.manager.get_name(plugin)
                assert existing is not None
                return existing
            if name is None:
                name = self._readable_name(plugin)
            elif self.manager.has_plugin(name):
                raise PluginError(f"a plugin named {name!r} is already registered; choose another name")
            return self._register(plugin, name)

    def _readable_name(self, plugin: object) -> str:
        """A name for messages: the module's, or the class's, made unique if need be."""
        base = getattr(plugin, "__name__", None) if isinstance(plugin, type(os)) else None
        if base is None:
            kind = type(plugin)
            base = f"{kind.__module__}.{kind.__qualname__}"
        name, number = base, 1
        while self.manager.has_plugin(name):
            number += 1
            name = f"{base}#{number}"
        return name

    def unregister(self, plugin: object) -> None:
        """Remove a plugin registered with :meth:`register`."""
        with self._lock:
            self.manager.unregister(plugin)
            self._tables = None
            self._resolved.clear()

    def _build_tables(self) -> dict[Kind, dict[str, _Provided]]:
        tables: dict[Kind, dict[str, _Provided]] = {}
        for kind, hook_name in _HOOKS.items():
            table: dict[str, _Provided] = {}
            hook = getattr(self.manager.hook, hook_name)
            for implementation in hook.get_hookimpls():
                provided = implementation.function()
                for name, target in (provided or {}).items():
                    entry = _Provided(target, implementation.plugin_name)
                    previous = table.get(name)
                    if previous is not None and previous.target != target:
                        raise PluginError(
                            f"two plugins provide the {kind.replace('_', ' ')} {name!r}: "
                            f"{previous.describe(self)} and {entry.describe(self)}; "
                            "uninstall or rename one of them"
                        )
                    table.setdefault(name, entry)
            tables[kind] = table
        self._tables = tables
        return tables

    def _table(self, kind: Kind) -> dict[str, _Provided]:
        with self._lock:
            self._load_entry_points()
            tables = self._tables if self._tables is not None else self._build_tables()
            return tables[kind]

    def names(self, kind: Kind) -> list[str]:
        """Sorted names of everything of ``kind`` that is installed."""
        return sorted(self._table(kind))

    def resolve(self, kind: Kind, name: str) -> type[Any]:
        """Import (once) and return the class registered as ``name``."""
        cached = self._resolved.get((kind, name))
        if cached is not None:
            return cached
        table = self._table(kind)
        provided = table.get(name)
        if provided is None:
            raise self._unknown(kind, name, table)
        target = provided.target
        if isinstance(target, str):
            target = _import_target(target, kind, name)
        cls = self._validate(kind, name, target)
        self._resolved[(kind, name)] = cls
        return cls

    def _unknown(self, kind: Kind, name: str, table: Mapping[str, _Provided]) -> UnknownPluginError:
        failure = self._failed.get(name)
        label = kind.replace("_", " ")
        if failure is not None:
            error = UnknownPluginError(
                f"the plugin that provides the {label} {name!r} failed to load: {type(failure).__name__}: {failure}"
            )
            error.__cause__ = failure
            return error
        installed = sorted(table)
        close = difflib.get_close_matches(name, installed, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return UnknownPluginError(
            f"unknown {label} {name!r}.{hint} Installed {_PLURAL[kind]}: {', '.join(installed) or 'none'}."
        )

    @staticmethod
    def _validate(kind: Kind, name: str, target: object) -> type[Any]:
        base = _BASES[kind]
        if not (isinstance(target, type) and issubclass(target, base)):
            raise PluginError(
                f"the {kind.replace('_', ' ')} {name!r} is {target!r}, "
                f"which is not a subclass of cachekit.{base.__name__}"
            )
        if kind == "eviction_policy":
            for field in getattr(target, "rank", ()):
                if field.lstrip("-") not in RANK_FIELDS:
                    raise PluginError(
                        f"eviction policy {name!r} ranks on {field!r}; "
                        f"rank fields are {', '.join(RANK_FIELDS)} (prefix '-' for descending)"
                    )
        if kind == "serializer" and name in RESERVED_SERIALIZER_NAMES:
            raise PluginError(f"the serializer name {name!r} is reserved for values cachekit stores natively")
        if kind in ("serializer", "eviction_policy") and getattr(target, "name", None) != name:
            # Entries record the serializer's own name and decode by it, so the two must agree.
            raise PluginError(
                f"the {kind.replace('_', ' ')} registered as {name!r} calls itself "
                f"{getattr(target, 'name', None)!r}; set its name attribute to {name!r}"
            )
        return target

    def installed(self) -> list[PluginInfo]:
        """Everything the installed and registered plugins provide."""
        rows = []
        for kind in _HOOKS:
            for name, provided in sorted(self._table(kind).items()):
                dist = self._distributions.get(provided.plugin)
                if dist is None and provided.plugin == "cachekit":
                    dist = ("cachekit", _own_version())
                rows.append(
                    PluginInfo(
                        kind,
                        name,
                        _target_name(provided.target),
                        provided.plugin,
                        dist[0] if dist else None,
                        dist[1] if dist else None,
                    )
                )
        return rows


def _import_target(target: str, kind: Kind, name: str) -> object:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attribute) if attribute else module
    except (ImportError, AttributeError) as error:
        raise PluginError(
            f"the {kind.replace('_', ' ')} {name!r} could not be loaded from {target!r}: {error}"
        ) from error


def _own_version() -> str:
    from . import __version__

    return __version__


registry = Registry()
"""The process-wide registry every cache resolves its plugins through."""


def _after_fork_in_child() -> None:
    registry._lock = threading.RLock()  # a parent thread may have held it during fork


os.register_at_fork(after_in_child=_after_fork_in_child)
