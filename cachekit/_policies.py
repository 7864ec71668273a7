"""The built-in eviction policies, with python-diskcache's names."""

from __future__ import annotations

from ._interfaces import Access, EvictionPolicy

__all__ = ["LeastFrequentlyUsed", "LeastRecentlyStored", "LeastRecentlyUsed", "NoEviction"]


class NoEviction(EvictionPolicy):
    """Never evict for size: the cache grows without bound; expired entries still go."""

    name = "none"
    rank = ()


class LeastRecentlyStored(EvictionPolicy):
    """Evict the entries set longest ago.  Reads record nothing, so they stay cheap."""

    name = "least-recently-stored"
    rank = ("store_time",)


class LeastRecentlyUsed(EvictionPolicy):
    """Evict the entries read (or set) longest ago."""

    name = "least-recently-used"
    rank = ("access_time",)
    records = Access.TIME


class LeastFrequentlyUsed(EvictionPolicy):
    """Evict the entries read least often; ties go by insertion order."""

    name = "least-frequently-used"
    rank = ("access_count",)
    records = Access.COUNT
