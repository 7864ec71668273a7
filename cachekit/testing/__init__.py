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
- :class:`ConcurrencyContract`: threads, processes, ``os.fork()`` and pickling.

The store must be installed (an entry point in the ``cachekit`` group): some
tests open the cache again in a fresh interpreter.  For detailed assertion
messages, call ``pytest.register_assert_rewrite("cachekit.testing")`` in a
``conftest.py`` before the suite is imported.
"""

from __future__ import annotations

import functools
import gc
import io
import json
import math
import multiprocessing
import os
import pickle
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import pytest

import cachekit
from cachekit.plugins import (
    Capabilities,
    Entry,
    EvictionPolicy,
    Order,
    Serializer,
    Setting,
    Store,
    hookimpl,
)

__all__ = [
    "CacheContract",
    "CacheFactory",
    "ConcurrencyContract",
    "EvictionContract",
    "ExpiryContract",
    "FakeClock",
    "LargestFirst",
    "MarkedJSONSerializer",
    "PluginContract",
    "Point",
    "QueueContract",
    "StoreConformance",
    "StoreContract",
    "TransactionContract",
    "ValueFileContract",
    "hammer_worker",
    "read_through_pickled_cache",
    "value_files",
]

T = TypeVar("T")

#: The first queue key python-diskcache hands out (``push`` without a prefix).
QUEUE_START = 500_000_000_000_000
#: Seconds a helper thread or process may take before the test fails instead of hanging.
_WAIT = 60.0


# -- helpers ---------------------------------------------------------------------------


class FakeClock:
    """A clock that moves only when told to; pass it as ``Cache(..., clock=clock)``."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new time."""
        self.now += seconds
        return self.now


class CacheFactory(Protocol):
    """The ``make_cache`` fixture: opens a cache on the store under test, closed after the test."""

    def __call__(self, subdir: str = "cache", **settings: Any) -> cachekit.Cache: ...


@dataclass(frozen=True)
class Point:
    """A user-defined type: values of such types go through the serializer (pickle by default)."""

    x: int
    y: int


class _Rollback(Exception):
    """Raised inside a transaction to make it roll back."""


def value_files(cache: cachekit.Cache) -> list[str]:
    """Absolute paths of every file under the cache directory's ``values/`` folder."""
    found: list[str] = []
    for folder, _, files in os.walk(os.path.join(cache.directory, "values")):
        found.extend(os.path.join(folder, name) for name in files)
    return sorted(found)


