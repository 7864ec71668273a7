"""Bodies of the spawned processes of the Deque, recipe and FanoutCache contracts.

Top-level functions of a module inside the package, so that a fresh
interpreter (``multiprocessing``'s ``spawn``) imports them by name.  The
workers that report back return their results; the others record what
the test needs in the cache.
"""

from __future__ import annotations

import time
from typing import Any

import cachekit

#: Seconds a worker waits for the others to be ready before it gives up.
_READY_WAIT = 30.0


def _start_together(cache: cachekit.Cache, workers: int) -> None:
    """Wait until every worker has opened the cache, so that they contend from the same moment."""
    cache.incr("ready", retry=True)
    deadline = time.monotonic() + _READY_WAIT
    while cache.get("ready", 0, retry=True) < workers:
        if time.monotonic() > deadline:
            raise TimeoutError("the other workers never got ready")
        time.sleep(0.001)


# -- Deque ---------------------------------------------------------------------------------------
def deque_append_and_pop(directory: str, worker: int, count: int) -> dict[str, Any]:
    """Add ``count`` items ``(worker, n)`` at both ends and in the middle of the deque in ``directory``,
    and take items out from both ends and the middle; return what was added and what was taken.

    The deque reopens the store that created the directory.  An exception is
    returned as text under ``"error"`` rather than raised, so that the parent
    reports it along with what the worker did before it.
    """
    deque = cachekit.Deque(directory=directory)
    added: list[list[int]] = []
    taken: list[Any] = []
    error: str | None = None
    try:
        for number in range(count):
            item = (worker, number)
            step = number % 6
            if step == 0:
                deque.append(item)
            elif step == 1:
                deque.appendleft(item)
            elif step == 2:
                with deque.transact():  # insert needs a middle, which another process may take away
                    deque.insert(len(deque) // 2, item)
            else:
                deque.append(item)
            added.append(list(item))
            try:
                if step == 3:
                    taken.append(deque.popleft())
                elif step == 4:
                    taken.append(deque.pop())
                elif step == 5:
                    with deque.transact():  # read and delete the middle item as one step
                        middle = len(deque) // 2
                        taken.append(deque[middle])
                        del deque[middle]
                    deque.rotate(1)
            except IndexError:
                pass  # the others emptied it meanwhile
    except Exception as exception:
        error = f"{type(exception).__name__}: {exception}"
    finally:
        deque.cache.close()
    return {"added": added, "taken": [list(item) for item in taken], "error": error}


# -- recipes -------------------------------------------------------------------------------------
def contend_for_lock(directory: str, store: str, worker: int, workers: int, rounds: int) -> None:
    """Enter a ``Lock`` ``rounds`` times; inside, bump a counter with an unprotected read then write,
    and record the (monotonic) times of entering and leaving in the cache."""
    cache = cachekit.Cache(directory, store=store)
    try:
        lock = cachekit.Lock(cache, "lock")
        _start_together(cache, workers)
        for round_number in range(rounds):
            with lock:
                entered = time.monotonic()
                count = cache.get("counter", 0, retry=True)
                time.sleep(0.001)  # widen the window in which a second holder would lose an update
                cache.set("counter", count + 1, retry=True)
                left = time.monotonic()
            cache.set(("interval", worker, round_number), (entered, left), retry=True)
    finally:
        cache.close()


def hold_semaphore(directory: str, store: str, workers: int, rounds: int) -> int:
    """Pass a ``BoundedSemaphore(value=2)`` ``rounds`` times; return the most holders seen inside at once."""
    cache = cachekit.Cache(directory, store=store)
    try:
        semaphore = cachekit.BoundedSemaphore(cache, "semaphore", value=2)
        _start_together(cache, workers)
        most = 0
        for _ in range(rounds):
            with semaphore:
                most = max(most, cache.incr("inside", retry=True))
                time.sleep(0.005)
                cache.decr("inside", retry=True)
        return most
    finally:
        cache.close()


def call_throttled(directory: str, store: str, workers: int, count: int, seconds: float, run_for: float) -> list[float]:
    """Call a throttled function for ``run_for`` seconds; return the times at which each call was let through."""
    cache = cachekit.Cache(directory, store=store)
    try:
        last_reading = [0.0]

        def clock() -> float:
            # The throttle reads the clock once per decision, inside its transaction:
            # the reading before a call is the moment that call was let through.
            last_reading[0] = time.time()
            return last_reading[0]

        granted: list[float] = []
        throttled = cachekit.throttle(cache, count, seconds, name="throttled", time_func=clock)(
            lambda: granted.append(last_reading[0])
        )
        _start_together(cache, workers)
        end = time.monotonic() + run_for
        while time.monotonic() < end:
            throttled()
        return granted
    finally:
        cache.close()


def call_stampede(directory: str, store: str, workers: int) -> int:
    """Call a slow ``memoize_stampede`` function at the same moment as the other workers; count the
    computations under ``"computations"``."""
    cache = cachekit.Cache(directory, store=store)
    try:

        def slow_double(number: int) -> int:
            cache.incr("computations", retry=True)
            time.sleep(0.2)
            return number * 2

        double = cachekit.memoize_stampede(cache, 60, name="slow_double")(slow_double)
        _start_together(cache, workers)
        return double(21)
    finally:
        cache.close()


def hold_lock_forever(directory: str, store: str, expire: float) -> None:
    """Take a ``Lock`` with ``expire``, then record in the cache when it started taking it (the lock
    expires no earlier than ``expire`` seconds after that), and never release it (the test kills us)."""
    cache = cachekit.Cache(directory, store=store)
    acquiring_at = time.time()
    cachekit.Lock(cache, "lock", expire=expire).acquire()
    cache.set("acquired after", acquiring_at, retry=True)
    time.sleep(60)


def compute_forever(directory: str, store: str) -> None:
    """Start computing a ``memoize_stampede`` result that never comes (the test kills us)."""
    cache = cachekit.Cache(directory, store=store)

    def never_done(number: int) -> int:
        cache.set("computing", True, retry=True)
        time.sleep(60)
        return number

    cachekit.memoize_stampede(cache, 60, name="never_done")(never_done)(1)


# -- FanoutCache ---------------------------------------------------------------------------------
def hold_shard(directory: str, store: str, ready: Any, release: Any) -> None:
    """Hold a ``transact()`` on the shard in ``directory``: set the event ``ready`` once inside, then
    wait (at most 30 seconds) for the event ``release``."""
    with cachekit.Cache(directory, store=store) as shard, shard.transact():
        ready.set()
        release.wait(30)
