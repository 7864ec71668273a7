"""The recipes (python-diskcache's ``diskcache.recipes``): locks, semaphore, averages, throttle, barrier,
and memoization that protects against stampedes, in one process and across processes, on every store."""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import logging
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _recipe_workers  # a sibling module, importable by name in spawned processes
import pytest

import cachekit
from cachekit.testing import FakeClock

STORES = [
    "sqlite",
    pytest.param(
        "lmdb",
        marks=pytest.mark.skipif(importlib.util.find_spec("lmdb") is None, reason="pip install 'cachekit[lmdb]'"),
    ),
]
#: Seconds a blocking call, a thread or a child process may take before the test fails instead of hanging.
WAIT = 10.0


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(tmp_path: Path, store: str) -> Iterator[cachekit.Cache]:
    opened = cachekit.Cache(tmp_path / "cache", store=store)
    yield opened
    opened.close()


@pytest.fixture
def clocked(tmp_path: Path, store: str, clock: FakeClock) -> Iterator[cachekit.Cache]:
    """A cache whose time moves only when the test says so: locks expire without sleeping."""
    opened = cachekit.Cache(tmp_path / "clocked", store=store, clock=clock)
    yield opened
    opened.close()


def within(seconds: float, function: Callable[[], Any]) -> Any:
    """Run ``function`` in a thread and return its result (or raise its exception); fail if it blocks longer."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = function()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still blocked after {seconds} seconds")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def start_thread(function: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Start ``function`` in a daemon thread; the dict receives its result or exception."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = function()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def spawn_pool(processes: int) -> Any:
    return multiprocessing.get_context("spawn").Pool(processes)


def spawn_process(target: Callable[..., Any], *args: Any) -> Any:
    process = multiprocessing.get_context("spawn").Process(target=target, args=args, daemon=True)
    process.start()
    return process


def wait_for_key(cache: cachekit.Cache, key: str, process: Any) -> Any:
    """The value of ``key`` once a child process has set it; fail if the child dies or takes too long."""
    deadline = time.monotonic() + WAIT
    while (value := cache.get(key)) is None:
        if not process.is_alive():
            pytest.fail(f"the child process ended (exit code {process.exitcode}) before setting {key!r}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the child process did not set {key!r} within {WAIT} seconds")
        time.sleep(0.005)
    return value


def kill(process: Any) -> None:
    process.kill()
    process.join(WAIT)
    assert not process.is_alive()


# -- Averager ---------------------------------------------------------------------------------------
class TestAverager:
    def test_running_average_of_what_was_added(self, cache: cachekit.Cache) -> None:
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

    def test_another_object_on_the_same_key_shares_the_average(self, cache: cachekit.Cache) -> None:
        """The total and count live in the cache, so every object (and process) with the key sees them."""
        cachekit.Averager(cache, "shared").add(3)
        cachekit.Averager(cache, "shared").add(5)
        assert cachekit.Averager(cache, "shared").get() == 4

    def test_expire_and_tag_apply_to_the_entry(self, clocked: cachekit.Cache, clock: FakeClock) -> None:
        """``expire`` and ``tag`` are those of the entry holding the total and count."""
        average = cachekit.Averager(clocked, "timed", expire=10, tag="stats")
        average.add(1.0)
        _, expire_time, tag = clocked.get("timed", expire_time=True, tag=True)
        assert (expire_time, tag) == (clock.now + 10, "stats")
        clock.advance(11)
        assert average.get() is None

    def test_concurrent_adds_lose_nothing(self, cache: cachekit.Cache) -> None:
        """Each add is one transaction: adds from several threads all count."""

        def add_many() -> None:
            average = cachekit.Averager(cache, "many")
            for _ in range(25):
                average.add(2.0)

        threads = [threading.Thread(target=add_many) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert tuple(cache.get("many")) == (200.0, 100)


# -- Lock -------------------------------------------------------------------------------------------
class TestLock:
    def test_acquire_release_and_locked(self, cache: cachekit.Cache) -> None:
        """A lock is held between acquire and release, and ``with`` does both."""
        lock = cachekit.Lock(cache, "lock")
        assert not lock.locked()
        lock.acquire()
        assert lock.locked()
        lock.release()
        assert not lock.locked()
        with lock as bound:
            assert bound is None  # as in python-diskcache
            assert cachekit.Lock(cache, "lock").locked()
        assert not lock.locked()

    def test_the_entry_records_the_holder(self, cache: cachekit.Cache) -> None:
        """The lock's entry names the holding process and thread, plus a token of its own."""
        lock = cachekit.Lock(cache, "lock")
        with lock:
            holder = cache.get("lock")
        prefix = f"{os.getpid()}-{threading.get_ident()}-"
        assert holder.startswith(prefix)
        assert len(holder) > len(prefix) + 16
        with lock:
            assert cache.get("lock") != holder  # a new token for each acquisition

    def test_a_second_thread_waits_for_the_release(self, cache: cachekit.Cache) -> None:
        """While the lock is held, another thread's acquire blocks; the release lets it in."""
        lock = cachekit.Lock(cache, "lock")
        lock.acquire()
        thread, outcome = start_thread(lambda: cachekit.Lock(cache, "lock").acquire())
        thread.join(0.05)
        assert thread.is_alive(), "the second acquire did not wait"
        lock.release()
        thread.join(WAIT)
        assert not thread.is_alive()
        assert outcome == {"result": None}
        assert lock.locked()

    def test_threads_never_overlap(self, cache: cachekit.Cache) -> None:
        """Threads going through the lock are inside one at a time."""
        inside = 0
        most = 0
        counter_lock = threading.Lock()

        def work() -> None:
            nonlocal inside, most
            lock = cachekit.Lock(cache, "lock")
            for _ in range(10):
                with lock:
                    with counter_lock:
                        inside += 1
                        most = max(most, inside)
                    time.sleep(0.001)
                    with counter_lock:
                        inside -= 1

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert not any(thread.is_alive() for thread in threads)
        assert most == 1

    def test_expire_frees_the_lock_of_a_holder_that_never_releases(
        self, clocked: cachekit.Cache, clock: FakeClock
    ) -> None:
        """With ``expire``, the lock is free again that many seconds after it was taken."""
        cachekit.Lock(clocked, "lock", expire=10).acquire()
        clock.advance(9)
        assert cachekit.Lock(clocked, "lock").locked()
        clock.advance(2)
        assert not cachekit.Lock(clocked, "lock").locked()
        within(WAIT, cachekit.Lock(clocked, "lock", expire=10).acquire)

    def test_a_late_release_leaves_the_new_holder_alone(self, clocked: cachekit.Cache, clock: FakeClock) -> None:
        """A holder whose lock expired and was taken by another does not release the other's lock."""
        first = cachekit.Lock(clocked, "lock", expire=10)
        first.acquire()
        clock.advance(11)
        second = cachekit.Lock(clocked, "lock", expire=10)
        within(WAIT, second.acquire)
        first.release()
        assert second.locked()
        second.release()
        assert not second.locked()

    def test_an_object_that_never_acquired_breaks_the_lock(self, cache: cachekit.Cache) -> None:
        """As in python-diskcache, ``release`` on another object for the key frees the lock."""
        cachekit.Lock(cache, "lock").acquire()
        cachekit.Lock(cache, "lock").release()
        assert not cachekit.Lock(cache, "lock").locked()

    def test_releasing_twice_does_not_free_a_later_holder(self, cache: cachekit.Cache) -> None:
        """A second release by the same object is a no-op, even when another object holds the lock by then."""
        first = cachekit.Lock(cache, "lock")
        first.acquire()
        first.release()
        second = cachekit.Lock(cache, "lock")
        second.acquire()
        first.release()
        assert second.locked()

    def test_tag_applies_to_the_entry(self, cache: cachekit.Cache) -> None:
        """``tag`` is the tag of the lock's entry, so ``evict(tag)`` breaks the locks of a tag."""
        lock = cachekit.Lock(cache, "lock", tag="locks")
        lock.acquire()
        assert cache.get("lock", tag=True)[1] == "locks"
        cache.evict("locks")
        assert not lock.locked()