def _run_in_thread(function: Callable[[], T], timeout: float = _WAIT) -> T:
    """Call ``function`` in a new thread and return its result (or raise its exception)."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(function())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"the call in another thread did not finish within {timeout} seconds")
    if errors:
        raise errors[0]
    return results[0]


def _entry(
    key: bytes,
    value: bytes | None = b"value",
    *,
    filename: str | None = None,
    serializer: str = "bytes",
    size: int | None = None,
    store_time: float = 1.0,
    expire_time: float | None = None,
    access_time: float | None = None,
    access_count: int = 0,
    tag: bytes | None = None,
) -> Entry:
    """An :class:`Entry` for raw store tests; the size defaults to key plus payload."""
    if size is None:
        size = len(key) + (0 if value is None else len(value))
    return Entry(
        key=key,
        value=value,
        filename=filename,
        serializer=serializer,
        size=size,
        store_time=store_time,
        expire_time=expire_time,
        access_time=store_time if access_time is None else access_time,
        access_count=access_count,
        tag=tag,
    )


def _put(store: Store, *entries: Entry) -> None:
    with store.write():
        for entry in entries:
            store.put(entry)


def _keys(entries: Iterable[Entry]) -> list[bytes]:
    return [entry.key for entry in entries]


def _totals(store: Store) -> tuple[int, int]:
    totals = store.totals()
    return totals.count, totals.volume


def _payload(store: Store, key: bytes) -> bytes | None:
    entry = store.get(key)
    return None if entry is None else entry.value


def _short_id(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 32 else text[:29] + "..."


def _read_all(handle: Any) -> bytes:
    with handle:
        data: bytes = handle.read()
    return data


# -- plugins defined at run time (PluginContract) ---------------------------------------


class LargestFirst(EvictionPolicy):
    """An eviction policy that removes the largest entries first."""

    name = "largest-first"
    rank = ("-size",)


class MarkedJSONSerializer(Serializer):
    """JSON behind a marker, recording every call so a test can see that it is used."""

    name = "conformance-json"
    marker: ClassVar[bytes] = b"CKJSON:"
    calls: ClassVar[list[str]] = []

    def dumps(self, value: Any) -> bytes:
        self.calls.append("dumps")
        return self.marker + json.dumps(value).encode()

    def loads(self, data: bytes) -> Any:
        self.calls.append("loads")
        if not data.startswith(self.marker):
            raise ValueError("not written by MarkedJSONSerializer")
        return json.loads(data[len(self.marker) :])


class _PolicyPlugin:
    @hookimpl
    def cachekit_eviction_policies(self) -> Mapping[str, object]:
        return {LargestFirst.name: LargestFirst}


class _SerializerPlugin:
    @hookimpl
    def cachekit_serializers(self) -> Mapping[str, object]:
        return {MarkedJSONSerializer.name: MarkedJSONSerializer}


# -- bodies of other processes (top level, so that multiprocessing can find them) --------


def hammer_worker(
    directory: str, store: str, worker: int, threads: int, increments: int, slots: int, start: Any = None
) -> None:
    """One process of the concurrency test: ``threads`` threads ``incr`` one key and race to ``add`` slots.

    Every thread waits on the barrier ``start`` (if given) so that all begin
    together.  The slots each thread won are saved under ``("wins", worker)``;
    any error makes the process exit with a non-zero code.
    """
    cache = cachekit.Cache(directory, store=store)
    wins: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(thread: int) -> None:
        label = f"{worker}.{thread}"
        order = list(range(slots))
        random.Random(label).shuffle(order)
        try:
            if start is not None:
                start.wait(_WAIT)
            for step in range(max(increments, slots)):
                if step < increments:
                    cache.incr("counter", retry=True)
                if step < slots:
                    slot = f"slot-{order[step]}"
                    if cache.add(slot, label, retry=True):
                        with lock:
                            wins.append((slot, label))
        except BaseException as error:
            errors.append(error)

    pool = [threading.Thread(target=run, args=(thread,)) for thread in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    try:
        if errors:
            raise errors[0]
        cache.set(("wins", worker), wins, retry=True)
    finally:
        cache.close()


def read_through_pickled_cache(pickled: bytes, key: Any, reply_key: Any) -> Any:
    """Run in another process: unpickle a cache, write ``reply_key``, return the value of ``key``.

    The cache arrives as bytes and is unpickled here, so that a failure to
    reopen it is raised to the parent rather than lost inside the pool.
    """
    cache: cachekit.Cache = pickle.loads(pickled)
    try:
        cache[reply_key] = os.getpid()
        return cache[key]
    finally:
        cache.close()


# -- the contracts ------------------------------------------------------------------------


class _Harness:
    """Fixtures shared by every contract: caches on the store under test and a fake clock."""

    store: ClassVar[str]
    """The name of the store under test; subclasses set it."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        """A fake clock; caches given it see time move only on ``clock.advance``."""
        return FakeClock()

    @pytest.fixture
    def make_cache(self, tmp_path: Path) -> Iterator[CacheFactory]:
        """Open caches on the store under test in ``tmp_path / subdir``; all are closed afterwards."""
        store = getattr(self, "store", None)
        if not isinstance(store, str):
            raise TypeError(f"{type(self).__name__} must name the store under test, e.g. store = 'sqlite'")
        opened: list[cachekit.Cache] = []

        def make(subdir: str = "cache", **settings: Any) -> cachekit.Cache:
            cache = cachekit.Cache(tmp_path / subdir, store=store, **settings)
            opened.append(cache)
            return cache

        yield make
        for cache in reversed(opened):
            cache.close()

    @pytest.fixture
    def cache(self, make_cache: CacheFactory, clock: FakeClock) -> cachekit.Cache:
        """A new cache with default settings, driven by the fake clock."""
        return make_cache(clock=clock)


class StoreContract(_Harness):
    """The raw :class:`cachekit.plugins.Store` API, exercised through ``cache.store``."""

    def test_store_declares_its_capabilities_and_settings(self, cache: cachekit.Cache) -> None:
        """A store declares its capabilities and its settings with the interface's types."""
        assert cache.store_name == self.store
        assert isinstance(cache.store, Store)
        assert isinstance(cache.store.capabilities, Capabilities)
        assert all(isinstance(setting, Setting) for setting in cache.store.settings.values())

    def test_get_of_a_missing_key_is_none(self, cache: cachekit.Cache) -> None:
        """``get`` of a key never stored returns ``None``."""
        assert cache.store.get(b"never stored") is None

    def test_get_returns_every_field_that_put_stored(self, cache: cachekit.Cache) -> None:
        """``get`` returns exactly the entry that ``put`` stored, every metadata field included."""
        store = cache.store
        entries = [
            _entry(b"plain", b"value"),
            _entry(b"empty", b""),
            _entry(
                b"metadata",
                b"\x00\xff binary",
                serializer="pickle",
                store_time=12.5,
                expire_time=99.25,
                access_time=13.75,
                access_count=7,
                tag=b"\x00tag",
            ),
        ]
        if store.capabilities.value_files:
            entries.append(_entry(b"in a file", None, filename="values/ab/" + "c" * 30 + ".val", size=40_000))
        _put(store, *entries)
        for entry in entries:
            assert store.get(entry.key) == entry

    def test_put_returns_the_entry_it_replaced(self, cache: cachekit.Cache) -> None:
        """``put`` returns ``None`` for a new key and the previous entry when it replaces one."""
        store = cache.store
        first = _entry(b"key", b"one", tag=b"t1", expire_time=5.0)
        second = _entry(b"key", b"two!", store_time=2.0)
        before = _totals(store)
        with store.write():
            assert store.put(first) is None
            assert store.put(second) == first
        assert store.get(b"key") == second
        assert _totals(store) == (before[0] + 1, before[1] + second.size)

    def test_replacing_an_entry_keeps_its_insertion_position(self, cache: cachekit.Cache) -> None:
        """A replaced entry keeps its place in insertion order; a deleted and re-added one moves last."""
        store = cache.store
        _put(store, _entry(b"a"), _entry(b"b"), _entry(b"c"))
        _put(store, _entry(b"a", b"new value", store_time=9.0))
        assert _keys(store.scan(Order.INSERTION)) == [b"a", b"b", b"c"]
        with store.write():
            store.delete(b"b")
        _put(store, _entry(b"b"))
        assert _keys(store.scan(Order.INSERTION)) == [b"a", b"c", b"b"]

    def test_delete_returns_the_entry_it_removed(self, cache: cachekit.Cache) -> None:
        """``delete`` returns the removed entry, and ``None`` when the key is absent."""
        store = cache.store
        entry = _entry(b"gone", b"payload", tag=b"t", expire_time=3.0)
        _put(store, entry)
        with store.write():
            assert store.delete(b"gone") == entry
            assert store.delete(b"gone") is None
            assert store.delete(b"never stored") is None
        assert store.get(b"gone") is None
        assert _keys(store.scan(Order.INSERTION)) == []
        assert _totals(store) == (0, 0)

    def test_lookup_returns_the_fields_a_read_needs(self, cache: cachekit.Cache) -> None:
        """``lookup`` returns ``(value, filename, serializer, expire_time)`` of an entry, or ``None``."""
        store = cache.store
        plain = _entry(b"plain", b"payload", serializer="str", tag=b"t", access_count=4)
        expiring = _entry(b"expiring", b"", serializer="pickle", expire_time=77.5)
        entries = [plain, expiring]
        if store.capabilities.value_files:
            entries.append(_entry(b"in a file", None, filename="values/cd/" + "e" * 30 + ".val", size=50_000))
        _put(store, *entries)
        assert store.lookup(b"never stored") is None
        for entry in entries:
            assert store.lookup(entry.key) == (entry.value, entry.filename, entry.serializer, entry.expire_time)

    def test_totals_track_the_next_expiry(self, cache: cachekit.Cache) -> None:
        """``totals().next_expiry`` is the earliest expire time of any entry, kept current by every change."""
        store = cache.store
        assert store.totals().next_expiry is None
        _put(store, _entry(b"never"), _entry(b"late", expire_time=50.0))
        assert store.totals().next_expiry == 50.0
        with store.write():
            store.put(_entry(b"soon", expire_time=30.0))
            assert store.totals().next_expiry == 30.0
            store.update(b"soon", {"expire_time": None})
            assert store.totals().next_expiry == 50.0
            store.update(b"never", {"expire_time": 40.0})
            assert store.totals().next_expiry == 40.0
        with store.write():
            store.delete(b"never")
            store.put(_entry(b"late", b"replaced"))
            assert store.totals().next_expiry is None

        def fail() -> None:
            with store.write():
                store.put(_entry(b"rolled back", expire_time=1.0))
                raise _Rollback

        with pytest.raises(_Rollback):
            fail()
        assert store.totals().next_expiry is None

    def test_update_changes_only_metadata(self, cache: cachekit.Cache) -> None:
        """``update`` changes the named metadata fields only, and reports whether the entry existed."""
        store = cache.store
        entry = _entry(b"key", b"payload", store_time=5.0)
        _put(store, _entry(b"first"), entry, _entry(b"last"))
        before = _totals(store)
        changes: dict[str, Any] = {"expire_time": 50.0, "access_time": 6.5, "access_count": 3, "tag": b"new tag"}
        with store.write():
            assert store.update(b"key", changes) is True
            assert store.update(b"missing", {"access_count": 1}) is False
        assert store.get(b"key") == entry._replace(**changes)
        assert store.get(b"missing") is None
        with store.write():
            assert store.update(b"key", {"expire_time": None, "tag": None}) is True
        assert store.get(b"key") == entry._replace(access_time=6.5, access_count=3)
        assert _keys(store.scan(Order.INSERTION)) == [b"first", b"key", b"last"]
        assert _totals(store) == before

    def test_scan_in_insertion_order(self, cache: cachekit.Cache) -> None:
        """``Order.INSERTION`` walks entries in the order they were first put, forwards and backwards."""
        store = cache.store
        keys = [f"{index:03d}-{random.Random(index).random()}".encode() for index in range(250)]
        random.Random(1).shuffle(keys)
        _put(store, *(_entry(key) for key in keys))
        assert _keys(store.scan(Order.INSERTION)) == keys
        assert _keys(store.scan(Order.INSERTION, reverse=True)) == keys[::-1]
        assert _keys(store.scan(Order.INSERTION, limit=3)) == keys[:3]
        assert _keys(store.scan(Order.INSERTION, reverse=True, limit=150)) == keys[::-1][:150]

    def test_scan_in_key_order_compares_unsigned_bytes(self, cache: cachekit.Cache) -> None:
        """``Order.KEY`` sorts keys as unsigned bytes; ``start`` is inclusive and ``stop`` exclusive."""
        store = cache.store
        keys = [b"b", b"a", b"\xff", b"\x00", b"ab", b"\x80", b"a\x00", b"\x7f", b"ba"]
        _put(store, *(_entry(key) for key in keys))
        ordered = [b"\x00", b"a", b"a\x00", b"ab", b"b", b"ba", b"\x7f", b"\x80", b"\xff"]
        assert _keys(store.scan(Order.KEY)) == ordered
        assert _keys(store.scan(Order.KEY, reverse=True)) == ordered[::-1]
        assert _keys(store.scan(Order.KEY, start=b"a", stop=b"b")) == [b"a", b"a\x00", b"ab"]
        assert _keys(store.scan(Order.KEY, start=b"a", stop=b"b", reverse=True)) == [b"ab", b"a\x00", b"a"]
        assert _keys(store.scan(Order.KEY, start=b"b")) == [b"b", b"ba", b"\x7f", b"\x80", b"\xff"]
        assert _keys(store.scan(Order.KEY, stop=b"a")) == [b"\x00"]
        assert _keys(store.scan(Order.KEY, start=b"a", stop=b"b", limit=2)) == [b"a", b"a\x00"]
        assert _keys(store.scan(Order.KEY, start=b"a", stop=b"b", reverse=True, limit=1)) == [b"ab"]
        assert _keys(store.scan(Order.KEY, start=b"c", stop=b"d")) == []

    def test_scan_in_key_order_pages_through_many_keys(self, cache: cachekit.Cache) -> None:
        """``Order.KEY`` yields every key once, in order, however many there are."""
        store = cache.store
        keys = [random.Random(index).randbytes(6) for index in range(400)]
        _put(store, *(_entry(key) for key in keys))
        assert _keys(store.scan(Order.KEY)) == sorted(set(keys))
        assert _keys(store.scan(Order.KEY, reverse=True)) == sorted(set(keys), reverse=True)

    def test_scan_in_expiry_order(self, cache: cachekit.Cache) -> None:
        """``Order.EXPIRY`` yields entries that expire, soonest first; ``expired_before`` is a strict bound."""
        store = cache.store
        _put(
            store,
            _entry(b"late", expire_time=50.0),
            _entry(b"never"),
            _entry(b"soon", expire_time=10.0),
            _entry(b"late too", expire_time=50.0),
            _entry(b"middle", expire_time=30.0),
        )
        everything = [b"soon", b"middle", b"late", b"late too"]
        assert _keys(store.scan(Order.EXPIRY)) == everything
        assert _keys(store.scan(Order.EXPIRY, expired_before=50.0)) == [b"soon", b"middle"]
        assert _keys(store.scan(Order.EXPIRY, expired_before=math.nextafter(50.0, math.inf))) == everything
        assert _keys(store.scan(Order.EXPIRY, expired_before=10.0)) == []
        assert _keys(store.scan(Order.EXPIRY, expired_before=100.0, limit=3)) == everything[:3]

    @pytest.mark.parametrize(
        "rank",
        [
            ("store_time",),
            ("access_time",),
            ("access_count",),
            ("size",),
            ("-size",),
            ("access_count", "-store_time"),
            ("-access_count", "size", "access_time"),
        ],
        ids=",".join,
    )
    def test_scan_in_eviction_order_follows_the_rank(self, cache: cachekit.Cache, rank: tuple[str, ...]) -> None:
        """``Order.EVICTION`` sorts by the rank's fields (``-`` for descending), ties in insertion order."""
        store = cache.store
        rng = random.Random(3)
        entries = [
            _entry(
                f"e{index:02d}".encode(),
                b"v" * rng.choice((5, 10, 20)),
                store_time=float(rng.choice((1, 2, 3, 4))),
                access_time=float(rng.choice((1, 2, 3))),
                access_count=rng.choice((0, 1, 2)),
            )
            for index in range(16)
        ]
        _put(store, *entries)
        store.set_eviction_rank(rank)

        def position(item: tuple[int, Entry]) -> tuple[float, ...]:
            index, entry = item
            fields = [float(getattr(entry, field.lstrip("-"))) for field in rank]
            signed = [-value if field.startswith("-") else value for field, value in zip(rank, fields, strict=True)]
            return (*signed, float(index))

        expected = [entry.key for _, entry in sorted(enumerate(entries), key=position)]
        assert _keys(store.scan(Order.EVICTION)) == expected
        assert _keys(store.scan(Order.EVICTION, limit=4)) == expected[:4]

    def test_eviction_order_follows_metadata_updates_and_new_entries(self, cache: cachekit.Cache) -> None:
        """The eviction order reflects ``update`` and later ``put`` calls, not only the entries at rank time."""
        store = cache.store
        store.set_eviction_rank(("access_count",))
        _put(store, _entry(b"a"), _entry(b"b"), _entry(b"c"))
        with store.write():
            store.update(b"a", {"access_count": 5})
        _put(store, _entry(b"d"), _entry(b"b", b"replaced", access_count=2))
        assert _keys(store.scan(Order.EVICTION)) == [b"c", b"d", b"b", b"a"]

    @pytest.mark.parametrize("tag_index", [False, True], ids=["without-tag-index", "with-tag-index"])
    def test_scan_filters_by_tag(self, cache: cachekit.Cache, tag_index: bool) -> None:
        """``tag`` keeps only the entries with that tag, with or without the tag index."""
        store = cache.store
        store.set_tag_index(tag_index)
        _put(
            store,
            _entry(b"e", tag=b"red"),
            _entry(b"b", tag=b"blue"),
            _entry(b"c", tag=b"red"),
            _entry(b"d"),
            _entry(b"a", tag=b"red"),
        )
        assert _keys(store.scan(Order.INSERTION, tag=b"red")) == [b"e", b"c", b"a"]
        assert _keys(store.scan(Order.INSERTION, tag=b"red", reverse=True)) == [b"a", b"c", b"e"]
        assert _keys(store.scan(Order.INSERTION, tag=b"red", limit=2)) == [b"e", b"c"]
        assert _keys(store.scan(Order.KEY, tag=b"red")) == [b"a", b"c", b"e"]
        assert _keys(store.scan(Order.INSERTION, tag=b"green")) == []
        store.set_tag_index(not tag_index)
        assert _keys(store.scan(Order.INSERTION, tag=b"red")) == [b"e", b"c", b"a"]

    @pytest.mark.parametrize(
        ("order", "reverse"),
        [(Order.INSERTION, False), (Order.INSERTION, True), (Order.KEY, False), (Order.KEY, True)],
        ids=["insertion", "insertion-reversed", "key", "key-reversed"],
    )
    def test_scan_tolerates_concurrent_writers(self, cache: cachekit.Cache, order: Order, reverse: bool) -> None:
        """A scan outside a transaction survives writes made meanwhile, yields no key twice and misses no survivor."""
        store = cache.store
        originals = [f"k{index:03d}".encode() for index in range(250)]
        _put(store, *(_entry(key) for key in originals))
        deleted = set(originals[100:120])
        replaced = originals[:5] + originals[200:210] + originals[245:]

        def write_meanwhile() -> None:
            with store.write():
                for key in deleted:
                    store.delete(key)
                for key in replaced:
                    store.put(_entry(key, b"replaced", store_time=2.0))
                for index in range(20):
                    store.put(_entry(f"n{index:03d}".encode()))

        seen: list[bytes] = []
        for index, entry in enumerate(store.scan(order, reverse=reverse)):
            seen.append(entry.key)
            if index == 5:
                _run_in_thread(write_meanwhile)
        assert len(seen) == len(set(seen)), "a key was yielded twice"
        missed = set(originals) - deleted - set(seen)
        assert not missed, f"surviving keys were never yielded: {sorted(missed)[:5]}"

    def test_totals_follow_puts_and_deletes_inside_a_transaction(self, cache: cachekit.Cache) -> None:
        """Count and volume change with every put, replace and delete, already inside the transaction."""
        store = cache.store
        count, volume = _totals(store)
        first, second = _entry(b"a", b"x" * 10), _entry(b"b", b"y" * 20)
        replacement = _entry(b"a", b"z" * 50)
        with store.write():
            store.put(first)
            store.put(second)
            assert _totals(store) == (count + 2, volume + first.size + second.size)
            store.put(replacement)
            assert _totals(store) == (count + 2, volume + replacement.size + second.size)
            store.delete(b"b")
            assert _totals(store) == (count + 1, volume + replacement.size)
            store.delete(b"never stored")
            assert _totals(store) == (count + 1, volume + replacement.size)
        assert _totals(store) == (count + 1, volume + replacement.size)

    def test_rollback_undoes_entries_totals_settings_and_counters(self, cache: cachekit.Cache) -> None:
        """An exception inside ``write()`` propagates and rolls back every change made in it."""
        store = cache.store
        _put(store, _entry(b"kept", b"old"), _entry(b"doomed"))
        totals = _totals(store)

        def fail() -> None:
            with store.write():
                store.put(_entry(b"new"))
                store.put(_entry(b"kept", b"changed"))
                store.delete(b"doomed")
                store.update(b"kept", {"access_count": 9})
                store.add_counters({"conformance": 5})
                store.save_settings({"conformance_probe": 1})
                assert _totals(store) != totals
                raise _Rollback

        with pytest.raises(_Rollback):
            fail()
        assert store.get(b"new") is None
        assert store.get(b"kept") == _entry(b"kept", b"old")
        assert store.get(b"doomed") is not None
        assert _totals(store) == totals
        assert store.counters().get("conformance", 0) == 0
        assert "conformance_probe" not in store.load_settings()

    def test_settings_persist_merged_over_the_existing_ones(self, make_cache: CacheFactory) -> None:
        """``save_settings`` merges into the persisted settings, which survive reopening the directory."""
        cache = make_cache("settings")
        store = cache.store
        with store.write():
            store.save_settings({"conformance_a": 1, "conformance_b": "text"})
        with store.write():
            store.save_settings({"conformance_b": "changed", "conformance_c": True, "conformance_d": 2.5})
        expected = {"conformance_a": 1, "conformance_b": "changed", "conformance_c": True, "conformance_d": 2.5}
        loaded = store.load_settings()
        assert {name: loaded.get(name) for name in expected} == expected
        assert loaded.get("size_limit") == cache.size_limit
        cache.close()
        reloaded = make_cache("settings").store.load_settings()
        assert {name: reloaded.get(name) for name in expected} == expected

    def test_counters_add_up_reset_and_persist(self, make_cache: CacheFactory) -> None:
        """``add_counters`` accumulates, ``reset_counters`` zeroes the named ones, and both persist."""
        cache = make_cache("counters")
        store = cache.store
        with store.write():
            store.add_counters({"conformance_a": 2})
        with store.write():
            store.add_counters({"conformance_a": 3, "conformance_b": 1})
        assert (store.counters()["conformance_a"], store.counters()["conformance_b"]) == (5, 1)
        with store.write():
            store.reset_counters(["conformance_a"])
        assert (store.counters().get("conformance_a", 0), store.counters()["conformance_b"]) == (0, 1)
        with store.write():
            store.add_counters({"conformance_a": 4})
        cache.close()
        counters = make_cache("counters").store.counters()
        assert (counters["conformance_a"], counters["conformance_b"]) == (4, 1)

    def test_read_transaction_sees_one_snapshot(self, cache: cachekit.Cache) -> None:
        """Inside ``read()`` a thread sees none of the writes that commit meanwhile, and does not block them."""
        store = cache.store
        _put(store, _entry(b"snapshot", b"old"))

        def write_meanwhile() -> None:
            with store.write():
                store.put(_entry(b"snapshot", b"new"))
                store.put(_entry(b"added"))

        with store.read():
            assert _payload(store, b"snapshot") == b"old"
            _run_in_thread(write_meanwhile, timeout=10)
            assert _payload(store, b"snapshot") == b"old"
            assert store.get(b"added") is None
            assert _keys(store.scan(Order.INSERTION)) == [b"snapshot"]
            assert store.totals().count == 1
        assert _payload(store, b"snapshot") == b"new"
        assert store.get(b"added") is not None
        assert store.totals().count == 2

    def test_write_transactions_are_exclusive_across_threads(self, cache: cachekit.Cache) -> None:
        """A second writer waits until the first commits, then sees its changes."""
        store = cache.store
        entered = threading.Event()

        def second_writer() -> bytes | None:
            with store.write():
                entered.set()
                return _payload(store, b"first")

        with store.write():
            store.put(_entry(b"first", b"committed"))
            thread_result: list[bytes | None] = []
            thread = threading.Thread(target=lambda: thread_result.append(second_writer()), daemon=True)
            thread.start()
            time.sleep(0.3)
            assert not entered.is_set(), "a second write transaction started while the first was open"
        thread.join(_WAIT)
        assert not thread.is_alive()
        assert thread_result == [b"committed"]

    def test_check_of_a_healthy_store_finds_nothing(self, cache: cachekit.Cache) -> None:
        """``check`` reports no problem on a store used normally, with or without ``fix``."""
        for index in range(20):
            cache.set(index, f"value {index}", tag="t" if index % 2 else None)
        cache.delete(3)
        assert cache.store.check(False) == []
        assert cache.store.check(True) == []
        assert cache.store.totals().count == 19


