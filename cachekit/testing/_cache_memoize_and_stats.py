"""python-diskcache's API, part three: memoize, statistics, settings and the life cycle of a cache."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import cachekit

from ._support import CacheFactory, FakeClock, _Harness


class _CacheMemoizeAndStatsContract(_Harness):
    """Part of :class:`CacheContract`: memoize, statistics and counters, settings, life cycle."""

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
