"""The SQLite store: stdlib ``sqlite3`` in WAL mode, one connection per thread.

Write transactions use ``BEGIN IMMEDIATE`` so that a writer takes the lock
before it reads and can never be refused half-way; SQLite's busy handler
waits up to the cache's ``timeout`` and a refusal becomes
:class:`cachekit.Timeout`.  Count and volume are kept by triggers in the
same transaction as the change they account for.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, ClassVar

from cachekit import CorruptCache, StorageFull, StoreError, Timeout
from cachekit.plugins import (
    Capabilities,
    Entry,
    Found,
    Order,
    Setting,
    Store,
    StoreConfig,
    Totals,
    integer,
    size,
)

__all__ = ["SQLiteStore"]

DATABASE_NAME = "cache.db"
#: ``PRAGMA application_id`` of a cachekit database: "ckit".
APPLICATION_ID = 0x636B6974
SCHEMA_VERSION = 1

_COLUMNS = "key, value, filename, serializer, size, store_time, expire_time, access_time, access_count, tag"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    key BLOB NOT NULL UNIQUE,
    value BLOB,
    filename TEXT,
    serializer TEXT NOT NULL,
    size INTEGER NOT NULL,
    store_time REAL NOT NULL,
    expire_time REAL,
    access_time REAL NOT NULL,
    access_count INTEGER NOT NULL,
    tag BLOB
);
CREATE INDEX IF NOT EXISTS entries_expire_time ON entries (expire_time)
    WHERE expire_time IS NOT NULL;
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    count INTEGER NOT NULL,
    volume INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals VALUES (0, 0, 0);
CREATE TRIGGER IF NOT EXISTS entries_count_insert AFTER INSERT ON entries BEGIN
    UPDATE totals SET count = count + 1, volume = volume + NEW.size WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS entries_count_delete AFTER DELETE ON entries BEGIN
    UPDATE totals SET count = count - 1, volume = volume - OLD.size WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS entries_count_update AFTER UPDATE OF size ON entries BEGIN
    UPDATE totals SET volume = volume + NEW.size - OLD.size WHERE id = 0;
END;
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
"""
_GET = f"SELECT {_COLUMNS} FROM entries WHERE key = ?"
_LOOKUP = "SELECT value, filename, serializer, expire_time FROM entries WHERE key = ?"
_TOTALS = (
    "SELECT count, volume, (SELECT min(expire_time) FROM entries WHERE expire_time IS NOT NULL) "
    "FROM totals WHERE id = 0"
)
_UPSERT = (
    f"INSERT INTO entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, filename = excluded.filename, "
    "serializer = excluded.serializer, size = excluded.size, store_time = excluded.store_time, "
    "expire_time = excluded.expire_time, access_time = excluded.access_time, "
    "access_count = excluded.access_count, tag = excluded.tag"
)
# One statement instead of a SELECT and a DELETE, where SQLite has RETURNING (3.35, 2021).
_DELETE_RETURNING = (
    f"DELETE FROM entries WHERE key = ? RETURNING {_COLUMNS}" if sqlite3.sqlite_version_info >= (3, 35) else None
)
_UPDATABLE = frozenset({"expire_time", "access_time", "access_count", "tag"})
_PAGE = 100
_EVICTION_INDEX_PREFIX = "entries_evict_"
#: ``PRAGMA journal_size_limit``: when SQLite restarts the write-ahead log, it truncates a larger
#: file to this size.  Without it ``cache.db-wal`` keeps the size of its largest burst (a reader
#: holding a snapshot, or concurrent writers starving the restart) for as long as any connection
#: is open, which the soak test (tests/reliability/test_soak.py) saw reach 300 MB for a 4 MiB cache.
_WAL_SIZE_LIMIT = 2**24
#: Held while cachekit creates a database file and while SQLite opens one (see ``_create_file``).
_FILE_CREATION = threading.Lock()

# Connections inherited through fork() must never be closed in the child:
# closing one would drop the child's new POSIX locks on the same file and may
# let SQLite checkpoint or delete a WAL the parent still uses.  They are kept
# here, unused, for the life of the child.
_inherited_connections: list[sqlite3.Connection] = []
_open_stores: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    global _FILE_CREATION
    _FILE_CREATION = threading.Lock()  # another thread of the parent may have held it
    for store in list(_open_stores):
        store._forget_connections()


