"""cachekit's embedded default store, on the stdlib ``sqlite3`` module.

Users never import this package: opening ``sqlite:///path`` (or a bare
path) finds it through the ``cachekit`` entry-point group.
"""

from ._store import SQLiteStore

__all__ = ["SQLiteStore"]
