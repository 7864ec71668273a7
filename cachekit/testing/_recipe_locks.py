"""The recipes that admit one caller (or a few) at a time: ``Lock``, ``RLock``, ``BoundedSemaphore``
and ``barrier``, across threads and processes."""

from __future__ import annotations

import itertools
import os
import pickle
import threading
import time
from typing import Any

import pytest

import cachekit

from ._collection_workers import contend_for_lock, hold_lock_forever, hold_semaphore
from ._recipe_support import _kill, _RecipeHarness, _spawn_pool, _spawn_process, _start_thread, _wait_for_key
from ._support import _WAIT, FakeClock, _run_in_thread


class _LockRecipesContract(_RecipeHarness):
    """Part of :class:`RecipesContract`: ``Lock``, ``RLock``, ``BoundedSemaphore`` and ``barrier``."""

    # -- Lock ----------------------------------------------------------------------------------
    def test_lock_acquire_release_and_locked(self, live_cache: cachekit.Cache) -> None:
        """A lock is held between acquire and release, and ``with`` does both."""
        lock = cachekit.Lock(live_cache, "lock")
        assert not lock.locked()
        lock.acquire()
        assert lock.locked()
        lock.release()
        assert not lock.locked()
        with lock as bound:
            assert bound is None  # as in python-diskcache
            assert cachekit.Lock(live_cache, "lock").locked()
        assert not lock.locked()

    def test_lock_entry_records_the_holder(self, live_cache: cachekit.Cache) -> None:
        """The lock's entry names the holding process and thread, plus a token of its own."""
        lock = cachekit.Lock(live_cache, "lock")
        with lock:
            holder = live_cache.get("lock")
        prefix = f"{os.getpid()}-{threading.get_ident()}-"
        assert holder.startswith(prefix)
        assert len(holder) > len(prefix) + 16
        with lock:
            assert live_cache.get("lock") != holder  # a new token for each acquisition

    def test_lock_a_second_thread_waits_for_the_release(self, live_cache: cachekit.Cache) -> None:
        """While the lock is held, another thread's acquire blocks; the release lets it in."""
        lock = cachekit.Lock(live_cache, "lock")
        lock.acquire()
        thread, outcome = _start_thread(lambda: cachekit.Lock(live_cache, "lock").acquire())
        thread.join(0.05)
        assert thread.is_alive(), "the second acquire did not wait"
        lock.release()
        thread.join(_WAIT)
        assert not thread.is_alive()
        assert outcome == {"result": None}
        assert lock.locked()

    def test_lock_threads_never_overlap(self, live_cache: cachekit.Cache) -> None:
        """Threads going through the lock are inside one at a time."""
        inside = 0
        most = 0
        counter_lock = threading.Lock()

        def work() -> None:
            nonlocal inside, most
            lock = cachekit.Lock(live_cache, "lock")
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
            thread.join(_WAIT)
        assert not any(thread.is_alive() for thread in threads)
        assert most == 1

    def test_lock_expire_frees_the_lock_of_a_holder_that_never_releases(
        self, cache: cachekit.Cache, clock: FakeClock
    ) -> None:
        """With ``expire``, the lock is free again that many seconds after it was taken."""
        cachekit.Lock(cache, "lock", expire=10).acquire()
        clock.advance(9)
        assert cachekit.Lock(cache, "lock").locked()
        clock.advance(2)
        assert not cachekit.Lock(cache, "lock").locked()
        _run_in_thread(cachekit.Lock(cache, "lock", expire=10).acquire)

    def test_lock_a_late_release_leaves_the_new_holder_alone(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """A holder whose lock expired and was taken by another does not release the other's lock."""
        first = cachekit.Lock(cache, "lock", expire=10)
        first.acquire()
        clock.advance(11)
        second = cachekit.Lock(cache, "lock", expire=10)
        _run_in_thread(second.acquire)
        first.release()
        assert second.locked()
        second.release()
        assert not second.locked()

    def test_lock_an_object_that_never_acquired_breaks_the_lock(self, live_cache: cachekit.Cache) -> None:
        """As in python-diskcache, ``release`` on another object for the key frees the lock."""
        cachekit.Lock(live_cache, "lock").acquire()
        cachekit.Lock(live_cache, "lock").release()
        assert not cachekit.Lock(live_cache, "lock").locked()

    def test_lock_releasing_twice_does_not_free_a_later_holder(self, live_cache: cachekit.Cache) -> None:
        """A second release by the same object is a no-op, even when another object holds the lock by then."""
        first = cachekit.Lock(live_cache, "lock")
        first.acquire()
        first.release()
        second = cachekit.Lock(live_cache, "lock")
        second.acquire()
        first.release()
        assert second.locked()

    def test_lock_tag_applies_to_the_entry(self, live_cache: cachekit.Cache) -> None:
        """``tag`` is the tag of the lock's entry, so ``evict(tag)`` breaks the locks of a tag."""
        lock = cachekit.Lock(live_cache, "lock", tag="locks")
        lock.acquire()
        assert live_cache.get("lock", tag=True)[1] == "locks"
        live_cache.evict("locks")
        assert not lock.locked()

    def test_lock_four_processes_never_overlap_inside(self, live_cache: cachekit.Cache) -> None:
        """Four processes taking a Lock in turn: their recorded stays inside never overlap, and a counter
        bumped without any other protection loses no update."""
        workers, rounds = 4, 15
        with _spawn_pool(workers) as pool:
            pending = [
                pool.apply_async(contend_for_lock, (live_cache.directory, self.store, worker, workers, rounds))
                for worker in range(workers)
            ]
            for result in pending:
                result.get(_WAIT)
        intervals = sorted(
            live_cache.get(("interval", worker, round_number))
            for worker in range(workers)
            for round_number in range(rounds)
        )
        assert live_cache.get("counter") == workers * rounds
        for (_, left), (entered, _) in itertools.pairwise(intervals):
            assert left <= entered, "two processes were inside the lock at once"

    def test_lock_held_by_a_killed_process_frees_itself_after_expire(self, live_cache: cachekit.Cache) -> None:
        """A process killed (SIGKILL) while holding a Lock with ``expire=1``: others wait no longer than that."""
        child = _spawn_process(hold_lock_forever, live_cache.directory, self.store, 1.0)
        try:
            acquiring_at = _wait_for_key(live_cache, "acquired after", child)
        finally:
            _kill(child)
        lock = cachekit.Lock(live_cache, "lock", expire=1)
        if time.time() - acquiring_at < 0.9:
            assert lock.locked(), "the lock was free before it expired"
        _run_in_thread(lock.acquire)
        assert time.time() - acquiring_at >= 1.0  # freed by its expiry, not by the kill
        lock.release()
        assert not lock.locked()

    # -- RLock ---------------------------------------------------------------------------------
    def test_rlock_re_entry_is_counted(self, live_cache: cachekit.Cache) -> None:
        """The holding thread acquires again without blocking; the lock is free after as many releases as
        acquires, and one more release raises ``AssertionError``."""
        rlock = cachekit.RLock(live_cache, "rlock")
        outcome: list[bool] = []

        def holder() -> None:
            rlock.acquire()
            rlock.acquire()
            rlock.release()
            outcome.append("rlock" in live_cache)  # still held once
            rlock.release()
            outcome.append("rlock" in live_cache)
            with pytest.raises(AssertionError, match="cannot release un-acquired lock"):
                rlock.release()

        _run_in_thread(holder)
        assert outcome == [True, False]

    def test_rlock_another_thread_waits_until_every_acquire_is_released(self, live_cache: cachekit.Cache) -> None:
        """A second thread gets the lock only after the holder's last release."""
        rlock = cachekit.RLock(live_cache, "rlock")
        with rlock, rlock:
            thread, outcome = _start_thread(cachekit.RLock(live_cache, "rlock").acquire)
            thread.join(0.05)
            assert thread.is_alive(), "another thread re-entered a lock it does not hold"
        thread.join(_WAIT)
        assert outcome == {"result": None}

    def test_rlock_release_by_another_thread_raises(self, live_cache: cachekit.Cache) -> None:
        """Only the holding thread may release: another gets ``AssertionError`` and the lock stays held."""
        rlock = cachekit.RLock(live_cache, "rlock")
        rlock.acquire()
        with pytest.raises(AssertionError, match="cannot release un-acquired lock"):
            _run_in_thread(rlock.release)
        assert "rlock" in live_cache
        rlock.release()
        assert "rlock" not in live_cache

    def test_rlock_expire_lets_another_thread_take_over(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """With ``expire``, another thread takes the lock once it expired, and the former holder no longer
        owns it: its release raises."""
        rlock = cachekit.RLock(cache, "rlock", expire=10)
        rlock.acquire()
        rlock.acquire()
        clock.advance(11)

        def take_over() -> None:
            rlock.acquire()
            rlock.acquire()
            rlock.release()
            rlock.release()

        _run_in_thread(take_over)
        assert "rlock" not in cache
        with pytest.raises(AssertionError, match="cannot release un-acquired lock"):
            rlock.release()

    # -- BoundedSemaphore ----------------------------------------------------------------------
    def test_semaphore_admits_value_holders_and_blocks_the_next(self, live_cache: cachekit.Cache) -> None:
        """``value`` acquires pass; the next one waits until a release."""
        semaphore = cachekit.BoundedSemaphore(live_cache, "semaphore", value=2)
        _run_in_thread(semaphore.acquire)
        _run_in_thread(semaphore.acquire)
        thread, outcome = _start_thread(semaphore.acquire)
        thread.join(0.05)
        assert thread.is_alive(), "a third holder got in"
        semaphore.release()
        thread.join(_WAIT)
        assert outcome == {"result": None}
        semaphore.release()
        semaphore.release()
        assert "semaphore" not in live_cache

    def test_semaphore_release_beyond_the_bound_raises(self, live_cache: cachekit.Cache) -> None:
        """Releasing more often than acquiring raises ``AssertionError``, as in python-diskcache."""
        semaphore = cachekit.BoundedSemaphore(live_cache, "semaphore", value=2)
        with pytest.raises(AssertionError, match="cannot release un-acquired semaphore"):
            semaphore.release()
        with semaphore:
            pass
        with pytest.raises(AssertionError, match="cannot release un-acquired semaphore"):
            semaphore.release()

    def test_semaphore_any_thread_or_object_may_release(self, live_cache: cachekit.Cache) -> None:
        """As with ``threading.BoundedSemaphore``, a place taken in one thread may be given back by another."""
        semaphore = cachekit.BoundedSemaphore(live_cache, "semaphore", value=1)
        semaphore.acquire()
        _run_in_thread(semaphore.release)
        _run_in_thread(semaphore.acquire)
        cachekit.BoundedSemaphore(live_cache, "semaphore", value=1).release()
        assert "semaphore" not in live_cache

    def test_semaphore_an_expired_place_is_given_back(self, live_cache: cachekit.Cache) -> None:
        """With ``expire``, a place frees itself, even while other holders come and go; the holder's
        late release then gives back nothing of the others'."""
        crashed = cachekit.BoundedSemaphore(live_cache, "semaphore", value=2, expire=0.1)
        crashed.acquire()
        other = cachekit.BoundedSemaphore(live_cache, "semaphore", value=2)
        other.acquire()
        time.sleep(0.11)
        _run_in_thread(other.acquire)  # the expired place is free
        crashed.release()  # a no-op: its place expired
        assert len(live_cache.get("semaphore")) == 2
        other.release()
        other.release()
        assert "semaphore" not in live_cache

    def test_semaphore_survives_pickling(self, live_cache: cachekit.Cache) -> None:
        """A semaphore can be sent to another process (pickled) and keeps working there."""
        semaphore = cachekit.BoundedSemaphore(live_cache, "semaphore", value=1)
        semaphore.acquire()
        copy = pickle.loads(pickle.dumps(semaphore))
        try:
            copy.release()
            assert "semaphore" not in live_cache
            _run_in_thread(copy.acquire)
            assert "semaphore" in live_cache
        finally:
            copy._cache.close()  # the copy opened a cache object of its own

    def test_semaphore_of_two_never_admits_three_processes(self, live_cache: cachekit.Cache) -> None:
        """Four processes contending for a BoundedSemaphore(value=2): never more than two inside, and two
        do get in together."""
        workers = 4
        with _spawn_pool(workers) as pool:
            pending = [
                pool.apply_async(hold_semaphore, (live_cache.directory, self.store, workers, 20))
                for _ in range(workers)
            ]
            most = max(result.get(_WAIT) for result in pending)
        assert most == 2

    # -- barrier -------------------------------------------------------------------------------
    @pytest.mark.parametrize("lock_factory", [cachekit.Lock, cachekit.RLock, cachekit.BoundedSemaphore])
    def test_barrier_calls_run_one_at_a_time(self, live_cache: cachekit.Cache, lock_factory: Any) -> None:
        """Under a barrier, threads calling the function are inside it one at a time."""
        inside = 0
        most = 0
        counter_lock = threading.Lock()

        @cachekit.barrier(live_cache, lock_factory, expire=60, tag="barriers")
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
            thread.join(_WAIT)
        assert sorted(results) == sorted(list(range(5)) * 4)
        assert most == 1
        assert critical.__name__ == "critical"
        assert critical.__doc__ == "One at a time."

    def test_barrier_makes_the_lock_with_the_name_expire_and_tag(self, live_cache: cachekit.Cache) -> None:
        """``lock_factory(cache, name, expire=..., tag=...)`` makes the lock; ``name`` defaults to the full name."""
        made: list[tuple[Any, ...]] = []

        def factory(cache_: cachekit.Cache, key: str, expire: float | None, tag: Any) -> Any:
            made.append((cache_, key, expire, tag))
            return cachekit.Lock(cache_, key, expire=expire, tag=tag)

        cachekit.barrier(live_cache, factory, name="named", expire=5, tag="t")(len)
        cachekit.barrier(live_cache, factory)(len)
        assert made == [(live_cache, "named", 5, "t"), (live_cache, "builtins.len", None, None)]
