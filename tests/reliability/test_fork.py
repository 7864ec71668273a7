"""Scenario 3: ``fork()`` at bad moments, several cache objects across a fork, and every start method.

What each store promises (``docs/stores.md``, "Fork and multiprocessing" and the SQLite section):

- LMDB: the fork waits (up to 5 s) for the other threads' transactions to end; the child then
  reopens the directory and can read and write.  Past 5 s, every call in the child raises
  ``StoreError`` saying that it cannot be used there.
- SQLite: a child forked while another thread of the parent held a write transaction can read,
  but its writes time out (``cachekit.Timeout``).

Every child runs under a deadline: one that hangs is killed, and the test fails.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import random
import select
import signal
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _workers
import pytest
from conftest import scaled

import cachekit

#: The long mode (CACHEKIT_RELIABILITY=long) runs for minutes: it needs more than pytest-timeout's 120 s.
pytestmark = pytest.mark.timeout(scaled(120, 1800))

#: Seconds a forked child may take before it counts as hung (a SQLite write there times out in 0.25 s).
CHILD_DEADLINE = 10.0
#: How long the LMDB store lets a fork wait for other threads' transactions (docs/stores.md).
FORK_WAIT = 5.0


def fork_and_run(body: Callable[[], object], deadline: float = CHILD_DEADLINE) -> object:
    """Run ``body`` in a forked child and return what it returned (through JSON), or
    ``"<ExceptionName>: <message>"`` if it raised.  A child still running after ``deadline``
    seconds is killed and the test fails: it hung."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads, on Python 3.12+
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, which must never return into pytest
        status = 1
        try:
            os.close(read_end)
            try:
                outcome: object = body()
            except BaseException as error:
                outcome = f"{type(error).__name__}: {error}"
            os.write(write_end, json.dumps(outcome).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    chunks: list[bytes] = []
    end = time.monotonic() + deadline
    try:
        while True:
            readable, _, _ = select.select([read_end], [], [], max(0.0, end - time.monotonic()))
            if not readable:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"the forked child did not finish within {deadline} seconds: it hung")
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    _, status = os.waitpid(pid, 0)  # the pipe closed: the child is exiting
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(b"".join(chunks))


def child_uses(cache: cachekit.Cache, number: int, expected: dict[str, bytes]) -> object:
    """In the child: read what the parent committed, then write and read back a value of its own.

    Returns ``["read", "written"]``, ``["read", "Timeout: ..."]`` when the write timed out, or the
    exception of a read."""
    for key, value in expected.items():
        if cache.get(key) != value:
            return f"{key} read back wrong in the child"
    key = f"child-{number}"
    value = _workers.make_value(key, "child", _workers.LARGE * (number % 2) + 500, random.Random(number))
    try:
        cache.set(key, value)
        cache.incr("children")
    except cachekit.Timeout as error:
        return ["read", f"Timeout: {error}"]
    return ["read", "written" if cache.get(key) == value else "the child's write read back wrong"]


def hold_transaction(
    cache: cachekit.Cache,
    key: str,
    value: bytes,
    entered: threading.Event,
    release: threading.Event,
    pause: float | None,
) -> None:
    """In a thread: write inside ``transact()``, say so, and stay inside for ``pause`` seconds
    (``None``: until ``release``)."""
    with cache.transact():
        cache.set(key, value)
        cache.incr("transactions")
        entered.set()
        if pause is None:
            release.wait(_workers.WAIT)
        else:
            time.sleep(pause)


@pytest.mark.slow
def test_fork_while_another_thread_holds_a_write_transaction(store: str, tmp_path: Path) -> None:
    """Fork 20 times while another thread is inside ``with cache.transact():`` (writing small and
    file-sized values): no child hangs; each child reads, and writes or gets the store's documented
    error; the parent's transactions commit whole, and the cache checks clean."""
    rng = random.Random(1)
    cache = cachekit.Cache(tmp_path / "cache", store=store, timeout=0.25)
    expected = {"before": _workers.make_value("before", "parent", 2 * _workers.LARGE, rng)}
    cache.set("before", expected["before"])
    outcomes: list[str] = []
    forks = scaled(20, 200)
    try:
        for number in range(forks):
            long_hold = number % 20 == 10  # beyond the LMDB store's wait for the fork
            entered, release = threading.Event(), threading.Event()
            key = f"txn-{number}"
            value = _workers.make_value(key, "thread", _workers.value_size(rng, 0.5), rng)
            pause = rng.uniform(0.0, 0.05)

            thread = threading.Thread(
                target=hold_transaction, args=(cache, key, value, entered, release, None if long_hold else pause)
            )
            thread.start()
            try:
                assert entered.wait(_workers.WAIT)
                started = time.monotonic()
                outcome = fork_and_run(functools.partial(child_uses, cache, number, expected))
                waited = time.monotonic() - started
            finally:
                release.set()
                thread.join(_workers.WAIT)
            assert not thread.is_alive(), "the parent's transaction did not end"
            if store == "lmdb" and long_hold:
                assert isinstance(outcome, str), outcome
                assert outcome.startswith("StoreError"), outcome
                assert "cannot be used in the child" in outcome, outcome
                assert waited >= FORK_WAIT - 0.5
                outcomes.append("refused")
            elif store == "lmdb":
                assert outcome == ["read", "written"], outcome
                outcomes.append("written")
            else:
                assert isinstance(outcome, list), outcome
                assert outcome[0] == "read"
                assert outcome[1] == "written" or outcome[1].startswith("Timeout"), outcome
                outcomes.append("written" if outcome[1] == "written" else "timeout")
            assert cache.get(key) == value, "the parent's transaction was damaged by the fork"
            expected[key] = value
            if outcomes[-1] == "written":
                assert _workers.value_problem(f"child-{number}", cache.get(f"child-{number}")) is None
        assert cache.get("transactions") == forks
        assert cache.get("children", 0) == outcomes.count("written")
        assert cache.check() == []
        assert _workers.unreferenced_value_files(cache) == set()
        assert _workers.stale_readers(cache) == []
    finally:
        cache.close()
    print(f"\n{store}: {forks} forks inside another thread's transaction, none hung: {sorted(outcomes)}")


