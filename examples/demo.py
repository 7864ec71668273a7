"""cachekit in action on its embedded default store (SQLite), in ./demo-cache.

Run it with ``python3 dev.py demo``.  It shows a memoized slow function,
the latency of hits and misses, four processes sharing one cache, and the
statistics the cache keeps.
"""

from __future__ import annotations

import multiprocessing
import shutil
import statistics
import time
from pathlib import Path

import cachekit

DIRECTORY = Path(__file__).resolve().parent.parent / "demo-cache"
CONFIG = f"sqlite://{DIRECTORY}?size_limit=64MiB&statistics=true"


def slow_square(number: int) -> int:
    """Pretend to be expensive."""
    time.sleep(0.2)
    return number * number


def worker(worker_id: int, numbers: list[int], visits: int) -> tuple[int, int]:
    """In a new process: open the shared cache, count visits, square ``numbers``; return how many it computed."""
    with cachekit.open(str(DIRECTORY)) as cache:
        square = cache.memoize(name="slow_square")(slow_square)
        for _ in range(visits):
            cache.incr("visits")
        computed_here = 0
        for number in numbers:
            started = time.perf_counter()
            square(number)
            if time.perf_counter() - started > 0.1:
                computed_here += 1
        return worker_id, computed_here


def microseconds(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e6:8.1f} us"


def main() -> None:
    shutil.rmtree(DIRECTORY, ignore_errors=True)
    print(f"Opening {CONFIG}\n")
    cache = cachekit.open(CONFIG)

    print("1. Memoizing a slow function")
    square = cache.memoize(name="slow_square")(slow_square)
    for attempt in ("first call (miss)", "second call (hit)"):
        started = time.perf_counter()
        result = square(12)
        print(f"   {attempt:<18} slow_square(12) = {result}  in {(time.perf_counter() - started) * 1e3:8.3f} ms")

    print("\n2. Hit and miss latency (median of 2,000 gets, 100-byte values)")
    for index in range(2000):
        cache.set(f"key-{index}", b"x" * 100)
    hits, misses = [], []
    for index in range(2000):
        started = time.perf_counter()
        cache.get(f"key-{index}")
        hits.append(time.perf_counter() - started)
        started = time.perf_counter()
        cache.get(f"absent-{index}")
        misses.append(time.perf_counter() - started)
    print(f"   get hit  {microseconds(hits)}")
    print(f"   get miss {microseconds(misses)}")

    print("\n3. Four processes sharing the cache")
    cache.set("visits", 0)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        first = pool.starmap(worker, [(worker_id, [2 * worker_id, 2 * worker_id + 1], 250) for worker_id in range(4)])
        second = pool.starmap(worker, [(worker_id, list(range(8)), 0) for worker_id in range(4)])
    for (worker_id, computed), (_, computed_later) in zip(sorted(first), sorted(second), strict=True):
        print(
            f"   process {worker_id}: computed its {computed} squares; later asked for all 8: "
            f"computed {computed_later}, read {8 - computed_later} from the shared cache"
        )
    print(f"   visits counted by 4 x 250 concurrent incr calls: {cache['visits']}")

    print("\n4. Statistics")
    hits_count, misses_count = cache.stats()
    print(f"   entries: {len(cache)}, volume: {cache.volume():,} bytes of {cache.size_limit:,}")
    print(f"   this directory's hits: {hits_count:,}, misses: {misses_count:,}")
    print(f"   all counters: {cache.counters()}")
    cache.close()
    print(f"\nThe cache stays in {DIRECTORY}; run the demo again and it starts afresh.")


if __name__ == "__main__":
    main()
