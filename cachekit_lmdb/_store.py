"""The LMDB store: entries in a memory-mapped B+tree, reads that never wait for a lock.

Layout (see :mod:`cachekit_lmdb._records` for the bytes): one B+tree, LMDB's
main database, in six regions told apart by the first byte of the key, all
changed in the same write transaction.

- ``K`` entries: key -> record (metadata, serializer, tag, inline payload);
  LMDB keeps them sorted, which is :attr:`Order.KEY`;
- ``I`` insertion index: sequence number -> key (:attr:`Order.INSERTION`);
- ``X`` expiry index: expire time + sequence -> key, expiring entries only;
- ``V`` eviction index: the eviction policy's rank fields + sequence -> key;
- ``T`` tag index: tag digest + sequence -> key, while the tag index is on;
- ``M`` meta: the format marker, totals, persisted settings, counters, the index layout.

One tree rather than six sub-databases: py-lmdb keeps a sub-database handle
only from a committed write transaction, which would make opening a cache
wait for the writers of other processes.

A read is one read-only LMDB transaction: no lock file, no system call.
A write takes the writer lock (with the cache's timeout), then LMDB's.
When the map fills, the writer grows it and replays the operations of its
transaction, which nobody else could change meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, ClassVar

try:
    import lmdb
except ImportError as error:  # pragma: no cover - exercised by a test that hides lmdb in a subprocess
    raise ImportError(
        f'the LMDB store needs the lmdb package, which is not installed ({error}); pip install "cachekit[lmdb]"'
    ) from error

from cachekit import CorruptCache, StoreError, Timeout
from cachekit.plugins import (
    Capabilities,
    Entry,
    Found,
    Order,
    Setting,
    Store,
    StoreConfig,
    Totals,
    boolean,
    integer,
    size,
)

from . import _environment, _guard, _records
from ._environment import Handles, SharedEnvironment, translate
from ._records import MAX_KEY, PREFIX, RecordError, decode, decode_sortable_float, encode, record_key

__all__ = ["LMDBStore"]

_TOTALS = struct.Struct("<qqQd")
"""count, volume, next sequence number, next expire time (NaN: none)."""
_COUNTER = struct.Struct("<q")
_ENTRY = b"K"
_INSERTION = b"I"
_EXPIRY = b"X"
_EVICTION = b"V"
_TAG = b"T"
_META = b"M"
_TOTALS_KEY = b"Mtotals"
_LAYOUT_KEY = b"Mlayout"
_SETTING_PREFIX = b"Msetting:"
_COUNTER_PREFIX = b"Mcounter:"
_UPDATABLE = frozenset({"expire_time", "access_time", "access_count", "tag"})
_PAGE = 100
_RETRY: Any = object()
#: Changes that never add data: a transaction of only these may use the map's reserve.
_REMOVALS = frozenset({"_delete", "_update", "_add_counters", "_reset_counters", "_rewrite_marker"})
_PEEK = _records.PEEK.unpack_from
_NATIVE_CODES = len(_records.CODES)
_CODE_NAMES = _records.CODES
_MIB = 2**20

# Every call goes to the main database, so no ``db=`` argument is passed:
# py-lmdb parses keyword arguments slowly (about 60 ns a call).

#: What a transaction replays after the map grew: (operation, arguments).
_Operation = tuple[Callable[..., Any], tuple[Any, ...]]


def _map_size_limit(value: object) -> int:
    parsed = size(value)
    if parsed < _MIB:
        raise ValueError(f"map_size_limit must be at least 1MiB, got {parsed} bytes")
    return parsed


def _initial_map_size(value: object) -> int:
    parsed = size(value)
    if parsed < 64 * 1024:
        raise ValueError(f"lmdb_map_size must be at least 64KiB, got {parsed} bytes")
    return parsed


class _ThreadState(threading.local):
    """The transaction a thread is in, on one store."""

    def __init__(self) -> None:
        self.txn: Any = None
        """The open write transaction, or ``None``."""
        self.snapshot: Any = None
        """The open read transaction of :meth:`LMDBStore.read`, or ``None``."""
        self.log: list[_Operation] = []
        """Changes made in the write transaction, to replay if the map must grow."""
        self.handles: Any = None
        """The :class:`Handles` the transaction was begun on."""
        self.totals: Any = None
        """The write transaction's :class:`Totals`, once asked for."""
        self.reserve = False
        """Whether the transaction grew the map for removals, into the reserve past the limit."""
        self.failed: BaseException | None = None
        """Why the write transaction was lost midway (the map could not grow), or ``None``."""


_open_stores: weakref.WeakSet[LMDBStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_open_stores):
        store._forget_transactions()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _WriteTransaction:
    __slots__ = ("_store", "_timeout")

    def __init__(self, store: LMDBStore, timeout: float) -> None:
        self._store = store
        self._timeout = timeout

    def __enter__(self) -> None:
        self._store._begin_write(self._timeout)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._store._end_write(commit=exc_type is None)