@pytest.mark.slow
def test_two_cache_objects_on_one_directory_across_fork(store: str, tmp_path: Path) -> None:
    """Two cache objects open on one directory, then fork: the child uses both (each sees the other's
    writes, transactions included) while the parent keeps writing through both; afterwards the
    parent sees everything the child wrote (python-diskcache #325)."""
    rng = random.Random(2)
    first = cachekit.Cache(tmp_path / "cache", store=store)
    second = cachekit.Cache(tmp_path / "cache", store=store)
    try:
        a = _workers.make_value("a", "parent", 500, rng)
        b = _workers.make_value("b", "parent", 2 * _workers.LARGE, rng)
        first.set("a", a)
        second.set("b", b)
        rounds = scaled(5, 50)
        for number in range(rounds):

            def body(number: int = number) -> object:
                if (first.get("b"), second.get("a")) != (b, a):
                    return "the parent's values read back wrong in the child"
                one = _workers.make_value(f"c1-{number}", "child", 700, random.Random(number))
                two = _workers.make_value(f"c2-{number}", "child", _workers.LARGE + 7, random.Random(number))
                first.set(f"c1-{number}", one)
                second.set(f"c2-{number}", two)
                with first.transact():
                    first.incr("child increments")
                    seen = second.get(f"c1-{number}") == one
                second.incr("child increments")
                return seen and first.get(f"c2-{number}") == two

            def parent_writes(number: int = number) -> None:
                first.set(f"p1-{number}", b"p" * 100)
                second.set(f"p2-{number}", b"q" * _workers.LARGE)

            outcome = fork_and_run(body)
            writer = threading.Thread(target=parent_writes)
            writer.start()
            writer.join(_workers.WAIT)
            assert not writer.is_alive()
            assert outcome is True, outcome
            for cache in (first, second):
                assert _workers.value_problem(f"c1-{number}", cache.get(f"c1-{number}")) is None
                assert _workers.value_problem(f"c2-{number}", cache.get(f"c2-{number}")) is None
                assert cache.get(f"p2-{number}") == b"q" * _workers.LARGE
        assert first.get("child increments") == second.get("child increments") == 2 * rounds
        assert first.check() == second.check() == []
        assert _workers.unreferenced_value_files(first) == set()
    finally:
        second.close()
        first.close()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads, on Python 3.12+
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_the_cache_object_passed_to_multiprocessing_children(store: str, tmp_path: Path, method: str) -> None:
    """With each start method, the cache object itself goes to pool workers (pickled) and to a
    Process (pickled, or inherited with fork): the children read the parent's value and write their
    own, small and file-sized, and the parent reads them all."""
    rng = random.Random(3)
    cache = cachekit.Cache(tmp_path / "cache", store=store)
    try:
        cache.set("from parent", _workers.make_value("from parent", "parent", 3 * _workers.LARGE, rng))
        context: Any = multiprocessing.get_context(method)
        with context.Pool(2) as pool:
            results = pool.starmap_async(_workers.write_through_pickled, [(cache, index) for index in range(4)])
            try:
                replies = results.get(60)
            except multiprocessing.TimeoutError:
                pytest.fail(f"the {method} pool workers did not finish within 60 seconds: they hung")
        with _workers.cleaned_up([context.Process(target=_workers.write_through_pickled, args=(cache, 4))]) as single:
            single[0].start()
            assert _workers.finish(single, 60) == []
            assert single[0].exitcode == 0
        assert [problem for _, problem, _ in replies] == [None] * 4
        for index, (pid, _, mark) in enumerate(replies):
            assert pid != os.getpid()
            assert cache.get(f"small-{index}") == pid
            value = cache.get(f"child-{index}")
            assert _workers.value_problem(f"child-{index}", value) is None
            assert _workers.digest(value) == mark
        assert _workers.value_problem("child-4", cache.get("child-4")) is None
        assert cache.get("children") == 5
        assert cache.check() == []
        assert _workers.unreferenced_value_files(cache) == set()
        assert _workers.stale_readers(cache) == []
    finally:
        cache.close()
