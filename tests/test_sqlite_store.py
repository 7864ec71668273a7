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
from cachekit_sqlite._store import APPLICATION_ID, DATABASE_NAME, translate


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
        try:
            reopened = cachekit.Cache(tmp_path)
            for index in range(200):
                reopened.get(f"key-{index}")
            problems = reopened.check()
        except cachekit.CachekitError:
            return
        except sqlite3.Error as error:
            pytest.fail(f"a raw sqlite3 error escaped: {error!r}")
        assert problems, "the damage went unnoticed"
