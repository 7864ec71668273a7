"""The hooks a cachekit plugin implements.

Each hook returns a mapping from a name to what provides it: the class
itself, or a lazy ``"module:Class"`` string that is imported only when a
cache asks for that name, so a plugin's dependencies load only when used.
"""

from __future__ import annotations

from collections.abc import Mapping

import pluggy

hookspec = pluggy.HookspecMarker("cachekit")
hookimpl = pluggy.HookimplMarker("cachekit")


@hookspec
def cachekit_stores() -> Mapping[str, object]:  # type: ignore[empty-body]
    """Return the stores this plugin provides: ``{"name": "pkg.module:StoreClass"}``."""


@hookspec
def cachekit_serializers() -> Mapping[str, object]:  # type: ignore[empty-body]
    """Return the serializers this plugin provides: ``{"name": "pkg.module:Class"}``."""


@hookspec
def cachekit_eviction_policies() -> Mapping[str, object]:  # type: ignore[empty-body]
    """Return the eviction policies this plugin provides: ``{"name": "pkg.module:Class"}``."""
