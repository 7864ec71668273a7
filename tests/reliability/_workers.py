"""Bodies of the processes the reliability scenarios start, and the parent's helpers around them.

Spawned processes import this module by name (``tests/reliability`` is on
``sys.path`` while pytest runs, and ``spawn`` hands ``sys.path`` to its
children), so it imports neither pytest nor a test module.

Two conventions run through it:

- **self-checking values**: :func:`make_value` ends every value with a digest
  of the rest, which starts with the key, so :func:`value_problem` tells a torn,
  foreign or truncated value from a good one without knowing what was written;
- **acknowledgement logs**: a writer appends one line to its own file before a
  write (the intent) and one after the call returned (the acknowledgement),
  each with a single ``write()`` on an ``O_APPEND`` descriptor.  A line is in
  the kernel once ``write()`` returns, so it survives ``kill -9`` of the writer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cachekit
from cachekit.plugins import Order

#: Seconds any wait inside a worker may last (well under pytest-timeout's 120 s).
WAIT = 30.0
#: The smallest payload kept in a value file (``disk_min_file_size``'s default).
LARGE = 32 * 1024
_DIGEST = 16


# -- values -----------------------------------------------------------------------------------------
def make_value(key: str, label: str, size: int, rng: random.Random) -> bytes:
    """A value of ``size`` bytes or a few more that names ``key`` and the writer ``label``, and ends
    with a digest of everything before it."""
    body = f"{key}|{label}|".encode()
    body += rng.randbytes(max(0, size - len(body) - _DIGEST))
    return body + hashlib.blake2b(body, digest_size=_DIGEST).digest()


def value_problem(key: str, value: object) -> str | None:
    """Why ``value`` is not an intact value made by :func:`make_value` for ``key``, or ``None`` if it is."""
    if not isinstance(value, bytes):
        return f"{key!r} holds a {type(value).__name__}, not bytes"
    body, mark = value[:-_DIGEST], value[-_DIGEST:]
    if hashlib.blake2b(body, digest_size=_DIGEST).digest() != mark:
        return f"{key!r} holds a torn or damaged value of {len(value)} bytes"
    if not body.startswith(f"{key}|".encode()):
        return f"{key!r} holds the value of another key ({body[:40]!r})"
    return None


def digest(value: bytes) -> str:
    """A short digest naming one value in an acknowledgement log."""
    return hashlib.blake2b(value, digest_size=10).hexdigest()


def value_size(rng: random.Random, large_share: float = 0.2) -> int:
    """A payload size: ``large_share`` of them at least :data:`LARGE` (a value file), the rest small."""
    if rng.random() < large_share:
        return rng.randint(LARGE, 3 * LARGE)
    return rng.randint(20, 2000)


class AckLog:
    """One writer's append-only log of intents and acknowledgements."""

    def __init__(self, path: str) -> None:
        self._descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def line(self, *fields: str) -> None:
        os.write(self._descriptor, (" ".join(fields) + "\n").encode())

    def close(self) -> None:
        os.close(self._descriptor)


def read_log(path: Path) -> list[list[str]]:
    """The complete lines of a log, split into fields (a line cut by a kill is dropped)."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")[:-1]  # whatever follows the last newline was never finished
    return [line.split(" ") for line in lines]


# -- 1. the kill -9 loop -------------------------------------------------------------------------------
def pair_keys(writer: int) -> tuple[str, str]:
    """The two keys a kill-loop writer always writes together, in one transaction."""
    return f"pair{writer}-a", f"pair{writer}-b"


def label_of(value: bytes) -> bytes:
    """The writer's label inside a value made by :func:`make_value`."""
    return value.split(b"|", 2)[1]