# -- RLock ------------------------------------------------------------------------------------------
class TestRLock:
    def test_re_entry_is_counted(self, cache: cachekit.Cache) -> None:
        """The holding thread acquires again without blocking; the lock is free after as many releases as
        acquires, and one more release raises ``AssertionError``."""
        rlock = cachekit.RLock(cache, "rlock")
        outcome: list[Any] = []

        def holder() -> None:
            rlock.acquire()
            rlock.acquire()
            rlock.release()
            outcome.append("rlock" in cache)  # still held once
            rlock.release()
            outcome.append("rlock" in cache)
            with pytest.raises(AssertionError, match="cannot release un-acquired lock"):
                rlock.release()

        within(WAIT, holder)
        assert outcome == [True, False]

    def test_another_thread_waits_until_every_acquire_is_released(self, cache: cachekit.Cache) -> None:
        """A second thread gets the lock only after the holder's last release."""
        rlock = cachekit.RLock(cache, "rlock")
        with rlock, rlock:
            thread, outcome = start_thread(cachekit.RLock(cache, "rlock").acquire)
            thread.join(0.05)
            assert thread.is_alive(), "another thread re-entered a lock it does not hold"
        thread.join(WAIT)
        assert outcome == {"result": None}

    def test_release_by_another_thread_raises(self, cache: cachekit.Cache) -> None:
        """Only the holding thread may release: another gets ``AssertionError`` and the lock stays held."""
        rlock = cachekit.RLock(cache, "rlock")
        rlock.acquire()
        with pytest.raises(AssertionError, match="cannot release un-acquired lock"):
            within(WAIT, rlock.release)
        assert "rlock" in cache
        rlock.release()
        assert "rlock" not in cache

    def test_expire_lets_another_thread_take_over(self, clocked: cachekit.Cache, clock: FakeClock) -> None:
        """With ``expire``, another thread takes the lock once it expired, and the former holder no longer
        owns it: its release raises."""
        rlock = cachekit.RLock(clocked, "rlock", expire=10)
        rlock.acquire()
        rlock.acquire()
        clock.advance(11)
        within(WAIT, lambda: (rlock.acquire(), rlock.acquire(), rlock.release(), rlock.release()))
        assert "rlock" not in clocked
        with pytest.raises(AssertionError, match="cannot release un-acquired lock"):
            rlock.release()


