"""What the recipe contracts share: a cache on the real clock, helper threads and spawned processes."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.pool import Pool
from multiprocessing.process import BaseProcess
from typing import Any

import pytest

import cachekit

from ._support import _WAIT, CacheFactory, _Harness


class _RecipeHarness(_Harness):
    """The fixtures of the recipe contracts, on top of those every contract has."""

    @pytest.fixture
    def live_cache(self, make_cache: CacheFactory) -> cachekit.Cache:
        """A cache on the store under test that keeps real time, for recipes that sleep, spawn
        processes or compare with the wall clock (``cache`` runs on the fake clock)."""
        return make_cache("live")

    @pytest.fixture
    def stampede_cache(self, live_cache: cachekit.Cache) -> Iterator[cachekit.Cache]:
        """``live_cache``, for ``memoize_stampede``: the early recomputations its background threads
        make must end before the cache closes (and must not hang)."""
        yield live_cache
        for thread in threading.enumerate():
            if thread.name.startswith("cachekit recompute"):
                thread.join(_WAIT)
                assert not thread.is_alive(), "an early recomputation hung"


def _start_thread(function: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Start ``function`` in a daemon thread; the dict receives its ``"result"`` or ``"error"``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = function()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _spawn_pool(processes: int) -> Pool:
    """A pool of ``processes`` fresh interpreters (``spawn``): the workers must be importable by name."""
    return multiprocessing.get_context("spawn").Pool(processes)


def _spawn_process(target: Callable[..., Any], *args: Any) -> BaseProcess:
    """Start ``target(*args)`` in a fresh interpreter (a daemon process, killed with the test run)."""
    process = multiprocessing.get_context("spawn").Process(target=target, args=args, daemon=True)
    process.start()
    return process


def _wait_for_key(cache: cachekit.Cache, key: str, process: BaseProcess) -> Any:
    """The value of ``key`` once a child process has set it; fail if the child dies or takes too long."""
    deadline = time.monotonic() + _WAIT
    while (value := cache.get(key)) is None:
        if not process.is_alive():
            pytest.fail(f"the child process ended (exit code {process.exitcode}) before setting {key!r}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the child process did not set {key!r} within {_WAIT} seconds")
        time.sleep(0.005)
    return value


def _kill(process: BaseProcess) -> None:
    """Kill ``process`` (SIGKILL) and wait until it is gone."""
    process.kill()
    process.join(_WAIT)
    assert not process.is_alive()