def kill_loop_writer(
    directory: str, store: str, settings: dict[str, Any], writer: int, seed: int, keys: int, log_path: str, ready: Any
) -> None:
    """Write forever until killed: ``set`` of keys of its own (rewritten at random), ``incr`` of a
    counter of its own and of one shared by all writers, a read now and then (an LMDB reader slot),
    and now and then a transaction that rewrites both :func:`pair_keys` with values of one label.

    Logs ``S key digest`` before each ``set`` and ``s key digest`` once it returned;
    ``I counter`` / ``i counter`` likewise around each ``incr``.  An exception is
    logged as ``E`` and ends the process with status 3.
    """
    rng = random.Random(seed)
    log = AckLog(log_path)
    try:
        cache = cachekit.Cache(directory, store=store, **settings)
        ready.set()
        step = 0
        while True:
            key = f"k{writer}-{rng.randrange(keys)}"
            value = make_value(key, f"w{writer}.{seed}.{step}", value_size(rng), rng)
            mark = digest(value)
            log.line("S", key, mark)
            cache.set(key, value)
            log.line("s", key, mark)
            if step % 2 == 0:
                counter = f"counter-{writer}" if step % 4 else "counter-shared"
                log.line("I", counter)
                cache.incr(counter)
                log.line("i", counter)
            if step % 5 == 0:
                cache.get(f"k{writer}-{rng.randrange(keys)}")
            if step % 7 == 3:  # two keys in one transaction: both or neither
                label = f"w{writer}.{seed}.{step}"
                pair = [(key, make_value(key, label, value_size(rng), rng)) for key in pair_keys(writer)]
                for key, value in pair:
                    log.line("S", key, digest(value))
                with cache.transact():
                    for key, value in pair:
                        cache.set(key, value)
                for key, value in pair:
                    log.line("s", key, digest(value))
            step += 1
    except BaseException as error:
        log.line("E", repr(f"{type(error).__name__}: {error}"))
        os._exit(3)


# -- 2. contention -------------------------------------------------------------------------------------------
def contention_worker(
    directory: str,
    store: str,
    worker: int,
    threads: int,
    steps: int,
    hot_keys: int,
    once_keys: int,
    start: Any,
    result_path: str,
    seconds: float = WAIT * 2,
) -> None:
    """One process of the contention scenario: ``threads`` threads that each, ``steps`` times,
    ``incr`` a shared counter, race to ``add`` the ``once-*`` keys, and write, read and delete
    self-checking values (small and file-sized) on a few hot keys.

    Threads 0-2 share one cache object; thread 3 (and up) opens its own.
    Writes use ``retry=False``: a ``Timeout`` is counted (and the write not
    acknowledged); any other exception, and any torn or foreign value read,
    is recorded.  The outcome goes to ``result_path`` as JSON; a thread still
    running after ``seconds`` is reported as hung.
    """
    shared = cachekit.Cache(directory, store=store, timeout=10)
    lock = threading.Lock()
    outcome: dict[str, Any] = {"increments": 0, "wins": [], "timeouts": 0, "errors": [], "torn": [], "reads": 0}

    def run(thread: int) -> None:
        label = f"{worker}.{thread}"
        rng = random.Random(label)
        cache = shared if thread < 3 else cachekit.Cache(directory, store=store, timeout=10)
        order = list(range(once_keys))
        rng.shuffle(order)
        increments = timeouts = reads = 0
        wins: list[str] = []
        torn: list[str] = []
        try:
            start.wait(WAIT)
            for step in range(steps):
                try:
                    cache.incr("counter")
                    increments += 1
                    if step < once_keys:
                        key = f"once-{order[step]}"
                        if cache.add(key, label):
                            wins.append(key)
                    key = f"hot-{rng.randrange(hot_keys)}"
                    action = rng.random()
                    if action < 0.45:
                        cache.set(key, make_value(key, label, value_size(rng), rng))
                    elif action < 0.5:
                        cache.delete(key)
                    else:
                        value = cache.get(key)
                        reads += 1
                        if value is not None:
                            problem = value_problem(key, value)
                            if problem:
                                torn.append(problem)
                    if step % 10 == 0:
                        key = f"once-{rng.randrange(once_keys)}"
                        value = cache.get(key)
                        if value is not None and not (isinstance(value, str) and value.count(".") == 1):
                            torn.append(f"{key!r} holds {value!r}, not a thread's label")
                except cachekit.Timeout:
                    timeouts += 1
        except BaseException as error:
            with lock:
                outcome["errors"].append(f"thread {label}: {type(error).__name__}: {error}")
        finally:
            if cache is not shared:
                cache.close()
        with lock:
            outcome["increments"] += increments
            outcome["timeouts"] += timeouts
            outcome["reads"] += reads
            outcome["wins"].extend(wins)
            outcome["torn"].extend(torn)

    pool = [threading.Thread(target=run, args=(thread,)) for thread in range(threads)]
    for thread in pool:
        thread.start()
    deadline = time.monotonic() + seconds
    for thread in pool:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            outcome["errors"].append(f"a thread of process {worker} did not finish within {seconds} s: it hung")
    shared.close()
    Path(result_path).write_text(json.dumps(outcome))