# -- BoundedSemaphore -------------------------------------------------------------------------------
class TestBoundedSemaphore:
    def test_admits_value_holders_and_blocks_the_next(self, cache: cachekit.Cache) -> None:
        """``value`` acquires pass; the next one waits until a release."""
        semaphore = cachekit.BoundedSemaphore(cache, "semaphore", value=2)
        within(WAIT, semaphore.acquire)
        within(WAIT, semaphore.acquire)
        thread, outcome = start_thread(semaphore.acquire)
        thread.join(0.05)
        assert thread.is_alive(), "a third holder got in"
        semaphore.release()
        thread.join(WAIT)
        assert outcome == {"result": None}
        semaphore.release()
        semaphore.release()
        assert "semaphore" not in cache

    def test_release_beyond_the_bound_raises(self, cache: cachekit.Cache) -> None:
        """Releasing more often than acquiring raises ``AssertionError``, as in python-diskcache."""
        semaphore = cachekit.BoundedSemaphore(cache, "semaphore", value=2)
        with pytest.raises(AssertionError, match="cannot release un-acquired semaphore"):
            semaphore.release()
        with semaphore:
            pass
        with pytest.raises(AssertionError, match="cannot release un-acquired semaphore"):
            semaphore.release()

    def test_any_thread_or_object_may_release(self, cache: cachekit.Cache) -> None:
        """As with ``threading.BoundedSemaphore``, a place taken in one thread may be given back by another."""
        semaphore = cachekit.BoundedSemaphore(cache, "semaphore", value=1)
        semaphore.acquire()
        within(WAIT, semaphore.release)
        within(WAIT, semaphore.acquire)
        cachekit.BoundedSemaphore(cache, "semaphore", value=1).release()
        assert "semaphore" not in cache

    def test_an_expired_place_is_given_back(self, cache: cachekit.Cache) -> None:
        """With ``expire``, a place frees itself, even while other holders come and go; the holder's
        late release then gives back nothing of the others'."""
        crashed = cachekit.BoundedSemaphore(cache, "semaphore", value=2, expire=0.1)
        crashed.acquire()
        other = cachekit.BoundedSemaphore(cache, "semaphore", value=2)
        other.acquire()
        time.sleep(0.11)
        within(WAIT, other.acquire)  # the expired place is free
        crashed.release()  # a no-op: its place expired
        assert len(cache.get("semaphore")) == 2
        other.release()
        other.release()
        assert "semaphore" not in cache

    def test_the_semaphore_survives_pickling(self, cache: cachekit.Cache) -> None:
        """A semaphore can be sent to another process (pickled) and keeps working there."""
        import pickle

        semaphore = cachekit.BoundedSemaphore(cache, "semaphore", value=1)
        semaphore.acquire()
        copy = pickle.loads(pickle.dumps(semaphore))
        try:
            copy.release()
            assert "semaphore" not in cache
            within(WAIT, copy.acquire)
            assert "semaphore" in cache
        finally:
            copy._cache.close()  # the copy opened a cache object of its own


