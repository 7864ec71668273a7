"""python-diskcache's API, part one: set, get and friends, iteration, file handles."""

from __future__ import annotations

import io
import random
from typing import Any

import pytest

import cachekit

from ._support import FakeClock, _Harness, _read_all


class _CacheBasicsContract(_Harness):
    """Part of :class:`CacheContract`: set, get and friends, iteration and file handles."""

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
