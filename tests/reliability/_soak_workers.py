"""The processes of the soak scenario (scenario 11), and the parent's measuring helpers.

Spawned processes import this module by name (``tests/reliability`` is on
``sys.path`` while pytest runs, and ``spawn`` hands ``sys.path`` to its
children), so it imports neither pytest nor a test module.

Values carry their own deadline
    Every value names its key and, when it was stored with an ``expire``, the
    absolute time at which cachekit counts it expired.  So a reader needs no
    shared state to tell that a ``get`` returned an expired value: it notes
    ``time.time()`` just before the call, and a value whose deadline is not
    later than that was returned although cachekit's own clock, read during the
    call and no earlier, had passed the deadline.

    The deadline is exact, not an estimate: a worker's cache runs on a
    :class:`PinnedClock`, and before each ``set`` the worker pins it to the
    time it put into the value.  ``set`` reads the clock once, first, and
    stores ``now + expire``; the value holds the same sum of the same floats.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import json
import math
import os
import random
import signal
import struct
import time
import traceback
from pathlib import Path
from typing import Any

import cachekit
from cachekit.plugins import Order

#: Seconds any wait inside a worker may last.
WAIT = 30.0
#: The smallest payload kept in a value file (``disk_min_file_size``'s default).
LARGE = 32 * 1024
#: The largest value a worker writes (bytes, so its payload is exactly this long).
LARGEST_VALUE = 3 * LARGE
#: The longest encoded key: ``b"s"`` (a ``str`` key) and ``"k"`` + the id, at most 6 digits.
LONGEST_KEY = 1 + 1 + 6
#: The largest entry (encoded key + payload) a worker writes: what ``volume()`` counts for it.
LARGEST_ENTRY = LONGEST_KEY + LARGEST_VALUE
#: The database file of each store, which the store maps into memory.
DATABASE_FILES = {"sqlite": "cache.db", "lmdb": "data.mdb"}

# Bytes values: MAGIC, the deadline (a double; NaN for "never expires"), the key's length, the key, padding.
_MAGIC = b"SOAK"
_HEADER = struct.Struct(">4sdH")


# -- values ---------------------------------------------------------------------------------------------------
def make_bytes(key: str, deadline: float | None, size: int, rng: random.Random) -> bytes:
    """A bytes value of ``size`` bytes (or the header's length, if more) naming ``key`` and ``deadline``."""
    name = key.encode()
    head = _HEADER.pack(_MAGIC, math.nan if deadline is None else deadline, len(name)) + name
    return head + rng.randbytes(max(0, size - len(head)))


def make_record(key: str, deadline: float | None, size: int, rng: random.Random) -> dict[str, Any]:
    """A dict value (it goes through the serializer) naming ``key`` and ``deadline``, padded to about ``size``."""
    return {"key": key, "deadline": deadline, "pad": rng.randbytes(max(0, size - 60))}


def read_value(value: object) -> tuple[str, float | None]:
    """The key and deadline a value names; ``ValueError`` if it is not a value of this module."""
    if isinstance(value, dict):
        key, deadline = value.get("key"), value.get("deadline")
        if isinstance(key, str) and (deadline is None or isinstance(deadline, float)):
            return key, deadline
    elif isinstance(value, bytes) and len(value) >= _HEADER.size:
        magic, deadline, length = _HEADER.unpack_from(value)
        name = value[_HEADER.size : _HEADER.size + length]
        if magic == _MAGIC and len(name) == length:
            return name.decode(), None if math.isnan(deadline) else deadline
    raise ValueError(f"not a soak value: {value!r:.80}")


class PinnedClock:
    """``time.time``, except that the first reading after :meth:`pin` returns the pinned time."""

    def __init__(self) -> None:
        self._pinned: float | None = None

    def pin(self, moment: float) -> None:
        self._pinned = moment

    def unpin(self) -> None:
        self._pinned = None

    def __call__(self) -> float:
        pinned, self._pinned = self._pinned, None
        return time.time() if pinned is None else pinned


class Zipf:
    """Key ids ``0 .. count-1`` drawn with probability proportional to ``1 / (id + 1) ** exponent``."""

    def __init__(self, count: int, exponent: float) -> None:
        self._cumulative = list(itertools.accumulate(1.0 / (rank + 1) ** exponent for rank in range(count)))

    def draw(self, rng: random.Random) -> int:
        return min(bisect.bisect_left(self._cumulative, rng.random() * self._cumulative[-1]), len(self._cumulative) - 1)


# -- the process's own resources ---------------------------------------------------------------------------------
def resources(database: str) -> tuple[int, int, int, int]:
    """This process's resident memory (``VmRSS``) and its anonymous part (``RssAnon``), its count of open
    file descriptors, and the allocated bytes of the store's database file ``database``, which both
    stores map into memory: its pages count in ``VmRSS`` (not in ``RssAnon``) as they are touched."""
    fields: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "RssAnon"):
                fields[name] = int(rest.split()[0]) * 1024  # reported in kB
    descriptors = len(os.listdir("/proc/self/fd"))
    try:
        mapped = os.stat(database).st_blocks * 512
    except FileNotFoundError:
        mapped = 0
    return fields["VmRSS"], fields["RssAnon"], descriptors, mapped


