"""Bodies of other processes: top-level functions, so that multiprocessing can import them by name."""

from __future__ import annotations

import os
import pickle
import random
import threading
from typing import Any

import cachekit

from ._support import _WAIT


def hammer_worker(
    directory: str, store: str, worker: int, threads: int, increments: int, slots: int, start: Any = None
) -> None:
    """One process of the concurrency test: ``threads`` threads ``incr`` one key and race to ``add`` slots.

    Every thread waits on the barrier ``start`` (if given) so that all begin
    together.  The slots each thread won are saved under ``("wins", worker)``;
    any error makes the process exit with a non-zero code.
    """
    cache = cachekit.Cache(directory, store=store)
    wins: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(thread: int) -> None:
        label = f"{worker}.{thread}"
        order = list(range(slots))
        random.Random(label).shuffle(order)
        try:
            if start is not None:
                start.wait(_WAIT)
            for step in range(max(increments, slots)):
                if step < increments:
                    cache.incr("counter", retry=True)
                if step < slots:
                    slot = f"slot-{order[step]}"
                    if cache.add(slot, label, retry=True):
                        with lock:
                            wins.append((slot, label))
        except BaseException as error:
            errors.append(error)

    pool = [threading.Thread(target=run, args=(thread,)) for thread in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    try:
        if errors:
            raise errors[0]
        cache.set(("wins", worker), wins, retry=True)
    finally:
        cache.close()


def read_through_pickled_cache(pickled: bytes, key: Any, reply_key: Any) -> Any:
    """Run in another process: unpickle a cache, write ``reply_key``, return the value of ``key``.

    The cache arrives as bytes and is unpickled here, so that a failure to
    reopen it is raised to the parent rather than lost inside the pool.
    """
    cache: cachekit.Cache = pickle.loads(pickled)
    try:
        cache[reply_key] = os.getpid()
        return cache[key]
    finally:
        cache.close()
