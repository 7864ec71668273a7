"""Behaviour specific to the SQLite store: locking, error translation, files on disk."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest

import cachekit
from cachekit_sqlite import SQLiteStore
from cachekit_sqlite._store import APPLICATION_ID, DATABASE_NAME, _when_not_busy, translate


def _hold_write_lock(directory: str) -> sqlite3.Connection:
    connection = sqlite3.connect(os.path.join(directory, DATABASE_NAME), isolation_level=None, check_same_thread=False)
    connection.execute("BEGIN IMMEDIATE")
    return connection


class TestLocking:
    def test_write_waits_for_the_lock_then_times_out(self, tmp_path: Path) -> None:
        """A write blocked longer than ``timeout`` raises cachekit.Timeout, not an sqlite3 error."""
        cache = cachekit.Cache(tmp_path, timeout=0.05)
        holder = _hold_write_lock(cache.directory)
        try:
            started = time.monotonic()
            with pytest.raises(cachekit.Timeout, match="locked"):
                cache.set("key", "value")
            assert time.monotonic() - started >= 0.04
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert cache.counters()["timeouts"] >= 1
        assert "key" not in cache
        cache.close()

    def test_retry_waits_until_the_lock_is_released(self, tmp_path: Path) -> None:
        """With ``retry=True`` a blocked write keeps trying and succeeds once the lock is free."""
        cache = cachekit.Cache(tmp_path, timeout=0.02)
        holder = _hold_write_lock(cache.directory)

        def release() -> None:
            time.sleep(0.2)
            holder.execute("ROLLBACK")

        releaser = threading.Thread(target=release)
        releaser.start()
        try:
            assert cache.set("key", "value", retry=True) is True
        finally:
            releaser.join()
            holder.close()
        assert cache["key"] == "value"
        cache.close()

    def test_reads_do_not_wait_for_a_writer(self, tmp_path: Path) -> None:
        """In WAL mode a read returns the committed value while another connection holds the write lock."""
        cache = cachekit.Cache(tmp_path, timeout=0.05)
        cache.set("key", "committed")
        holder = _hold_write_lock(cache.directory)
        holder.execute("UPDATE entries SET value = ? ", (b"uncommitted",))
        try:
            assert cache.get("key") == "committed"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        cache.close()


class TestFiles:
    def test_database_is_a_cachekit_database_in_wal_mode(self, tmp_path: Path) -> None:
        """The database carries cachekit's application id and runs in WAL mode."""
        cache = cachekit.Cache(tmp_path)
        cache.set("key", 1)
        connection = sqlite3.connect(os.path.join(cache.directory, DATABASE_NAME))
        assert connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        connection.close()
        cache.close()

    def test_database_files_are_owner_only(self, tmp_path: Path) -> None:
        """The database and its WAL and shared-memory files are created 0o600."""
        previous = os.umask(0)
        try:
            cache = cachekit.Cache(tmp_path / "cache")
            cache.set("key", 1)
            for name in (DATABASE_NAME, DATABASE_NAME + "-wal", DATABASE_NAME + "-shm"):
                mode = stat.S_IMODE(os.stat(os.path.join(cache.directory, name)).st_mode)
                assert mode == 0o600, (name, oct(mode))
            cache.close()
        finally:
            os.umask(previous)

    def test_reopen_with_unchanged_settings_writes_nothing(self, tmp_path: Path) -> None:
        """Reopening a cache with the settings it has does not modify the database."""
        cachekit.Cache(tmp_path, size_limit=2**20).close()
        database = os.path.join(str(tmp_path), DATABASE_NAME)
        connection = sqlite3.connect(database)
        before = connection.execute("PRAGMA data_version").fetchone()[0]
        cachekit.Cache(tmp_path).close()
        cachekit.Cache(tmp_path, size_limit=2**20).close()
        assert connection.execute("PRAGMA data_version").fetchone()[0] == before
        connection.close()

    def test_durability_full_uses_synchronous_full(self, tmp_path: Path) -> None:
        """``durability='full'`` makes every connection use ``synchronous=FULL``."""
        cache = cachekit.Cache(tmp_path, durability="full")
        store = cache.store
        assert isinstance(store, SQLiteStore)
        assert store._connection().execute("PRAGMA synchronous").fetchone()[0] == 2
        cache.close()
        normal = cachekit.Cache(tmp_path / "normal")
        assert isinstance(normal.store, SQLiteStore)
        assert normal.store._connection().execute("PRAGMA synchronous").fetchone()[0] == 1
        normal.close()

    def test_engine_settings_reach_the_connection(self, tmp_path: Path) -> None:
        """``sqlite_cache_size`` and ``sqlite_mmap_size`` are applied to each connection."""
        cache = cachekit.open(f"sqlite://{tmp_path}?sqlite_cache_size=123&sqlite_mmap_size=1MiB")
        assert isinstance(cache.store, SQLiteStore)
        connection = cache.store._connection()
        assert connection.execute("PRAGMA cache_size").fetchone()[0] == 123
        assert connection.execute("PRAGMA mmap_size").fetchone()[0] == 2**20
        cache.close()


