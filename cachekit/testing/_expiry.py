"""Expiry, driven by a fake clock."""

from __future__ import annotations

import math

import pytest

import cachekit

from ._support import FakeClock, _Harness


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
