"""Helpers of the fault scenarios (disk full, corrupt files, permissions, hostile values).

Scenarios that could crash or hang the interpreter (a damaged LMDB file, a full
tmpfs, a file size limit, another user's permissions) run in a child process
started by :func:`run_child`: a crash or a hang then fails the test instead of
killing pytest.  The child imports this module by name and runs one of the
functions in :data:`SCENARIOS`, which prints its findings as one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cachekit
from cachekit.plugins import Order

HERE = Path(__file__).resolve().parent
#: Seconds a child scenario may take before it counts as hung.
CHILD_DEADLINE = 60.0
#: The unprivileged user and group the permission scenarios run as when the tests run as root.
NOBODY = 65534
DATABASE = {"sqlite": "cache.db", "lmdb": "data.mdb"}


# -- child processes ---------------------------------------------------------------------------------
class ChildFailed(AssertionError):
    """A child scenario crashed, hung or failed; the message says how."""


def drop_privileges() -> list[str]:
    """The command prefix that runs a program as ``nobody`` (empty when not root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return []
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def unprivileged_reason() -> str | None:
    """Why scenarios cannot run as an unprivileged user here, or ``None`` when they can."""
    if os.geteuid() != 0:
        return None
    prefix = drop_privileges()
    if not prefix:
        return "running as root without setpriv: cannot drop privileges to test permissions"
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import cachekit, _faults"],
        capture_output=True,
        env=_child_environment(),
        check=False,
        timeout=CHILD_DEADLINE,
    )
    if probe.returncode:
        return "this Python, cachekit or the tests are not readable by an unprivileged user (a private venv or copy)"
    return None


def _child_environment() -> dict[str, str]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("COV_CORE")}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH", "")]))
    return environment


def run_child(scenario: str, *arguments: str, unprivileged: bool = False, deadline: float = CHILD_DEADLINE) -> Any:
    """Run ``SCENARIOS[scenario](*arguments)`` in a fresh interpreter and return what it printed (JSON).

    A crash (death by a signal), a hang past ``deadline`` or an exception in the
    child raises :class:`ChildFailed` with the child's output.
    """
    command = [sys.executable, "-c", "import _faults; _faults.main()", scenario, *arguments]
    if unprivileged:
        command = [*drop_privileges(), *command]
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_environment(),
        start_new_session=True,  # its own process group, killed whole on a hang
    )
    try:
        out, err = child.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        out, err = child.communicate()
        raise ChildFailed(
            f"{scenario}{arguments} did not finish within {deadline} s: it hung\n{out[-3000:]}\n{err[-3000:]}"
        ) from None
    if child.returncode < 0:
        name = signal.Signals(-child.returncode).name
        raise ChildFailed(f"{scenario}{arguments} crashed: killed by {name}\n{out[-3000:]}\n{err[-3000:]}")
    if child.returncode:
        raise ChildFailed(f"{scenario}{arguments} failed with exit code {child.returncode}\n{err[-5000:]}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """The child's entry point: ``python -c 'import _faults; _faults.main()' SCENARIO ARGUMENTS...``."""
    result = SCENARIOS[sys.argv[1]](*sys.argv[2:])
    print(json.dumps(result), flush=True)


def outcome(action: Callable[[], object]) -> list[Any]:
    """``["ok", result]`` or ``[exception name, message]``; ``RAW:`` marks a non-cachekit exception."""
    try:
        result = action()
    except cachekit.CachekitError as error:
        return [type(error).__name__, str(error)]
    except KeyError as error:
        return ["KeyError", str(error)]
    except Exception as error:  # reported, and failed by the tests
        return [f"RAW:{type(error).__name__}", str(error)]
    plain = isinstance(result, bool | int | float | str | type(None)) or (
        isinstance(result, list) and all(isinstance(item, str) for item in result)
    )
    return ["ok", result if plain else repr(result)[:200]]


# -- contents --------------------------------------------------------------------------------------
def value_of(index: int, large: bool = False) -> bytes:
    """The value stored under ``key(index)``: small, or large enough for a value file."""
    if large:
        return (b"%08d" % index) * 5000  # 40,000 bytes
    return (b"v%d," % index) * (index % 40 + 1)


def key(index: int) -> str:
    return f"key-{index}"


def fill(cache: cachekit.Cache, count: int, large_every: int = 0) -> None:
    """Store ``count`` deterministic entries (every ``large_every``-th in a value file)."""
    for index in range(count):
        cache.set(key(index), value_of(index, large=bool(large_every) and index % large_every == 0))


def value_files(directory: str | os.PathLike[str]) -> list[str]:
    """Names (relative to the cache directory) of every file under ``values/``."""
    root = Path(directory, "values")
    return sorted(str(path.relative_to(directory)) for path in root.rglob("*") if not path.is_dir())


def referenced_files(cache: cachekit.Cache) -> list[str]:
    """Value files the entries refer to (internals: the public API does not list them)."""
    return sorted(entry.filename for entry in cache.store.scan(Order.INSERTION) if entry.filename is not None)


def free_bytes(path: str | os.PathLike[str]) -> int:
    status = os.statvfs(path)
    return status.f_bavail * status.f_frsize


# -- a tmpfs ---------------------------------------------------------------------------------------------
def mount_reason() -> str | None:
    """Why a tmpfs cannot be mounted here, or ``None`` when it can."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return "mounting a tmpfs needs root/CAP_SYS_ADMIN"
    probe = Path(tempfile.mkdtemp(prefix="cachekit-mount-probe-"))
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True, check=False
        )
        if mounted.returncode:
            return "mounting a tmpfs needs root/CAP_SYS_ADMIN"
        subprocess.run(["umount", str(probe)], capture_output=True, check=False)
        return None
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


@contextlib.contextmanager
def tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted (owner-only) at ``mount_point`` for the block; always unmounted."""
    mount_point.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mount_point)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount_point
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(mount_point)], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.1)  # a child killed a moment ago may still hold files open
        else:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


