"""Everything a plugin author needs, and the listing of installed plugins.

A plugin is a module (or object) with hook implementations, announced in
the ``cachekit`` entry-point group of its distribution::

    [project.entry-points.cachekit]
    my-policy = "my_package._plugin"

or registered at run time with :func:`register`.  See ``docs/plugins.md``.
"""

from __future__ import annotations

import pluggy

from ._hookspecs import hookimpl
from ._interfaces import (
    RANK_FIELDS,
    Access,
    Capabilities,
    Entry,
    EvictionPolicy,
    Found,
    Order,
    Serializer,
    Setting,
    Store,
    StoreConfig,
    Totals,
)
from ._registry import ENTRY_POINT_GROUP, PluginInfo, registry
from ._settings import boolean, choice, duration, integer, size

__all__ = [
    "ENTRY_POINT_GROUP",
    "RANK_FIELDS",
    "Access",
    "Capabilities",
    "Entry",
    "EvictionPolicy",
    "Found",
    "Order",
    "PluginInfo",
    "Serializer",
    "Setting",
    "Store",
    "StoreConfig",
    "Totals",
    "boolean",
    "choice",
    "duration",
    "hookimpl",
    "installed",
    "integer",
    "names",
    "plugin_manager",
    "register",
    "size",
    "unregister",
]


def register(plugin: object, name: str | None = None) -> str:
    """Register ``plugin`` (a module or object with ``@hookimpl`` functions) and return its name.

    Use it for plugins defined at run time, in tests or applications.
    Caches opened afterwards see what it provides; open caches keep what
    they resolved when they opened.
    """
    return registry.register(plugin, name)


def unregister(plugin: object) -> None:
    """Undo :func:`register`."""
    registry.unregister(plugin)


def installed() -> list[PluginInfo]:
    """Every store, serializer and eviction policy available, with where it comes from."""
    return registry.installed()


def names(kind: str) -> list[str]:
    """Installed names of one kind: ``store``, ``serializer`` or ``eviction_policy``."""
    if kind not in ("store", "serializer", "eviction_policy"):
        raise ValueError(f"kind must be 'store', 'serializer' or 'eviction_policy', not {kind!r}")
    return registry.names(kind)  # type: ignore[arg-type]


def plugin_manager() -> pluggy.PluginManager:
    """The pluggy manager behind the registry (entry points loaded)."""
    registry.names("store")
    return registry.manager
