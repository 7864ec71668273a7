"""Entry point of the LMDB store: registers it lazily, by name.

This module must not import ``lmdb``: listing plugins works without the
``[lmdb]`` extra, and only opening an ``lmdb://`` cache needs it.
"""

from __future__ import annotations

from collections.abc import Mapping

from cachekit.plugins import hookimpl


@hookimpl
def cachekit_stores() -> Mapping[str, object]:
    return {"lmdb": "cachekit_lmdb._store:LMDBStore"}
