"""Entry point of the SQLite store: registers it lazily, by name."""

from __future__ import annotations

from collections.abc import Mapping

from cachekit.plugins import hookimpl


@hookimpl
def cachekit_stores() -> Mapping[str, object]:
    return {"sqlite": "cachekit_sqlite._store:SQLiteStore"}
