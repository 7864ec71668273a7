"""Every contract in one class: what a store's test module subclasses."""

from __future__ import annotations

from ._cache_contract import CacheContract
from ._concurrency import ConcurrencyContract
from ._deque_contract import DequeContract
from ._eviction import EvictionContract
from ._expiry import ExpiryContract
from ._fanout_contract import FanoutContract
from ._index_contract import IndexContract
from ._plugin_contract import PluginContract
from ._queue import QueueContract
from ._recipes_contract import RecipesContract
from ._store_contract import StoreContract
from ._transactions import TransactionContract
from ._value_files import ValueFileContract


class StoreConformance(
    # pytest collects the last base class first: this order runs the raw
    # store contract first, so that with -x the most basic failure shows, and
    # the collections and recipes built on a cache (Deque, Index, the recipes,
    # FanoutCache) last.
    FanoutContract,
    RecipesContract,
    IndexContract,
    DequeContract,
    ConcurrencyContract,
    PluginContract,
    TransactionContract,
    QueueContract,
    ValueFileContract,
    EvictionContract,
    ExpiryContract,
    CacheContract,
    StoreContract,
):
    """Every contract: subclass it and set ``store`` to run the whole suite against a store."""