def first_open_worker(directory: str, store: str, worker: int, threads: int, start: Any, result_path: str) -> None:
    """Many threads of this process open the same (new) directory at the moment all processes
    pass ``start``; each writes one key and then reads the keys of every thread of this process
    (the parent checks those of all processes afterwards)."""
    outcome: dict[str, Any] = {"errors": []}
    outcome["errors"] = open_together(directory, store, f"p{worker}", threads, start.wait)
    Path(result_path).write_text(json.dumps(outcome))


def open_together(directory: str, store: str, label: str, threads: int, before: Callable[[float], object]) -> list[str]:
    """``threads`` threads each open a cache object on ``directory`` at the same moment (after
    ``before(timeout)`` in one of them), write ``label-<thread>``, wait for each other and read
    every key they wrote.  Return the errors (empty when all went well)."""
    errors: list[str] = []
    lock = threading.Lock()
    opened = threading.Barrier(threads)
    written = threading.Barrier(threads)
    with contextlib.suppress(threading.BrokenBarrierError):
        before(WAIT)

    def run(thread: int) -> None:
        cache: cachekit.Cache | None = None
        try:
            opened.wait(WAIT)
            cache = cachekit.Cache(directory, store=store)
            cache.set(f"{label}-{thread}", thread)
            written.wait(WAIT)
            missing = [index for index in range(threads) if cache.get(f"{label}-{index}") != index]
            if missing:
                raise AssertionError(f"sees no write of threads {missing}")
        except BaseException as error:
            with lock:
                errors.append(f"{label}-{thread}: {type(error).__name__}: {error}")
            opened.abort()
            written.abort()
        finally:
            if cache is not None:
                cache.close()

    pool = [threading.Thread(target=run, args=(thread,)) for thread in range(threads)]
    for thread in pool:
        thread.start()
    deadline = time.monotonic() + WAIT * 2
    for thread in pool:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            errors.append(f"a thread of {label} did not finish: it hung")
    return errors


# -- 3. fork and multiprocessing -------------------------------------------------------------------------
def write_through_pickled(cache: cachekit.Cache, index: int) -> tuple[int, str | None, str]:
    """Run in a child that received the cache object itself: read what the parent wrote, write a
    small and a file-sized value of its own; return ``(pid, problem with the parent's value, digest)``."""
    rng = random.Random(index)
    try:
        problem = value_problem("from parent", cache.get("from parent"))
        key = f"child-{index}"
        value = make_value(key, str(os.getpid()), LARGE + 100 * index, rng)
        cache.set(key, value)
        cache.set(f"small-{index}", os.getpid())
        cache.incr("children")
        return os.getpid(), problem, digest(value)
    finally:
        cache.close()


