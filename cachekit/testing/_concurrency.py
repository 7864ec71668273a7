"""Threads, processes, ``os.fork()`` and pickling across processes."""

from __future__ import annotations

import functools
import gc
import multiprocessing
import os
import pickle
import time
import warnings

import cachekit

from ._support import _WAIT, CacheFactory, _Harness, _run_in_thread
from ._workers import hammer_worker, read_through_pickled_cache


class ConcurrencyContract(_Harness):
    """Threads, processes, ``os.fork()`` and pickling across processes."""

    def test_threads_and_processes_increment_and_add_exactly(self, make_cache: CacheFactory) -> None:
        """4 processes x 4 threads lose no ``incr`` and each ``add``-ed key has exactly one winner."""
        cache = make_cache()
        processes, threads, increments, slots = 4, 4, 100, 40
        context = multiprocessing.get_context("fork")
        start = context.Barrier(processes * threads)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # fork() with threads, on 3.12+
            workers = [
                context.Process(
                    target=hammer_worker,
                    args=(cache.directory, self.store, worker, threads, increments, slots, start),
                )
                for worker in range(processes)
            ]
            for process in workers:
                process.start()
        deadline = time.monotonic() + _WAIT
        for process in workers:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in workers:
            if process.is_alive():
                process.kill()
                process.join()
        assert [process.exitcode for process in workers] == [0] * processes
        assert cache["counter"] == processes * threads * increments
        wins = [win for worker in range(processes) for win in cache[("wins", worker)]]
        assert sorted(slot for slot, _ in wins) == sorted(f"slot-{index}" for index in range(slots))
        for slot, label in wins:
            assert cache[slot] == label

    def test_many_short_lived_threads_leave_no_open_files_behind(self, cache: cachekit.Cache) -> None:
        """Hundreds of short-lived threads can each use the cache, and what they opened is released."""
        descriptors = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
        cache.set("shared", "value")
        _run_in_thread(lambda: cache.get("shared"))
        gc.collect()
        before = len(os.listdir(descriptors))
        for index in range(300):
            _run_in_thread(functools.partial(cache.set, index, "value"))
            _run_in_thread(functools.partial(cache.get, index))
        gc.collect()
        leaked = len(os.listdir(descriptors)) - before
        assert len(cache) == 301
        assert leaked < 30, f"{leaked} file descriptors stayed open after 600 threads used the cache and ended"

    def test_a_cache_keeps_working_in_both_processes_after_fork(self, make_cache: CacheFactory) -> None:
        """After ``os.fork()`` the child reads and writes the inherited cache, and the parent sees it and goes on."""
        cache = make_cache()
        cache.set("parent", "p")
        cache.incr("count")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # fork() with threads, on 3.12+
            pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which must never return into pytest
            code = 1
            try:
                healthy = (
                    cache.get("parent") == "p"
                    and cache.incr("count") == 2
                    and cache.set("child", "c")
                    and cache.get("child") == "c"
                    and cache.push("from child", prefix="q") is not None
                )
                code = 0 if healthy else 3
            except BaseException:
                code = 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert cache.get("child") == "c"
        assert cache.incr("count") == 3
        assert cache.set("after", "fork") is True
        assert cache.pull(prefix="q")[1] == "from child"
        assert cache["after"] == "fork"

    def test_a_pickled_cache_works_in_another_process(self, make_cache: CacheFactory) -> None:
        """A cache pickled to a fresh process reads what the parent wrote, and the parent reads its reply."""
        cache = make_cache()
        cache.set("from parent", {"payload": [1, 2, 3]})
        context = multiprocessing.get_context("spawn")
        with context.Pool(1) as pool:
            pending = pool.apply_async(read_through_pickled_cache, (pickle.dumps(cache), "from parent", "from child"))
            value = pending.get(_WAIT)
        assert value == {"payload": [1, 2, 3]}
        child = cache.get("from child")
        assert isinstance(child, int)
        assert child != os.getpid()