os.register_at_fork(after_in_child=_after_fork_in_child)


def translate(error: sqlite3.Error, path: str) -> Exception:
    """Turn an ``sqlite3`` exception into the cachekit exception it means."""
    message = str(error)
    code = getattr(error, "sqlite_errorname", "")
    lowered = message.lower()
    if code.startswith("SQLITE_BUSY") or code.startswith("SQLITE_LOCKED") or "locked" in lowered:
        return Timeout(f"the cache database {path} stayed locked beyond the timeout ({message})")
    if code == "SQLITE_FULL" or "disk is full" in lowered:
        return StorageFull(f"no space left to write {path} ({message}); free space or lower size_limit")
    if code in ("SQLITE_IOERR_WRITE", "SQLITE_IOERR_FSYNC", "SQLITE_IOERR_TRUNCATE"):
        return StorageFull(f"could not write {path} ({message}): the disk or the file size limit is probably exhausted")
    if (
        code.startswith("SQLITE_NOTADB")
        or code.startswith("SQLITE_CORRUPT")
        or "not a database" in lowered
        or "malformed" in lowered
    ):
        return CorruptCache(f"{path} is damaged or is not a cachekit database ({message})")
    if code.startswith("SQLITE_READONLY") or "readonly" in lowered:
        return StoreError(
            f"cannot write {path}: it is read-only for this user ({message}); "
            "give this user read and write access to it (cachekit writes even when it only reads), "
            "or use another directory"
        )
    if code.startswith("SQLITE_CANTOPEN") or "unable to open" in lowered:
        return StoreError(f"cannot open {path} ({message}); check that the path and permissions are right")
    return StoreError(f"SQLite failed on {path}: {message}")


def _close_all(connections: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]]) -> None:
    """Close every connection of a store that was garbage collected or closed for good."""
    for _, connection in connections:
        with contextlib.suppress(sqlite3.Error):
            connection.close()
    connections.clear()


class _WriteTransaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; a class rather than a generator for speed."""

    __slots__ = ("_connection", "_path", "_usual_wait", "_wait")

    def __init__(self, connection: sqlite3.Connection, path: str, wait: float | None, usual_wait: float) -> None:
        self._connection = connection
        self._path = path
        self._wait = wait
        self._usual_wait = usual_wait

    def __enter__(self) -> None:
        connection = self._connection
        try:
            if self._wait is None:
                connection.execute("BEGIN IMMEDIATE")
                return
            # A different wait for this one transaction: set SQLite's busy
            # timeout around the BEGIN and put the usual one back.
            connection.execute(f"PRAGMA busy_timeout = {int(self._wait * 1000)}")
            try:
                connection.execute("BEGIN IMMEDIATE")
            finally:
                connection.execute(f"PRAGMA busy_timeout = {int(self._usual_wait * 1000)}")
        except sqlite3.Error as error:
            raise translate(error, self._path) from error

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection = self._connection
        if exc_type is None:
            try:
                connection.execute("COMMIT")
                return
            except sqlite3.Error as error:
                _rollback(connection)
                raise translate(error, self._path) from error
        _rollback(connection)


def _when_not_busy(action: Callable[[], object], timeout: float) -> None:
    """Run ``action``, retrying while SQLite reports the database busy, for up to ``timeout`` seconds.

    Only for the first open of a new database by many processes at once: there,
    before the file is in WAL mode, two connections that both read and then
    both want the exclusive lock (to switch the journal mode or create the
    schema) would deadlock, so SQLite refuses one at once ("database is locked")
    without calling its busy handler.  Waiting a moment and trying again lets
    the other finish.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as error:
            busy = getattr(error, "sqlite_errorname", "").startswith("SQLITE_BUSY") or "locked" in str(error)
            if not busy or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause * random.uniform(0.5, 1.5))  # jitter: do not retry in lockstep
        pause = min(pause * 2, 0.05)