class CacheContract(_Harness):
    """python-diskcache's API on the store under test: values, keys, memoize, statistics, settings."""

    # -- set, get and friends -----------------------------------------------------------
    def test_set_then_get_returns_the_value(self, cache: cachekit.Cache) -> None:
        """``set`` returns ``True`` and ``get`` returns the value; setting again replaces it."""
        assert cache.set("key", "value") is True
        assert cache.get("key") == "value"
        assert cache.set("key", "other") is True
        assert cache.get("key") == "other"
        assert len(cache) == 1

    def test_get_of_a_missing_key_returns_the_default(self, cache: cachekit.Cache) -> None:
        """``get`` returns ``default`` (``None`` unless given) for a key that is not there."""
        assert cache.get("missing") is None
        assert cache.get("missing", 42) == 42
        assert cache.get("missing", default="fallback") == "fallback"

    def test_get_with_expire_time_and_tag_returns_tuples_on_a_hit(
        self, cache: cachekit.Cache, clock: FakeClock
    ) -> None:
        """With ``expire_time``/``tag``, a hit returns ``(value, expire_time)``, ``(value, tag)`` or a triple."""
        cache.set("key", "value", expire=30, tag="tag")
        expire_time = clock.now + 30
        assert cache.get("key", expire_time=True) == ("value", expire_time)
        assert cache.get("key", tag=True) == ("value", "tag")
        assert cache.get("key", expire_time=True, tag=True) == ("value", expire_time, "tag")
        cache.set("plain", 1)
        assert cache.get("plain", expire_time=True, tag=True) == (1, None, None)

    def test_get_with_expire_time_and_tag_returns_tuples_on_a_miss(self, cache: cachekit.Cache) -> None:
        """On a miss those tuples hold the default and ``None`` in the other places."""
        assert cache.get("missing", expire_time=True) == (None, None)
        assert cache.get("missing", tag=True) == (None, None)
        assert cache.get("missing", expire_time=True, tag=True) == (None, None, None)
        assert cache.get("missing", "default", expire_time=True, tag=True) == ("default", None, None)

    def test_every_call_accepts_retry(self, cache: cachekit.Cache) -> None:
        """Every method with a ``retry`` option accepts ``retry=True`` and behaves as without it."""
        assert cache.set("a", 1, retry=True) is True
        assert cache.get("a", retry=True) == 1
        assert cache.add("b", 2, retry=True) is True
        assert cache.touch("b", 100, retry=True) is True
        assert cache.incr("n", retry=True) == 1
        assert cache.decr("n", retry=True) == 0
        assert cache.pop("b", retry=True) == 2
        assert cache.delete("n", retry=True) is True
        cache.set("bytes", b"data")
        assert _read_all(cache.read("bytes", retry=True)) == b"data"
        key = cache.push("queued", retry=True)
        assert cache.peek(retry=True) == (key, "queued")
        assert cache.pull(retry=True) == (key, "queued")
        assert cache.peekitem(retry=True) == ("bytes", b"data")
        assert cache.expire(retry=True) == 0
        assert cache.evict("no such tag", retry=True) == 0
        assert cache.cull(retry=True) == 0
        with cache.transact(retry=True):
            cache.set("t", 3)
        assert cache.check(retry=True) == []
        assert cache.clear(retry=True) == 3

    def test_add_stores_only_when_the_key_is_absent(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """``add`` stores (with expiry and tag) only if the key is absent and returns whether it did."""
        assert cache.add("key", "first", expire=10, tag="tag") is True
        assert cache.add("key", "second") is False
        assert cache.get("key", expire_time=True, tag=True) == ("first", clock.now + 10, "tag")
        assert len(cache) == 1

    def test_incr_and_decr_start_from_the_default(self, cache: cachekit.Cache) -> None:
        """``incr``/``decr`` add or subtract ``delta``, starting a missing key at ``default``."""
        assert cache.incr("n") == 1
        assert cache.incr("n", 10) == 11
        assert cache.decr("n") == 10
        assert cache.decr("n", 20) == -10
        assert cache.get("n") == -10
        assert cache.incr("m", default=100) == 101
        assert cache.decr("d", 5, default=1) == -4
        assert cache.incr("big", 2**70) == 2**70
        assert cache.incr("big", 2**70) == 2**71
        assert cache.get("big") == 2**71

    def test_incr_works_with_floats(self, cache: cachekit.Cache) -> None:
        """``incr`` and ``decr`` accept float deltas, defaults and stored values."""
        assert cache.incr("f", 1.5) == 1.5
        assert cache.incr("f", 0.25) == 1.75
        assert cache.decr("f", 0.5) == 1.25
        assert cache.get("f") == 1.25
        assert cache.incr("g", default=0.5) == 1.5
        cache.set("int", 2)
        assert cache.incr("int", 0.5) == 2.5
        assert isinstance(cache.get("int"), float)

    def test_incr_of_a_missing_key_without_default_raises_key_error(self, cache: cachekit.Cache) -> None:
        """With ``default=None``, ``incr``/``decr`` of a missing key raise ``KeyError`` and store nothing."""
        with pytest.raises(KeyError):
            cache.incr("missing", default=None)
        with pytest.raises(KeyError):
            cache.decr("missing", default=None)
        assert "missing" not in cache
        assert len(cache) == 0
        cache.set("present", 5)
        assert cache.incr("present", default=None) == 6

    def test_incr_of_a_non_number_raises_type_error_and_keeps_the_value(self, cache: cachekit.Cache) -> None:
        """``incr``/``decr`` of a value that is not a number raise ``TypeError`` and leave it unchanged."""
        values: list[Any] = ["text", b"bytes", [1], None]
        for index, value in enumerate(values):
            cache.set(index, value)
            with pytest.raises(TypeError):
                cache.incr(index)
            with pytest.raises(TypeError):
                cache.decr(index)
            assert cache.get(index) == value

    def test_incr_keeps_expire_time_and_tag(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """``incr`` changes the number only: the entry keeps its expire time and tag."""
        cache.set("n", 1, expire=50, tag="tag")
        assert cache.incr("n") == 2
        assert cache.get("n", expire_time=True, tag=True) == (2, clock.now + 50, "tag")

    def test_pop_removes_and_returns_the_value(self, cache: cachekit.Cache) -> None:
        """``pop`` returns the value and removes the key; a missing key gives the default."""
        cache.set("key", "value")
        assert cache.pop("key") == "value"
        assert "key" not in cache
        assert cache.pop("key") is None
        assert cache.pop("key", "default") == "default"

    def test_pop_with_expire_time_and_tag_returns_tuples(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """``pop`` with ``expire_time``/``tag`` returns the same tuple shapes as ``get``, on hit and miss."""
        expire_time = clock.now + 20
        for key in ("a", "b", "c"):
            cache.set(key, "value", expire=20, tag="tag")
        assert cache.pop("a", expire_time=True) == ("value", expire_time)
        assert cache.pop("b", tag=True) == ("value", "tag")
        assert cache.pop("c", expire_time=True, tag=True) == ("value", expire_time, "tag")
        assert cache.pop("a", expire_time=True) == (None, None)
        assert cache.pop("a", "default", tag=True) == ("default", None)
        assert cache.pop("a", expire_time=True, tag=True) == (None, None, None)
        assert len(cache) == 0

    def test_delete_reports_whether_the_key_was_there(self, cache: cachekit.Cache) -> None:
        """``delete`` returns ``True`` when it removed the key and ``False`` when there was none."""
        cache.set("key", 1)
        assert cache.delete("key") is True
        assert cache.delete("key") is False
        assert "key" not in cache
        assert len(cache) == 0

    def test_item_access_raises_key_error_for_missing_keys(self, cache: cachekit.Cache) -> None:
        """``cache[key]`` and ``del cache[key]`` raise ``KeyError`` for a missing key; assignment sets it."""
        cache["key"] = "value"
        assert cache["key"] == "value"
        del cache["key"]
        with pytest.raises(KeyError):
            cache["key"]
        with pytest.raises(KeyError):
            del cache["key"]
        cache["none"] = None
        assert cache["none"] is None

    def test_in_reports_presence(self, cache: cachekit.Cache) -> None:
        """``key in cache`` is true for a stored key, even one whose value is ``None``."""
        assert "key" not in cache
        cache.set("key", None)
        assert "key" in cache
        cache.delete("key")
        assert "key" not in cache

    def test_len_counts_the_entries(self, cache: cachekit.Cache) -> None:
        """``len`` is the number of entries; ``clear`` removes them all and returns how many."""
        for index in range(255):
            cache.set(index, index)
        cache.set(3, "replaced")
        assert len(cache) == 255
        for index in range(5):
            cache.delete(index)
        assert len(cache) == 250
        assert cache.clear() == 250
        assert len(cache) == 0
        assert list(cache) == []
        assert cache.volume() == 0

    def test_volume_follows_the_values_stored(self, cache: cachekit.Cache) -> None:
        """``volume`` grows by at least a value's size when it is set and returns to zero when emptied."""
        assert cache.volume() == 0
        cache.set("key", b"x" * 1000)
        first = cache.volume()
        assert first >= 1000
        cache.set("other", b"y" * 3000)
        assert cache.volume() >= first + 3000
        cache.set("key", b"x" * 10)
        assert cache.volume() < first + 3000
        cache.delete("key")
        cache.delete("other")
        assert cache.volume() == 0

    # -- iteration ---------------------------------------------------------------------------
    def test_iteration_follows_insertion_order(self, cache: cachekit.Cache) -> None:
        """Iteration yields keys in insertion order: replacing keeps a key's place, re-adding moves it last."""
        for key in ("c", "a", "b"):
            cache.set(key, key)
        assert list(cache) == ["c", "a", "b"]
        cache.set("c", "again")
        assert list(cache) == ["c", "a", "b"]
        cache.delete("a")
        cache.set("a", "back")
        assert list(cache) == ["c", "b", "a"]
        assert list(reversed(cache)) == ["a", "b", "c"]

    def test_iteration_covers_many_keys(self, cache: cachekit.Cache) -> None:
        """Iteration and ``reversed`` yield every key exactly once, however many there are."""
        keys = [f"key-{value}" for value in random.Random(5).sample(range(10_000), 300)]
        for key in keys:
            cache.set(key, 0)
        assert list(cache) == keys
        assert list(reversed(cache)) == keys[::-1]

    def test_iteration_tolerates_writes_from_the_loop(self, cache: cachekit.Cache) -> None:
        """Deleting or adding keys while iterating visits every original key exactly once."""
        for index in range(250):
            cache.set(index, index)
        seen = []
        for key in cache:
            seen.append(key)
            if isinstance(key, int):
                cache.delete(key)
                if key % 2:
                    cache.set(f"added-{key}", key)
        assert sorted(key for key in seen if isinstance(key, int)) == list(range(250))
        assert len(seen) == len(set(seen))
        assert sorted(cache) == sorted(f"added-{index}" for index in range(1, 250, 2))

    def test_iterkeys_yields_ints_in_numeric_order(self, cache: cachekit.Cache) -> None:
        """``iterkeys`` yields int keys in numeric order (and reversed with ``reverse=True``)."""
        numbers = [17, -3, 2**40, 0, -(2**40), 5, 1, -1]
        for number in numbers:
            cache.set(number, number)
        assert list(cache.iterkeys()) == sorted(numbers)
        assert list(cache.iterkeys(reverse=True)) == sorted(numbers, reverse=True)

    def test_iterkeys_yields_strs_in_code_point_order(self, cache: cachekit.Cache) -> None:
        """``iterkeys`` yields str keys in code point order (and reversed with ``reverse=True``)."""
        words = ["b", "a", "ab", "", "é", "Z", "a b", "ü", "✓", "zz"]
        for word in words:
            cache.set(word, word)
        assert list(cache.iterkeys()) == sorted(words)
        assert list(cache.iterkeys(reverse=True)) == sorted(words, reverse=True)

    # -- file handles ------------------------------------------------------------------------
    def test_read_returns_a_binary_file_handle_for_a_bytes_value(self, cache: cachekit.Cache) -> None:
        """``read`` returns a binary file handle on a (small) bytes value."""
        cache.set("bytes", b"small bytes")
        handle = cache.read("bytes")
        assert _read_all(handle) == b"small bytes"

    def test_read_of_a_missing_key_raises_key_error(self, cache: cachekit.Cache) -> None:
        """``read`` raises ``KeyError`` for a missing key."""
        with pytest.raises(KeyError):
            cache.read("missing")

    def test_get_with_read_returns_a_file_handle(self, cache: cachekit.Cache) -> None:
        """``get(read=True)`` returns a binary file handle on a bytes value, and the default on a miss."""
        cache.set("bytes", b"\x00\x01 payload")
        assert _read_all(cache.get("bytes", read=True)) == b"\x00\x01 payload"
        assert cache.get("missing", "default", read=True) == "default"

    def test_set_with_read_streams_a_file_object(self, cache: cachekit.Cache) -> None:
        """``set(read=True)`` stores what a binary file object holds, read back as bytes."""
        data = random.Random(2).randbytes(3000)
        assert cache.set("streamed", io.BytesIO(data), read=True) is True
        assert cache.get("streamed") == data
        assert _read_all(cache.read("streamed")) == data

    # -- keys and values ---------------------------------------------------------------------
    @pytest.mark.parametrize(
        "key",
        [
            "text",
            "",
            "ünïcødé ✓",
            b"bytes",
            b"",
            b"\x00\xff",
            0,
            42,
            -7,
            2**64,
            -(2**80),
            1.5,
            -2.25,
            (),
            ("a", 1),
            ("nested", (b"x", 2.5, None), 3),
            None,
            True,
            False,
            frozenset({1, 2}),
        ],
        ids=_short_id,
    )
    def test_keys_of_every_supported_kind(self, cache: cachekit.Cache, key: Any) -> None:
        """str, bytes, int, float, tuples, None, bool and serialized keys store, read, iterate and delete."""
        assert cache.set(key, "value") is True
        assert cache.get(key) == "value"
        assert key in cache
        assert cache[key] == "value"
        (stored,) = list(cache)
        assert stored == key
        assert type(stored) is type(key)
        assert cache.pop(key) == "value"
        assert len(cache) == 0

    def test_an_integral_float_is_the_same_key_as_the_int(self, cache: cachekit.Cache) -> None:
        """``1`` and ``1.0`` name the same entry, as in python-diskcache; ``2.5`` does not match ``2``."""
        cache.set(1, "int")
        assert cache.get(1.0) == "int"
        cache.set(1.0, "float")
        assert len(cache) == 1
        assert cache.get(1) == "float"
        cache.set(2.5, "fraction")
        assert cache.get(2) is None
        assert len(cache) == 2

    def test_bools_are_keys_distinct_from_ints(self, cache: cachekit.Cache) -> None:
        """``True`` and ``False`` are keys of their own, distinct from ``1`` and ``0``."""
        cache.set(1, "one")
        cache.set(True, "true")
        cache.set(0, "zero")
        cache.set(False, "false")
        assert len(cache) == 4
        assert [cache.get(key) for key in (1, True, 0, False)] == ["one", "true", "zero", "false"]
        assert [type(key) for key in cache] == [int, bool, int, bool]

    @pytest.mark.parametrize(
        "value",
        [
            None,
            True,
            False,
            0,
            -1,
            2**100,
            -(2**70),
            0.0,
            -0.0,
            1.5,
            math.inf,
            -math.inf,
            "",
            "text",
            "ünïcødé ✓",
            "x" * 5000,
            b"",
            b"\x00\xff" * 10,
            bytearray(b"mutable"),
            [1, "two", [3.0]],
            {"a": {"b": [1, 2]}, 1: None},
            (1, (2, "3")),
            {1, 2, 3},
            frozenset({"x"}),
            Point(1, 2),
            Decimal("1.10"),
            complex(1, -1),
        ],
        ids=_short_id,
    )
    def test_values_of_every_kind_round_trip(self, cache: cachekit.Cache, value: Any) -> None:
        """Native values and pickled objects read back equal, of the same type."""
        cache.set("key", value)
        stored = cache.get("key")
        assert type(stored) is type(value)
        assert stored == value
        assert repr(stored) == repr(value)

    def test_an_unserializable_value_raises_a_clear_error_and_stores_nothing(self, make_cache: CacheFactory) -> None:
        """A value the serializer cannot encode raises ``SerializationError``; nothing else changes."""
        cache = make_cache(disk_min_file_size=1024)
        cache.set("kept", "value")
        with pytest.raises(cachekit.SerializationError):
            cache.set("bad", lambda: None)
        with pytest.raises(cachekit.SerializationError):
            cache.add("bad", [threading.Lock()] * 1000)
        with pytest.raises(cachekit.SerializationError):
            cache.push(lambda: None)
        assert list(cache) == ["kept"]
        assert cache["kept"] == "value"
        assert value_files(cache) == []

    def test_long_keys_work_or_raise_a_clear_error(self, cache: cachekit.Cache) -> None:
        """A key of several KiB is stored and read back, or refused with a cachekit error; other entries stay."""
        cache.set("kept", 1)
        for key in ("k" * 5000, b"\xff" * 3000, ("t" * 2000, 1)):
            try:
                stored = cache.set(key, "long")
            except cachekit.CachekitError:
                continue  # refused clearly; the final check shows that nothing was stored
            assert stored is True
            assert cache[key] == "long"
            assert cache.delete(key) is True
        assert list(cache) == ["kept"]

    def test_nan_round_trips(self, cache: cachekit.Cache) -> None:
        """A NaN float value reads back as NaN."""
        cache.set("nan", math.nan)
        assert math.isnan(cache.get("nan"))

    # -- tags ----------------------------------------------------------------------------------
    def test_evict_removes_exactly_the_entries_with_the_tag(self, cache: cachekit.Cache) -> None:
        """``evict(tag)`` removes the entries with that tag only and returns how many."""
        cache.set("a", 1, tag="red")
        cache.set("b", 2, tag="blue")
        cache.set("c", 3, tag="red")
        cache.set("d", 4)
        cache.set("e", 5, tag=("group", 1))
        assert cache.get("a", tag=True) == (1, "red")
        assert cache.get("e", tag=True) == (5, ("group", 1))
        assert cache.evict("red") == 2
        assert list(cache) == ["b", "d", "e"]
        assert cache.evict("red") == 0
        assert cache.evict(("group", 1)) == 1
        assert cache.evict("green") == 0
        assert list(cache) == ["b", "d"]

    def test_tag_index_keeps_results_the_same(self, cache: cachekit.Cache) -> None:
        """Creating and dropping the tag index changes neither what is stored nor what ``evict`` removes."""
        for index in range(750):
            cache.set(index, index, tag=f"tag-{index % 3}")
        cache.create_tag_index()
        indexed = cache.tag_index
        assert indexed is True
        assert cache.get(4, tag=True) == (4, "tag-1")
        assert cache.evict("tag-1") == 250
        cache.drop_tag_index()
        assert cache.tag_index is False
        assert cache.evict("tag-2") == 250
        assert list(cache) == list(range(0, 750, 3))

    # -- memoize -------------------------------------------------------------------------------
    def test_memoize_caches_results_by_arguments(self, cache: cachekit.Cache) -> None:
        """A memoized function runs once per distinct arguments and stores its result under ``__cache_key__``."""
        calls: list[tuple[Any, ...]] = []

        def plain_add(a: int, b: int = 0) -> int:
            calls.append((a, b))
            return a + b

        add = cache.memoize()(plain_add)
        name = f"{plain_add.__module__}.{plain_add.__qualname__}"
        assert add(1, 2) == 3
        assert add(1, 2) == 3
        assert add(2, b=5) == 7
        assert add(2, b=5) == 7
        assert calls == [(1, 2), (2, 5)]
        key = add.__cache_key__(1, 2)
        assert key == (name, 1, 2, None)
        assert cache[key] == 3
        assert add.__cache_key__(2, b=5) == (name, 2, None, "b", 5)

    def test_memoize_with_typed_keeps_argument_types_apart(self, cache: cachekit.Cache) -> None:
        """With ``typed=True``, ``f(1)`` and ``f(1.0)`` are cached separately."""
        calls: list[Any] = []

        @cache.memoize(typed=True)
        def identity(value: Any) -> Any:
            calls.append(value)
            return value

        assert identity(1) == 1
        assert identity(1.0) == 1.0
        assert identity(1) == 1
        assert calls == [1, 1.0]
        assert identity.__cache_key__(1) != identity.__cache_key__(1.0)

    def test_memoize_ignores_the_listed_arguments(self, cache: cachekit.Cache) -> None:
        """Arguments named in ``ignore`` (by position or keyword) do not take part in the key."""
        calls: list[Any] = []

        @cache.memoize(ignore={1, "verbose"})
        def compute(a: int, b: int, verbose: bool = False) -> int:
            calls.append((a, b, verbose))
            return a * 10

        assert compute(1, 2) == 10
        assert compute(1, 3) == 10
        assert compute(1, 4, verbose=True) == 10
        assert compute(2, 2) == 20
        assert calls == [(1, 2, False), (2, 2, False)]

    def test_memoize_with_expire_recomputes_after_expiry(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """With ``expire``, a memoized result is recomputed once it has expired."""
        calls: list[int] = []

        @cache.memoize(expire=10)
        def square(value: int) -> int:
            calls.append(value)
            return value * value

        assert square(3) == 9
        clock.advance(9)
        assert square(3) == 9
        clock.advance(1)
        assert square(3) == 9
        assert calls == [3, 3]

    def test_memoize_with_name_and_tag(self, cache: cachekit.Cache) -> None:
        """``name`` replaces the function's name in keys and ``tag`` tags the stored results."""
        calls: list[int] = []

        @cache.memoize(name="custom", tag="memo")
        def double(value: int) -> int:
            calls.append(value)
            return value * 2

        assert double(4) == 8
        assert double.__cache_key__(4) == ("custom", 4, None)
        assert cache.get(("custom", 4, None), tag=True) == (8, "memo")
        assert cache.evict("memo") == 1
        assert double(4) == 8
        assert calls == [4, 4]

    def test_memoize_without_parentheses_raises_type_error(self, cache: cachekit.Cache) -> None:
        """``@cache.memoize`` without parentheses raises ``TypeError``, as in python-diskcache."""

        def function() -> None:
            return None

        memoize: Any = cache.memoize
        with pytest.raises(TypeError):
            memoize(function)

    # -- statistics and counters -----------------------------------------------------------------
    def test_stats_count_hits_and_misses_exactly(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """Once enabled, every ``get`` counts one hit or one miss; ``in`` counts nothing."""
        cache.set("a", 1)
        cache.set("short", 2, expire=5)
        assert cache.get("a") == 1
        assert cache.stats(enable=True) == (0, 0)
        assert cache.get("a") == 1
        assert cache["a"] == 1
        assert cache.get("short") == 2
        assert cache.get("missing") is None
        with pytest.raises(KeyError):
            cache["missing"]
        clock.advance(5)
        assert cache.get("short") is None
        assert "a" in cache
        assert "missing" not in cache
        assert cache.stats() == (3, 3)

    def test_stats_reset_and_disable(self, cache: cachekit.Cache) -> None:
        """``stats(reset=True)`` returns the counts and zeroes them; ``enable=False`` stops counting."""
        cache.set("a", 1)
        cache.stats(enable=True)
        cache.get("a")
        cache.get("b")
        assert cache.stats(reset=True) == (1, 1)
        assert cache.stats() == (0, 0)
        cache.get("a")
        assert cache.stats(enable=False) == (1, 0)
        cache.get("a")
        cache.get("b")
        assert cache.stats(enable=False) == (1, 0)
        assert cache.statistics is False

    def test_statistics_setting_counts_from_the_start_and_persists(self, make_cache: CacheFactory) -> None:
        """``statistics=True`` counts from the first read, and the counts are visible to another handle."""
        cache = make_cache(statistics=True)
        cache.set("a", 1)
        cache.get("a")
        cache.get("a")
        cache.get("b")
        assert cache.stats() == (2, 1)
        other = make_cache()
        assert other.statistics is True
        assert (other.counters()["hits"], other.counters()["misses"]) == (2, 1)

    def test_counters_start_at_zero(self, cache: cachekit.Cache) -> None:
        """``counters()`` lists hits, misses, evictions, expirations, timeouts and refusals, all zero at first."""
        counters = cache.counters()
        for name in ("hits", "misses", "evictions", "expirations", "timeouts", "refusals"):
            assert counters[name] == 0

    # -- settings ----------------------------------------------------------------------------------
    def test_reset_reads_and_writes_settings(self, cache: cachekit.Cache) -> None:
        """``reset(name)`` returns a setting, ``reset(name, value)`` changes it; both show as attributes."""
        assert cache.reset("cull_limit") == 10
        assert cache.cull_limit == 10
        assert cache.reset("cull_limit", 3) == 3
        assert cache.cull_limit == 3
        assert cache.reset("cull_limit") == 3
        assert cache.reset("size_limit", 2**20) == 2**20
        assert cache.size_limit == 2**20
        assert cache.reset("eviction_policy", "least-recently-used") == "least-recently-used"
        assert cache.eviction_policy == "least-recently-used"

    def test_reset_is_visible_to_another_cache_object(self, make_cache: CacheFactory) -> None:
        """A setting changed through one cache object is read by another on the same directory after ``reset(name)``."""
        cache = make_cache()
        other = make_cache()
        cache.reset("cull_limit", 4)
        cache.reset("size_limit", 123_456)
        assert other.reset("cull_limit") == 4
        assert other.cull_limit == 4
        assert other.reset("size_limit") == 123_456
        assert other.size_limit == 123_456
        assert make_cache().cull_limit == 4

    # -- life cycle --------------------------------------------------------------------------------
    def test_a_closed_cache_reopens_on_use(self, cache: cachekit.Cache) -> None:
        """After ``close``, using the cache reopens it; closing twice is harmless."""
        cache.set("a", 1)
        cache.close()
        assert cache.get("a") == 1
        cache.close()
        assert cache.set("b", 2) is True
        assert len(cache) == 2
        cache.close()
        cache.close()
        assert list(cache) == ["a", "b"]

    def test_context_manager_returns_the_cache_and_closes_it(self, make_cache: CacheFactory) -> None:
        """``with cache:`` yields the cache itself and closes it on exit; what it wrote persists."""
        cache = make_cache("context")
        with cache as opened:
            assert opened is cache
            cache.set("a", 1)
        assert make_cache("context")["a"] == 1
        assert cache.get("a") == 1

    def test_pickled_cache_opens_the_same_directory(self, cache: cachekit.Cache) -> None:
        """``pickle.loads(pickle.dumps(cache))`` gives a cache on the same directory and store."""
        cache.set("a", 1)
        clone = pickle.loads(pickle.dumps(cache))
        try:
            assert clone.directory == cache.directory
            assert clone.store_name == self.store
            assert clone["a"] == 1
            clone.set("b", 2)
        finally:
            clone.close()
        assert cache["b"] == 2

    def test_check_of_a_healthy_cache_is_empty(self, cache: cachekit.Cache) -> None:
        """``check()`` finds no problem on a cache used normally."""
        for index in range(30):
            cache.set(index, "x" * index, tag="t")
        cache.delete(5)
        cache.evict("nothing")
        assert cache.check() == []
        assert cache.check(fix=True) == []


class ExpiryContract(_Harness):
    """Expiry, driven by a :class:`FakeClock` given to the cache."""

    def test_an_entry_expires_exactly_at_its_expire_time(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """An entry is a hit while the clock is before its expire time and a miss from that instant on."""
        start = clock.now
        cache.set("key", "value", expire=10)
        assert cache.get("key", expire_time=True) == ("value", start + 10)
        clock.now = math.nextafter(start + 10, 0)
        assert cache.get("key") == "value"
        assert "key" in cache
        clock.now = start + 10
        assert cache.get("key", "gone") == "gone"
        assert "key" not in cache
        with pytest.raises(KeyError):
            cache["key"]

    def test_expired_entries_count_in_len_until_removed(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """``len`` and iteration include expired entries until ``expire()`` removes them."""
        cache.set("short", 1, expire=5)
        cache.set("long", 2, expire=50)
        cache.set("forever", 3)
        clock.advance(6)
        assert len(cache) == 3
        assert list(cache) == ["short", "long", "forever"]
        assert cache.get("short") is None
        assert len(cache) == 3

    def test_expire_removes_expired_entries_and_returns_the_count(
        self, cache: cachekit.Cache, clock: FakeClock
    ) -> None:
        """``expire()`` removes what has expired, returns how many, and counts them as expirations."""
        cache.reset("cull_limit", 0)  # keep sets from removing expired entries on the way
        for index in range(250):
            cache.set(f"short-{index}", index, expire=5)
        cache.set("long", 2, expire=50)
        cache.set("forever", 3)
        assert cache.expire() == 0
        clock.advance(5)
        assert cache.expire() == 250
        assert list(cache) == ["long", "forever"]
        assert cache.counters()["expirations"] == 250
        assert cache.expire(now=clock.now + 100) == 1
        assert list(cache) == ["forever"]
        assert cache.counters()["expirations"] == 251

    def test_touch_sets_a_new_expiry(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """``touch`` gives a live key a new expiry (``None``: never) and is ``False`` for missing or expired keys."""
        cache.set("key", "value", expire=10)
        clock.advance(5)
        assert cache.touch("key", 10) is True
        assert cache.get("key", expire_time=True) == ("value", clock.now + 10)
        clock.advance(9)
        assert cache.get("key") == "value"
        assert cache.touch("key") is True
        assert cache.get("key", expire_time=True) == ("value", None)
        clock.advance(10**6)
        assert cache.get("key") == "value"
        assert cache.touch("missing", 10) is False
        cache.set("short", 1, expire=1)
        clock.advance(1)
        assert cache.touch("short", 100) is False
        assert cache.get("short") is None

    def test_writes_treat_expired_entries_as_missing(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """``add``, ``incr``, ``pop`` and ``delete`` treat an expired entry as absent."""
        for key in ("add", "pop", "delete"):
            cache.set(key, "old", expire=5)
        cache.set("n", 10, expire=5)
        clock.advance(5)
        assert cache.add("add", "new") is True
        assert cache.get("add", expire_time=True) == ("new", None)
        assert cache.incr("n") == 1
        assert cache.pop("pop", "default") == "default"
        assert cache.delete("delete") is False
        assert cache.get("delete") is None

    def test_queue_reads_skip_expired_items(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """``peek``, ``pull`` and ``peekitem`` never return an expired item."""
        cache.push("expired", expire=5)
        live = cache.push("live")
        cache.push("expired at the back", expire=5)
        clock.advance(5)
        assert cache.peek() == (live, "live")
        assert cache.peek(side="back") == (live, "live")
        assert cache.peekitem(last=False) == (live, "live")
        assert cache.peekitem() == (live, "live")
        assert cache.pull() == (live, "live")
        assert cache.pull() == (None, None)
        with pytest.raises(KeyError):
            cache.peekitem()

    def test_expired_values_are_not_returned_by_get_variants(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """After expiry, ``get`` with ``read``, ``expire_time`` or ``tag`` returns the default like a miss."""
        cache.set("bytes", b"data", expire=1, tag="tag")
        clock.advance(1)
        assert cache.get("bytes", read=True) is None
        assert cache.get("bytes", expire_time=True, tag=True) == (None, None, None)
        with pytest.raises(KeyError):
            cache.read("bytes")


def _fill_for_eviction(cache: cachekit.Cache, clock: FakeClock) -> None:
    """Store k00..k13 with reads in between, so that each policy culls a different five keys.

    k00 is read three times early, k01 once late; nine entries fit, so each
    of the last five writes evicts one entry.
    """
    value = b"x" * 96

    def store(index: int) -> None:
        clock.advance(1)
        assert cache.set(f"k{index:02d}", value) is True

    def read(index: int) -> None:
        clock.advance(1)
        assert cache.get(f"k{index:02d}") == value

    store(0)
    unit = cache.volume()
    cache.reset("size_limit", unit * 9 + unit // 2)
    for index in range(1, 6):
        store(index)
    for _ in range(3):
        read(0)
    for index in range(6, 9):
        store(index)
    read(1)
    for index in range(9, 14):
        store(index)


class EvictionContract(_Harness):
    """``size_limit``, culling and the built-in eviction policies."""

    @pytest.mark.parametrize(
        ("policy", "evicted"),
        [
            ("least-recently-stored", ["k00", "k01", "k02", "k03", "k04"]),
            ("least-recently-used", ["k00", "k02", "k03", "k04", "k05"]),
            ("least-frequently-used", ["k02", "k03", "k04", "k05", "k06"]),
        ],
    )
    def test_each_policy_culls_its_own_choice_of_entries(
        self, make_cache: CacheFactory, clock: FakeClock, policy: str, evicted: list[str]
    ) -> None:
        """LRS culls the oldest stored, LRU the least recently read, LFU the least often read."""
        cache = make_cache(clock=clock, eviction_policy=policy)
        _fill_for_eviction(cache, clock)
        expected = [f"k{index:02d}" for index in range(14) if f"k{index:02d}" not in evicted]
        assert sorted(cache) == expected
        assert cache.volume() <= cache.size_limit
        assert cache.counters()["evictions"] == 5

    def test_a_policy_changed_with_reset_applies_to_later_culls(
        self, make_cache: CacheFactory, clock: FakeClock
    ) -> None:
        """After ``reset("eviction_policy", ...)``, reads are recorded and entries culled the new policy's way."""
        cache = make_cache(clock=clock)
        assert cache.eviction_policy == "least-recently-stored"
        cache.reset("eviction_policy", "least-frequently-used")
        _fill_for_eviction(cache, clock)
        assert sorted(cache) == ["k00", "k01", *(f"k{index:02d}" for index in range(7, 14))]

    def test_policy_none_never_evicts(self, make_cache: CacheFactory, clock: FakeClock) -> None:
        """With ``eviction_policy="none"`` nothing is evicted and the volume may exceed ``size_limit``."""
        cache = make_cache(clock=clock, eviction_policy="none")
        _fill_for_eviction(cache, clock)
        assert len(cache) == 14
        assert cache.volume() > cache.size_limit
        assert cache.cull() == 0
        assert len(cache) == 14
        assert cache.counters()["evictions"] == 0

    def test_size_limit_holds_under_sustained_writes(self, make_cache: CacheFactory) -> None:
        """After every ``set``, the volume is within ``size_limit`` (one cull step suffices)."""
        cache = make_cache(size_limit=10_000, disk_min_file_size=300)
        rng = random.Random(11)
        for step in range(400):
            key = f"key-{rng.randrange(150)}"
            assert cache.set(key, rng.randbytes(rng.randrange(100, 400))) is True
            assert cache.volume() <= 10_000, f"over size_limit after set number {step}"
        assert cache.counters()["evictions"] > 0
        assert len(value_files(cache)) <= len(cache)
        assert cache.check() == []

    def test_a_value_larger_than_size_limit_is_refused(self, make_cache: CacheFactory) -> None:
        """A value larger than ``size_limit`` is refused by ``set``, ``add`` and ``push``, counted, and not stored."""
        cache = make_cache(size_limit=1000, disk_min_file_size=512)
        cache.set("small", b"x" * 10)
        assert cache.set("big", b"x" * 2000) is False
        assert "big" not in cache
        assert cache.add("big", b"x" * 2000) is False
        assert cache.push(b"x" * 2000) is None
        assert cache.set("streamed", io.BytesIO(b"x" * 2000), read=True) is False
        assert list(cache) == ["small"]
        assert cache.counters()["refusals"] == 4
        assert value_files(cache) == []

    def test_expired_entries_are_culled_first(self, make_cache: CacheFactory, clock: FakeClock) -> None:
        """When over the limit, culling removes expired entries before it evicts live ones."""
        cache = make_cache(clock=clock)
        value = b"x" * 96
        cache.set("k00", value)
        unit = cache.volume()
        cache.reset("size_limit", unit * 9 + unit // 2)
        for index in range(1, 9):
            clock.advance(1)
            cache.set(f"k{index:02d}", value, expire=5 if index == 5 else None)
        clock.advance(10)
        cache.set("k09", value)
        assert list(cache) == [f"k{index:02d}" for index in range(10) if index != 5]
        counters = cache.counters()
        assert (counters["expirations"], counters["evictions"]) == (1, 0)

    def test_cull_brings_the_volume_under_the_limit(self, make_cache: CacheFactory, clock: FakeClock) -> None:
        """``cull()`` removes expired entries, then evicts in policy order until within ``size_limit``."""
        cache = make_cache(clock=clock, cull_limit=0)
        value = b"x" * 96
        cache.set("k00", value)
        unit = cache.volume()
        cache.reset("size_limit", unit * 9 + unit // 2)
        for index in range(1, 30):
            clock.advance(1)
            cache.set(f"k{index:02d}", value, expire=5 if index in (25, 26) else None)
        assert len(cache) == 30
        clock.advance(10)
        assert cache.cull() == 21
        assert cache.volume() <= cache.size_limit
        assert list(cache) == [f"k{index:02d}" for index in range(19, 30) if index not in (25, 26)]


class ValueFileContract(_Harness):
    """Large values in files under ``values/``, and ``check`` finding damaged ones."""

    @pytest.fixture
    def files_cache(self, make_cache: CacheFactory, clock: FakeClock) -> cachekit.Cache:
        """A cache that puts payloads of 1 KiB or more in value files."""
        cache = make_cache(clock=clock, disk_min_file_size=1024)
        if not cache.store.capabilities.value_files:
            pytest.skip(f"the {self.store!r} store keeps every value inline")
        return cache

    def test_large_values_live_in_files_and_read_back_identical(self, files_cache: cachekit.Cache) -> None:
        """Values at or above ``disk_min_file_size`` go to files under ``values/`` and read back identical."""
        cache = files_cache
        data = random.Random(4).randbytes(5000)
        text = "ünïcødé " * 500
        numbers = list(range(2000))
        cache.set("bytes", data)
        cache.set("text", text)
        cache.set("object", numbers)
        cache.set("small", b"x" * 10)
        assert len(value_files(cache)) == 3
        assert cache.get("bytes") == data
        assert cache.get("text") == text
        assert cache.get("object") == numbers
        assert _read_all(cache.read("bytes")) == data
        assert _read_all(cache.get("bytes", read=True)) == data

    def test_default_threshold_keeps_small_values_inline(self, make_cache: CacheFactory) -> None:
        """With the default threshold (32 KiB) small values make no file and large ones do."""
        cache = make_cache()
        if not cache.store.capabilities.value_files:
            pytest.skip(f"the {self.store!r} store keeps every value inline")
        cache.set("small", b"x" * 1000)
        assert value_files(cache) == []
        large = random.Random(6).randbytes(40_000)
        cache.set("large", large)
        assert len(value_files(cache)) == 1
        assert cache.get("large") == large

    def test_set_with_read_streams_a_large_file_object(self, files_cache: cachekit.Cache) -> None:
        """``set(read=True)`` copies a large stream to a value file; ``push(read=True)`` does too."""
        cache = files_cache
        data = random.Random(8).randbytes(100_000)
        assert cache.set("streamed", io.BytesIO(data), read=True) is True
        assert cache.get("streamed") == data
        key = cache.push(io.BytesIO(data), read=True)
        assert cache.pull() == (key, data)
        assert len(value_files(cache)) == 1

    @pytest.mark.parametrize(
        "operation",
        ["overwrite", "overwrite-small", "delete", "del", "pop", "clear", "evict", "expire", "pull", "cull"],
    )
    def test_value_file_is_removed_with_its_entry(
        self, files_cache: cachekit.Cache, clock: FakeClock, operation: str
    ) -> None:
        """The value file goes when its entry is replaced, deleted, popped, cleared, evicted, expired or pulled."""
        cache = files_cache
        data = random.Random(9).randbytes(3000)
        key: Any = "key"
        if operation == "pull":
            key = cache.push(data, expire=60, tag="tag")
        else:
            cache.set(key, data, expire=60, tag="tag")
        (path,) = value_files(cache)
        replacement = random.Random(10).randbytes(4000)
        if operation == "overwrite":
            cache.set(key, replacement)
        elif operation == "overwrite-small":
            cache.set(key, b"small")
        elif operation == "delete":
            assert cache.delete(key) is True
        elif operation == "del":
            del cache[key]
        elif operation == "pop":
            assert cache.pop(key) == data
        elif operation == "clear":
            assert cache.clear() == 1
        elif operation == "evict":
            assert cache.evict("tag") == 1
        elif operation == "expire":
            clock.advance(60)
            assert cache.expire() == 1
        elif operation == "pull":
            assert cache.pull() == (key, data)
        else:
            cache.reset("size_limit", 5000)
            cache.set("other", replacement)
            assert cache.cull() >= 0
            assert key not in cache
        assert not os.path.exists(path)
        if operation == "overwrite":
            assert cache.get(key) == replacement
            assert len(value_files(cache)) == 1
        elif operation == "cull":
            assert cache.get("other") == replacement
        else:
            assert value_files(cache) == []

    def test_a_missing_value_file_is_a_miss_that_check_reports_and_fixes(self, files_cache: cachekit.Cache) -> None:
        """A value file deleted by hand makes its key a miss; ``check`` reports it and ``check(fix=True)`` drops it."""
        cache = files_cache
        cache.set("broken", b"b" * 2000)
        (path,) = value_files(cache)
        cache.set("kept", b"k" * 2000)
        assert cache.check() == []
        os.remove(path)
        assert cache.get("broken", "default") == "default"
        problems = cache.check()
        assert len(problems) == 1
        assert os.path.basename(path) in str(problems[0].message)
        assert len(cache) == 2
        assert cache.check(fix=True)
        assert list(cache) == ["kept"]
        assert cache.get("kept") == b"k" * 2000
        assert cache.check() == []

    def test_rolled_back_transaction_leaves_no_value_file(self, files_cache: cachekit.Cache) -> None:
        """Value files written inside a transaction that rolls back are removed."""
        cache = files_cache

        def fail() -> None:
            with cache.transact():
                cache.set("large", b"x" * 5000)
                cache.push(b"y" * 5000)
                raise _Rollback

        with pytest.raises(_Rollback):
            fail()
        assert len(cache) == 0
        assert value_files(cache) == []


class QueueContract(_Harness):
    """``push``, ``pull``, ``peek`` and ``peekitem``, as in python-diskcache."""

    def test_push_and_pull_without_prefix(self, cache: cachekit.Cache) -> None:
        """Without a prefix, keys are integers from 500000000000000; ``pull`` takes from the front."""
        assert cache.push("a") == QUEUE_START
        assert cache.push("b") == QUEUE_START + 1
        assert cache.push("z", side="front") == QUEUE_START - 1
        assert cache.pull() == (QUEUE_START - 1, "z")
        assert cache.pull(side="back") == (QUEUE_START + 1, "b")
        assert cache.pull() == (QUEUE_START, "a")
        assert cache.pull() == (None, None)
        assert len(cache) == 0

    def test_push_and_pull_with_a_prefix(self, cache: cachekit.Cache) -> None:
        """With a str prefix, keys are ``prefix-<15 digits>`` and each prefix is a queue of its own."""
        assert cache.push("first", prefix="jobs") == f"jobs-{QUEUE_START:015d}"
        assert cache.push("second", prefix="jobs") == f"jobs-{QUEUE_START + 1:015d}"
        assert cache.push("other", prefix="mail") == f"mail-{QUEUE_START:015d}"
        assert cache.push("plain") == QUEUE_START
        assert cache.pull(prefix="jobs") == (f"jobs-{QUEUE_START:015d}", "first")
        assert cache.pull(prefix="mail") == (f"mail-{QUEUE_START:015d}", "other")
        assert cache.pull(prefix="mail") == (None, None)
        assert cache.pull() == (QUEUE_START, "plain")
        assert cache.pull() == (None, None)
        assert cache.pull(prefix="jobs") == (f"jobs-{QUEUE_START + 1:015d}", "second")

    def test_front_and_back_pushes_interleave(self, cache: cachekit.Cache) -> None:
        """Pushes to the front and back build one ordered queue, pulled from either side."""
        for value in range(6):
            cache.push(value, prefix="q", side="back" if value % 2 else "front")
        pulled = [cache.pull(prefix="q")[1] for _ in range(3)]
        pulled += [cache.pull(prefix="q", side="back")[1] for _ in range(3)]
        assert pulled == [4, 2, 0, 5, 3, 1]

    def test_peek_does_not_remove(self, cache: cachekit.Cache) -> None:
        """``peek`` returns the front (or back) item and leaves it in place."""
        first = cache.push("first", prefix="q")
        last = cache.push("last", prefix="q")
        assert cache.peek(prefix="q") == (first, "first")
        assert cache.peek(prefix="q", side="back") == (last, "last")
        assert cache.peek(prefix="q") == (first, "first")
        assert len(cache) == 2

    def test_empty_queues_return_the_default(self, cache: cachekit.Cache) -> None:
        """``pull`` and ``peek`` on an empty queue return ``default``, ``(None, None)`` unless given."""
        assert cache.pull() == (None, None)
        assert cache.peek() == (None, None)
        assert cache.pull(prefix="q", default="empty") == "empty"
        assert cache.peek(prefix="q", default="empty", side="back") == "empty"

    def test_queue_results_with_expire_time_and_tag(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """With ``expire_time``/``tag``, queue reads return ``((key, value), expire_time, tag)`` shapes."""
        key = cache.push("value", prefix="q", expire=30, tag="tag")
        expire_time = clock.now + 30
        assert cache.peek(prefix="q", expire_time=True) == ((key, "value"), expire_time)
        assert cache.peek(prefix="q", tag=True) == ((key, "value"), "tag")
        assert cache.peekitem(expire_time=True, tag=True) == ((key, "value"), expire_time, "tag")
        assert cache.pull(prefix="q", expire_time=True, tag=True) == ((key, "value"), expire_time, "tag")
        assert cache.pull(prefix="q", expire_time=True) == ((None, None), None)
        assert cache.pull(prefix="q", tag=True) == ((None, None), None)
        assert cache.pull(prefix="q", expire_time=True, tag=True) == ((None, None), None, None)
        assert cache.peek(prefix="q", default="d", tag=True) == ("d", None)

    def test_peekitem_returns_the_last_or_first_inserted_item(self, cache: cachekit.Cache) -> None:
        """``peekitem`` returns the last inserted ``(key, value)`` (the first with ``last=False``)."""
        with pytest.raises(KeyError):
            cache.peekitem()
        with pytest.raises(KeyError):
            cache.peekitem(last=False)
        cache.set("a", 1)
        cache.set("b", 2)
        cache.set("c", 3)
        cache.set("a", 10)
        assert cache.peekitem() == ("c", 3)
        assert cache.peekitem(last=False) == ("a", 10)
        assert len(cache) == 3

    def test_queue_values_of_any_kind(self, cache: cachekit.Cache) -> None:
        """Queued values of any kind read back equal."""
        values: list[Any] = [None, 1, 2.5, "text", b"bytes", {"a": [1, 2]}, Point(3, 4)]
        for value in values:
            cache.push(value, prefix="mixed")
        assert [cache.pull(prefix="mixed")[1] for _ in values] == values


class TransactionContract(_Harness):
    """``transact()``: atomicity, isolation from other handles, nesting, and the write lock's timeout."""

    def test_writes_in_a_transaction_are_invisible_elsewhere_until_commit(self, make_cache: CacheFactory) -> None:
        """Other threads and other cache objects see none of a transaction's writes until it commits."""
        cache = make_cache()
        other = make_cache()
        cache.set("existing", "old")
        with cache.transact():
            cache.set("new", 1)
            cache.set("existing", "new")
            assert cache.get("new") == 1
            assert _run_in_thread(lambda: other.get("new")) is None
            assert _run_in_thread(lambda: other.get("existing")) == "old"
            assert _run_in_thread(lambda: cache.get("new")) is None
            assert _run_in_thread(lambda: len(other)) == 1
        assert other.get("new") == 1
        assert other.get("existing") == "new"
        assert len(other) == 2

    def test_an_exception_rolls_back_every_write(self, cache: cachekit.Cache) -> None:
        """An exception inside ``transact()`` propagates and undoes every write made in it."""
        cache.set("kept", "value")
        cache.set("counter", 1)

        def fail() -> None:
            with cache.transact():
                cache.set("new", 1)
                cache.incr("counter", 5)
                cache.delete("kept")
                cache.push("queued")
                raise _Rollback

        with pytest.raises(_Rollback):
            fail()
        assert list(cache) == ["kept", "counter"]
        assert cache["kept"] == "value"
        assert cache["counter"] == 1

    def test_transactions_make_read_modify_write_atomic(self, cache: cachekit.Cache) -> None:
        """Reads and writes inside one ``transact()`` see each other and commit together."""
        with cache.transact():
            total = cache.incr("total", 10)
            count = cache.incr("count")
            cache.set("average", total / count)
        assert (cache["total"], cache["count"], cache["average"]) == (10, 1, 10.0)

    def test_nested_transactions_join_the_outer_one(self, make_cache: CacheFactory) -> None:
        """A nested ``transact()`` commits or rolls back with the outer one, not on its own exit."""
        cache = make_cache()
        other = make_cache()
        with cache.transact():
            cache.set("outer", 1)
            with cache.transact():
                cache.set("inner", 2)
            assert _run_in_thread(lambda: other.get("inner")) is None
        assert (other.get("outer"), other.get("inner")) == (1, 2)

        def fail() -> None:
            with cache.transact():
                cache.set("outer-2", 1)
                with cache.transact():
                    cache.set("inner-2", 2)
                raise _Rollback

        with pytest.raises(_Rollback):
            fail()
        assert "outer-2" not in cache
        assert "inner-2" not in cache

    def test_a_blocked_writer_times_out_or_waits_with_retry(self, make_cache: CacheFactory) -> None:
        """While another handle holds the lock, a write raises ``Timeout`` after ``timeout`` or waits with ``retry``."""
        cache = make_cache()
        impatient = make_cache(timeout=0.2)
        waiter: list[bool] = []
        with cache.transact():
            cache.set("held", 1)
            with pytest.raises(cachekit.Timeout):
                _run_in_thread(lambda: impatient.set("x", 1))
            thread = threading.Thread(target=lambda: waiter.append(impatient.set("y", 2, retry=True)), daemon=True)
            thread.start()
            time.sleep(0.5)
            assert thread.is_alive(), "a write with retry=True gave up while the lock was held"
        thread.join(_WAIT)
        assert waiter == [True]
        assert cache["y"] == 2
        assert "x" not in cache
        assert impatient.counters()["timeouts"] >= 2


class PluginContract(_Harness):
    """An eviction policy and a serializer registered at run time, used by name."""

    def test_a_custom_eviction_policy_changes_what_is_culled(self, make_cache: CacheFactory, clock: FakeClock) -> None:
        """A policy registered at run time (largest first) culls other entries than the default policy."""

        def culled(cache: cachekit.Cache) -> list[str]:
            cache.set("e0", b"x" * 97)
            unit = cache.volume()
            for index in range(1, 7):
                clock.advance(1)
                cache.set(f"e{index}", b"x" * (97 + (200 if index == 1 else 0)))
            cache.reset("size_limit", cache.volume() + unit // 2)
            clock.advance(1)
            cache.set("e7", b"x" * 97)
            return [f"e{index}" for index in range(8) if f"e{index}" not in list(cache)]

        plugin = _PolicyPlugin()
        cachekit.plugins.register(plugin)
        try:
            assert "largest-first" in cachekit.plugins.names("eviction_policy")
            custom = make_cache("largest-first", clock=clock, eviction_policy="largest-first")
            try:
                assert culled(custom) == ["e1"]
            finally:
                custom.close()
        finally:
            cachekit.plugins.unregister(plugin)
        assert "largest-first" not in cachekit.plugins.names("eviction_policy")
        assert culled(make_cache("default", clock=clock)) == ["e0"]

    def test_a_custom_serializer_round_trips_values(self, make_cache: CacheFactory) -> None:
        """A serializer registered at run time encodes and decodes the values, and is recorded per entry."""
        plugin = _SerializerPlugin()
        cachekit.plugins.register(plugin)
        try:
            MarkedJSONSerializer.calls.clear()
            cache = make_cache("custom-serializer", serializer="conformance-json")
            try:
                values: dict[str, Any] = {"dict": {"a": [1, 2.5, None, True]}, "list": [1, "two"], "none": None}
                for key, value in values.items():
                    assert cache.set(key, value) is True
                for key, value in values.items():
                    assert cache.get(key) == value
                assert MarkedJSONSerializer.calls.count("dumps") >= 3
                assert MarkedJSONSerializer.calls.count("loads") >= 3
                entries = list(cache.store.scan(Order.INSERTION))
                assert [entry.serializer for entry in entries] == ["conformance-json"] * 3
                assert all((entry.value or b"").startswith(MarkedJSONSerializer.marker) for entry in entries)
            finally:
                cache.close()
        finally:
            cachekit.plugins.unregister(plugin)


class ConcurrencyContract(_Harness):
    """Threads, processes, ``os.fork()`` and pickling across processes."""

    def test_threads_and_processes_increment_and_add_exactly(self, make_cache: CacheFactory) -> None:
        """4 processes x 4 threads lose no ``incr`` and each ``add``-ed key has exactly one winner."""
        cache = make_cache()
        processes, threads, increments, slots = 4, 4, 100, 40
        context = multiprocessing.get_context("fork")
        start = context.Barrier(processes * threads)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # fork() with threads, on 3.12+
            workers = [
                context.Process(
                    target=hammer_worker,
                    args=(cache.directory, self.store, worker, threads, increments, slots, start),
                )
                for worker in range(processes)
            ]
            for process in workers:
                process.start()
        deadline = time.monotonic() + _WAIT
        for process in workers:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in workers:
            if process.is_alive():
                process.kill()
                process.join()
        assert [process.exitcode for process in workers] == [0] * processes
        assert cache["counter"] == processes * threads * increments
        wins = [win for worker in range(processes) for win in cache[("wins", worker)]]
        assert sorted(slot for slot, _ in wins) == sorted(f"slot-{index}" for index in range(slots))
        for slot, label in wins:
            assert cache[slot] == label

    def test_many_short_lived_threads_leave_no_open_files_behind(self, cache: cachekit.Cache) -> None:
        """Hundreds of short-lived threads can each use the cache, and what they opened is released."""
        descriptors = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
        cache.set("shared", "value")
        _run_in_thread(lambda: cache.get("shared"))
        gc.collect()
        before = len(os.listdir(descriptors))
        for index in range(300):
            _run_in_thread(functools.partial(cache.set, index, "value"))
            _run_in_thread(functools.partial(cache.get, index))
        gc.collect()
        leaked = len(os.listdir(descriptors)) - before
        assert len(cache) == 301
        assert leaked < 30, f"{leaked} file descriptors stayed open after 600 threads used the cache and ended"

    def test_a_cache_keeps_working_in_both_processes_after_fork(self, make_cache: CacheFactory) -> None:
        """After ``os.fork()`` the child reads and writes the inherited cache, and the parent sees it and goes on."""
        cache = make_cache()
        cache.set("parent", "p")
        cache.incr("count")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # fork() with threads, on 3.12+
            pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which must never return into pytest
            code = 1
            try:
                healthy = (
                    cache.get("parent") == "p"
                    and cache.incr("count") == 2
                    and cache.set("child", "c")
                    and cache.get("child") == "c"
                    and cache.push("from child", prefix="q") is not None
                )
                code = 0 if healthy else 3
            except BaseException:
                code = 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert cache.get("child") == "c"
        assert cache.incr("count") == 3
        assert cache.set("after", "fork") is True
        assert cache.pull(prefix="q")[1] == "from child"
        assert cache["after"] == "fork"

    def test_a_pickled_cache_works_in_another_process(self, make_cache: CacheFactory) -> None:
        """A cache pickled to a fresh process reads what the parent wrote, and the parent reads its reply."""
        cache = make_cache()
        cache.set("from parent", {"payload": [1, 2, 3]})
        context = multiprocessing.get_context("spawn")
        with context.Pool(1) as pool:
            pending = pool.apply_async(read_through_pickled_cache, (pickle.dumps(cache), "from parent", "from child"))
            value = pending.get(_WAIT)
        assert value == {"payload": [1, 2, 3]}
        child = cache.get("from child")
        assert isinstance(child, int)
        assert child != os.getpid()


class StoreConformance(
    # pytest collects the last base class first: this order runs the raw
    # store contract first, so that with -x the most basic failure shows.
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