class TestErrors:
    @pytest.mark.parametrize(
        ("message", "expected"),
        [
            ("database is locked", cachekit.Timeout),
            ("database or disk is full", cachekit.StorageFull),
            ("file is not a database", cachekit.CorruptCache),
            ("database disk image is malformed", cachekit.CorruptCache),
            ("attempt to write a readonly database", cachekit.StoreError),
            ("unable to open database file", cachekit.StoreError),
            ("something else entirely", cachekit.StoreError),
        ],
    )
    def test_translate_maps_sqlite_messages(self, message: str, expected: type[Exception]) -> None:
        """Each kind of sqlite3 error becomes the cachekit exception it means, naming the path."""
        error = translate(sqlite3.OperationalError(message), "/some/cache.db")
        assert type(error) is expected
        assert "/some/cache.db" in str(error)

    def test_disk_io_write_error_is_storage_full(self) -> None:
        """SQLITE_IOERR_WRITE (what a file size limit produces) is reported as StorageFull."""
        error = sqlite3.OperationalError("disk I/O error")
        error.sqlite_errorname = "SQLITE_IOERR_WRITE"  # type: ignore[attr-defined]
        assert isinstance(translate(error, "/x/cache.db"), cachekit.StorageFull)

    def test_engine_errors_never_escape_raw(self, tmp_path: Path) -> None:
        """A corrupted database page surfaces as a cachekit exception, never a bare sqlite3 one."""
        cache = cachekit.Cache(tmp_path)
        for index in range(200):
            cache.set(f"key-{index}", b"x" * 500)
        cache.close()
        database = Path(cache.directory) / DATABASE_NAME
        with open(database, "r+b") as file:
            file.seek(4096 * 2)
            file.write(b"\xff" * 4096 * 3)
        for name in (DATABASE_NAME + "-wal", DATABASE_NAME + "-shm"):
            (Path(cache.directory) / name).unlink(missing_ok=True)
        noticed = 0
        try:
            reopened = cachekit.Cache(tmp_path)
        except cachekit.CachekitError:
            return  # refused at open: noticed, and nothing escaped raw
        operations = {
            "get": lambda: [reopened.get(f"key-{index}") for index in range(200)],
            "iterate": lambda: list(reopened),
            "iterkeys": lambda: list(reopened.iterkeys()),
            "check": reopened.check,
            "clear": reopened.clear,
        }
        for name, operation in operations.items():
            try:
                result = operation()
            except cachekit.CachekitError:
                noticed += 1
            except sqlite3.Error as error:
                pytest.fail(f"{name}: a raw sqlite3 error escaped: {error!r}")
            else:
                noticed += name == "check" and bool(result)
        assert noticed, "the damage went unnoticed"


class TestStoreEdges:
    def test_update_checks_its_fields(self, tmp_path: Path) -> None:
        """update() refuses fields that are not metadata and, with no change, reports existence."""
        with cachekit.Cache(tmp_path) as cache:
            cache.set("key", 1)
            store = cache.store
            key = cache._encode_key("key")
            with store.write(), pytest.raises(ValueError, match="cannot update entry fields"):
                store.update(key, {"value": b"x"})
            assert store.update(key, {}) is True
            assert store.update(b"sabsent", {}) is False

    def test_reverse_eviction_order(self, tmp_path: Path) -> None:
        """Scanning the eviction order backwards yields the last to leave first."""
        clock = [100.0]
        with cachekit.Cache(tmp_path, clock=lambda: clock[0], eviction_policy="least-frequently-used") as cache:
            for index in range(3):
                clock[0] += 1
                cache.set(index, index)
            store = cache.store
            with store.write():
                store.update(cache._encode_key(0), {"access_count": 5})
            forward = [cache._keys.decode(entry.key) for entry in store.scan(cachekit.plugins.Order.EVICTION)]
            backward = [
                cache._keys.decode(entry.key) for entry in store.scan(cachekit.plugins.Order.EVICTION, reverse=True)
            ]
            assert forward == [1, 2, 0]
            assert backward == [0, 2, 1]

    def test_check_repairs_wrong_totals(self, tmp_path: Path) -> None:
        """check() reports totals that disagree with the entries, and check(fix=True) corrects them."""
        cache = cachekit.Cache(tmp_path)
        cache.set("a", b"x" * 10)
        cache.set("b", b"y" * 20)
        connection = sqlite3.connect(os.path.join(cache.directory, DATABASE_NAME), isolation_level=None)
        connection.execute("UPDATE totals SET count = 999, volume = 5")
        connection.close()
        problems = [str(warning.message) for warning in cache.check()]
        assert any("totals say 999 entries" in problem for problem in problems)
        assert len(cache) == 999
        assert [str(warning.message) for warning in cache.check(fix=True)]
        assert len(cache) == 2
        assert cache.volume() == 2 * 2 + 30
        assert cache.check() == []
        cache.close()