# -- 5. LMDB map growth and its ceiling ---------------------------------------------------------------------
def map_writer(
    directory: str, worker: int, count: int, settings: dict[str, Any], log_path: str, start: Any, large_share: float
) -> None:
    """Write ``count`` self-checking values of keys of its own and ``incr`` a shared counter, logging
    intents and acknowledgements; stop at the first ``StorageFull`` (logged ``F``), log any other error ``E``."""
    rng = random.Random(worker)
    log = AckLog(log_path)
    cache = cachekit.Cache(directory, store="lmdb", **settings)
    try:
        start.wait(WAIT)
        for index in range(count):
            key = f"w{worker}-{index}"
            value = make_value(key, str(worker), value_size(rng, large_share), rng)
            mark = digest(value)
            log.line("S", key, mark)
            cache.set(key, value, retry=True)
            log.line("s", key, mark)
            if index % 4 == 0:
                log.line("I", "counter")
                cache.incr("counter", retry=True)
                log.line("i", "counter")
    except cachekit.StorageFull as error:
        log.line("F", repr(str(error)))
    except BaseException as error:
        log.line("E", repr(f"{type(error).__name__}: {error}"))
    finally:
        cache.close()
        log.close()


def watch(
    directory: str,
    store: str,
    settings: dict[str, Any],
    keys: list[str],
    seconds: float,
    stop_path: str,
    result_path: str,
    ready: Any = None,
) -> None:
    """Read ``keys`` at random until ``stop_path`` exists (at most ``seconds``), with a cache opened
    before the others write (``ready`` is set once it is); every value found must be intact.
    Writes the outcome as JSON.

    It keeps the directory open meanwhile, as a long-lived application would: on LMDB the
    table of readers then outlives the processes killed beside it.
    """
    rng = random.Random(-1)
    outcome: dict[str, Any] = {"reads": 0, "found": 0, "problems": []}
    cache = cachekit.Cache(directory, store=store, **settings)
    deadline = time.monotonic() + seconds
    try:
        cache.get(keys[0])  # the environment is open, at the map size of this moment
        if ready is not None:
            ready.set()
        while not os.path.exists(stop_path) and time.monotonic() < deadline:
            key = rng.choice(keys)
            value = cache.get(key)
            outcome["reads"] += 1
            if value is not None:
                outcome["found"] += 1
                problem = value_problem(key, value)
                if problem:
                    outcome["problems"].append(problem)
            if outcome["reads"] % 4 == 0:
                time.sleep(0.002)  # leave the CPUs to the writers
    except BaseException as error:
        outcome["problems"].append(f"{type(error).__name__}: {error}")
    finally:
        cache.close()
    Path(result_path).write_text(json.dumps(outcome))


# -- the parent's side ---------------------------------------------------------------------------------------
def finish(processes: list[Any], timeout: float) -> list[str]:
    """Wait for ``processes`` until a shared deadline; kill (and report) those still running."""
    deadline = time.monotonic() + timeout
    hung: list[str] = []
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            hung.append(f"process {process.pid} did not finish within {timeout} seconds: it hung")
            process.kill()
            process.join(WAIT)
    return hung


@contextlib.contextmanager
def cleaned_up(processes: list[Any]) -> Iterator[list[Any]]:
    """Kill every process of ``processes`` still alive when the block ends, however it ends."""
    try:
        yield processes
    finally:
        for process in processes:
            if process.pid is not None and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.join(WAIT)