class LMDBStore(Store):
    """A store on LMDB: lock-free memory-mapped reads, one writer at a time."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        transactions=True,
        value_files=True,
        ordered_scans=True,
        exact_length=True,
        max_value_size=None,
        reads_may_write=True,  # a reader takes a slot in lock.mdb
    )
    settings: ClassVar[Mapping[str, Setting]] = {
        "map_size_limit": Setting(
            16 * 2**30,
            _map_size_limit,
            "Largest size the LMDB map (and data.mdb) may grow to; past it, writes raise StorageFull.",
            persist=False,
        ),
        "lmdb_map_size": Setting(
            32 * _MIB, _initial_map_size, "Map size a new environment starts with; it doubles as needed.", persist=False
        ),
        "lmdb_max_readers": Setting(
            1024, integer(1), "Reader slots (threads reading at once, across all processes).", persist=False
        ),
        "lmdb_verify": Setting(
            True,
            boolean,
            "Check every page of data.mdb before first use when it may have changed outside cachekit "
            "(LMDB stops the process on a damaged page).",
            persist=False,
        ),
    }

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._timeout = config.timeout
        options = config.options
        self._shared: SharedEnvironment = _environment.acquire(
            config.directory,
            map_size=int(options.get("lmdb_map_size", 32 * _MIB)),
            map_size_limit=int(options.get("map_size_limit", 16 * 2**30)),
            max_readers=int(options.get("lmdb_max_readers", 1024)),
            durable=config.durability == "full",
            timeout=config.timeout,
            verify=bool(options.get("lmdb_verify", True)),
        )
        self._closed = False
        self._sync_after_commit = False
        self._forget_transactions()
        self._rank: tuple[str, ...] = ()
        self._rank_key: Callable[[Entry, int], bytes] | None = None
        self._tag_index = False
        self._layout_raw: bytes | None = b""
        _open_stores.add(self)

    def _forget_transactions(self) -> None:
        self._local = _ThreadState()
        self._writing = 0
        """1 while a thread has a write transaction open on this store (changed under the writer lock)."""
        self._reading = 0
        """Snapshots open on this store, in any thread (changed under ``_active_lock``).
        While both are zero, no thread is inside a transaction and reads take the fast path."""
        self._active_lock = threading.Lock()

    # -- opening and closing ------------------------------------------------------
    @classmethod
    def open(cls, config: StoreConfig) -> LMDBStore:
        store = cls(config)
        try:
            store._handles()
            store._sync_after_commit = config.durability == "full" and not store._shared.settings.durable
            store._read(store._load_layout)
        except BaseException:
            store.close()
            raise
        return store

    def _handles(self) -> Handles:
        if self._closed:
            with self._active_lock:
                if self._closed:
                    _environment.reacquire(self._shared)
                    self._closed = False
        return self._shared.open_handles()

    def close(self) -> None:
        """Release this store's use of the environment; it closes with its last user.

        A later call on this store opens it again.
        """
        with self._active_lock:
            if self._closed:
                return
            self._closed = True
        _environment.release(self._shared)

    @property
    def path(self) -> str:
        return self._shared.path

    # -- transactions ---------------------------------------------------------------
    def write(self, timeout: float | None = None) -> _WriteTransaction:
        return _WriteTransaction(self, self._timeout if timeout is None else timeout)

    def _begin_write(self, timeout: float) -> None:
        state = self._local
        if state.txn is not None:
            raise StoreError("write transactions on a store do not nest")
        shared = self._shared
        if self._closed:
            self._handles()
        shared.lock_writer(timeout)
        try:
            handles = shared.handles
            if handles is None:
                handles, txn = self._begin_write_slowly(timeout)
            else:
                try:
                    txn = handles.env.begin(None, None, True)  # (db, parent, write): no keyword parsing
                except lmdb.Error:
                    handles, txn = self._begin_write_slowly(timeout)
            try:
                layout = txn.get(_LAYOUT_KEY)
                if layout != self._layout_raw:
                    self._apply_layout(layout)
            except BaseException as error:
                txn.abort()  # else LMDB's own writer mutex stays taken
                if isinstance(error, lmdb.Error):
                    raise translate(error, self.path) from error
                raise
        except BaseException:
            shared.unlock_writer()
            raise
        state.txn = txn
        state.handles = handles
        state.log = []
        state.totals = None
        state.reserve = False
        state.failed = None
        self._writing = 1

    def _begin_write_slowly(self, timeout: float) -> tuple[Handles, Any]:
        """Begin a write transaction after opening the environment or adopting a grown map."""
        shared = self._shared
        while True:
            handles = shared.open_handles()
            try:
                return handles, handles.env.begin(write=True)
            except lmdb.MapResizedError:
                shared.adopt_map_size(timeout)
            except lmdb.Error as error:
                raise translate(error, self.path) from error

    def _end_write(self, commit: bool) -> None:
        state = self._local
        try:
            if state.txn is not None:
                if commit:
                    self._commit(state)
                else:
                    with contextlib.suppress(lmdb.Error):
                        state.txn.abort()
        finally:
            state.txn = None
            state.log = []
            state.totals = None
            state.failed = None
            self._writing = 0
            self._shared.unlock_writer()

    def _commit(self, state: _ThreadState) -> None:
        while True:
            try:
                state.txn.commit()
                break
            except lmdb.MapFullError:
                self._grow_and_replay(state)
            except lmdb.Error as error:
                raise translate(error, self.path) from error
        if state.reserve:
            state.reserve = False
            self._shared.shrink_to_limit(self._timeout)
        if self._sync_after_commit:
            try:
                self._shared.open_handles().env.sync(True)
            except lmdb.Error as error:
                raise translate(error, self.path) from error

    def _grow_and_replay(self, state: _ThreadState, pending: Callable[..., Any] | None = None) -> Any:
        """The map is full: grow it and redo this transaction's changes in a new one.

        The writer lock is held throughout, so nothing else changed the
        database and the replay does exactly what the first attempt did.
        """
        with contextlib.suppress(lmdb.Error):
            state.txn.abort()
        state.txn = None
        shared = self._shared
        operations = [operation for operation, _ in state.log] + ([pending] if pending is not None else [])
        removing = all(operation.__name__ in _REMOVALS for operation in operations)
        state.reserve = state.reserve or removing
        while True:
            try:
                shared.grow(self._timeout, removing)
            except BaseException as error:
                state.failed = error  # the transaction is gone: later calls in it must say so
                raise
            handles = shared.open_handles()
            try:
                txn = handles.env.begin(write=True)
            except lmdb.Error as error:
                raise translate(error, self.path) from error
            state.totals = None
            try:
                for operation, arguments in state.log:
                    operation(txn, handles, *arguments)
            except lmdb.MapFullError:
                txn.abort()
                continue
            except lmdb.Error as error:
                txn.abort()
                raise translate(error, self.path) from error
            state.txn = txn
            state.handles = handles
            return txn

    def _change(self, operation: Callable[..., Any], *arguments: Any) -> Any:
        """Run a change in this thread's write transaction (or a transaction of its own)."""
        state = self._local
        if state.txn is None:
            if state.failed is not None:
                raise StoreError(
                    f"this write transaction on {self.path} was rolled back when the map could not grow "
                    f"({state.failed}); leave transact() and try again"
                ) from state.failed
            with self.write():
                return self._change(operation, *arguments)
        while True:
            try:
                result = operation(state.txn, state.handles, *arguments)
                break
            except lmdb.MapFullError:
                self._grow_and_replay(state, operation)
            except lmdb.Error as error:
                raise translate(error, self.path) from error
            except RecordError as error:
                raise CorruptCache(f"{self.path}: {error}; run check(fix=True)") from error
        state.log.append((operation, arguments))
        return result

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        state = self._local
        if state.txn is not None or state.snapshot is not None:
            yield  # already inside a transaction, which is a snapshot
            return
        self._handles()
        txn = self._begin_snapshot()
        state.snapshot = txn
        with self._active_lock:
            self._reading += 1
        try:
            yield
        finally:
            state.snapshot = None
            with self._active_lock:
                self._reading -= 1
            with contextlib.suppress(lmdb.Error):
                txn.abort()
            self._shared.end_snapshot()

    def _begin_snapshot(self) -> Any:
        """A read-only transaction counted as a snapshot, so that the map is not resized under it."""
        shared = self._shared
        for _ in range(3):
            shared.begin_snapshot(self._timeout)
            try:
                handles = shared.open_handles()
                return handles.env.begin()
            except lmdb.MapResizedError:
                shared.end_snapshot()  # adopting waits for every snapshot, this one included
                shared.adopt_map_size(self._timeout)
            except lmdb.ReadersFullError:
                shared.end_snapshot()
                if not handles.env.reader_check():
                    break
            except lmdb.Error as error:
                shared.end_snapshot()
                raise translate(error, self.path) from error
            except BaseException:
                shared.end_snapshot()
                raise
        raise StoreError(
            f"could not start a read transaction on {self.path}: the reader table is full "
            "(raise lmdb_max_readers) or the map keeps being resized"
        )

    def _read(self, action: Callable[[Any, Handles], Any]) -> Any:
        """Run ``action(txn, handles)`` in this thread's transaction, or in a short read transaction."""
        state = self._local
        txn = state.txn if state.txn is not None else state.snapshot
        if txn is not None:
            try:
                return action(txn, self._shared.open_handles())
            except lmdb.Error as error:
                raise translate(error, self.path) from error
            except RecordError as error:
                raise CorruptCache(f"{self.path}: {error}; run check(fix=True)") from error
        self._handles()
        shared = self._shared
        for _ in range(3):
            handles = shared.open_handles()
            problem: str | None = None
            shared.gate.acquire()
            try:
                txn = handles.env.begin()
                try:
                    return action(txn, handles)
                finally:
                    txn.abort()
            except lmdb.MapResizedError:
                problem = "resized"
            except lmdb.ReadersFullError:
                problem = "readers"
            except lmdb.Error as error:
                raise translate(error, self.path) from error
            except RecordError as error:
                raise CorruptCache(f"{self.path}: {error}; run check(fix=True)") from error
            finally:
                shared.gate.release()
            if problem == "resized":
                shared.adopt_map_size(self._timeout)
            elif not handles.env.reader_check():
                break
        raise StoreError(
            f"could not read {self.path}: the reader table is full (raise lmdb_max_readers) "
            "or the map keeps being resized"
        )

    # -- entries ------------------------------------------------------------------------
    def get(self, key: bytes) -> Entry | None:
        stored = record_key(key)

        def action(txn: Any, handles: Handles) -> Entry | None:
            record = txn.get(_ENTRY + stored)
            if record is None:
                return None
            entry, _ = decode(stored, record)
            return entry if entry.key == key else None

        return self._read(action)  # type: ignore[no-any-return]

    def lookup(self, key: bytes) -> Found | None:
        # The hot path of every read, kept flat: no thread-local lookup unless
        # a transaction is open on this store, one read-only LMDB transaction
        # under the gate, and only the three header fields a read needs unpacked.
        fast = self._shared.fast
        # Keys too long for LMDB take the slow path, which stores them under a digest.
        if fast is None or self._writing or self._reading or len(key) >= 510:  # 510: _records.MAX_KEY
            return self._slow_lookup(key)
        env, gate = fast
        gate.acquire()
        try:
            record = env.begin().get(b"K" + key)  # b"K": _ENTRY
        except lmdb.Error:
            # A resized map, a full reader table, a closed environment: the slow path deals with them.
            record = _RETRY
        finally:
            gate.release()
        if record is None:
            return None
        if record is _RETRY:
            return self._slow_lookup(key)
        try:
            expire, code, value_offset = _PEEK(record)
        except struct.error:
            return self._slow_lookup(key)  # raises CorruptCache
        if expire != expire:  # noqa: PLR0124 - NaN means never
            expire = None
        if value_offset and code < _NATIVE_CODES and value_offset <= len(record):
            return record[value_offset:], None, _CODE_NAMES[code], expire
        return self._slow_lookup(key)  # value files, other serializers, and damage (CorruptCache)

    def _slow_lookup(self, key: bytes) -> Found | None:
        entry = self.get(key)
        if entry is None:
            return None
        return entry.value, entry.filename, entry.serializer, entry.expire_time

    def put(self, entry: Entry) -> Entry | None:
        return self._change(self._put, entry)  # type: ignore[no-any-return]

    def _put(self, txn: Any, handles: Handles, entry: Entry) -> Entry | None:
        stored = record_key(entry.key)
        old_record = txn.get(_ENTRY + stored)
        expire = entry.expire_time
        if old_record is None:
            count, volume, seq, next_expiry = self._load_totals(txn, handles)
            txn.put(_ENTRY + stored, encode(entry, seq))
            txn.put(_INSERTION + _records.seq_bytes(seq), stored)
            self._index(txn, handles, entry, seq, stored)
            if expire is not None and (next_expiry is None or expire < next_expiry):
                next_expiry = expire
            self._save_totals(txn, handles, count + 1, volume + entry.size, seq + 1, next_expiry)
            return None
        old, seq = decode(stored, old_record)
        self._unindex(txn, handles, old, seq)
        txn.put(_ENTRY + stored, encode(entry, seq))
        self._index(txn, handles, entry, seq, stored)
        # Totals change only when the size or an expire time does: an
        # overwrite of the same size leaves the meta database untouched.
        if old.size != entry.size or old.expire_time != expire:
            count, volume, next_seq, next_expiry = self._load_totals(txn, handles)
            next_expiry = self._next_expiry(txn, handles, next_expiry, old.expire_time, expire)
            self._save_totals(txn, handles, count, volume + entry.size - old.size, next_seq, next_expiry)
        return old

    def _next_expiry(
        self, txn: Any, handles: Handles, current: float | None, removed: float | None, added: float | None
    ) -> float | None:
        """The earliest expire time after one entry's expire time went from ``removed`` to ``added``."""
        if removed == added:
            return current
        if removed is not None and removed == current:
            return self._first_expiry(txn, handles)  # the earliest one left: look it up
        if added is not None and (current is None or added < current):
            return added
        return current

    @staticmethod
    def _first_expiry(txn: Any, handles: Handles) -> float | None:
        cursor = txn.cursor()
        if cursor.set_range(_EXPIRY) and cursor.key()[:1] == _EXPIRY:
            return decode_sortable_float(cursor.key()[1:])
        return None

    def update(self, key: bytes, changes: Mapping[str, Any]) -> bool:
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update entry fields {sorted(unknown)}; updatable: {sorted(_UPDATABLE)}")
        return self._change(self._update, key, dict(changes))  # type: ignore[no-any-return]

    def _update(self, txn: Any, handles: Handles, key: bytes, changes: dict[str, Any]) -> bool:
        stored = record_key(key)
        record = txn.get(_ENTRY + stored)
        if record is None:
            return False
        old, seq = decode(stored, record)
        if old.key != key:
            return False
        if not changes:
            return True
        new = old._replace(**changes)
        self._unindex(txn, handles, old, seq)
        txn.put(_ENTRY + stored, encode(new, seq))
        self._index(txn, handles, new, seq, stored)
        if new.expire_time != old.expire_time:
            count, volume, next_seq, next_expiry = self._load_totals(txn, handles)
            next_expiry = self._next_expiry(txn, handles, next_expiry, old.expire_time, new.expire_time)
            self._save_totals(txn, handles, count, volume, next_seq, next_expiry)
        return True

    def delete(self, key: bytes) -> Entry | None:
        return self._change(self._delete, key)  # type: ignore[no-any-return]

    def _delete(self, txn: Any, handles: Handles, key: bytes) -> Entry | None:
        stored = record_key(key)
        record = txn.get(_ENTRY + stored)
        if record is None:
            return None
        old, seq = decode(stored, record)
        if old.key != key:
            return None
        self._unindex(txn, handles, old, seq)
        txn.delete(_INSERTION + _records.seq_bytes(seq))
        txn.delete(_ENTRY + stored)
        count, volume, next_seq, next_expiry = self._load_totals(txn, handles)
        next_expiry = self._next_expiry(txn, handles, next_expiry, old.expire_time, None)
        self._save_totals(txn, handles, count - 1, volume - old.size, next_seq, next_expiry)
        return old

    # -- indexes ------------------------------------------------------------------------------
    def _index(self, txn: Any, handles: Handles, entry: Entry, seq: int, stored: bytes) -> None:
        """Add ``entry`` to the expiry, eviction and tag indexes (insertion is done by the caller)."""
        if entry.expire_time is not None:
            txn.put(_EXPIRY + _records.expiry_key(entry.expire_time, seq), stored)
        rank_key = self._rank_key
        if rank_key is not None:
            txn.put(_EVICTION + rank_key(entry, seq), stored)
        if self._tag_index and entry.tag is not None:
            txn.put(_tag_key(entry.tag, seq), stored)

    def _unindex(self, txn: Any, handles: Handles, entry: Entry, seq: int) -> None:
        if entry.expire_time is not None:
            txn.delete(_EXPIRY + _records.expiry_key(entry.expire_time, seq))
        rank_key = self._rank_key
        if rank_key is not None:
            txn.delete(_EVICTION + rank_key(entry, seq))
        if self._tag_index and entry.tag is not None:
            txn.delete(_tag_key(entry.tag, seq))

    def _load_layout(self, txn: Any, handles: Handles) -> None:
        self._apply_layout(txn.get(_LAYOUT_KEY))

    def _apply_layout(self, raw: bytes | None) -> None:
        """Adopt the index layout recorded in the database (another process may have changed it)."""
        layout = json.loads(raw) if raw else {}
        self._rank = tuple(layout.get("rank", ()))
        self._rank_key = _records.rank_encoder(self._rank)
        self._tag_index = bool(layout.get("tags", False))
        self._layout_raw = raw

    def _save_layout(self, txn: Any, handles: Handles, rank: tuple[str, ...], tags: bool) -> None:
        raw = json.dumps({"rank": list(rank), "tags": tags}, sort_keys=True).encode()
        txn.put(_LAYOUT_KEY, raw)
        self._apply_layout(raw)

    def set_eviction_rank(self, rank: tuple[str, ...]) -> None:
        rank = tuple(rank)
        for field in rank:
            if field.lstrip("-") not in _records.RANK_ENCODERS:
                raise ValueError(f"cannot rank on {field!r}; rank fields are {', '.join(_records.RANK_ENCODERS)}")
        self._read(self._load_layout)
        if rank == self._rank:
            return
        self._change(self._rebuild, rank, self._tag_index)

    def set_tag_index(self, enabled: bool) -> None:
        self._read(self._load_layout)
        if enabled == self._tag_index:
            return
        self._change(self._rebuild, self._rank, enabled)

    def _rebuild(self, txn: Any, handles: Handles, rank: tuple[str, ...], tags: bool) -> None:
        """Rebuild the eviction and tag indexes for a new layout."""
        for region in (_EVICTION, _TAG):
            cursor = txn.cursor()
            positioned = cursor.set_range(region)
            while positioned and cursor.key()[:1] == region:
                positioned = cursor.delete()  # moves to the next item
        self._save_layout(txn, handles, rank, tags)
        rank_key = self._rank_key
        for stored, record in _region_items(txn, _ENTRY):
            entry, seq = decode(stored, record)
            if rank_key is not None:
                txn.put(_EVICTION + rank_key(entry, seq), stored)
            if tags and entry.tag is not None:
                txn.put(_tag_key(entry.tag, seq), stored)

    # -- scans ---------------------------------------------------------------------------------
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
        if limit is not None and limit <= 0:
            return iter(())
        if order is Order.KEY:
            return self._scan_keys(reverse, start, stop, tag, limit)
        return self._scan_index(order, reverse, tag, expired_before, limit)

    def _scan_keys(
        self, reverse: bool, start: bytes | None, stop: bytes | None, tag: bytes | None, limit: int | None
    ) -> Iterator[Entry]:
        """Entries in key order, a page per read transaction, resuming after the last key seen."""

        def page(
            txn: Any, handles: Handles, bound: bytes | None, remaining: int | None
        ) -> tuple[list[Entry], bytes | None, bool]:
            cursor = txn.cursor()
            found: list[Entry] = []
            last = bound  # stored keys, without the region byte
            if not reverse:
                if last is not None:
                    positioned = _seek_after(cursor, _ENTRY + last)
                elif start is not None:
                    positioned = cursor.set_range(_ENTRY + _seek_low(start))
                else:
                    positioned = cursor.set_range(_ENTRY)
            elif last is not None:
                positioned = _seek_before(cursor, _ENTRY + last)
            elif stop is not None:
                positioned = _seek_before(cursor, _ENTRY + _seek_high(stop))
            else:
                positioned = _seek_before(cursor, _region_end(_ENTRY))
            step = cursor.prev if reverse else cursor.next
            while positioned:
                stored = cursor.key()
                if stored[:1] != _ENTRY:
                    return found, last, True
                stored = stored[1:]
                # Stored keys compare like the keys themselves up to the first PREFIX bytes.
                if not reverse and stop is not None and len(stop) <= PREFIX and stored >= stop:
                    return found, last, True
                if reverse and start is not None and len(start) <= PREFIX and stored < start:
                    return found, last, True
                if len(stored) < PREFIX:
                    candidates = [decode(stored, cursor.value())[0]]
                    last = stored
                    positioned = step()
                else:
                    # Keys that share their first PREFIX bytes are contiguous, but long
                    # ones are stored under a digest: read the whole run and sort it
                    # by the keys themselves.  A page never ends inside a run.
                    head = _ENTRY + stored[:PREFIX]
                    candidates = []
                    while positioned and cursor.key()[: PREFIX + 1] == head:
                        last = cursor.key()[1:]
                        candidates.append(decode(last, cursor.value())[0])
                        positioned = step()
                    candidates.sort(key=_entry_key, reverse=reverse)
                for entry in candidates:
                    if _in_key_range(entry.key, start, stop) and (tag is None or entry.tag == tag):
                        found.append(entry)
                        if remaining is not None and len(found) >= remaining:
                            return found, last, False
                if len(found) >= _PAGE:
                    return found, last, False
            return found, last, True

        yield from self._paged(page, limit)

    def _paged(
        self,
        page: Callable[[Any, Handles, bytes | None, int | None], tuple[list[Entry], bytes | None, bool]],
        limit: int | None,
    ) -> Iterator[Entry]:
        """Call ``page(txn, handles, bound, remaining)`` in one read transaction after another.

        ``bound`` is the position a page ended at (``None`` at first) and
        ``remaining`` what is left of ``limit``; a page returns its entries,
        its end position and whether the scan is finished.
        """
        remaining = limit
        bound: bytes | None = None
        while True:

            def one_page(
                txn: Any, handles: Handles, bound: bytes | None = bound, remaining: int | None = remaining
            ) -> tuple[list[Entry], bytes | None, bool]:
                return page(txn, handles, bound, remaining)

            found, bound, finished = self._read(one_page)
            yield from found
            if remaining is not None:
                remaining -= len(found)
                if remaining <= 0:
                    return
            if finished:
                return

    def _scan_index(
        self, order: Order, reverse: bool, tag: bytes | None, expired_before: float | None, limit: int | None
    ) -> Iterator[Entry]:
        """Entries in the order of an index database."""
        use_tags = order is Order.INSERTION and tag is not None and self._tag_index
        if use_tags and tag is not None:
            region = _TAG + _records.tag_prefix(tag)  # one tag's part of the tag index
        elif order is Order.EXPIRY:
            region = _EXPIRY
        elif order is Order.EVICTION and self._rank:
            region = _EVICTION
        else:
            region = _INSERTION  # also the eviction order when there is no policy
        width = len(region)
        stable = order is Order.INSERTION  # index keys that never change while an entry lives

        def page(
            txn: Any, handles: Handles, bound: bytes | None, remaining: int | None
        ) -> tuple[list[Entry], bytes | None, bool]:
            cursor = txn.cursor()
            found: list[Entry] = []
            last = bound
            if last is None:
                positioned = _seek_before(cursor, _region_end(region)) if reverse else cursor.set_range(region)
            elif reverse:
                positioned = _seek_before(cursor, last)
            else:
                positioned = _seek_after(cursor, last)
            page_size = _PAGE if stable or txn is self._local.txn or txn is self._local.snapshot else None
            step = cursor.prev if reverse else cursor.next
            while positioned:
                index_key = cursor.key()
                if index_key[:width] != region:
                    return found, last, True
                if (
                    order is Order.EXPIRY
                    and expired_before is not None
                    and not reverse
                    and decode_sortable_float(index_key[1:]) >= expired_before
                ):
                    return found, last, True
                last = index_key
                stored = cursor.value()
                record = txn.get(_ENTRY + stored)
                if record is not None:
                    entry, _ = decode(stored, record)
                    if (tag is None or entry.tag == tag) and (
                        expired_before is None or (entry.expire_time is not None and entry.expire_time < expired_before)
                    ):
                        found.append(entry)
                        if (page_size is not None and len(found) == page_size) or (
                            remaining is not None and len(found) >= remaining
                        ):
                            return found, last, False
                positioned = step()
            return found, last, True

        yield from self._paged(page, limit)

    # -- totals, settings, counters -------------------------------------------------------------
    @staticmethod
    def _load_totals(txn: Any, handles: Handles) -> tuple[int, int, int, float | None]:
        """``(count, volume, next sequence number, next expire time)``."""
        raw = txn.get(_TOTALS_KEY)
        if raw is None:
            return 0, 0, 1, None
        count, volume, next_seq, next_expiry = _TOTALS.unpack(raw)
        return count, volume, next_seq, None if next_expiry != next_expiry else next_expiry  # noqa: PLR0124

    def _save_totals(
        self, txn: Any, handles: Handles, count: int, volume: int, next_seq: int, next_expiry: float | None
    ) -> None:
        packed = _TOTALS.pack(count, volume, next_seq, math.nan if next_expiry is None else next_expiry)
        txn.put(_TOTALS_KEY, packed)
        self._local.totals = Totals(count, volume, next_expiry)

    def totals(self) -> Totals:
        state = self._local
        if state.txn is not None:
            # Every write asks, to cull: inside a write transaction the answer
            # is kept, and _save_totals keeps it current.
            totals = state.totals
            if totals is None:
                totals = state.totals = self._totals_in(state.txn, state.handles)
            return totals  # type: ignore[no-any-return]
        return self._read(self._totals_in)  # type: ignore[no-any-return]

    def _totals_in(self, txn: Any, handles: Handles) -> Totals:
        count, volume, _, next_expiry = self._load_totals(txn, handles)
        return Totals(count, volume, next_expiry)

    def load_settings(self) -> dict[str, Any]:
        def action(txn: Any, handles: Handles) -> dict[str, Any]:
            return {name.decode(): json.loads(value) for name, value in _region_items(txn, _SETTING_PREFIX)}

        return self._read(action)  # type: ignore[no-any-return]

    def save_settings(self, settings: Mapping[str, Any]) -> None:
        encoded = {name: json.dumps(value) for name, value in settings.items()}
        self._change(self._save_settings, encoded)

    @staticmethod
    def _save_settings(txn: Any, handles: Handles, encoded: dict[str, str]) -> None:
        for name, value in encoded.items():
            txn.put(_SETTING_PREFIX + name.encode(), value.encode())

    def counters(self) -> dict[str, int]:
        def action(txn: Any, handles: Handles) -> dict[str, int]:
            items = _region_items(txn, _COUNTER_PREFIX)
            return {name.decode(): _COUNTER.unpack(value)[0] for name, value in items}

        return self._read(action)  # type: ignore[no-any-return]

    def add_counters(self, deltas: Mapping[str, int]) -> None:
        self._change(self._add_counters, dict(deltas))

    @staticmethod
    def _add_counters(txn: Any, handles: Handles, deltas: dict[str, int]) -> None:
        for name, delta in deltas.items():
            key = _COUNTER_PREFIX + name.encode()
            raw = txn.get(key)
            value = (_COUNTER.unpack(raw)[0] if raw is not None else 0) + delta
            txn.put(key, _COUNTER.pack(value))

    def reset_counters(self, names: Iterator[str] | list[str]) -> None:
        self._change(self._reset_counters, list(names))

    @staticmethod
    def _reset_counters(txn: Any, handles: Handles, names: list[str]) -> None:
        for name in names:
            txn.delete(_COUNTER_PREFIX + name.encode())

    # -- check -------------------------------------------------------------------------------------
    def reclaim(self) -> bool:
        """Let a removal reuse the pages already in ``data.mdb`` instead of extending it.

        LMDB copies every page a transaction changes, and reuses a page freed by a
        transaction only after another one has committed (the last committed
        snapshot must stay whole), so that a removal at the end of the disk (or of
        the file size limit) needs twice its pages free.  Committing a transaction
        that changes nothing of value (it rewrites the format marker) makes the
        pages the last transaction freed reusable; the reader slots of killed
        processes, whose old snapshots pin pages, are freed too.
        """
        try:
            self._handles().env.reader_check()
            with self.write():
                self._change(self._rewrite_marker)
        except (lmdb.Error, StoreError, Timeout):
            return False
        return True

    @staticmethod
    def _rewrite_marker(txn: Any, handles: Handles) -> None:
        txn.put(_environment.META_FORMAT, _environment.FORMAT)

    def check(self, fix: bool) -> list[str]:
        """Walk every page of ``data.mdb`` (LMDB would stop the process on a damaged one), then
        compare the indexes and totals with the entries."""
        problems: list[str] = []
        shared = self._shared
        self._handles()
        # Under the writer lock, with no transaction begun, the committed file cannot change and
        # LMDB has read none of its pages: walk it first.
        shared.lock_writer(self._timeout)
        try:
            _guard.verify(self.path)
        except CorruptCache:
            shared.guard.distrust()
            raise
        finally:
            shared.unlock_writer()
        with self.write():
            self._change(self._check, fix, problems)
        return problems

    def _check(self, txn: Any, handles: Handles, fix: bool, problems: list[str]) -> None:
        del problems[:]  # a replay starts over
        names = {_INSERTION: "insertion", _EXPIRY: "expiry", _EVICTION: "eviction", _TAG: "tag"}
        expected: dict[bytes, set[tuple[bytes, bytes]]] = {region: set() for region in names}
        count = volume = 0
        top_seq = 0
        next_expiry: float | None = None
        undecodable: list[bytes] = []
        for stored, record in _region_items(txn, _ENTRY):
            try:
                entry, seq = decode(stored, record)
            except RecordError as error:
                problems.append(str(error))
                undecodable.append(stored)
                continue
            count += 1
            volume += entry.size
            top_seq = max(top_seq, seq)
            if entry.expire_time is not None and (next_expiry is None or entry.expire_time < next_expiry):
                next_expiry = entry.expire_time
            expected[_INSERTION].add((_INSERTION + _records.seq_bytes(seq), stored))
            if entry.expire_time is not None:
                expected[_EXPIRY].add((_EXPIRY + _records.expiry_key(entry.expire_time, seq), stored))
            if self._rank_key is not None:
                expected[_EVICTION].add((_EVICTION + self._rank_key(entry, seq), stored))
            if self._tag_index and entry.tag is not None:
                expected[_TAG].add((_tag_key(entry.tag, seq), stored))
        for region, wanted in expected.items():
            actual = {(region + key, value) for key, value in _region_items(txn, region)}
            missing, extra = wanted - actual, actual - wanted
            if missing or extra:
                problems.append(f"the {names[region]} index lacks {len(missing)} and has {len(extra)} stray entries")
                if fix:
                    for index_key, _ in extra:
                        txn.delete(index_key)
                    for index_key, stored in missing:
                        txn.put(index_key, stored)
        if fix:
            for stored in undecodable:
                txn.delete(_ENTRY + stored)
        recorded_count, recorded_volume, next_seq, recorded_expiry = self._load_totals(txn, handles)
        if (recorded_count, recorded_volume, recorded_expiry) != (count, volume, next_expiry) or next_seq <= top_seq:
            problems.append(
                f"totals say {recorded_count} entries, {recorded_volume} bytes, next expiry {recorded_expiry} "
                f"and next sequence {next_seq}; the entries add up to {count}, {volume}, {next_expiry} "
                f"(highest sequence {top_seq})"
            )
            if fix:
                self._save_totals(txn, handles, count, volume, max(next_seq, top_seq + 1), next_expiry)


