"""python-diskcache's API on the store under test, assembled from its parts."""

from __future__ import annotations

from ._cache_basics import _CacheBasicsContract
from ._cache_keys_and_values import _CacheKeysAndValuesContract
from ._cache_memoize_and_stats import _CacheMemoizeAndStatsContract


class CacheContract(
    # pytest collects the last base class first: this order runs the basics,
    # then keys and values, then memoize and statistics, as before the split.
    _CacheMemoizeAndStatsContract,
    _CacheKeysAndValuesContract,
    _CacheBasicsContract,
):
    """python-diskcache's API on the store under test: values, keys, memoize, statistics, settings."""
