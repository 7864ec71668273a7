"""Bodies of the spawned processes of ``test_recipes.py``.

They live in their own module, importable by name from a fresh interpreter
(``tests/`` is on ``sys.path`` while pytest runs), so that ``spawn`` can
find them without importing the test module and pytest.
"""

from __future__ import annotations

import time
from typing import Any

import cachekit

#: Seconds a worker waits for the others to be ready before it gives up.
READY_WAIT = 30.0


def _open(directory: str, store: str) -> cachekit.Cache:
    return cachekit.Cache(directory, store=store)


def _start_together(cache: cachekit.Cache, workers: int) -> None:
    """Wait until every worker has opened the cache, so that they contend from the same moment."""
    cache.incr("ready", retry=True)
    deadline = time.monotonic() + READY_WAIT
    while cache.get("ready", 0, retry=True) < workers:
        if time.monotonic() > deadline:
            raise TimeoutError("the other workers never got ready")
        time.sleep(0.001)


def contend_for_lock(directory: str, store: str, worker: int, workers: int, rounds: int) -> None:
    """Enter a ``Lock`` ``rounds`` times; inside, bump a counter with an unprotected read then write,
    and record the (monotonic) times of entering and leaving in the cache."""
    cache = _open(directory, store)
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
    cache = _open(directory, store)
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
    cache = _open(directory, store)
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


def call_stampede(directory: str, store: str, workers: int) -> Any:
    """Call a slow ``memoize_stampede`` function at the same moment as the other workers."""
    cache = _open(directory, store)
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
    cache = _open(directory, store)
    acquiring_at = time.time()
    cachekit.Lock(cache, "lock", expire=expire).acquire()
    cache.set("acquired after", acquiring_at, retry=True)
    time.sleep(60)


def compute_forever(directory: str, store: str) -> None:
    """Start computing a ``memoize_stampede`` result that never comes (the test kills us)."""
    cache = _open(directory, store)

    def never_done(number: int) -> int:
        cache.set("computing", True, retry=True)
        time.sleep(60)
        return number

    cachekit.memoize_stampede(cache, 60, name="never_done")(never_done)(1)