def _entry_key(entry: Entry) -> bytes:
    return entry.key


def _in_key_range(key: bytes, start: bytes | None, stop: bytes | None) -> bool:
    return (start is None or key >= start) and (stop is None or key < stop)


def _seek_low(start: bytes) -> bytes:
    """A position at or before every stored key whose entry key is ``>= start``."""
    return start[:PREFIX]


def _seek_high(stop: bytes) -> bytes:
    """A position after every stored key whose entry key is ``< stop``."""
    return stop if len(stop) <= PREFIX else stop[:PREFIX] + b"\xff" * (MAX_KEY - PREFIX)


def _tag_key(tag: bytes, seq: int) -> bytes:
    """The key of an entry in the tag index."""
    return _TAG + _records.tag_prefix(tag) + _records.seq_bytes(seq)


def _region_end(region: bytes) -> bytes:
    """The smallest key after every key of a one-byte region."""
    return bytes([region[0] + 1])


def _region_items(txn: Any, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    """``(key without prefix, value)`` for every key that starts with ``prefix``, in order."""
    cursor = txn.cursor()
    positioned = cursor.set_range(prefix)
    width = len(prefix)
    while positioned:
        key = cursor.key()
        if key[:width] != prefix:
            return
        yield key[width:], cursor.value()
        positioned = cursor.next()


def _seek_after(cursor: Any, key: bytes) -> bool:
    """Put ``cursor`` on the first key after ``key``; whether there is one."""
    positioned = bool(cursor.set_range(key))
    if positioned and cursor.key() == key:
        positioned = bool(cursor.next())
    return positioned


def _seek_before(cursor: Any, key: bytes) -> bool:
    """Put ``cursor`` on the last key before ``key``; whether there is one."""
    return bool(cursor.prev() if cursor.set_range(key) else cursor.last())