# -- scenario: fill a store until the disk (or the file size limit) is full ------------------------------------
def _fill_until_full(cache: cachekit.Cache, payloads: str, expiring: bool) -> tuple[dict[str, bytes], list[Any]]:
    acked: dict[str, bytes] = {}
    for index in range(1_000_000):
        large = payloads == "mixed" and index % 3 == 0
        value = value_of(index, large)
        options: dict[str, Any] = {}
        if expiring and index % 5 == 0:
            options["expire"] = 60
        if expiring and index % 5 == 1:
            options["tag"] = "tagged"
        try:
            cache.set(key(index), value, **options)
        except Exception as error:
            failure = [type(error).__name__, str(error), key(index)]
            return acked, failure
        acked[key(index)] = value
    raise AssertionError("the store never filled up")


def _full_settings(store: str) -> dict[str, Any]:
    # Nothing is evicted to make room (every acknowledged entry must stay), and
    # the LMDB map is far larger than the disk, so the disk fills first.
    settings: dict[str, Any] = {"eviction_policy": "none"}
    if store == "lmdb":
        settings.update(map_size_limit="256MiB", lmdb_map_size="1MiB")
    return settings


def _exhaust(mechanism: str, ballast: str) -> None:
    if mechanism == "rlimit":
        # CPython ignores SIGXFSZ: a write past the limit fails with EFBIG (or short) instead of killing us.
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, resource.RLIM_INFINITY))


def _free_space(mechanism: str, ballast: str) -> None:
    if mechanism == "rlimit":
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    else:
        os.unlink(ballast)


def _make_ballast(mechanism: str, ballast: str) -> None:
    if mechanism == "tmpfs":
        with open(ballast, "wb") as file:  # room to free later, outside the cache
            file.write(b"\0" * 512 * 1024)


def scenario_full_disk(directory: str, store: str, mechanism: str, payloads: str, ballast: str) -> dict[str, Any]:
    """Fill until the first failed write, then check reads, files, reopening and recovery."""
    report: dict[str, Any] = {}
    _make_ballast(mechanism, ballast)
    cache = cachekit.Cache(directory, store=store, **_full_settings(store))
    _exhaust(mechanism, ballast)
    acked, failure = _fill_until_full(cache, payloads, expiring=False)
    report["acked"] = len(acked)
    report["failure"] = failure
    report["failing_key_present"] = outcome(lambda: failure[2] in cache)
    report["wrong_reads"] = [name for name, value in acked.items() if cache.get(name) != value]
    report["length"] = outcome(lambda: len(cache))
    report["files_on_disk"] = value_files(directory)
    report["files_referenced"] = referenced_files(cache)
    report["close"] = outcome(cache.close)
    reopened = outcome(lambda: cachekit.Cache(directory, **_full_settings(store)).close())
    report["reopen_while_full"] = reopened
    cache = cachekit.Cache(directory, **_full_settings(store))
    report["wrong_reads_after_reopen"] = [name for name, value in acked.items() if cache.get(name) != value]
    _free_space(mechanism, ballast)
    report["set_small_after_freeing"] = outcome(lambda: cache.set("after-small", b"s" * 100))
    report["set_large_after_freeing"] = outcome(lambda: cache.set("after-large", value_of(1, large=True)))
    report["read_back_after_freeing"] = cache.get("after-small") == b"s" * 100 and cache.get("after-large") == value_of(
        1, large=True
    )
    report["check_after_freeing"] = [str(warning.message) for warning in cache.check()]
    cache.close()
    return report


