"""Maintenance operations of ``Cache``: culling, expiry, eviction by tag,
clearing, iteration and the consistency check.

Bulk removals run in batches, each batch its own short transaction, so a
large ``clear()`` never holds the write lock for long.  On a full disk each
batch goes through ``CacheCore._removal`` (which gives up the disk reserve and
retries), and if a batch still does not fit, the batches shrink (100, 10, 1
entries): a smaller transaction needs fewer fresh pages.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ._core import CacheCore
from ._errors import StorageFull, StoreError, UnsupportedOperation
from ._interfaces import Entry, Order
from ._journal import in_flight
from ._transaction import WriteTransaction

__all__ = ["MaintenanceMixin"]

_BATCH = 100
#: Files younger than this are not called orphans: their entry may be about to commit.
_ORPHAN_GRACE_SECONDS = 60.0


class MaintenanceMixin(CacheCore):
    """Maintenance methods, mixed into :class:`cachekit.Cache`."""

    def _remove_in_batches(
        self, select: Callable[[int], list[Entry]], retry: bool, counter: str | None, most: int | None = None
    ) -> int:
        """Remove what ``select(limit)`` picks, a batch per transaction, until it picks fewer
        than asked for (or ``most`` are gone); return how many went."""
        total = 0
        size = _BATCH
        fitted = 0  # batches in a row that fitted at a reduced size
        while most is None or total < most:
            limit = size if most is None else min(size, most - total)
            try:
                removed = self._removal(self._remove_batch, select, limit, retry, counter)
            except StorageFull:
                if size == 1 or self._txn.depth:
                    raise
                size //= 10  # full even after the reserve went: a smaller transaction needs fewer pages
                fitted = 0
                continue
            total += removed
            if removed < limit:
                break
            if size < _BATCH:
                fitted += 1
                if fitted == 10:  # room again (removals free space): back to larger batches
                    size *= 10
                    fitted = 0
        return total

    def _remove_batch(self, select: Callable[[int], list[Entry]], limit: int, retry: bool, counter: str | None) -> int:
        with WriteTransaction(self, retry) as state:
            batch = select(limit)
            for entry in batch:
                self._drop(entry, state)
            if counter and batch:
                self._store.add_counters({counter: len(batch)})
        return len(batch)

    def expire(self, now: float | None = None, retry: bool = False) -> int:
        """Remove expired entries (as of ``now``, default the current time); return how many."""
        if now is not None and (isinstance(now, bool) or not isinstance(now, int | float) or math.isnan(now)):
            raise TypeError(f"now must be a time in seconds since the epoch or None, got {now!r}")
        bound = math.nextafter(self._clock() if now is None else now, math.inf)
        store = self._store
        return self._remove_in_batches(
            lambda limit: list(store.scan(Order.EXPIRY, expired_before=bound, limit=limit)), retry, "expirations"
        )

    def evict(self, tag: Any, retry: bool = False) -> int:
        """Remove every entry with ``tag``; return how many."""
        encoded = self._keys.encode(tag)
        store = self._store
        return self._remove_in_batches(
            lambda limit: list(store.scan(Order.INSERTION, tag=encoded, limit=limit)), retry, None
        )

    def clear(self, retry: bool = False) -> int:
        """Remove every entry; return how many."""
        store = self._store
        return self._remove_in_batches(lambda limit: list(store.scan(Order.INSERTION, limit=limit)), retry, None)

    def cull(self, retry: bool = False) -> int:
        """Remove expired entries, then evict until the volume is within ``size_limit``; return how many."""
        removed = self.expire(retry=retry)
        if not self._policy.rank:
            return removed
        while self._store.totals().volume > self._size_limit:
            culled = self._removal(self._cull_batch, retry)
            if not culled:
                break
            removed += culled
        return removed

    def _cull_batch(self, retry: bool) -> int:
        with WriteTransaction(self, retry) as state:
            before = self._store.totals().count
            self._cull(self._clock(), state, limit=10)
            return before - self._store.totals().count

    def _evict_entries(self, count: int, retry: bool = False) -> int:
        """Remove ``count`` entries, first to leave first (insertion order when the policy
        never evicts); return how many.  For callers with an entry-count bound of their
        own, such as Django's ``MAX_ENTRIES``."""
        self._require_ordered_scans("evicting a number of entries")
        order = Order.EVICTION if self._policy.rank else Order.INSERTION
        store = self._store

        def select(limit: int) -> list[Entry]:
            if self._accesses:
                self._apply_accesses()  # the order must see this process's recent reads
            return list(store.scan(order, limit=limit))

        return self._remove_in_batches(select, retry, "evictions", most=count)

    def create_tag_index(self) -> None:
        """Index entries by tag, which makes :meth:`evict` fast on large caches."""
        self.reset("tag_index", True)

    def drop_tag_index(self) -> None:
        """Remove the tag index."""
        self.reset("tag_index", False)

    # -- iteration -------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        """Keys in insertion order, expired ones included."""
        decode = self._keys.decode
        for entry in self._store.scan(Order.INSERTION):
            yield decode(entry.key)

    def __reversed__(self) -> Iterator[Any]:
        """Keys in reverse insertion order, expired ones included."""
        decode = self._keys.decode
        for entry in self._store.scan(Order.INSERTION, reverse=True):
            yield decode(entry.key)

    def iterkeys(self, reverse: bool = False) -> Iterator[Any]:
        """Keys in the store's key order (the order of their canonical bytes)."""
        self._require_ordered_scans("iterkeys")
        decode = self._keys.decode
        for entry in self._store.scan(Order.KEY, reverse=reverse):
            yield decode(entry.key)

    # -- consistency ---------------------------------------------------------------
    def check(self, fix: bool = False, retry: bool = False) -> list[warnings.WarningMessage]:
        """Verify the store, the value files and the totals; return the problems as warnings.

        With ``fix=True``, entries whose value file is missing or damaged are
        removed, orphan value files older than a minute are deleted, and the
        store repairs what it can.  Either way, the value files that processes
        killed mid-write left are removed first, as when a cache opens; files
        that live processes have in flight (journaled) are not orphans.
        """
        if self._txn.depth:
            raise UnsupportedOperation("check() takes its own transactions and cannot run inside transact()")
        self._recover_value_files()
        with warnings.catch_warnings(record=True) as found:
            warnings.simplefilter("always")
            for problem in self._store.check(fix):
                warnings.warn(problem, stacklevel=2)
            referenced: set[str] = set()
            broken: list[Entry] = []
            with self._store.read():  # one consistent view of which files are referenced
                for entry in self._store.scan(Order.INSERTION):
                    if entry.filename is None:
                        continue
                    referenced.add(entry.filename)
                    problem = self._value_file_problem(entry)
                    if problem:
                        warnings.warn(problem, stacklevel=2)
                        broken.append(entry)
            if fix and broken:
                self._removal(self._drop_broken, broken, retry)
            now = time.time()
            journaled = in_flight(self._directory) if self._value_files else set()
            for name in self._files.names():
                if name in referenced or name in journaled:
                    continue
                path = os.path.join(self._directory, name)
                try:
                    age = now - os.lstat(path).st_mtime
                except FileNotFoundError:
                    continue
                warnings.warn(f"orphan value file {path}", stacklevel=2)
                if fix and age > _ORPHAN_GRACE_SECONDS:
                    os.unlink(path)
            self._check_reserve(fix, now)
        return found

    def _check_reserve(self, fix: bool, now: float) -> None:
        """The disk reserve has its size (or is absent with ``disk_reserve=0``); with
        ``fix``, make it so, and remove temporary files a crash left while creating it."""
        reserve = self._reserve
        problem = reserve.problem()
        if problem:
            warnings.warn(problem, stacklevel=3)
            if fix:
                reserve.ensure()
        for path, modified in reserve.leftovers():
            warnings.warn(f"leftover temporary file of the disk reserve {path}", stacklevel=3)
            if fix and now - modified > _ORPHAN_GRACE_SECONDS:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def _drop_broken(self, broken: list[Entry], retry: bool) -> None:
        with WriteTransaction(self, retry) as state:
            for entry in broken:
                current = self._store.get(entry.key)
                if current is not None and current.filename == entry.filename:
                    self._drop(current, state)

    def _value_file_problem(self, entry: Entry) -> str:
        assert entry.filename is not None
        try:
            path = self._files.path(entry.filename)
        except StoreError as error:
            return str(error)
        expected = entry.size - len(entry.key)
        try:
            status = os.lstat(path)
        except FileNotFoundError:
            return f"value file {path} is missing"
        if not os.path.isfile(path) or os.path.islink(path):
            return f"value file {path} is not a regular file"
        if status.st_size != expected:
            return f"value file {path} holds {status.st_size} bytes, expected {expected}"
        return ""