def _rollback(connection: sqlite3.Connection) -> None:
    # sqlite3.Error covers a connection closed meanwhile and SQLite having rolled back already.
    with contextlib.suppress(sqlite3.Error):
        if connection.in_transaction:
            connection.execute("ROLLBACK")


class SQLiteStore(Store):
    """cachekit's default store, on the SQLite that ships with Python."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        transactions=True,
        value_files=True,
        ordered_scans=True,
        exact_length=True,
        max_value_size=None,
        reads_may_write=True,  # WAL readers write the -shm index file
    )
    settings: ClassVar[Mapping[str, Setting]] = {
        "sqlite_cache_size": Setting(2**13, integer(0), "Page cache per connection, in pages.", persist=False),
        "sqlite_mmap_size": Setting(2**26, size, "Bytes of the database SQLite may memory-map.", persist=False),
    }

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.path = os.path.join(config.directory, DATABASE_NAME)
        self._synchronous = "FULL" if config.durability == "full" else "NORMAL"
        self._local = threading.local()
        self._lock = threading.Lock()
        # Each thread's connection, with the thread that owns it.  The list is
        # only ever changed in place: the finalizer below holds it.
        self._connections: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        weakref.finalize(self, _close_all, self._connections)
        self._eviction_order = "seq"

    # -- opening and connections ------------------------------------------
    @classmethod
    def open(cls, config: StoreConfig) -> SQLiteStore:
        store = cls(config)
        store._create_file()
        try:
            store._ensure_schema()
        except BaseException:
            _close_all(store._connections)
            raise
        return store

    def _create_file(self) -> None:
        """Create the database file owner-only, so SQLite's WAL and SHM files inherit 0o600."""
        try:
            status = os.lstat(self.path)
        except FileNotFoundError:
            # Closing a descriptor of the database file drops every POSIX lock this
            # process holds on it, SQLite's included: were another thread's connection
            # to open the new file before os.close() below, it would lose its locks
            # silently, and another process could then take the WAL for unused and
            # delete it, committed writes and all (seen: 4 processes x 12 threads
            # opening one new directory lost three processes' writes).  Connections
            # open under the same lock, so none exists while this descriptor does.
            with _FILE_CREATION:
                try:
                    descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
                except FileExistsError:
                    return
                except OSError as error:
                    raise StoreError(f"cannot create {self.path}: {error.strerror}") from error
                try:
                    os.fchmod(descriptor, 0o600)
                finally:
                    os.close(descriptor)
            return
        if not stat.S_ISREG(status.st_mode):
            kind = "a directory" if stat.S_ISDIR(status.st_mode) else "not a regular file"
            raise CorruptCache(f"{self.path} is {kind}; move it away so cachekit can create its database")

    def _connect(self) -> sqlite3.Connection:
        try:
            with _FILE_CREATION:  # see _create_file
                connection = sqlite3.connect(
                    self.path,
                    timeout=self.config.timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
        except sqlite3.Error as error:
            raise translate(error, self.path) from error
        try:
            pragmas = (
                f"PRAGMA synchronous = {self._synchronous}",
                f"PRAGMA cache_size = {int(self.config.options.get('sqlite_cache_size', 2**13))}",
                f"PRAGMA mmap_size = {int(self.config.options.get('sqlite_mmap_size', 2**26))}",
                f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}",
            )
            for pragma in pragmas:
                connection.execute(pragma)
            _when_not_busy(lambda: self._switch_to_wal(connection), self.config.timeout)
        except sqlite3.Error as error:
            connection.close()
            raise translate(error, self.path) from error
        self._local.connection = connection
        with self._lock:
            self._close_connections_of_ended_threads()
            self._connections.append((weakref.ref(threading.current_thread()), connection))
        _open_stores.add(self)
        return connection

    def _switch_to_wal(self, connection: sqlite3.Connection) -> None:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        if mode != "wal" and self._ours_or_empty(connection):
            # Switching to WAL rewrites the file's header: never do it to
            # another program's database, which _ensure_schema then refuses.
            connection.execute("PRAGMA journal_mode = WAL")

    @staticmethod
    def _ours_or_empty(connection: sqlite3.Connection) -> bool:
        (application_id,) = connection.execute("PRAGMA application_id").fetchone()
        return application_id == APPLICATION_ID or connection.execute("SELECT 1 FROM sqlite_master").fetchone() is None

    def _connection(self) -> sqlite3.Connection:
        try:
            connection: sqlite3.Connection = self._local.connection
        except AttributeError:
            return self._connect()
        return connection

    def _close_connections_of_ended_threads(self) -> None:
        """Close the connections of threads that have ended; a server with a thread per
        request would otherwise keep two file descriptors per request it ever served."""
        alive = []
        for owner, connection in self._connections:
            thread = owner()
            if thread is not None and thread.is_alive():
                alive.append((owner, connection))
            else:
                with contextlib.suppress(sqlite3.Error):
                    connection.close()
        self._connections[:] = alive

    def _forget_connections(self) -> None:
        _inherited_connections.extend(connection for _, connection in self._connections)
        self._connections.clear()
        self._local = threading.local()
        self._lock = threading.Lock()

    def _ensure_schema(self) -> None:
        connection = self._connection()
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            (application_id,) = connection.execute("PRAGMA application_id").fetchone()
            if tables and application_id != APPLICATION_ID:
                raise CorruptCache(
                    f"{self.path} is an SQLite database of another program "
                    f"(tables: {', '.join(sorted(tables))}); point cachekit at another directory"
                )
            if {"entries", "totals", "settings", "counters"} <= tables:
                return
            # executescript() commits any open transaction first, so the
            # script carries its own BEGIN IMMEDIATE ... COMMIT.
            _when_not_busy(lambda: connection.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;"), self.config.timeout)
        except sqlite3.Error as error:
            _rollback(connection)
            raise translate(error, self.path) from error

    def close(self) -> None:
        """Close this thread's connection, and those of threads that have ended.

        Connections of other live threads stay theirs: closing one under a
        thread that is using it would crash the interpreter.  They are closed
        when their thread ends (noticed at the next connect) or when the store
        is garbage collected.  Any thread's next call reopens as needed.
        """
        current = threading.current_thread()
        with self._lock:
            keep = []
            for owner, connection in self._connections:
                thread = owner()
                if thread is current or thread is None or not thread.is_alive():
                    with contextlib.suppress(sqlite3.Error):
                        connection.close()
                else:
                    keep.append((owner, connection))
            self._connections[:] = keep
            with contextlib.suppress(AttributeError):
                del self._local.connection

    # -- transactions -------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[None]:
        connection = self._connection()
        try:
            connection.execute("BEGIN")
            connection.execute("SELECT 1 FROM totals").fetchone()  # start the snapshot now
        except sqlite3.Error as error:
            raise translate(error, self.path) from error
        try:
            yield
        finally:
            _rollback(connection)

    def write(self, timeout: float | None = None) -> _WriteTransaction:
        return _WriteTransaction(self._connection(), self.path, timeout, self.config.timeout)

    # -- entries --------------------------------------------------------------
    def _execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._connection().execute(sql, parameters)
        except sqlite3.Error as error:
            raise translate(error, self.path) from error

    def _fetchall(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[Any]:
        # Rows are read lazily, so a damaged page can fail in fetchall(), not only in execute().
        try:
            return self._connection().execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise translate(error, self.path) from error

    def _fetchone(self, sql: str, parameters: tuple[Any, ...] = ()) -> Any:
        try:
            return self._connection().execute(sql, parameters).fetchone()
        except sqlite3.Error as error:
            raise translate(error, self.path) from error

    def get(self, key: bytes) -> Entry | None:
        try:
            row = self._connection().execute(_GET, (key,)).fetchone()
        except sqlite3.Error as error:
            raise translate(error, self.path) from error
        return None if row is None else Entry._make(row)

    def lookup(self, key: bytes) -> Found | None:
        # The hot path of every read: four columns instead of ten (each costs
        # a Python object) and the connection fetched inline, not by a call.
        try:
            connection = self._local.connection
        except AttributeError:
            connection = self._connect()
        try:
            row: Found | None = connection.execute(_LOOKUP, (key,)).fetchone()
        except sqlite3.Error as error:
            raise translate(error, self.path) from error
        return row

    def put(self, entry: Entry) -> Entry | None:
        connection = self._connection()
        try:
            row = connection.execute(_GET, (entry.key,)).fetchone()
            connection.execute(_UPSERT, entry)
        except sqlite3.Error as error:
            raise translate(error, self.path) from error
        return None if row is None else Entry._make(row)

    def update(self, key: bytes, changes: Mapping[str, Any]) -> bool:
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update entry fields {sorted(unknown)}; updatable: {sorted(_UPDATABLE)}")
        if not changes:
            return self.get(key) is not None
        assignments = ", ".join(f"{name} = ?" for name in changes)
        cursor = self._execute(f"UPDATE entries SET {assignments} WHERE key = ?", (*changes.values(), key))
        return cursor.rowcount > 0

    def delete(self, key: bytes) -> Entry | None:
        if _DELETE_RETURNING is not None:
            rows = self._fetchall(_DELETE_RETURNING, (key,))  # read to the end: the statement completes
            return Entry._make(rows[0]) if rows else None
        entry = self.get(key)  # pragma: no cover - SQLite before 3.35
        if entry is not None:  # pragma: no cover
            self._execute("DELETE FROM entries WHERE key = ?", (key,))
        return entry  # pragma: no cover

    def scan(
        self,
        order: Order,
        *,
        reverse: bool = False,
        start: bytes | None = None,
        stop: bytes | None = None,
        tag: bytes | None = None,
        expired_before: float | None = None,
        limit: int | None = None,
    ) -> Iterator[Entry]:
        conditions: list[str] = []
        parameters: list[Any] = []
        if order is Order.KEY:
            if start is not None:
                conditions.append("key >= ?")
                parameters.append(start)
            if stop is not None:
                conditions.append("key < ?")
                parameters.append(stop)
        if tag is not None:
            conditions.append("tag = ?")
            parameters.append(tag)
        if order is Order.EXPIRY:
            conditions.append("expire_time IS NOT NULL")
            if expired_before is not None:
                conditions.append("expire_time < ?")
                parameters.append(expired_before)
        direction = " DESC" if reverse else ""
        if order is Order.INSERTION or order is Order.KEY:
            # Page through with a moving bound so that concurrent writers are
            # never blocked by a long-running read.
            column = "seq" if order is Order.INSERTION else "key"
            return self._paged(column, direction, conditions, parameters, limit)
        if order is Order.EXPIRY:
            order_by = f"expire_time{direction}, seq{direction}"
        else:
            order_by = self._eviction_order if not reverse else _reverse(self._eviction_order)
        sql = f"SELECT {_COLUMNS} FROM entries"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += f" ORDER BY {order_by}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._fetchall(sql, tuple(parameters))
        return iter([Entry._make(row) for row in rows])

    def _paged(
        self,
        column: str,
        direction: str,
        conditions: list[str],
        parameters: list[Any],
        limit: int | None,
    ) -> Iterator[Entry]:
        comparison = "<" if direction else ">"
        remaining = limit
        bound: Any = None
        while remaining is None or remaining > 0:
            page = _PAGE if remaining is None else min(_PAGE, remaining)
            where = list(conditions)
            values = list(parameters)
            if bound is not None:
                where.append(f"{column} {comparison} ?")
                values.append(bound)
            sql = f"SELECT seq, {_COLUMNS} FROM entries"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += f" ORDER BY {column}{direction} LIMIT {page}"
            rows = self._fetchall(sql, tuple(values))
            for row in rows:
                yield Entry._make(row[1:])
            if len(rows) < page:
                return
            last = rows[-1]
            bound = last[0] if column == "seq" else last[1]
            if remaining is not None:
                remaining -= len(rows)

    def totals(self) -> Totals:
        row = self._fetchone(_TOTALS)
        return Totals(row[0], row[1], row[2])

    # -- settings, counters, indexes -------------------------------------------
    def load_settings(self) -> dict[str, Any]:
        rows = self._fetchall("SELECT name, value FROM settings")
        return {name: json.loads(value) for name, value in rows}

    def save_settings(self, settings: Mapping[str, Any]) -> None:
        for name, value in settings.items():
            self._execute(
                "INSERT INTO settings (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, json.dumps(value)),
            )

    def counters(self) -> dict[str, int]:
        return dict(self._fetchall("SELECT name, value FROM counters"))

    def add_counters(self, deltas: Mapping[str, int]) -> None:
        for name, delta in deltas.items():
            self._execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (name, delta),
            )

    def reset_counters(self, names: Iterator[str] | list[str]) -> None:
        for name in names:
            self._execute("UPDATE counters SET value = 0 WHERE name = ?", (name,))

    def _index_names(self, prefix: str) -> set[str]:
        rows = self._fetchall("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE ?", (prefix + "%",))
        return {row[0] for row in rows}

    def set_eviction_rank(self, rank: tuple[str, ...]) -> None:
        columns = [f"{field[1:]} DESC" if field.startswith("-") else field for field in rank]
        self._eviction_order = ", ".join([*columns, "seq"])
        wanted = _EVICTION_INDEX_PREFIX + "_".join(
            field[1:] + "_desc" if field.startswith("-") else field for field in rank
        )
        existing = self._index_names(_EVICTION_INDEX_PREFIX)
        if (not rank and not existing) or existing == {wanted}:
            return
        with self.write():
            for name in existing - {wanted}:
                self._execute(f"DROP INDEX IF EXISTS {name}")
            if rank:
                self._execute(f"CREATE INDEX IF NOT EXISTS {wanted} ON entries ({', '.join(columns)})")

    def set_tag_index(self, enabled: bool) -> None:
        exists = bool(self._index_names("entries_tag"))
        if exists == enabled:
            return
        with self.write():
            if enabled:
                self._execute("CREATE INDEX IF NOT EXISTS entries_tag ON entries (tag) WHERE tag IS NOT NULL")
            else:
                self._execute("DROP INDEX IF EXISTS entries_tag")

    def reclaim(self) -> bool:
        """Checkpoint the write-ahead log into the database and truncate it, so that the next
        transaction writes the log from its start instead of growing it (a removal on a full
        disk, or at the file size limit, needs that).  Skipped when the database file would
        grow by more than the room left on the disk: a checkpoint cut short would waste it."""
        connection = self._connection()
        if connection.in_transaction:
            return False
        wal = self.path + "-wal"
        try:
            if os.stat(wal).st_size == 0:
                return False
            (page_size,) = connection.execute("PRAGMA page_size").fetchone()
            (page_count,) = connection.execute("PRAGMA page_count").fetchone()
            growth = page_size * page_count - os.stat(self.path).st_size
            if growth > 0:
                status = os.statvfs(self.config.directory)
                if status.f_bavail * status.f_frsize < growth:
                    return False
            # A checkpoint that truncates waits for readers to leave the log: a second at most.
            connection.execute(f"PRAGMA busy_timeout = {int(min(self.config.timeout, 1.0) * 1000)}")
            try:
                (busy, _, _) = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                connection.execute(f"PRAGMA busy_timeout = {int(self.config.timeout * 1000)}")
        except (sqlite3.Error, OSError):
            return False
        return int(busy) == 0

    def check(self, fix: bool) -> list[str]:
        problems = [
            f"SQLite integrity check: {row[0]}" for row in self._fetchall("PRAGMA integrity_check") if row[0] != "ok"
        ]
        if problems and fix:
            self._execute("REINDEX")
        with self.write():
            count, volume = self._fetchone("SELECT count(*), coalesce(sum(size), 0) FROM entries")
            recorded = self.totals()
            if (recorded.count, recorded.volume) != (count, volume):
                problems.append(
                    f"totals say {recorded.count} entries and {recorded.volume} bytes, "
                    f"the entries add up to {count} and {volume}"
                )
                if fix:
                    self._execute("UPDATE totals SET count = ?, volume = ? WHERE id = 0", (count, volume))
        return problems


def _reverse(order_by: str) -> str:
    reversed_columns = []
    for column in order_by.split(", "):
        if column.endswith(" DESC"):
            reversed_columns.append(column[: -len(" DESC")])
        else:
            reversed_columns.append(column + " DESC")
    return ", ".join(reversed_columns)