def scenario_full_disk_removals(
    directory: str, store: str, mechanism: str, payloads: str, ballast: str
) -> dict[str, Any]:
    """Fill until the first failed write, then try every kind of removal while still full."""
    report: dict[str, Any] = {}
    _make_ballast(mechanism, ballast)
    clock = [1_700_000_000.0]
    cache = cachekit.Cache(directory, store=store, clock=lambda: clock[0], **_full_settings(store))
    _exhaust(mechanism, ballast)
    acked, failure = _fill_until_full(cache, payloads, expiring=True)
    report["failure"] = failure
    report["free_bytes"] = free_bytes(directory)
    clock[0] += 120  # every entry stored with expire=60 has expired
    expired = sum(1 for index in range(len(acked)) if index % 5 == 0)
    tagged = sum(1 for index in range(len(acked)) if index % 5 == 1)
    survivors = [name for index, name in enumerate(acked) if index % 5 > 1]
    report["expected"] = {"expire": expired, "evict": tagged}
    report["expire"] = outcome(cache.expire)
    report["evict"] = outcome(lambda: cache.evict("tagged"))
    report["delete"] = outcome(lambda: cache.delete(survivors[0]))
    report["pop"] = outcome(lambda: cache.pop(survivors[1]) == acked[survivors[1]])
    report["wrong_reads"] = [name for name in survivors[2:] if cache.get(name) != acked[name]]
    report["clear"] = outcome(cache.clear)
    report["length_after_clear"] = outcome(lambda: len(cache))
    cache.close()
    return report


# -- scenario: open a damaged cache and use it -----------------------------------------------------------------
#: Entries :func:`build_corpus` stores (one in three in a value file).
CORPUS = 200


def build_corpus(directory: Path, store: str) -> None:
    """A cache with :data:`CORPUS` known entries, closed (for the SQLite store: WAL checkpointed)."""
    with cachekit.Cache(directory, store=store, disk_min_file_size=30_000) as cache:
        fill(cache, CORPUS, large_every=3)
    if store == "sqlite":
        connection = sqlite3.connect(directory / "cache.db")
        try:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()


def use_damaged(directory: str) -> dict[str, Any]:
    """Open a (damaged) corpus cache and use it; report each step's outcome, and any wrong value."""
    report: dict[str, Any] = {}
    started = time.monotonic()
    try:
        cache = cachekit.Cache(directory)
    except cachekit.CachekitError as error:
        report["open"] = [type(error).__name__, str(error)]
        report["open_seconds"] = time.monotonic() - started
        return report
    report["open"] = ["ok", None]
    report["open_seconds"] = time.monotonic() - started
    wrong: list[str] = []
    misses: list[str] = []

    def read_all() -> int:
        correct = 0
        for index in range(CORPUS):
            found = cache.get(key(index))
            if found is None:
                misses.append(key(index))
            elif found != value_of(index, large=index % 3 == 0):
                wrong.append(key(index))
                print(f"WRONG VALUE for {key(index)}", file=sys.stderr, flush=True)  # seen even if a crash follows
            else:
                correct += 1
        return correct

    report["get"] = outcome(read_all)
    report["wrong"] = wrong
    report["misses"] = len(misses)
    report["iterate"] = outcome(lambda: len(list(cache)))
    report["length"] = outcome(lambda: len(cache))
    report["check"] = outcome(lambda: [str(warning.message) for warning in cache.check()])
    report["check_fix"] = outcome(lambda: [str(warning.message) for warning in cache.check(fix=True)])
    report["check_after"] = outcome(lambda: [str(warning.message) for warning in cache.check()])
    report["set"] = outcome(lambda: cache.set("written after the damage", b"new"))
    report["get_new"] = outcome(lambda: cache.get("written after the damage"))
    report["counters"] = outcome(lambda: cache.counters()["corrupt_values"])
    with contextlib.suppress(cachekit.CachekitError):
        cache.close()
    return report


