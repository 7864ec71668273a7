"""``Cache``: python-diskcache's API over any store."""

from __future__ import annotations

from ._maintenance import MaintenanceMixin
from ._queue import QueueMixin
from ._updates import UpdateMixin

__all__ = ["Cache"]


class Cache(UpdateMixin, QueueMixin, MaintenanceMixin):
    """A persistent, thread-safe and process-safe key-value cache in a directory.

    ``Cache(directory=None, timeout=60, store=None, **settings)`` opens (or
    creates) the cache in ``directory`` (a new temporary directory if
    ``None``).  ``store`` names the storage engine; by default a new
    directory gets ``$CACHEKIT_DEFAULT_STORE`` or ``sqlite`` and an existing
    one reopens with the store that created it.  ``timeout`` is how long a
    write waits for the lock before raising :class:`cachekit.Timeout`.

    Settings (persisted in the directory): ``size_limit``, ``cull_limit``,
    ``eviction_policy``, ``statistics``, ``tag_index``, ``serializer``,
    ``disk_min_file_size``, ``disk_pickle_protocol``, ``disk_reserve``, ``durability``.
    For this object only (not persisted): the store's own tuning settings
    (such as ``sqlite_mmap_size``), ``secret_key``,
    ``allow_insecure_directory``, and ``clock`` (a function returning the
    time, for tests).
    """