# -- throttle ---------------------------------------------------------------------------------------
class TestThrottle:
    @staticmethod
    def fake_time() -> tuple[Callable[[], float], Callable[[float], None], list[float]]:
        now = [1000.0]
        sleeps: list[float] = []

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            now[0] += seconds

        return (lambda: now[0]), sleep, sleeps

    def test_calls_beyond_the_rate_sleep_for_their_turn(self, cache: cachekit.Cache) -> None:
        """``count`` calls pass at once; the next waits for its share of ``seconds`` to pass."""
        time_func, sleep_func, sleeps = self.fake_time()

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

    def test_decorating_again_joins_the_allowance_instead_of_resetting_it(self, cache: cachekit.Cache) -> None:
        """The allowance lives in the cache under ``name``: another decoration (another process) shares it."""
        time_func, sleep_func, sleeps = self.fake_time()
        first = cachekit.throttle(cache, 1, 1, name="api", time_func=time_func, sleep_func=sleep_func)(lambda: 1)
        first()
        second = cachekit.throttle(cache, 1, 1, name="api", time_func=time_func, sleep_func=sleep_func)(lambda: 2)
        assert second() == 2
        assert sleeps == [pytest.approx(1.0)]

    def test_an_expired_allowance_starts_full(self, clocked: cachekit.Cache, clock: FakeClock) -> None:
        """With ``expire``, the allowance's entry expires, and the next call starts from a full allowance."""
        time_func, sleep_func, sleeps = self.fake_time()
        limited = cachekit.throttle(
            clocked, 1, 100, name="api", expire=10, tag="rates", time_func=time_func, sleep_func=sleep_func
        )(lambda: None)
        limited()
        assert clocked.get("api", tag=True)[1] == "rates"
        clock.advance(11)
        limited()
        assert sleeps == []

    @pytest.mark.parametrize(("count", "seconds"), [(0, 1), (1, 0), (-1, 1)])
    def test_count_and_seconds_must_be_positive(self, cache: cachekit.Cache, count: int, seconds: int) -> None:
        """A rate of zero or less is an error when decorating."""
        with pytest.raises(ValueError, match="must be positive"):
            cachekit.throttle(cache, count, seconds)


# -- barrier ----------------------------------------------------------------------------------------
class TestBarrier:
    @pytest.mark.parametrize("lock_factory", [cachekit.Lock, cachekit.RLock, cachekit.BoundedSemaphore])
    def test_calls_run_one_at_a_time(self, cache: cachekit.Cache, lock_factory: Any) -> None:
        """Under a barrier, threads calling the function are inside it one at a time."""
        inside = 0
        most = 0
        counter_lock = threading.Lock()

        @cachekit.barrier(cache, lock_factory, expire=60, tag="barriers")
        def critical(number: int) -> int:
            """One at a time."""
            nonlocal inside, most
            with counter_lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.001)
            with counter_lock:
                inside -= 1
            return number

        results: list[int] = []

        def work() -> None:
            results.extend(critical(number) for number in range(5))

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert sorted(results) == sorted(list(range(5)) * 4)
        assert most == 1
        assert critical.__name__ == "critical"
        assert critical.__doc__ == "One at a time."

    def test_the_lock_is_made_with_the_name_expire_and_tag(self, cache: cachekit.Cache) -> None:
        """``lock_factory(cache, name, expire=..., tag=...)`` makes the lock; ``name`` defaults to the full name."""
        made: list[tuple[Any, ...]] = []

        def factory(cache_: cachekit.Cache, key: str, expire: float | None, tag: Any) -> Any:
            made.append((cache_, key, expire, tag))
            return cachekit.Lock(cache_, key, expire=expire, tag=tag)

        cachekit.barrier(cache, factory, name="named", expire=5, tag="t")(len)
        cachekit.barrier(cache, factory)(len)
        assert made == [(cache, "named", 5, "t"), (cache, "builtins.len", None, None)]