def scenario_use_damaged(directory: str) -> dict[str, Any]:
    return use_damaged(directory)


def damage_page(path: Path, original: bytes, page: int, fill_with: str) -> None:
    """Write ``original`` back to ``path`` with page ``page`` zeroed or filled with (seeded) garbage."""
    import random

    damaged = bytearray(original)
    garbage = random.Random(7 + page).randbytes(4096)
    damaged[page * 4096 : (page + 1) * 4096] = bytes(4096) if fill_with == "zeros" else garbage
    path.write_bytes(damaged)


def scenario_damaged_page(directory: str, database: str, fill_with: str, page: str) -> dict[str, Any]:
    """Damage one page of the database, open and use the cache (one child per page, so a crash names it)."""
    path = Path(directory, database)
    original = path.read_bytes()
    try:
        damage_page(path, original, int(page), fill_with)
        return use_damaged(directory)
    finally:
        path.write_bytes(original)


def scenario_damaged_pages(directory: str, database: str, fill_with: str) -> dict[str, Any]:
    """Damage each page of the database in turn (zeros or garbage), open and use the cache each time."""
    path = Path(directory, database)
    original = path.read_bytes()
    pages = len(original) // 4096
    reports: dict[str, Any] = {}
    for page in range(pages):
        damage_page(path, original, page, fill_with)
        for leftover in ("cache.db-wal", "cache.db-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, leftover))
        print(f"page {page}", file=sys.stderr, flush=True)  # the last one named is the one that crashed
        reports[str(page)] = use_damaged(directory)
    path.write_bytes(original)
    return reports


# -- scenario: permissions, as an unprivileged user ----------------------------------------------------------------
def _make_readonly(directory: str) -> None:
    for root, folders, files in os.walk(directory, topdown=False):
        for name in files:
            os.chmod(os.path.join(root, name), 0o400)
        for name in folders:
            os.chmod(os.path.join(root, name), 0o500)
    os.chmod(directory, 0o500)


def _tree(directory: str) -> dict[str, str]:
    """Every file under ``directory`` with a digest of its content (what must not change)."""
    import hashlib

    found = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            if name.endswith(("-shm", "lock.mdb", "lmdb-open.lock")):
                continue  # shared-memory files, rewritten by any reader; the LMDB store's seal
            if name.endswith("-wal") and os.path.getsize(path) == 0:
                continue  # an empty write-ahead log, which a read-only SQLite reader may create
            with open(path, "rb") as file:
                found[os.path.relpath(path, directory)] = hashlib.sha256(file.read()).hexdigest()
    return found


def scenario_permissions(base: str, store: str, case: str) -> dict[str, Any]:
    """Prepare ``case`` as the user running this (``nobody`` under root), then open and use the cache."""
    directory = os.path.join(base, "cache")
    settings: dict[str, Any] = {}
    if case not in ("missing-parent", "foreign"):
        with cachekit.Cache(directory, store=store, disk_min_file_size=1024) as cache:
            cache.set("small", "value")
            cache.set("large", b"x" * 4096)
    if case == "read-only":
        _make_readonly(directory)
    elif case == "unreadable":
        os.chmod(directory, 0)
    elif case == "database-read-only":
        os.chmod(os.path.join(directory, DATABASE[store]), 0o400)
    elif case == "world-writable":
        os.chmod(directory, 0o777)
    elif case == "world-writable-sticky":
        os.chmod(directory, 0o1777)
    elif case == "missing-parent":
        os.chmod(base, 0o500)
        directory = os.path.join(base, "sub", "cache")
    elif case == "foreign":
        directory = os.path.join(base, "theirs")  # made by the parent, as root
    elif case == "foreign-opt-out":
        directory = os.path.join(base, "theirs")
        settings["allow_insecure_directory"] = True
    before = _tree(directory) if os.access(directory, os.R_OK | os.X_OK) else {}
    report: dict[str, Any] = {"directory": directory, "uid": os.geteuid()}
    started = time.monotonic()
    try:
        cache = cachekit.Cache(directory, store=None if case.startswith("foreign") else store, **settings)
    except Exception as error:
        report["open"] = [type(error).__name__ if isinstance(error, cachekit.CachekitError) else "RAW", str(error)]
        report["kinds"] = [kind.__name__ for kind in type(error).__mro__]
    else:
        report["open"] = ["ok", None]
        report["get_small"] = outcome(lambda: cache.get("small"))
        report["get_large"] = outcome(lambda: len(cache.get("large") or b""))
        report["set"] = outcome(lambda: cache.set("another", 1))
        report["close"] = outcome(cache.close)
    report["seconds"] = time.monotonic() - started
    if case == "missing-parent":
        report["created"] = os.path.exists(directory)
    else:
        after = _tree(directory) if os.access(directory, os.R_OK | os.X_OK) else {}
        report["unchanged"] = before == after
    return report


SCENARIOS: dict[str, Callable[..., Any]] = {
    "full_disk": scenario_full_disk,
    "full_disk_removals": scenario_full_disk_removals,
    "use_damaged": scenario_use_damaged,
    "damaged_page": scenario_damaged_page,
    "damaged_pages": scenario_damaged_pages,
    "permissions": scenario_permissions,
}


# -- hostile values -------------------------------------------------------------------------------------------
class Planted:
    """A pickle payload an attacker might plant: unpickling it creates the directory ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.path),)


def planted_payload(marker: Path) -> bytes:
    """Pickle bytes that create ``marker`` when unpickled, checked to be live on a decoy path."""
    decoy = marker.with_name(marker.name + "-decoy")
    pickle.loads(pickle.dumps(Planted(decoy)))
    assert decoy.is_dir(), "the planted payload must really run code when unpickled"
    decoy.rmdir()
    return pickle.dumps(Planted(marker))


def plant(directory: Path, store: str, encoded_key: bytes, payload: bytes, serializer: str = "pickle") -> None:
    """Replace the inline payload of the entry under ``encoded_key`` directly through the engine,
    as another user with write access could.  Every cache on ``directory`` must be closed."""
    if store == "sqlite":
        connection = sqlite3.connect(directory / "cache.db")
        try:
            with connection:
                cursor = connection.execute(
                    "UPDATE entries SET value = ?, filename = NULL, serializer = ?, size = ? WHERE key = ?",
                    (payload, serializer, len(encoded_key) + len(payload), encoded_key),
                )
                assert cursor.rowcount == 1, "no entry to plant into"
        finally:
            connection.close()
        return
    if store != "lmdb":
        raise ValueError(f"cannot plant into the {store!r} store")
    import lmdb

    from cachekit_lmdb import _records

    environment = lmdb.open(str(directory), subdir=True, create=False, max_dbs=0, lock=True)
    try:
        with environment.begin(write=True) as transaction:
            stored = b"K" + _records.record_key(encoded_key)
            record = transaction.get(stored)
            assert record is not None, "no entry to plant into"
            entry, sequence = _records.decode(encoded_key, record)
            entry = entry._replace(
                value=payload, filename=None, serializer=serializer, size=len(encoded_key) + len(payload)
            )
            transaction.put(stored, _records.encode(entry, sequence))
    finally:
        environment.close()


def plant_key(directory: Path, store: str, encoded_key: bytes, planted_key: bytes) -> None:
    """Rename the entry under ``encoded_key`` to ``planted_key`` (SQLite: the key column)."""
    if store != "sqlite":
        raise ValueError("only the SQLite store keeps keys in a column of their own")
    connection = sqlite3.connect(directory / "cache.db")
    try:
        with connection:
            connection.execute("UPDATE entries SET key = ? WHERE key = ?", (planted_key, encoded_key))
    finally:
        connection.close()


# -- snapshots of a cache (bad input must change nothing) ------------------------------------------------------
def snapshot(cache: cachekit.Cache) -> dict[str, Any]:
    """Everything observable about a cache: entries, length, volume, counters and files on disk."""
    entries = []
    for stored in cache:
        entries.append((repr(stored), repr(cache.get(stored, expire_time=True, tag=True))))
    files = []
    for root, _, names in os.walk(cache.directory):
        for name in names:
            if name.endswith(("-shm", "lock.mdb", "-wal", "lmdb-open.lock")):
                continue  # rewritten by readers, checkpoints, and the LMDB store's first and last opener
            path = os.path.join(root, name)
            status = os.lstat(path)
            files.append((os.path.relpath(path, cache.directory), status.st_size, stat.S_IFMT(status.st_mode)))
    return {
        "entries": entries,
        "length": len(cache),
        "volume": cache.volume(),
        "counters": cache.counters(),
        "files": sorted(files),
    }