# -- the worker -------------------------------------------------------------------------------------------------------
def soak_worker(
    directory: str,
    store: str,
    worker: int,
    seconds: float,
    keys: int,
    sample_every: float,
    start: Any,
    result_path: str,
) -> None:
    """Run the soak workload on ``directory`` for ``seconds``, then write the outcome to ``result_path``.

    Keys are ``k<id>`` with Zipf-distributed ids.  Of the operations, 65 % are
    ``set`` (5 % of those a value file of 32-96 KiB, the rest 40 B to 4 KiB,
    log-uniform; a fifth of the small ones dicts, which go through the
    serializer; 15 % with an ``expire`` of 0.05-3 s), 30 % ``get`` and 5 %
    ``delete``.  Every ``get`` checks what it returned: its own key, and not
    expired before the call began.  ``cachekit.Timeout`` is counted; any other
    exception is recorded and the operation skipped.  Every ``sample_every``
    seconds the process notes ``[moment, *resources()]``.
    """
    rng = random.Random(f"soak-{worker}")
    zipf = Zipf(keys, 1.1)
    clock = PinnedClock()
    outcome: dict[str, Any] = {
        "worker": worker,
        "operations": 0,
        "sets": 0,
        "large_sets": 0,
        "expiring_sets": 0,
        "gets": 0,
        "hits": 0,
        "deletes": 0,
        "timeouts": 0,
        "expired_returned": 0,
        "expired_examples": [],
        "wrong_values": [],
        "errors": [],
        "samples": [],
        "seconds": 0.0,
    }
    errors: list[str] = outcome["errors"]
    database = os.path.join(directory, DATABASE_FILES[store])
    cache: cachekit.Cache | None = None
    try:
        cache = cachekit.Cache(directory, store=store, timeout=10, clock=clock)
        cache.get("k0")  # open the store before the clock starts
        if not start.wait(WAIT):
            raise TimeoutError(f"the other workers did not start within {WAIT} s")
        began = time.monotonic()
        deadline = began + seconds
        next_sample = began
        while True:
            moment = time.monotonic()
            if moment >= next_sample:
                outcome["samples"].append([round(moment - began, 3), *resources(database)])
                next_sample += sample_every
            if moment >= deadline:
                break
            key = f"k{zipf.draw(rng)}"
            action = rng.random()
            try:
                if action < 0.65:
                    _set(cache, clock, key, rng, outcome)
                elif action < 0.95:
                    _get(cache, key, outcome)
                else:
                    cache.delete(key)
                    outcome["deletes"] += 1
            except cachekit.Timeout:
                outcome["timeouts"] += 1
            except Exception as error:
                if len(errors) < 20:
                    errors.append(f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=6)}")
                else:
                    errors[-1] = f"... and more; the last: {type(error).__name__}: {error}"
            outcome["operations"] += 1
        outcome["seconds"] = round(time.monotonic() - began, 3)
    except BaseException as error:
        errors.append(f"worker {worker}: {type(error).__name__}: {error}\n{traceback.format_exc(limit=6)}")
    finally:
        try:
            if cache is not None:
                cache.close()
        except Exception as error:
            errors.append(f"close: {type(error).__name__}: {error}")
        Path(result_path).write_text(json.dumps(outcome))


