"""An eviction policy for cachekit that makes room by dropping the largest entries first.

Install the distribution and open a cache with
``cachekit.Cache(directory, eviction_policy="largest-first")``.
"""

from __future__ import annotations

from collections.abc import Mapping

import cachekit
import cachekit.plugins

__all__ = ["LargestFirst", "cachekit_eviction_policies"]


class LargestFirst(cachekit.EvictionPolicy):
    """Evict the entry with the most bytes first; among equals, the one inserted first.

    The rank only reads ``size``, which every store keeps up to date on
    each write, so reads record nothing and stay as cheap as with the
    default policy.
    """

    name = "largest-first"
    rank = ("-size",)


@cachekit.plugins.hookimpl
def cachekit_eviction_policies() -> Mapping[str, object]:
    """Tell cachekit which eviction policies this distribution provides."""
    return {LargestFirst.name: LargestFirst}