@dataclasses.dataclass
class Model:
    """What the acknowledgement logs allow the cache to hold."""

    values: dict[str, set[str | None]] = dataclasses.field(default_factory=dict)
    """Per key, the digests it may hold: the last acknowledged one, and any written after it but not acknowledged
    (``None``: absent)."""
    counters: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    """Per counter, ``[acknowledged, acknowledged + in flight]`` increments."""
    acknowledged: int = 0
    increments: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    storage_full: list[str] = dataclasses.field(default_factory=list)

    def absorb(self, lines: list[list[str]]) -> None:
        """Take in one writer's log, in its order."""
        for fields in lines:
            kind = fields[0]
            if kind == "S":
                self.values.setdefault(fields[1], {None}).add(fields[2])
            elif kind == "s":
                self.values[fields[1]] = {fields[2]}
                self.acknowledged += 1
            elif kind == "I":
                self.counters.setdefault(fields[1], [0, 0])[1] += 1
            elif kind == "i":
                self.counters[fields[1]][0] += 1
                self.increments += 1
            elif kind == "F":
                self.storage_full.append(" ".join(fields[1:]))
            elif kind == "E":
                self.errors.append(" ".join(fields[1:]))

    def compare(self, cache: cachekit.Cache) -> tuple[list[str], int]:
        """Read every key and counter back; return the problems and how many acknowledged writes were lost.

        What is found narrows the model: a write in flight at a kill either
        committed or not, and from now on the cache must keep what it showed.
        """
        problems: list[str] = []
        lost = 0
        for key, allowed in self.values.items():
            value = cache.get(key)
            found = None if value is None else digest(value)
            if found not in allowed:
                lost += 1
                problems.append(f"{key!r} holds {found}; the log allows {sorted(map(str, allowed))}")
                continue
            self.values[key] = {found}
            problem = None if value is None else value_problem(key, value)
            if problem:
                problems.append(problem)
        for counter, (low, high) in self.counters.items():
            count = cache.get(counter, 0)
            if not low <= count <= high:
                problems.append(f"{counter} is {count}: {low} increments acknowledged, at most {high} made")
            else:
                self.counters[counter] = [count, count]
        return problems, lost


def run_kill_round(
    directory: Path,
    store: str,
    number: int,
    writers: int,
    keys: int,
    logs: Path,
    rng: random.Random,
    settings: dict[str, Any] | None = None,
) -> list[str]:
    """One round of the kill loop: start ``writers`` writers, ``SIGKILL`` each at a random moment
    once all have opened the cache, and reap them; return the problems (a writer that did not
    start, hung or failed before its kill).  Their logs are ``logs/<number>-<writer>``."""
    context = multiprocessing.get_context("spawn")
    problems: list[str] = []
    with cleaned_up([]) as processes:
        events = []
        for writer in range(writers):
            ready = context.Event()
            log = str(logs / f"{number}-{writer}")
            process = context.Process(
                target=kill_loop_writer,
                args=(str(directory), store, settings or {}, writer, number * 100 + writer, keys, log, ready),
            )
            process.start()
            processes.append(process)
            events.append(ready)
        started = time.monotonic()
        for writer, ready in enumerate(events):
            if not ready.wait(max(0.0, started + WAIT - time.monotonic())):
                problems.append(f"writer {writer} did not open the cache within {WAIT} s")
        begin = time.monotonic()
        for moment, process in sorted((rng.uniform(0.05, 0.3), process) for process in processes):
            time.sleep(max(0.0, begin + moment - time.monotonic()))
            process.kill()
        problems += finish(processes, WAIT)
        for writer, process in enumerate(processes):
            if process.exitcode != -signal.SIGKILL:
                problems.append(f"writer {writer} ended with status {process.exitcode} before it was killed")
    return problems


def unreferenced_value_files(cache: cachekit.Cache) -> set[str]:
    """Files under ``values/`` that no entry references, as names relative to the cache directory."""
    with cache.store.read():
        referenced = {entry.filename for entry in cache.store.scan(Order.INSERTION) if entry.filename}
    root = Path(cache.directory)
    files = {path.relative_to(root).as_posix() for path in (root / "values").rglob("*") if path.is_file()}
    return files - referenced


def stale_readers(cache: cachekit.Cache) -> list[str]:
    """LMDB reader slots of processes that no longer exist (always none on other stores)."""
    if cache.store_name != "lmdb":
        return []
    env = cache.store._shared.open_handles().env  # type: ignore[attr-defined]
    stale = []
    for line in env.readers().splitlines()[1:]:
        fields = line.split()
        if fields and fields[0].isdigit():
            try:
                os.kill(int(fields[0]), 0)
            except ProcessLookupError:
                stale.append(line.strip())
    return stale
