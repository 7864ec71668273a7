"""The raw store API, exercised through ``cache.store``."""

from __future__ import annotations

import math
import random
import threading
import time
from typing import Any

import pytest

import cachekit
from cachekit.plugins import Capabilities, Entry, Order, Setting, Store

from ._support import _WAIT, CacheFactory, _entry, _Harness, _keys, _payload, _put, _Rollback, _run_in_thread, _totals


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
