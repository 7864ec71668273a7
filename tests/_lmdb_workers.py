"""Bodies of the spawned processes of ``test_lmdb_store.py``.

They live in their own module, importable by name from a fresh interpreter
(``tests/`` is on ``sys.path`` while pytest runs), so that ``spawn`` can
find them without importing the test module and pytest.
"""

from __future__ import annotations

from typing import Any

import cachekit


def write_keys(directory: str, worker: int, count: int, value_size: int, settings: dict[str, Any]) -> dict[str, Any]:
    """Write ``count`` keys of its own; return the keys acknowledged (``set`` returned True) and any error."""
    cache = cachekit.Cache(directory, store="lmdb", **settings)
    written: list[str] = []
    error: str | None = None
    try:
        for index in range(count):
            key = f"w{worker}-{index}"
            if cache.set(key, bytes([worker % 256]) * value_size, retry=True):
                written.append(key)
    except Exception as exception:
        error = f"{type(exception).__name__}: {exception}"
    finally:
        cache.close()
    return {"written": written, "error": error}


def read_keys(directory: str, keys: list[str], timeout: float) -> list[Any]:
    """Open the cache afresh with ``timeout`` and return the values of ``keys`` (None when missing)."""
    cache = cachekit.Cache(directory, store="lmdb", timeout=timeout)
    try:
        return [cache.get(key) for key in keys]
    finally:
        cache.close()
