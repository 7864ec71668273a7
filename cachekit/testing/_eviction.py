"""``size_limit``, culling and the built-in eviction policies."""

from __future__ import annotations

import io
import random

import pytest

import cachekit

from ._support import CacheFactory, FakeClock, _Harness, value_files


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