def _set(cache: cachekit.Cache, clock: PinnedClock, key: str, rng: random.Random, outcome: dict[str, Any]) -> None:
    large = rng.random() < 0.05
    size = rng.randint(LARGE, LARGEST_VALUE) if large else int(math.exp(rng.uniform(math.log(40), math.log(4096))))
    expire = rng.uniform(0.05, 3.0) if rng.random() < 0.15 else None
    now = time.time()
    deadline = None if expire is None else now + expire  # what cachekit computes from the pinned `now`
    if large or rng.random() < 0.8:
        value: Any = make_bytes(key, deadline, size, rng)
    else:
        value = make_record(key, deadline, size, rng)
    clock.pin(now)
    try:
        cache.set(key, value, expire=expire)
    finally:
        clock.unpin()
    outcome["sets"] += 1
    outcome["large_sets"] += large
    outcome["expiring_sets"] += expire is not None


def _get(cache: cachekit.Cache, key: str, outcome: dict[str, Any]) -> None:
    before = time.time()
    value = cache.get(key)
    outcome["gets"] += 1
    if value is None:
        return
    outcome["hits"] += 1
    try:
        named, deadline = read_value(value)
    except ValueError as error:
        if len(outcome["wrong_values"]) < 20:
            outcome["wrong_values"].append(f"{key}: {error}")
        return
    if named != key and len(outcome["wrong_values"]) < 20:
        outcome["wrong_values"].append(f"{key} returned the value of {named}")
    if deadline is not None and deadline <= before:
        outcome["expired_returned"] += 1
        if len(outcome["expired_examples"]) < 20:
            outcome["expired_examples"].append(
                f"{key}: expired at {deadline:.6f}, returned by a get begun at {before:.6f} "
                f"({before - deadline:.6f} s late)"
            )


# -- the parent's side ------------------------------------------------------------------------------------------------
#: The parts of :func:`disk_usage`.
DISK_PARTS = ("store", "map", "log", "values", "directories")


def disk_usage(directory: str) -> dict[str, int]:
    """The bytes the cache directory takes on disk, by part: ``map`` (LMDB's ``data.mdb``), ``log``
    (SQLite's write-ahead log, ``cache.db-wal``), ``store`` (the other files at its top: SQLite's
    ``cache.db`` and ``-shm``, LMDB's lock files, cachekit's own small files), ``values`` (the value
    files) and ``directories``.

    Each figure counts allocated blocks (``st_blocks * 512``, as ``du`` does), not
    apparent sizes: LMDB's ``data.mdb`` is a memory map whose apparent size can
    exceed what it holds.  Files that vanish while they are counted are skipped.
    """
    usage = dict.fromkeys(DISK_PARTS, 0)
    for root, subdirectories, files in os.walk(directory):
        for name in [*files, *subdirectories, *([] if root != directory else ["."])]:
            path = os.path.join(root, name)
            try:
                status = os.lstat(path)
            except FileNotFoundError:
                continue
            if name in subdirectories or name == ".":
                part = "directories"
            elif root != directory:
                part = "values"
            elif name == "cache.db-wal":
                part = "log"
            elif name == "data.mdb":
                part = "map"
            else:
                part = "store"
            usage[part] += status.st_blocks * 512
    return usage


def live_map_bytes(cache: cachekit.Cache) -> int:
    """The bytes of the pages LMDB's B-tree uses in ``data.mdb`` (its branch, leaf and overflow pages,
    and the two meta pages): what the file would take if it held no free pages; 0 on other stores.

    ``data.mdb`` never shrinks, and a page freed by a commit can be reused only once no
    reader's snapshot predates that commit; this is the part of the file that is not free.
    """
    if cache.store_name != "lmdb":
        return 0
    env = cache.store._shared.open_handles().env  # type: ignore[attr-defined]
    stat = env.stat()
    return int((stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"] + 2) * stat["psize"])


def unreferenced_value_files(cache: cachekit.Cache) -> set[str]:
    """Files under ``values/`` that no entry references, as names relative to the cache directory."""
    with cache.store.read():
        referenced = {entry.filename for entry in cache.store.scan(Order.INSERTION) if entry.filename}
    root = Path(cache.directory)
    files = {path.relative_to(root).as_posix() for path in (root / "values").rglob("*") if path.is_file()}
    return files - referenced


def kill_all(processes: list[Any]) -> None:
    """``SIGKILL`` every process of ``processes`` still alive, and reap it."""
    for process in processes:
        if process.pid is not None and process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.join(WAIT)
