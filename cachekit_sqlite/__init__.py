"""cachekit's embedded default store, on the stdlib ``sqlite3`` module.

Users never import this package: opening ``sqlite:///path`` (or a bare
path) finds it through the ``cachekit`` entry-point group.  The store
module is imported only when a cache opens, not when plugins are listed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._store import SQLiteStore

__all__ = ["SQLiteStore"]


def __getattr__(name: str) -> Any:
    if name == "SQLiteStore":
        from ._store import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
