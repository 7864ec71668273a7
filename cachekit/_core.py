"""The core of ``Cache``: opening, settings, values, culling, and set/add/get.

Everything is resolved when the cache opens (store, serializer, policy,
settings); the get and set paths only touch attributes of this object.
The rest of the API lives beside it: single-key updates in
:mod:`cachekit._updates`, queues in :mod:`cachekit._queue`, bulk
maintenance (expiry, clearing, iteration, checks) in
:mod:`cachekit._maintenance`, pending statistics and recorded reads in
:mod:`cachekit._accounting`; :mod:`cachekit._cache` puts them together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
import os
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, BinaryIO, ParamSpec, TypeVar

from . import _config, _directory
from ._accounting import Accounting
from ._errors import (
    ConfigError,
    InsecureDirectory,
    SerializationError,
    StorageFull,
    StoreError,
    Timeout,
    UnsupportedOperation,
)
from ._files import ValueFiles
from ._interfaces import Access, Entry, EvictionPolicy, Order, Serializer, Store, StoreConfig
from ._journal import Journal, recover
from ._keys import KeyCodec
from ._memoize import ENOVAL, Memoized, memoize
from ._registry import registry
from ._reserve import DiskReserve
from ._settings import CORE_SETTINGS, parse_setting
from ._transaction import TransactionState, UserTransaction, WriteTransaction
from ._values import ValueCodec

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["CacheCore", "validate_expire"]

log = logging.getLogger("cachekit")
_Self = TypeVar("_Self", bound="CacheCore")

_new_tuple = tuple.__new__
_MISSING: Any = object()
"""A value that cannot be read (damaged or unreadable): the read is a miss."""
_VANISHED: Any = object()
"""A value file that disappeared: another writer replaced the entry, so look again."""
_open_caches: weakref.WeakSet[CacheCore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cache in list(_open_caches):
        cache._reset_thread_state()


os.register_at_fork(after_in_child=_after_fork_in_child)


def validate_expire(expire: Any, now: float) -> float | None:
    """The expire time for ``expire`` seconds from ``now``; clear errors for bad input."""
    if expire is None:
        return None
    if isinstance(expire, bool) or not isinstance(expire, int | float):
        raise TypeError(f"expire must be a number of seconds or None, got {expire!r}")
    if math.isnan(expire) or expire < 0:
        raise ValueError(f"expire must be zero or more seconds, got {expire!r}")
    if math.isinf(expire):
        return None
    return now + expire


class CacheCore(Accounting):
    """The state every part of :class:`cachekit.Cache` shares, with opening, culling and set/add/get."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        timeout: float = 60,
        *,
        store: str | None = None,
        clock: Callable[[], float] | None = None,
        **settings: Any,
    ) -> None:
        config = _config.build(directory, store, timeout, settings)
        self._config = config
        self._clock: Callable[[], float] = clock if clock is not None else time.time
        self._open(config)
        _open_caches.add(self)

    # -- opening ------------------------------------------------------------
    def _open(self, config: _config.Config) -> None:
        self._directory = config.directory
        self._timeout = config.timeout
        self._journal = Journal(config.directory)
        store_config = StoreConfig(
            directory=config.directory,
            timeout=config.timeout,
            durability=config.explicit.get("durability", "normal"),
            options=config.store_options,
        )
        self._store: Store = config.store_class.open(store_config)
        self._lookup = self._store.lookup
        try:
            persisted = self._store.load_settings()
            settings = _config.merge(config, persisted)
            if settings["durability"] != store_config.durability:
                # Durability is persisted in the store but needed to open it:
                # reopen once with the recorded level.
                self._store.close()
                store_config = dataclasses.replace(store_config, durability=settings["durability"])
                self._store = config.store_class.open(store_config)
                self._lookup = self._store.lookup
            # A setting newer than an existing cache's saved ones is not written unless
            # given: reopening an older cache must not need a write (or a disk with room).
            changed = {
                name: settings[name]
                for name, setting in CORE_SETTINGS.items()
                if setting.persist
                and persisted.get(name, ENOVAL) != settings[name]
                and (not persisted or name in persisted or name in config.explicit)
            }
            if changed:  # reopening with unchanged settings writes nothing
                with self._store.write():
                    self._store.save_settings(changed)
            if config.new_directory:
                marker = _directory.write_marker(config.directory, config.store_name)
                if marker["store"] != config.store_name:
                    raise ConfigError(
                        f"another process created the cache in {config.directory} "
                        f"with the {marker['store']!r} store at the same moment"
                    )
            self._reset_accounting()
            self._apply_settings(settings)
        except BaseException:
            self._store.close()
            raise
        self._reserve.ensure()  # best effort: a full disk opens without it
        self._recover_value_files()

    def _recover_value_files(self) -> int:
        """Remove the value files that processes killed mid-write left unreferenced (replaying
        their journals, see :mod:`cachekit._journal`); return how many.  Best effort: a failure
        leaves the journals for the next opener."""
        if not self._value_files:
            return 0
        get = self._store.get

        def referenced(key: bytes, name: str) -> bool:
            entry = get(key)
            return entry is not None and entry.filename == name

        try:
            return recover(self._directory, referenced, self._files.remove)
        except Exception as error:  # never fail an open over it
            log.warning("cachekit: could not recover the value files in flight in %s: %s", self._directory, error)
            return 0

    def _apply_settings(self, settings: dict[str, Any]) -> None:
        """Resolve plugins, adjust the store's indexes, and copy settings to the
        attributes the hot paths read.  Everything that can fail comes first, so
        a failure leaves the object as it was."""
        serializer_class: type[Serializer] = registry.resolve("serializer", settings["serializer"])
        policy: type[EvictionPolicy] = registry.resolve("eviction_policy", settings["eviction_policy"])
        capabilities = self._store.capabilities
        if policy.rank and not capabilities.ordered_scans:
            raise UnsupportedOperation(
                f"the {policy.name!r} eviction policy needs ordered scans, which the "
                f"{self._config.store_name!r} store lacks; use eviction_policy='none'"
            )
        serializer = serializer_class.create(settings)
        self._store.set_eviction_rank(policy.rank)
        self._store.set_tag_index(settings["tag_index"])
        self._settings = settings
        self._serializer = serializer
        self._policy = policy
        self._records = policy.records != Access.NOTHING  # a bool: Flag.__bool__ is slow Python code
        self._record_time = bool(policy.records & Access.TIME)
        self._record_count = bool(policy.records & Access.COUNT)
        self._size_limit: int = settings["size_limit"]
        self._cull_limit: int = settings["cull_limit"]
        self._statistics: bool = settings["statistics"]
        self._value_files = capabilities.value_files
        self._file_threshold: int = settings["disk_min_file_size"] if capabilities.value_files else 2**63
        self._max_inline = capabilities.max_value_size
        self._codec = ValueCodec(
            self._serializer,
            self._config.secret_key,
            refuse_pickle=self._config.insecure,
            resolve=lambda name: registry.resolve("serializer", name).create(self._settings),
        )
        self._decode = self._codec.decode
        self._keys = KeyCodec(self._codec.dumps, self._codec.loads)
        self._encode_key = self._keys.encode
        self._files = ValueFiles(self._directory, durable=settings["durability"] == "full", journal=self._journal)
        reserve: DiskReserve | None = self.__dict__.get("_reserve")
        if reserve is None:
            self._reserve = DiskReserve(self._directory, settings["disk_reserve"])
        elif reserve.size != settings["disk_reserve"]:
            reserve.size = settings["disk_reserve"]
            reserve.wanted = True  # resized at the next successful write (reset() does it at once)

    def _reset_thread_state(self) -> None:
        """After fork, in the child: fresh locks, the parent's pending counts stay the parent's,
        and so does its journal of value files in flight."""
        self._reset_accounting()
        self._journal.after_fork_in_child()

    # -- attributes ------------------------------------------------------------
    @property
    def directory(self) -> str:
        """The absolute path of the cache directory."""
        return self._directory

    @property
    def timeout(self) -> float:
        """Seconds a write waits for the lock."""
        return self._timeout

    @property
    def store(self) -> Store:
        """The open store (for introspection; use the cache's methods to change entries)."""
        return self._store

    @property
    def store_name(self) -> str:
        """Name of the store this cache runs on."""
        return self._config.store_name

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: settings read as attributes,
        # as in python-diskcache (``cache.size_limit``).
        settings = self.__dict__.get("_settings")
        if settings is not None and name in settings:
            return settings[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- transactions ------------------------------------------------------------
    def transact(self, retry: bool = False) -> UserTransaction:
        """A context manager that makes several operations one atomic transaction.

        Other writers wait until it ends; reads from other threads and
        processes see none of its changes until it commits.  Nested calls in
        the same thread join the outer transaction.  Keep it short::

            with cache.transact():
                total = cache.incr("total", 123.4)
                count = cache.incr("count")
        """
        return UserTransaction(self, retry)

    # -- values ------------------------------------------------------------------
    def _prepare_value(
        self, value: Any, read: bool, db_key: bytes | None = None
    ) -> tuple[str, bytes | None, str | None, int]:
        """Encode a value; a large payload goes to a new value file, written outside any lock and
        journaled for ``db_key`` (``None``: not known yet).  Such a file is in flight until the
        caller settles it (:meth:`_settle`) or removes it."""
        if read:
            if not callable(getattr(value, "read", None)):
                raise TypeError(f"read=True needs a binary file object, got {type(value).__name__}")
            if not self._value_files:
                value = value.read()  # the store keeps every payload inline
            else:
                name, size = self._files.write_stream(value, db_key)
                return "bytes", None, name, size
        serializer, payload = self._codec.encode(value)
        size = len(payload)
        if size >= self._file_threshold or (self._max_inline is not None and size > self._max_inline):
            if not self._value_files:
                raise UnsupportedOperation(
                    f"the {self._config.store_name!r} store holds values of at most {self._max_inline} bytes; "
                    f"this one is {size} bytes"
                )
            name, size = self._files.write_bytes(payload, db_key)
            return serializer, None, name, size
        return serializer, payload, None, size

    def _load(self, entry: Entry, read: bool) -> Any:
        """Decode an entry's value; ``_VANISHED`` if its value file is gone, ``_MISSING`` if damaged."""
        name = entry.filename
        try:
            if name is None:
                payload = entry.value
                assert payload is not None
                if read and entry.serializer == "bytes":
                    return io.BytesIO(payload)
                return self._codec.decode(entry.serializer, payload)
            expected = entry.size - len(entry.key)
            if read and entry.serializer == "bytes":
                handle = self._files.open(name)
                if os.fstat(handle.fileno()).st_size != expected:
                    handle.close()
                    raise OSError(f"value file {name} has the wrong size")
                return handle
            return self._codec.decode(entry.serializer, self._files.read(name, expected))
        except InsecureDirectory:
            raise  # a refusal to unpickle, not a damaged value
        except (OSError, SerializationError) as error:
            if isinstance(error, FileNotFoundError):
                return _VANISHED
            self._count("corrupt_values")
            log.warning("cachekit: treating a damaged value in %s as a miss: %s", self._directory, error)
            return _MISSING

    def _require_ordered_scans(self, operation: str) -> None:
        if not self._store.capabilities.ordered_scans:
            raise UnsupportedOperation(
                f"{operation} needs ordered scans, which the {self._config.store_name!r} store does not provide"
            )

    def _load_locked(self, entry: Entry) -> Any:
        """:meth:`_load` inside a write transaction, where no one can replace the file."""
        value = self._load(entry, False)
        if value is _VANISHED:
            self._count("corrupt_values")
            log.warning("cachekit: the value file of an entry in %s is missing; treating it as a miss", self._directory)
            return _MISSING
        return value

    def _decode_tag(self, tag: bytes | None) -> Any:
        return None if tag is None else self._keys.decode(tag)

    def _encode_tag(self, tag: Any) -> bytes | None:
        return None if tag is None else self._keys.encode(tag)

    def _cull(self, now: float, state: TransactionState, limit: int | None = None, added: int = 0) -> None:
        """Inside a write: drop expired entries, then evict while over ``size_limit``.

        At most ``limit`` (default ``cull_limit``) entries go per call, as in
        python-diskcache; expired ones go first.  A write that added ``added``
        bytes may evict beyond that budget, up to ``added`` bytes more, while
        the volume is over ``size_limit``: otherwise large values written over
        small entries would push the volume up by almost their whole size each
        time, ten small evictions at a time, and the volume would creep far
        past the limit.  With it, a write never leaves the volume both over the
        limit and higher than before, so the volume stays within ``size_limit``
        plus the largest entry.
        """
        if self._accesses:
            self._apply_accesses()  # eviction must see this process's recent reads
        remaining = self._cull_limit if limit is None else limit
        if not remaining:
            return
        store = self._store
        totals = store.totals()
        volume = totals.volume
        counts: dict[str, int] = {}
        if totals.next_expiry is not None and totals.next_expiry <= now:
            bound = math.nextafter(now, math.inf)
            expired = list(store.scan(Order.EXPIRY, expired_before=bound, limit=remaining))
            for entry in expired:
                self._drop(entry, state)
                volume -= entry.size
                added -= entry.size
            remaining -= len(expired)
            counts["expirations"] = len(expired)
        if self._policy.rank and volume > self._size_limit:
            evicted = 0
            if remaining:
                for entry in list(store.scan(Order.EVICTION, limit=remaining)):
                    self._drop(entry, state)
                    evicted += 1
                    volume -= entry.size
                    added -= entry.size
                    if volume <= self._size_limit:
                        break
            while added > 0 and volume > self._size_limit:  # the budget ran out: free up to what was added
                page = list(store.scan(Order.EVICTION, limit=16))
                if not page:
                    break
                for entry in page:
                    self._drop(entry, state)
                    evicted += 1
                    volume -= entry.size
                    added -= entry.size
                    if added <= 0 or volume <= self._size_limit:
                        break
            if evicted:
                counts["evictions"] = evicted
        if counts:
            store.add_counters(counts)

    def _drop(self, entry: Entry, state: TransactionState) -> None:
        self._store.delete(entry.key)
        if entry.filename is not None:
            state.obsolete.append((entry.key, entry.filename))

    def _settle(self, name: str) -> None:
        """A write that made value file ``name`` is over (its entry committed, or the file removed):
        the file is no longer in flight.  Inside ``transact()`` the enclosing transaction settles it
        when it ends (``TransactionState.created``)."""
        if not self._txn.depth:
            self._journal.settle((name,))

    # -- the python-diskcache API ---------------------------------------------------
    def set(
        self,
        key: Any,
        value: Any,
        expire: float | None = None,
        read: bool = False,
        tag: Any = None,
        retry: bool = False,
    ) -> bool:
        """Store ``value`` under ``key``; return ``True``, or ``False`` if refused.

        ``expire`` is in seconds (``None``: never); with ``read=True``,
        ``value`` is a binary file object whose content is stored.  A value
        larger than ``size_limit`` is refused (counted as a refusal), never
        stored and silently evicted.
        """
        now = self._clock()
        entry = self._new_entry(key, value, expire, read, tag, now)
        if entry is None:
            return False
        try:
            try:
                with WriteTransaction(self, retry) as state:
                    self._put(entry, state, now)
            except StorageFull:
                if not self._make_room(entry.size):
                    raise
                with WriteTransaction(self, retry) as state:
                    self._put(entry, state, now)
        except BaseException:
            if entry.filename is not None:
                self._files.remove(entry.filename)
            raise
        finally:
            if entry.filename is not None:  # a small value never reaches the journal
                self._settle(entry.filename)
        return True

    def __setitem__(self, key: Any, value: Any) -> None:
        """``cache[key] = value``: :meth:`set` with ``retry=True``."""
        self.set(key, value, retry=True)

    def _new_entry(self, key: Any, value: Any, expire: Any, read: bool, tag: Any, now: float) -> Entry | None:
        """Validate and encode a write (large payloads go to a file now, outside any lock).

        Returns ``None`` when the value is refused for being larger than ``size_limit``.
        """
        expire_time = validate_expire(expire, now)
        tag_bytes = self._encode_tag(tag)
        db_key = self._encode_key(key)
        serializer, payload, name, payload_size = self._prepare_value(value, read, db_key)
        size = len(db_key) + payload_size
        if size > self._size_limit:
            self._refuse(key, size, name)
            return None
        # tuple.__new__ skips the named tuple's Python-level constructor: this runs on every write.
        return _new_tuple(Entry, (db_key, payload, name, serializer, size, now, expire_time, now, 0, tag_bytes))

    def _put(self, entry: Entry, state: TransactionState, now: float) -> None:
        """Inside a write: store ``entry``, retire the value file it replaces, and cull.

        The caller (``set``, ``add``, ``push``) owns ``entry``'s value file,
        removes it if the write fails, and settles it in the journal when it is
        done.  Only an enclosing ``transact()`` block, which can still roll back
        after this write returned, must remove the file on its rollback (and
        settle it when it ends).  A transaction of the write's own must not: ``set``
        and ``add`` store the same entry again, with the same file, after a
        ``StorageFull`` rolled their first attempt back and room was made.
        """
        if entry.filename is not None and state.depth > 1:
            state.created.append(entry.filename)
        old = self._store.put(entry)
        if old is not None and old.filename is not None:
            state.obsolete.append((old.key, old.filename))
        self._cull(now, state, added=entry.size - (0 if old is None else old.size))

    def _add_entry(self, entry: Entry, retry: bool, now: float) -> bool:
        with WriteTransaction(self, retry) as state:
            old = self._store.get(entry.key)
            if old is None or (old.expire_time is not None and old.expire_time <= now):
                self._put(entry, state, now)
                return True
        return False

    # -- removals on a full disk --------------------------------------------------------
    def _removal(self, attempt: Callable[..., R], *arguments: Any) -> R:
        """``attempt(*arguments)``: an operation that only removes entries, in a write
        transaction of its own, made to work on a full disk.

        A removal needs fresh space too (SQLite appends to its write-ahead log, LMDB
        copies pages), so it can fail with ``StorageFull``.  Then the disk reserve is
        given up, the store gives back what space it can (SQLite checkpoints and
        truncates its log, LMDB makes the pages the last transaction freed reusable),
        and the removal is tried once more.  A failed attempt changed nothing: its
        transaction rolled back, and value files go only after a commit.  Inside
        ``transact()`` the transaction is the caller's: no retry.
        """
        try:
            return attempt(*arguments)
        except StorageFull as error:
            if self._txn.depth:
                raise
            failure = error
        released = self._release_reserve(failure)
        if not self._reclaim() and not released:
            raise failure
        return attempt(*arguments)

    def _release_reserve(self, error: StorageFull) -> bool:
        """Give up the disk reserve so that a removal can proceed; return whether there was one."""
        if not self._reserve.release():
            return False
        self._count("reserve_used")
        log.warning(
            "cachekit: %s is full (%s); gave up its disk reserve of %d bytes so that removals can proceed",
            self._directory,
            error,
            self._reserve.size,
        )
        return True

    def _reclaim(self) -> bool:
        """Let the store give back space it holds (outside any transaction); return whether it did."""
        try:
            reclaimed = self._store.reclaim()
        except (StoreError, Timeout) as error:
            log.info("cachekit: the store of %s could not reclaim space: %s", self._directory, error)
            return False
        if reclaimed:
            log.info("cachekit: %s is full; the store reclaimed what space it could", self._directory)
        return reclaimed

    def _make_room(self, needed: int) -> bool:
        """The store is full (the LMDB map at its ceiling, or the disk): remove expired
        entries, then evict by the policy, to free about twice ``needed`` bytes (at
        least ``cull_limit`` entries when the policy evicts).  Return whether anything
        was removed, so that the write is worth retrying once.  Inside ``transact()``
        no room is made: the user's transaction owns the lock, and it fails whole."""
        if self._txn.depth:
            return False
        try:
            expired, evicted = self._removal(self._remove_to_make_room, needed)
        except StoreError as error:
            log.warning("cachekit: %s is full and no room could be made: %s", self._directory, error)
            return False
        removed = expired + evicted
        if removed:
            log.warning("cachekit: %s was full; removed %d entries to make room", self._directory, removed)
        return removed > 0

    def _remove_to_make_room(self, needed: int) -> tuple[int, int]:
        """:meth:`_make_room`'s transaction; return how many entries expired and were evicted."""
        now = self._clock()
        bound = math.nextafter(now, math.inf)
        limit = max(self._cull_limit, 10)
        with WriteTransaction(self, retry=False) as state:
            store = self._store
            expired = list(store.scan(Order.EXPIRY, expired_before=bound, limit=limit))
            for entry in expired:
                self._drop(entry, state)
            freed = sum(entry.size for entry in expired)
            evicted = 0
            if self._policy.rank and freed < 2 * needed:
                for entry in list(store.scan(Order.EVICTION, limit=limit)):
                    self._drop(entry, state)
                    evicted += 1
                    freed += entry.size
                    if freed >= 2 * needed and evicted >= self._cull_limit:
                        break
            counts = {name: count for name, count in (("expirations", len(expired)), ("evictions", evicted)) if count}
            if counts:
                store.add_counters(counts)
        return len(expired), evicted

    def _refuse(self, key: Any, size: int, name: str | None) -> None:
        if name is not None:
            self._files.remove(name)
        self._count("refusals")
        log.warning(
            "cachekit: refused %r: %d bytes exceed size_limit=%d of %s", key, size, self._size_limit, self._directory
        )

    def add(
        self,
        key: Any,
        value: Any,
        expire: float | None = None,
        read: bool = False,
        tag: Any = None,
        retry: bool = False,
    ) -> bool:
        """Store ``value`` only if ``key`` is absent or expired; return whether it was stored."""
        now = self._clock()
        entry = self._new_entry(key, value, expire, read, tag, now)
        if entry is None:
            return False
        added = False
        try:
            try:
                added = self._add_entry(entry, retry, now)
            except StorageFull:
                if not self._make_room(entry.size):
                    raise
                added = self._add_entry(entry, retry, now)
        finally:
            if not added and entry.filename is not None:
                self._files.remove(entry.filename)
            if entry.filename is not None:
                self._settle(entry.filename)
        return added

    def get(
        self,
        key: Any,
        default: Any = None,
        read: bool = False,
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = False,
    ) -> Any:
        """The value under ``key``, or ``default`` if it is missing or expired.

        With ``read=True`` a bytes value comes back as a binary file handle.
        With ``expire_time`` and/or ``tag``, the result is a tuple
        ``(value, expire_time, tag)`` (or the pair asked for), as in
        python-diskcache.
        """
        # str keys inline (the same bytes as KeyCodec.encode gives): a call saved per read.
        db_key = b"s" + key.encode("utf-8", "surrogatepass") if type(key) is str else self._encode_key(key)
        if not (read or expire_time or tag):
            # The common case, kept short: one lookup of four fields, one decode.
            try:
                found = self._lookup(db_key)
            except Timeout:
                if not retry:
                    raise
                found = _MISSING
            if found is None:
                if self._statistics:
                    self._count_lookup("misses")
                return default
            if found is not _MISSING:
                payload, filename, serializer, entry_expire = found
                if filename is None and payload is not None:
                    if entry_expire is not None and entry_expire <= self._clock():
                        if self._statistics:
                            self._count_lookup("misses")
                        return default
                    if serializer == "bytes":
                        value = payload  # stored as is, never signed: no decoder to call
                    else:
                        try:
                            value = self._decode(serializer, payload)
                        except SerializationError:
                            value = _MISSING  # the slow path counts and logs it
                    if value is not _MISSING:
                        if self._statistics:
                            self._count_lookup("hits")
                        if self._records:
                            self._record_access(db_key, self._clock())
                        return value
        return self._get_entry(db_key, default, read, expire_time, tag, retry)

    def _get_entry(self, db_key: bytes, default: Any, read: bool, expire_time: bool, tag: bool, retry: bool) -> Any:
        """:meth:`get` for value files, ``read``, result tuples, retries and damaged values."""
        vanished = 0
        while vanished < 3:
            try:
                entry = self._store.get(db_key)
            except Timeout:
                if not retry:
                    raise
                continue
            if entry is None:
                break
            entry_expire = entry.expire_time
            if entry_expire is not None and entry_expire <= self._clock():
                break
            value = self._load(entry, read)
            if value is _VANISHED:
                vanished += 1
                continue  # the value file was replaced under us; look again
            if value is _MISSING:
                break
            if self._statistics:
                self._count_lookup("hits")
            if self._records:
                self._record_access(db_key, self._clock())
            if expire_time and tag:
                return value, entry_expire, self._decode_tag(entry.tag)
            if expire_time:
                return value, entry_expire
            if tag:
                return value, self._decode_tag(entry.tag)
            return value
        if self._statistics:
            self._count_lookup("misses")
        if expire_time and tag:
            return default, None, None
        if expire_time or tag:
            return default, None
        return default

    def __getitem__(self, key: Any) -> Any:
        """``cache[key]``; raises ``KeyError`` if missing or expired."""
        value = self.get(key, ENOVAL, retry=True)
        if value is ENOVAL:
            raise KeyError(key)
        return value

    def read(self, key: Any, retry: bool = False) -> BinaryIO:
        """A binary file handle on the bytes value under ``key``; ``KeyError`` if missing."""
        handle = self.get(key, ENOVAL, read=True, retry=retry)
        if handle is ENOVAL:
            raise KeyError(key)
        return handle  # type: ignore[no-any-return]

    def __contains__(self, key: Any) -> bool:
        """Whether ``key`` is present and not expired (no statistics, no access recorded)."""
        entry = self._store.get(self._encode_key(key))
        if entry is None:
            return False
        return entry.expire_time is None or entry.expire_time > self._clock()

    def memoize(
        self,
        name: str | None = None,
        typed: bool = False,
        expire: float | None = None,
        tag: Any = None,
        ignore: Iterable[int | str] = (),
    ) -> Callable[[Callable[P, R]], Memoized[P, R]]:
        """A decorator that caches a function's results by its arguments.

        ``@cache.memoize()`` (parentheses required).  ``typed`` keeps
        arguments of different types apart; ``ignore`` lists positions and
        keyword names to leave out of the key.  The wrapper's
        ``__cache_key__(*args, **kwargs)`` returns the key of a call.
        """
        return memoize(self, name, typed, expire, tag, ignore)

    # -- settings and statistics -----------------------------------------------------
    def reset(self, key: str, value: Any = ENOVAL, update: bool = True) -> Any:
        """Read (no ``value``) or change a persisted setting and return it.

        Without ``value`` the setting is reloaded from the directory, so a
        change made by another process becomes visible.  With ``update=False``
        the change applies to this object only.
        """
        if key not in CORE_SETTINGS:
            raise ConfigError(
                f"{key!r} cannot be reset; settings that can: {', '.join(sorted(CORE_SETTINGS))}"
                + ("; store settings apply when the cache is opened" if key in self._store.settings else "")
            )
        if key == "durability" and value is not ENOVAL:
            raise ConfigError("durability applies when the cache is opened; reopen it with durability=...")
        if self._txn.depth and key in ("eviction_policy", "tag_index"):
            raise UnsupportedOperation(f"{key!r} changes the store's indexes and cannot be reset inside transact()")
        previous = self._settings
        if value is ENOVAL:
            value = self._store.load_settings().get(key, CORE_SETTINGS[key].default)
            self._apply_settings({**previous, key: value})
            return value
        value = parse_setting(CORE_SETTINGS, key, value)
        if key == "statistics" and not value:
            with contextlib.suppress(Timeout):
                self._flush_counters()
        # Apply first (it resolves plugins and changes indexes, and leaves the
        # object unchanged if that fails), then persist, undoing on failure.
        self._apply_settings({**previous, key: value})
        if update:
            try:
                with WriteTransaction(self, retry=True):
                    self._store.save_settings({key: value})
            except BaseException:
                self._apply_settings(previous)
                raise
        if key == "disk_reserve":
            self._reserve.ensure()  # best effort, as at open
        return value

    def stats(self, enable: bool = True, reset: bool = False) -> tuple[int, int]:
        """``(hits, misses)`` since statistics were enabled; enables them (as python-diskcache does)."""
        counters = self._persisted_counters()
        result = (counters.get("hits", 0), counters.get("misses", 0))
        if reset:
            with WriteTransaction(self, retry=True):
                self._store.reset_counters(["hits", "misses"])
        if enable != self._statistics:
            self.reset("statistics", enable)
        return result

    def counters(self) -> dict[str, int]:
        """Every persisted counter: ``hits``, ``misses``, ``evictions``, ``expirations``,
        ``timeouts``, ``refusals``, ``corrupt_values`` and ``reserve_used`` (all zero until
        they happen)."""
        names = ("hits", "misses", "evictions", "expirations", "timeouts", "refusals", "corrupt_values", "reserve_used")
        stored = self._persisted_counters()
        return {name: stored.get(name, 0) for name in names}

    def volume(self) -> int:
        """Bytes of keys and values held (the quantity ``size_limit`` bounds)."""
        return self._store.totals().volume

    def __len__(self) -> int:
        """Number of entries, expired ones included (as in python-diskcache)."""
        return self._store.totals().count

    # -- life cycle -----------------------------------------------------------
    def close(self) -> None:
        """Write out pending statistics and accesses and release the store.

        Waits at most ``timeout`` for the write lock to do so, and never
        retries: pending statistics are not worth blocking a shutdown.  A
        closed cache reopens by itself on next use, as in python-diskcache.
        """
        try:
            if not self._flush_accesses(wait=True):
                log.warning(
                    "cachekit: %s stayed locked or is full; recorded reads were not written out", self._directory
                )
            try:
                self._flush_counters(wait=True)
            except (Timeout, StorageFull) as error:
                log.warning("cachekit: pending statistics of %s were not written out: %s", self._directory, error)
        finally:
            self._store.close()
            self._journal.close()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        config = self._config
        return {
            "directory": config.directory,
            "timeout": config.timeout,
            "store": config.store_name,
            "options": {
                "secret_key": config.secret_key,
                "allow_insecure_directory": config.allow_insecure_directory,
            },
        }

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        options = {name: value for name, value in state["options"].items() if value is not None}
        self.__init__(state["directory"], state["timeout"], store=state["store"], **options)  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._directory!r}, store={self._config.store_name!r})"
