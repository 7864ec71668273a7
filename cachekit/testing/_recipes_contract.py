"""The recipes (python-diskcache's ``diskcache.recipes``) on the store under test: ``Averager``,
``throttle`` and ``memoize_stampede`` here, the locks in ``_recipe_locks``, across threads and processes."""

from __future__ import annotations

import inspect
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import cachekit

from ._collection_workers import call_stampede, call_throttled, compute_forever
from ._recipe_locks import _LockRecipesContract
from ._recipe_support import _kill, _RecipeHarness, _spawn_pool, _spawn_process, _start_thread, _wait_for_key
from ._support import _WAIT, FakeClock, _run_in_thread


def _fake_time() -> tuple[Callable[[], float], Callable[[float], None], list[float]]:
    """A ``time_func`` and a ``sleep_func`` for ``throttle`` that move a fake time; the list records the sleeps."""
    now = [1000.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    return (lambda: now[0]), sleep, sleeps


class _Shelf:
    """A module-level class, so that its instances pickle into memoize keys."""

    def __init__(self, items: int) -> None:
        self.items = items

    def total(self, price: int) -> int:
        return self.items * price


class _OtherRecipesContract(_RecipeHarness):
    """Part of :class:`RecipesContract`: ``Averager``, ``throttle`` and ``memoize_stampede``."""

    # -- Averager ------------------------------------------------------------------------------
    def test_averager_running_average_of_what_was_added(self, cache: cachekit.Cache) -> None:
        """``get`` is the mean of the values added, ``pop`` returns it and starts afresh, ``None`` when empty."""
        average = cachekit.Averager(cache, "latency")
        assert average.get() is None
        average.add(0.080)
        average.add(0.120)
        assert average.get() == pytest.approx(0.1)
        average.add(0.160)
        assert average.pop() == pytest.approx(0.12)
        assert average.get() is None
        assert average.pop() is None
        assert "latency" not in cache

    def test_averager_another_object_on_the_same_key_shares_the_average(self, cache: cachekit.Cache) -> None:
        """The total and count live in the cache, so every object (and process) with the key sees them."""
        cachekit.Averager(cache, "shared").add(3)
        cachekit.Averager(cache, "shared").add(5)
        assert cachekit.Averager(cache, "shared").get() == 4

    def test_averager_expire_and_tag_apply_to_the_entry(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """``expire`` and ``tag`` are those of the entry holding the total and count."""
        average = cachekit.Averager(cache, "timed", expire=10, tag="stats")
        average.add(1.0)
        _, expire_time, tag = cache.get("timed", expire_time=True, tag=True)
        assert (expire_time, tag) == (clock.now + 10, "stats")
        clock.advance(11)
        assert average.get() is None

    def test_averager_concurrent_adds_lose_nothing(self, cache: cachekit.Cache) -> None:
        """Each add is one transaction: adds from several threads all count."""

        def add_many() -> None:
            average = cachekit.Averager(cache, "many")
            for _ in range(25):
                average.add(2.0)

        threads = [threading.Thread(target=add_many) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(_WAIT)
        assert tuple(cache.get("many")) == (200.0, 100)

    # -- throttle ------------------------------------------------------------------------------
    def test_throttle_calls_beyond_the_rate_sleep_for_their_turn(self, cache: cachekit.Cache) -> None:
        """``count`` calls pass at once; the next waits for its share of ``seconds`` to pass."""
        time_func, sleep_func, sleeps = _fake_time()

        @cachekit.throttle(cache, 2, 1, time_func=time_func, sleep_func=sleep_func)
        def ping(number: int) -> int:
            """Answer."""
            return number

        assert [ping(1), ping(2)] == [1, 2]
        assert sleeps == []
        assert ping(3) == 3
        assert sleeps == [pytest.approx(0.5)]
        assert ping.__name__ == "ping"
        assert ping.__doc__ == "Answer."

    def test_throttle_decorating_again_joins_the_allowance_instead_of_resetting_it(self, cache: cachekit.Cache) -> None:
        """The allowance lives in the cache under ``name``: another decoration (another process) shares it."""
        time_func, sleep_func, sleeps = _fake_time()
        first = cachekit.throttle(cache, 1, 1, name="api", time_func=time_func, sleep_func=sleep_func)(lambda: 1)
        first()
        second = cachekit.throttle(cache, 1, 1, name="api", time_func=time_func, sleep_func=sleep_func)(lambda: 2)
        assert second() == 2
        assert sleeps == [pytest.approx(1.0)]

    def test_throttle_an_expired_allowance_starts_full(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """With ``expire``, the allowance's entry expires, and the next call starts from a full allowance."""
        time_func, sleep_func, sleeps = _fake_time()
        limited = cachekit.throttle(
            cache, 1, 100, name="api", expire=10, tag="rates", time_func=time_func, sleep_func=sleep_func
        )(lambda: None)
        limited()
        assert cache.get("api", tag=True)[1] == "rates"
        clock.advance(11)
        limited()
        assert sleeps == []

    @pytest.mark.parametrize(("count", "seconds"), [(0, 1), (1, 0), (-1, 1)])
    def test_throttle_count_and_seconds_must_be_positive(self, cache: cachekit.Cache, count: int, seconds: int) -> None:
        """A rate of zero or less is an error when decorating."""
        with pytest.raises(ValueError, match="must be positive"):
            cachekit.throttle(cache, count, seconds)

    def test_throttle_keeps_to_its_rate_across_processes(self, live_cache: cachekit.Cache) -> None:
        """Four processes calling one throttled function as fast as they can: over any stretch of time the
        calls let through are at most ``count`` plus the rate times its length (so at most ``count`` per
        ``seconds`` once the first allowance is spent)."""
        workers, count, seconds = 4, 5, 0.5
        rate = count / seconds
        with _spawn_pool(workers) as pool:
            pending = [
                pool.apply_async(call_throttled, (live_cache.directory, self.store, workers, count, seconds, 1.0))
                for _ in range(workers)
            ]
            granted = sorted(itertools.chain.from_iterable(result.get(_WAIT) for result in pending))
        assert len(granted) > count  # the allowance refilled and was spent again
        for first, last in itertools.combinations(range(len(granted)), 2):
            calls = last - first + 1
            allowed = count + rate * (granted[last] - granted[first])
            assert calls <= allowed + 1e-6, f"{calls} calls in {granted[last] - granted[first]:.3f}s"
        for start in granted:
            in_window = sum(1 for moment in granted if start <= moment < start + seconds)
            assert in_window <= 2 * count

    # -- memoize_stampede ----------------------------------------------------------------------
    def test_stampede_results_are_cached_by_arguments(self, stampede_cache: cachekit.Cache) -> None:
        """A result is computed once per arguments, under the key ``__cache_key__`` gives."""
        cache = stampede_cache
        calls: list[int] = []

        @cachekit.memoize_stampede(cache, 60, name="square")
        def square(number: int) -> int:
            calls.append(number)
            return number * number

        assert [square(3), square(3), square(4)] == [9, 9, 16]
        assert calls == [3, 4]
        assert square.__cache_key__(3) == ("square", 3, None)
        assert cache.get(square.__cache_key__(3))[0] == 9
        _, expire_time = cache.get(square.__cache_key__(3), expire_time=True)
        assert expire_time == pytest.approx(time.time() + 60, abs=5)

    def test_stampede_keeps_the_functions_metadata_and_signature(self, stampede_cache: cachekit.Cache) -> None:
        """``functools.wraps``: name, docstring, module, qualified name, ``__wrapped__`` and signature."""

        def lookup(user_id: int, *, fresh: bool = False) -> str:
            """Find a user."""
            return f"user {user_id}"

        memoized = cachekit.memoize_stampede(stampede_cache, 60)(lookup)
        for attribute in ("__name__", "__doc__", "__module__", "__qualname__", "__annotations__"):
            assert getattr(memoized, attribute) == getattr(lookup, attribute)
        assert getattr(memoized, "__wrapped__", None) is lookup
        assert inspect.signature(memoized) == inspect.signature(lookup)
        assert memoized(7) == "user 7"
        assert memoized.__cache_key__(7, fresh=True) == (f"{__name__}.{lookup.__qualname__}", 7, None, "fresh", True)

    def test_stampede_works_on_methods(self, stampede_cache: cachekit.Cache) -> None:
        """A decorated method binds like any method; ``ignore=(0,)`` leaves ``self`` out of the key."""
        calls: list[int] = []

        class Catalog:
            def __init__(self, factor: int) -> None:
                self.factor = factor

            @cachekit.memoize_stampede(stampede_cache, 60, name="price", ignore=(0,))
            def price(self, item: int) -> int:
                calls.append(item)
                return item * self.factor

        assert Catalog(2).price(5) == 10
        assert Catalog(3).price(5) == 10  # self is ignored: one result for every instance
        assert calls == [5]
        catalog = Catalog(2)
        assert catalog.price.__cache_key__(catalog, 5) == ("price", 5, None)
        assert inspect.signature(Catalog.price) == inspect.signature(inspect.unwrap(Catalog.price))

    def test_stampede_self_is_part_of_the_key_unless_ignored(
        self, stampede_cache: cachekit.Cache, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """By default a method's instance is part of the key: equal instances share results, others do not."""
        memoized = cachekit.memoize_stampede(stampede_cache, 60)(_Shelf.total)
        monkeypatch.setattr(_Shelf, "cached_total", memoized, raising=False)
        shelves: list[Any] = [_Shelf(2), _Shelf(2), _Shelf(3)]
        assert [shelf.cached_total(10) for shelf in shelves] == [20, 20, 30]
        assert len(stampede_cache) == 2  # the two equal shelves share a result

    def test_stampede_ignore_leaves_out_positional_and_keyword_arguments(self, stampede_cache: cachekit.Cache) -> None:
        """``ignore`` holds positions and keyword names; the arguments there do not change the key."""
        calls: list[tuple[int, str, bool]] = []

        @cachekit.memoize_stampede(stampede_cache, 60, name="report", ignore=(1, "verbose"))
        def report(number: int, log_name: str = "-", verbose: bool = False) -> int:
            calls.append((number, log_name, verbose))
            return number

        assert report(1, "first") == 1
        assert report(1, "second") == 1
        assert report(1, "first", verbose=True) == 1
        assert report(1, "first", verbose=False) == 1
        assert report(2, "first") == 2
        assert calls == [(1, "first", False), (2, "first", False)]
        assert report.__cache_key__(1, "anything", verbose=True) == ("report", 1, None)

    def test_stampede_typed_keeps_argument_types_apart(self, stampede_cache: cachekit.Cache) -> None:
        """With ``typed=True``, ``f(1)`` and ``f(1.0)`` are computed and cached apart."""
        calls: list[float] = []

        @cachekit.memoize_stampede(stampede_cache, 60, typed=True)
        def identity(number: float) -> float:
            calls.append(number)
            return number

        identity(1)
        identity(1.0)
        assert len(calls) == 2

    def test_stampede_expire_zero_computes_every_time(self, stampede_cache: cachekit.Cache) -> None:
        """``expire=0`` stores nothing: every call computes, and nobody waits for anybody."""
        calls: list[int] = []

        def identity(number: int) -> int:
            calls.append(number)
            return number

        memoized = cachekit.memoize_stampede(stampede_cache, 0)(identity)
        assert [memoized(1), memoized(1)] == [1, 1]
        assert calls == [1, 1]
        assert len(stampede_cache) == 0

    def test_stampede_threads_that_miss_together_compute_once(self, stampede_cache: cachekit.Cache) -> None:
        """Eight threads asking for a missing result at once: one computes it, the others wait and get it."""
        calls: list[int] = []
        start = threading.Barrier(8)

        @cachekit.memoize_stampede(stampede_cache, 60)
        def slow(number: int) -> int:
            calls.append(number)
            time.sleep(0.1)
            return number + 1

        def ask() -> int:
            start.wait(_WAIT)
            return slow(1)

        results = [_start_thread(ask) for _ in range(8)]
        for thread, _ in results:
            thread.join(_WAIT)
        assert [outcome.get("result") for _, outcome in results] == [2] * 8
        assert calls == [1]

    def test_stampede_an_exception_reaches_the_caller_and_frees_the_computation(
        self, stampede_cache: cachekit.Cache
    ) -> None:
        """A computation that raises is not cached, and the next caller computes again without waiting."""
        attempts: list[int] = []

        @cachekit.memoize_stampede(stampede_cache, 60)
        def flaky(number: int) -> int:
            attempts.append(number)
            if len(attempts) == 1:
                raise RuntimeError("first attempt fails")
            return number

        with pytest.raises(RuntimeError, match="first attempt fails"):
            flaky(5)
        assert _run_in_thread(lambda: flaky(5)) == 5
        assert attempts == [5, 5]
        assert len(stampede_cache) == 1  # the result, and no leftover claim

    def test_stampede_a_result_near_expiry_is_recomputed_early_in_the_background(
        self, stampede_cache: cachekit.Cache
    ) -> None:
        """With a large ``beta``, a hit triggers a recomputation in a background thread while the caller
        gets the current result at once; the new result replaces it."""
        version = [0]

        @cachekit.memoize_stampede(stampede_cache, 60, beta=1e12)  # recomputes on (almost) every hit
        def current() -> int:
            time.sleep(0.01)  # a measurable computing time, which the draw scales
            version[0] += 1
            return version[0]

        assert current() == 1
        assert current() == 1  # the hit answers at once with the current result
        deadline = time.monotonic() + _WAIT
        while stampede_cache.get(current.__cache_key__())[0] == 1:
            assert time.monotonic() < deadline, "no early recomputation happened"
            time.sleep(0.005)
        assert _run_in_thread(current) >= 2

    def test_stampede_beta_zero_never_recomputes_early(self, stampede_cache: cachekit.Cache) -> None:
        """``beta=0`` turns early recomputation off."""
        calls: list[int] = []

        def count_calls() -> int:
            calls.append(1)
            return len(calls)

        memoized = cachekit.memoize_stampede(stampede_cache, 60, beta=0)(count_calls)
        assert [memoized() for _ in range(20)] == [1] * 20

    def test_stampede_a_failing_early_recomputation_is_logged_and_keeps_the_result(
        self, stampede_cache: cachekit.Cache, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An exception in the background recomputation is logged; the current result stays."""
        calls = itertools.count()

        @cachekit.memoize_stampede(stampede_cache, 60, beta=1e12)
        def fragile() -> str:
            time.sleep(0.01)
            if next(calls):
                raise RuntimeError("recomputation failed")
            return "first"

        with caplog.at_level(logging.ERROR, logger="cachekit"):
            assert fragile() == "first"
            assert fragile() == "first"
            deadline = time.monotonic() + _WAIT
            while not any("early failed" in record.getMessage() for record in caplog.records):
                assert time.monotonic() < deadline, "the failure was not logged"
                time.sleep(0.005)
        assert stampede_cache.get(fragile.__cache_key__())[0] == "first"

    def test_stampede_invalid_arguments_are_refused_when_decorating(self, stampede_cache: cachekit.Cache) -> None:
        """A callable name (decorator used without arguments), a bad expire or a bad beta raise at once."""
        anything: Any = cachekit.memoize_stampede
        with pytest.raises(TypeError, match="name cannot be callable"):
            anything(stampede_cache, 60, len)
        with pytest.raises(ValueError, match="expire"):
            cachekit.memoize_stampede(stampede_cache, -1)
        with pytest.raises(ValueError, match="beta"):
            cachekit.memoize_stampede(stampede_cache, 60, beta=-1)

    def test_stampede_eight_processes_missing_at_once_compute_once(self, live_cache: cachekit.Cache) -> None:
        """Eight processes asking memoize_stampede for a missing result at the same moment: it is computed
        once, and every process gets it."""
        workers = 8
        with _spawn_pool(workers) as pool:
            pending = [
                pool.apply_async(call_stampede, (live_cache.directory, self.store, workers)) for _ in range(workers)
            ]
            results = [result.get(_WAIT) for result in pending]
        assert results == [42] * workers
        assert live_cache.get("computations") == 1

    def test_stampede_a_computation_of_a_killed_process_is_taken_over(self, live_cache: cachekit.Cache) -> None:
        """A process killed while computing a memoize_stampede result does not leave the others waiting
        until ``expire``: the next caller sees the computing process is gone and computes."""
        child = _spawn_process(compute_forever, live_cache.directory, self.store)
        try:
            _wait_for_key(live_cache, "computing", child)
        finally:
            _kill(child)
        never_done = cachekit.memoize_stampede(live_cache, 60, name="never_done")(lambda number: number + 1)
        assert _run_in_thread(lambda: never_done(1)) == 2


class RecipesContract(
    # pytest collects the last base class first: this order runs the locks first,
    # then Averager, throttle and memoize_stampede.
    _OtherRecipesContract,
    _LockRecipesContract,
):
    """python-diskcache's recipes on the store under test: ``Lock``, ``RLock``, ``BoundedSemaphore``,
    ``barrier``, ``Averager``, ``throttle`` and ``memoize_stampede``, across threads and processes."""
