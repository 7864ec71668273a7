"""Scenario 2: many processes and threads on one directory at once.

- 4 processes x 4 threads hammer one cache (see :func:`_workers.contention_worker`):
  ``incr`` totals are exact, each ``add``-ed key has exactly one winner, no value
  read is torn or foreign, and nothing raises but the documented ``cachekit.Timeout``;
- 50 threads (and 4 processes x 12 threads) open a new directory at the same
  moment: all succeed and all see each other's writes (python-diskcache #85).
"""

from __future__ import annotations

import collections
import json
import multiprocessing
from pathlib import Path
from typing import Any

import _workers
import pytest
from conftest import scaled

import cachekit

#: The long mode (CACHEKIT_RELIABILITY=long) runs for minutes: it needs more than pytest-timeout's 120 s.
pytestmark = pytest.mark.timeout(scaled(120, 1800))


def run_processes(target: Any, arguments: list[tuple[Any, ...]], timeout: float) -> None:
    """Run one spawned process per argument tuple, all at once; fail if one hangs or fails."""
    context = multiprocessing.get_context("spawn")
    with _workers.cleaned_up([context.Process(target=target, args=args) for args in arguments]) as processes:
        for process in processes:
            process.start()
        hung = _workers.finish(processes, timeout)
        assert not hung, hung
        assert [process.exitcode for process in processes] == [0] * len(processes)


@pytest.mark.slow
def test_processes_and_threads_lose_no_update_and_tear_no_value(store: str, tmp_path: Path) -> None:
    """4 processes x 4 threads: the counter equals the acknowledged increments, every once-key was won by
    exactly one thread and holds its label, no read saw a torn value, only Timeout was raised, and the
    cache checks clean afterwards."""
    processes, threads, hot_keys, once_keys = 4, 4, 6, 60
    steps = scaled(500, 5000)
    seconds = scaled(90, 900)
    directory = tmp_path / "cache"
    cachekit.Cache(directory, store=store).close()
    start = multiprocessing.get_context("spawn").Barrier(processes * threads)
    results = [tmp_path / f"result-{worker}.json" for worker in range(processes)]
    run_processes(
        _workers.contention_worker,
        [
            (str(directory), store, worker, threads, steps, hot_keys, once_keys, start, str(results[worker]), seconds)
            for worker in range(processes)
        ],
        timeout=seconds + 10,
    )
    outcomes = [json.loads(path.read_text()) for path in results]
    assert [error for outcome in outcomes for error in outcome["errors"]] == []
    assert [torn for outcome in outcomes for torn in outcome["torn"]] == []
    increments = sum(outcome["increments"] for outcome in outcomes)
    timeouts = sum(outcome["timeouts"] for outcome in outcomes)
    wins = collections.Counter(key for outcome in outcomes for key in outcome["wins"])
    with cachekit.Cache(directory) as cache:
        assert cache.get("counter") == increments
        assert [key for key, count in wins.items() if count > 1] == [], "an add() won more than once"
        if not timeouts:
            assert sorted(wins) == sorted(f"once-{index}" for index in range(once_keys))
        for key in wins:
            label = cache.get(key)
            assert isinstance(label, str)
            assert label.count(".") == 1
        for index in range(hot_keys):
            key = f"hot-{index}"
            value = cache.get(key)
            assert value is None or _workers.value_problem(key, value) is None
        assert cache.check() == []
        assert _workers.unreferenced_value_files(cache) == set()
    print(
        f"\n{store}: {processes}x{threads}: {increments} increments (exact), {len(wins)} keys added once each, "
        f"{sum(outcome['reads'] for outcome in outcomes)} reads checked, {timeouts} timeouts"
    )
    assert increments == processes * threads * steps - timeouts


def test_fifty_threads_open_a_new_directory_at_once(store: str, tmp_path: Path) -> None:
    """50 threads each open a cache object on the same new directory at the same moment: every open and
    write succeeds, and every thread sees every other thread's write."""
    for attempt in range(scaled(5, 50)):
        directory = tmp_path / f"cache-{attempt}"
        errors = _workers.open_together(str(directory), store, "thread", 50, lambda timeout: None)
        assert errors == [], f"attempt {attempt}:\n" + "\n".join(errors[:10])
        with cachekit.Cache(directory) as cache:
            assert cache.store_name == store
            assert len(cache) == 50
            assert cache.check() == []


@pytest.mark.slow
def test_processes_open_a_new_directory_at_once(store: str, tmp_path: Path) -> None:
    """4 processes x 12 threads open the same new directory at the same moment: all succeed, the
    directory gets one store, and every write is there afterwards."""
    processes, threads = 4, 12
    for attempt in range(scaled(2, 10)):
        directory = tmp_path / f"cache-{attempt}"
        start = multiprocessing.get_context("spawn").Barrier(processes)
        results = [tmp_path / f"result-{attempt}-{worker}.json" for worker in range(processes)]
        run_processes(
            _workers.first_open_worker,
            [(str(directory), store, worker, threads, start, str(results[worker])) for worker in range(processes)],
            timeout=60,
        )
        errors = [error for path in results for error in json.loads(path.read_text())["errors"]]
        assert errors == [], f"attempt {attempt}:\n" + "\n".join(errors[:10])
        with cachekit.Cache(directory) as cache:
            assert cache.store_name == store
            assert sorted(cache) == sorted(
                f"p{worker}-{thread}" for worker in range(processes) for thread in range(threads)
            )
            assert cache.check() == []
