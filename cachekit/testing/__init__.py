"""The conformance suite that every cachekit store must pass, shipped for store authors.

Subclass :class:`StoreConformance` in a test module and name the store::

    from cachekit.testing import StoreConformance

    class TestMyStore(StoreConformance):
        store = "mystore"

pytest then runs every contract against caches opened on that store.  The
contracts can also be used one by one:

- :class:`StoreContract`: the raw :class:`cachekit.plugins.Store` API, through ``cache.store``;
- :class:`CacheContract`: python-diskcache's API (values, keys, memoize, statistics, settings);
- :class:`ExpiryContract`: expiry driven by an injected :class:`FakeClock`;
- :class:`EvictionContract`: ``size_limit``, culling and every built-in eviction policy;
- :class:`ValueFileContract`: large values in files, and ``check``;
- :class:`QueueContract`: ``push``, ``pull``, ``peek`` and ``peekitem``;
- :class:`TransactionContract`: ``transact``, isolation, rollback and lock timeouts;
- :class:`PluginContract`: an eviction policy and a serializer registered at run time;
- :class:`ConcurrencyContract`: threads, processes, ``os.fork()`` and pickling;
- :class:`DequeContract`: :class:`cachekit.Deque` against ``collections.deque``;
- :class:`IndexContract`: :class:`cachekit.Index` against ``dict``;
- :class:`RecipesContract`: ``Lock``, ``RLock``, ``BoundedSemaphore``, ``barrier``,
  ``Averager``, ``throttle`` and ``memoize_stampede``, across threads and processes;
- :class:`FanoutContract`: :class:`cachekit.FanoutCache` with its shards on the store.

The suite needs pytest and hypothesis (its stateful tests compare ``Deque``
and ``Index`` with ``collections.deque`` and ``dict``): install them with
``pip install "cachekit[testing]"``.

The store must be installed (an entry point in the ``cachekit`` group): some
tests open the cache again in a fresh interpreter.  For detailed assertion
messages, call ``pytest.register_assert_rewrite("cachekit.testing")`` in a
``conftest.py`` before the suite is imported; registering the package covers
the private modules that hold the contracts.
"""

from __future__ import annotations

from ._cache_contract import CacheContract
from ._concurrency import ConcurrencyContract
from ._conformance import StoreConformance
from ._deque_contract import DequeContract
from ._eviction import EvictionContract
from ._expiry import ExpiryContract
from ._fanout_contract import FanoutContract
from ._index_contract import IndexContract
from ._plugin_contract import PluginContract
from ._plugins_for_tests import LargestFirst, MarkedJSONSerializer
from ._queue import QUEUE_START as QUEUE_START
from ._queue import QueueContract
from ._recipes_contract import RecipesContract
from ._store_contract import StoreContract
from ._support import CacheFactory, FakeClock, Point, value_files
from ._transactions import TransactionContract
from ._value_files import ValueFileContract
from ._workers import hammer_worker, read_through_pickled_cache

__all__ = [
    "CacheContract",
    "CacheFactory",
    "ConcurrencyContract",
    "DequeContract",
    "EvictionContract",
    "ExpiryContract",
    "FakeClock",
    "FanoutContract",
    "IndexContract",
    "LargestFirst",
    "MarkedJSONSerializer",
    "PluginContract",
    "Point",
    "QueueContract",
    "RecipesContract",
    "StoreConformance",
    "StoreContract",
    "TransactionContract",
    "ValueFileContract",
    "hammer_worker",
    "read_through_pickled_cache",
    "value_files",
]