def test_errors_on_a_closed_connection(tmp_path: Path) -> None:
    """Every store method translates sqlite3 errors (here: a connection closed under it) to StoreError."""
    cache = cachekit.Cache(tmp_path)
    cache.set("key", 1)
    store = cache.store
    assert isinstance(store, SQLiteStore)
    key = cache._encode_key("key")
    entry = store.get(key)
    assert entry is not None
    store._connection().close()
    calls = {
        "get": lambda: store.get(key),
        "lookup": lambda: store.lookup(key),
        "put": lambda: store.put(entry),
        "totals": store.totals,
        "read": lambda: store.read().__enter__(),
        "write": lambda: store.write().__enter__(),
    }
    for call in calls.values():
        with pytest.raises(cachekit.StoreError, match=r"SQLite failed|cannot|closed"):
            call()
    store.close()  # closing again after the damage is harmless
    assert cache.get("key") == 1  # and the next use reopens


def test_connect_failure_names_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection that cannot be opened raises a cachekit error naming the database path."""
    cache = cachekit.Cache(tmp_path)
    cache.close()

    def refuse(*args: object, **kwargs: object) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(sqlite3, "connect", refuse)
    with pytest.raises(cachekit.StoreError, match=DATABASE_NAME):
        cache.get("key")


def test_database_file_that_cannot_be_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the database file cannot be created, the error names it and the reason."""
    real_open = os.open

    def refuse(path: str, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(DATABASE_NAME):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(cachekit.StoreError, match=f"cannot create .*{DATABASE_NAME}: Permission denied"):
        cachekit.Cache(tmp_path / "cache")


class TestFirstOpenRetries:
    """The first open of a new database by many processes retries SQLite's deadlock refusals."""

    def test_busy_refusals_are_retried_until_the_action_succeeds(self) -> None:
        """ "database is locked" is retried; the action's success ends the wait."""
        calls: list[float] = []

        def action() -> None:
            calls.append(time.monotonic())
            if len(calls) < 3:
                raise sqlite3.OperationalError("database is locked")

        _when_not_busy(action, timeout=5)
        assert len(calls) == 3

    def test_other_errors_are_not_retried(self) -> None:
        """An error that is not a busy refusal comes out at once."""
        calls: list[int] = []

        def action() -> None:
            calls.append(1)
            raise sqlite3.OperationalError("no such table: entries")

        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            _when_not_busy(action, timeout=5)
        assert calls == [1]

    def test_the_timeout_bounds_the_retries(self) -> None:
        """A database that stays locked raises the refusal once the timeout has passed."""
        started = time.monotonic()

        def action() -> None:
            raise sqlite3.OperationalError("database is locked")

        with pytest.raises(sqlite3.OperationalError, match="locked"):
            _when_not_busy(action, timeout=0.05)
        assert time.monotonic() - started < 2


def _posix_locks_held(path: str) -> list[str]:
    """The POSIX locks this process holds on ``path``, from /proc/locks."""
    inode = os.stat(path).st_ino
    pid = str(os.getpid())
    with open("/proc/locks", encoding="ascii") as locks:
        return [
            line.strip()
            for line in locks
            if line.split()[1] == "POSIX" and line.split()[4] == pid and line.split()[5].endswith(f":{inode}")
        ]


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="reads the kernel's lock table from /proc/locks (Linux)")
def test_creating_the_database_file_keeps_other_threads_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread that opens the cache while another is creating its database file keeps its SQLite
    locks: closing any descriptor of a file drops all of the process's POSIX locks on it, and
    SQLite, which counts its locks per process, would not take them again.  Without its shared
    lock, another process's last connection takes the database for unused and removes the
    write-ahead log, committed writes and all (a CI run lost three processes' writes that way)."""
    directory = tmp_path / "cache"
    database = os.path.join(directory, DATABASE_NAME)
    real_fchmod = os.fchmod
    opened: list[cachekit.Cache] = []
    other = threading.Thread(target=lambda: opened.append(cachekit.Cache(directory, store="sqlite")))

    def fchmod_then_let_another_thread_open(descriptor: int, mode: int) -> None:
        real_fchmod(descriptor, mode)
        if os.readlink(f"/proc/self/fd/{descriptor}") == database and not other.is_alive() and not opened:
            other.start()
            other.join(1.0)  # it must wait for the new file's descriptor to be closed

    monkeypatch.setattr(os, "fchmod", fchmod_then_let_another_thread_open)
    with cachekit.Cache(directory, store="sqlite") as cache:
        other.join(10)
        assert opened, "the other thread never opened the cache"
        cache.set("key", "value")
        assert opened[0].get("key") == "value"
        assert _posix_locks_held(database), "this process holds no lock on the database while two connections use it"
        opened[0].close()
