"""cachekit's LMDB store: memory-mapped reads that never wait for a lock.

Users never import this package: opening ``lmdb:///path`` finds it through
the ``cachekit`` entry-point group.  It needs the ``lmdb`` package, which
the ``[lmdb]`` extra installs (``pip install "cachekit[lmdb]"``); the store
module is imported only when a cache opens on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._store import LMDBStore

__all__ = ["LMDBStore"]


def __getattr__(name: str) -> Any:
    if name == "LMDBStore":
        from ._store import LMDBStore

        return LMDBStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