# -- memoize_stampede -------------------------------------------------------------------------------
class Shelf:
    """A module-level class, so that its instances pickle into memoize keys."""

    def __init__(self, items: int) -> None:
        self.items = items

    def total(self, price: int) -> int:
        return self.items * price


class TestMemoizeStampede:
    @pytest.fixture(autouse=True)
    def _recomputations_end_before_the_cache_closes(self, cache: cachekit.Cache) -> Iterator[None]:
        yield
        for thread in threading.enumerate():
            if thread.name.startswith("cachekit recompute"):
                thread.join(WAIT)
                assert not thread.is_alive(), "an early recomputation hung"

    def test_results_are_cached_by_arguments(self, cache: cachekit.Cache) -> None:
        """A result is computed once per arguments, under the key ``__cache_key__`` gives."""
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

    def test_keeps_the_functions_metadata_and_signature(self, cache: cachekit.Cache) -> None:
        """``functools.wraps``: name, docstring, module, qualified name, ``__wrapped__`` and signature."""

        def lookup(user_id: int, *, fresh: bool = False) -> str:
            """Find a user."""
            return f"user {user_id}"

        memoized = cachekit.memoize_stampede(cache, 60)(lookup)
        for attribute in ("__name__", "__doc__", "__module__", "__qualname__", "__annotations__"):
            assert getattr(memoized, attribute) == getattr(lookup, attribute)
        assert memoized.__wrapped__ is lookup  # type: ignore[attr-defined]
        assert inspect.signature(memoized) == inspect.signature(lookup)
        assert memoized(7) == "user 7"
        assert memoized.__cache_key__(7, fresh=True) == (f"{__name__}.{lookup.__qualname__}", 7, None, "fresh", True)

    def test_works_on_methods(self, cache: cachekit.Cache) -> None:
        """A decorated method binds like any method; ``ignore=(0,)`` leaves ``self`` out of the key."""
        calls: list[int] = []

        class Catalog:
            def __init__(self, factor: int) -> None:
                self.factor = factor

            @cachekit.memoize_stampede(cache, 60, name="price", ignore=(0,))
            def price(self, item: int) -> int:
                calls.append(item)
                return item * self.factor

        assert Catalog(2).price(5) == 10
        assert Catalog(3).price(5) == 10  # self is ignored: one result for every instance
        assert calls == [5]
        catalog = Catalog(2)
        assert catalog.price.__cache_key__(catalog, 5) == ("price", 5, None)
        assert inspect.signature(Catalog.price) == inspect.signature(Catalog.price.__wrapped__)  # type: ignore[attr-defined]

    def test_self_is_part_of_the_key_unless_ignored(
        self, cache: cachekit.Cache, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """By default a method's instance is part of the key: equal instances share results, others do not."""
        memoized = cachekit.memoize_stampede(cache, 60)(Shelf.total)
        monkeypatch.setattr(Shelf, "cached_total", memoized, raising=False)
        shelves: list[Any] = [Shelf(2), Shelf(2), Shelf(3)]
        assert [shelf.cached_total(10) for shelf in shelves] == [20, 20, 30]
        assert len(cache) == 2  # the two equal shelves share a result

    def test_ignore_leaves_out_positional_and_keyword_arguments(self, cache: cachekit.Cache) -> None:
        """``ignore`` holds positions and keyword names; the arguments there do not change the key."""
        calls: list[tuple[int, str, bool]] = []

        @cachekit.memoize_stampede(cache, 60, name="report", ignore=(1, "verbose"))
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

    def test_typed_keeps_argument_types_apart(self, cache: cachekit.Cache) -> None:
        """With ``typed=True``, ``f(1)`` and ``f(1.0)`` are computed and cached apart."""
        calls: list[float] = []

        @cachekit.memoize_stampede(cache, 60, typed=True)
        def identity(number: float) -> float:
            calls.append(number)
            return number

        identity(1)
        identity(1.0)
        assert len(calls) == 2

    def test_expire_zero_computes_every_time(self, cache: cachekit.Cache) -> None:
        """``expire=0`` stores nothing: every call computes, and nobody waits for anybody."""
        calls: list[int] = []
        memoized = cachekit.memoize_stampede(cache, 0)(lambda number: calls.append(number) or number)
        assert [memoized(1), memoized(1)] == [1, 1]
        assert calls == [1, 1]
        assert len(cache) == 0

    def test_threads_that_miss_together_compute_once(self, cache: cachekit.Cache) -> None:
        """Eight threads asking for a missing result at once: one computes it, the others wait and get it."""
        calls: list[int] = []
        start = threading.Barrier(8)

        @cachekit.memoize_stampede(cache, 60)
        def slow(number: int) -> int:
            calls.append(number)
            time.sleep(0.1)
            return number + 1

        def ask() -> int:
            start.wait(WAIT)
            return slow(1)

        results = [start_thread(ask) for _ in range(8)]
        for thread, _ in results:
            thread.join(WAIT)
        assert [outcome.get("result") for _, outcome in results] == [2] * 8
        assert calls == [1]

    def test_an_exception_reaches_the_caller_and_frees_the_computation(self, cache: cachekit.Cache) -> None:
        """A computation that raises is not cached, and the next caller computes again without waiting."""
        attempts: list[int] = []

        @cachekit.memoize_stampede(cache, 60)
        def flaky(number: int) -> int:
            attempts.append(number)
            if len(attempts) == 1:
                raise RuntimeError("first attempt fails")
            return number

        with pytest.raises(RuntimeError, match="first attempt fails"):
            flaky(5)
        assert within(WAIT, lambda: flaky(5)) == 5
        assert attempts == [5, 5]
        assert len(cache) == 1  # the result, and no leftover claim

    def test_a_result_near_expiry_is_recomputed_early_in_the_background(self, cache: cachekit.Cache) -> None:
        """With a large ``beta``, a hit triggers a recomputation in a background thread while the caller
        gets the current result at once; the new result replaces it."""
        version = [0]

        @cachekit.memoize_stampede(cache, 60, beta=1e12)  # recomputes on (almost) every hit
        def current() -> int:
            time.sleep(0.01)  # a measurable computing time, which the draw scales
            version[0] += 1
            return version[0]

        assert current() == 1
        assert current() == 1  # the hit answers at once with the current result
        deadline = time.monotonic() + WAIT
        while cache.get(current.__cache_key__())[0] == 1:
            assert time.monotonic() < deadline, "no early recomputation happened"
            time.sleep(0.005)
        assert within(WAIT, current) >= 2

    def test_beta_zero_never_recomputes_early(self, cache: cachekit.Cache) -> None:
        """``beta=0`` turns early recomputation off."""
        calls: list[int] = []
        memoized = cachekit.memoize_stampede(cache, 60, beta=0)(lambda: calls.append(1) or len(calls))
        assert [memoized() for _ in range(20)] == [1] * 20

    def test_a_failing_early_recomputation_is_logged_and_keeps_the_result(
        self, cache: cachekit.Cache, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An exception in the background recomputation is logged; the current result stays."""
        calls = itertools.count()

        @cachekit.memoize_stampede(cache, 60, beta=1e12)
        def fragile() -> str:
            time.sleep(0.01)
            if next(calls):
                raise RuntimeError("recomputation failed")
            return "first"

        with caplog.at_level(logging.ERROR, logger="cachekit"):
            assert fragile() == "first"
            assert fragile() == "first"
            deadline = time.monotonic() + WAIT
            while not any("early failed" in record.getMessage() for record in caplog.records):
                assert time.monotonic() < deadline, "the failure was not logged"
                time.sleep(0.005)
        assert cache.get(fragile.__cache_key__())[0] == "first"

    def test_invalid_arguments_are_refused_when_decorating(self, cache: cachekit.Cache) -> None:
        """A callable name (decorator used without arguments), a bad expire or a bad beta raise at once."""
        anything: Any = cachekit.memoize_stampede
        with pytest.raises(TypeError, match="name cannot be callable"):
            anything(cache, 60, len)
        with pytest.raises(ValueError, match="expire"):
            cachekit.memoize_stampede(cache, -1)
        with pytest.raises(ValueError, match="beta"):
            cachekit.memoize_stampede(cache, 60, beta=-1)


# -- across processes -------------------------------------------------------------------------------
@pytest.mark.slow
class TestAcrossProcesses:
    def test_four_processes_never_overlap_inside_a_lock(self, tmp_path: Path, store: str) -> None:
        """Four processes taking a Lock in turn: their recorded stays inside never overlap, and a counter
        bumped without any other protection loses no update."""
        directory, workers, rounds = str(tmp_path / "cache"), 4, 15
        with cachekit.Cache(directory, store=store) as cache:
            with spawn_pool(workers) as pool:
                pending = [
                    pool.apply_async(_recipe_workers.contend_for_lock, (directory, store, worker, workers, rounds))
                    for worker in range(workers)
                ]
                for result in pending:
                    result.get(60)
            intervals = sorted(
                cache.get(("interval", worker, round_number))
                for worker in range(workers)
                for round_number in range(rounds)
            )
            assert cache.get("counter") == workers * rounds
        for (_, left), (entered, _) in itertools.pairwise(intervals):
            assert left <= entered, "two processes were inside the lock at once"

    def test_a_bounded_semaphore_of_two_never_admits_three(self, tmp_path: Path, store: str) -> None:
        """Four processes contending for a BoundedSemaphore(value=2): never more than two inside, and two
        do get in together."""
        directory, workers = str(tmp_path / "cache"), 4
        with spawn_pool(workers) as pool:
            pending = [
                pool.apply_async(_recipe_workers.hold_semaphore, (directory, store, workers, 20))
                for _ in range(workers)
            ]
            most = max(result.get(60) for result in pending)
        assert most == 2

    def test_throttle_keeps_to_its_rate(self, tmp_path: Path, store: str) -> None:
        """Four processes calling one throttled function as fast as they can: over any stretch of time the
        calls let through are at most ``count`` plus the rate times its length (so at most ``count`` per
        ``seconds`` once the first allowance is spent)."""
        directory, workers, count, seconds = str(tmp_path / "cache"), 4, 5, 0.5
        rate = count / seconds
        with spawn_pool(workers) as pool:
            pending = [
                pool.apply_async(_recipe_workers.call_throttled, (directory, store, workers, count, seconds, 1.0))
                for _ in range(workers)
            ]
            granted = sorted(itertools.chain.from_iterable(result.get(60) for result in pending))
        assert len(granted) > count  # the allowance refilled and was spent again
        for first, last in itertools.combinations(range(len(granted)), 2):
            calls = last - first + 1
            allowed = count + rate * (granted[last] - granted[first])
            assert calls <= allowed + 1e-6, f"{calls} calls in {granted[last] - granted[first]:.3f}s"
        for start in granted:
            in_window = sum(1 for moment in granted if start <= moment < start + seconds)
            assert in_window <= 2 * count

    def test_eight_processes_missing_at_once_compute_once(self, tmp_path: Path, store: str) -> None:
        """Eight processes asking memoize_stampede for a missing result at the same moment: it is computed
        once, and every process gets it."""
        directory, workers = str(tmp_path / "cache"), 8
        with spawn_pool(workers) as pool:
            pending = [
                pool.apply_async(_recipe_workers.call_stampede, (directory, store, workers)) for _ in range(workers)
            ]
            results = [result.get(60) for result in pending]
        assert results == [42] * workers
        with cachekit.Cache(directory, store=store) as cache:
            assert cache.get("computations") == 1

    def test_a_lock_held_by_a_killed_process_frees_itself_after_expire(self, tmp_path: Path, store: str) -> None:
        """A process killed (SIGKILL) while holding a Lock with ``expire=1``: others wait no longer than that."""
        directory = str(tmp_path / "cache")
        with cachekit.Cache(directory, store=store) as cache:
            child = spawn_process(_recipe_workers.hold_lock_forever, directory, store, 1.0)
            try:
                acquiring_at = wait_for_key(cache, "acquired after", child)
            finally:
                kill(child)
            lock = cachekit.Lock(cache, "lock", expire=1)
            if time.time() - acquiring_at < 0.9:
                assert lock.locked(), "the lock was free before it expired"
            within(WAIT, lock.acquire)
            assert time.time() - acquiring_at >= 1.0  # freed by its expiry, not by the kill
            lock.release()
            assert not lock.locked()

    def test_a_computation_of_a_killed_process_is_taken_over(self, tmp_path: Path, store: str) -> None:
        """A process killed while computing a memoize_stampede result does not leave the others waiting
        until ``expire``: the next caller sees the computing process is gone and computes."""
        directory = str(tmp_path / "cache")
        with cachekit.Cache(directory, store=store) as cache:
            child = spawn_process(_recipe_workers.compute_forever, directory, store)
            try:
                wait_for_key(cache, "computing", child)
            finally:
                kill(child)
            never_done = cachekit.memoize_stampede(cache, 60, name="never_done")(lambda number: number + 1)
            assert within(WAIT, lambda: never_done(1)) == 2


def test_recipes_are_exported_with_diskcache_names() -> None:
    """``cachekit`` exports the recipes under python-diskcache's names and signatures."""
    import diskcache

    for name in ("Averager", "Lock", "RLock", "BoundedSemaphore", "throttle", "barrier", "memoize_stampede"):
        assert name in cachekit.__all__
        ours = inspect.signature(getattr(cachekit, name))
        theirs = inspect.signature(getattr(diskcache, name))
        assert list(ours.parameters) == list(theirs.parameters), name
        assert [parameter.default for parameter in ours.parameters.values()] == [
            parameter.default for parameter in theirs.parameters.values()
        ], name


def test_type_checkers_see_the_decorated_signatures(tmp_path: Path) -> None:
    """mypy sees through ``memoize_stampede``, ``throttle`` and ``barrier``: the wrapped signatures,
    on functions and methods alike, and ``__cache_key__``."""
    pytest.importorskip("mypy")
    program = tmp_path / "typed_use.py"
    program.write_text(
        textwrap.dedent(
            """
            import cachekit

            cache = cachekit.Cache()

            class Catalog:
                @cachekit.memoize_stampede(cache, 60)
                def price(self, item: int) -> float:
                    return item * 1.5

                @cachekit.barrier(cache, cachekit.Lock)
                def restock(self, item: int) -> None: ...

            @cachekit.memoize_stampede(cache, 60, ignore=("verbose",))
            def lookup(user: int, *, verbose: bool = False) -> str:
                return str(user)

            @cachekit.throttle(cache, 1, 1)
            def ping(host: str) -> bool:
                return True

            reveal_type(Catalog().price(1))
            reveal_type(lookup(1, verbose=True))
            reveal_type(lookup.__cache_key__(1))
            reveal_type(Catalog().price.__cache_key__(Catalog(), 1))
            reveal_type(ping("localhost"))
            reveal_type(cachekit.Averager(cache, "mean").get())
            Catalog().price("one")
            Catalog().restock("one")
            lookup("one")
            ping(1)
            """
        )
    )
    completed = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", os.devnull, "--no-error-summary", str(program)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line.split(": ", 1)[1] for line in completed.stdout.splitlines()]
    # Older mypy versions spell types "builtins.float" and "Union[float, None]".
    revealed = [
        line.split('"')[1].replace("builtins.", "").replace("Union[float, None]", "float | None")
        for line in lines
        if line.startswith("note: Revealed type")
    ]
    assert revealed == ["float", "str", "tuple[Any, ...]", "tuple[Any, ...]", "bool", "float | None"], completed.stdout
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 4, completed.stdout
    assert all("[arg-type]" in error for error in errors), completed.stdout
