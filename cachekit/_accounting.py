"""Bookkeeping a cache keeps in memory: pending statistics and recorded reads.

Hits, misses and the reads an eviction policy must record are counted in
memory and written out in batches, so that a read never costs a write
transaction.  A batch goes out when it is large (256), old (a second), at
every cull, and at close; writing one out never makes a read wait for the
lock: if the lock is busy, the batch stays and grows.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from ._errors import StorageFull, Timeout
from ._files import ValueFiles
from ._interfaces import Store
from ._journal import Journal
from ._reserve import DiskReserve
from ._transaction import TransactionState, WriteTransaction

__all__ = ["PENDING_LIMIT", "PENDING_SECONDS", "Accounting"]

PENDING_LIMIT = 256
PENDING_SECONDS = 1.0


class Accounting:
    """Pending counters and recorded reads; a base of :class:`cachekit._core.CacheCore`."""

    _store: Store
    _txn: TransactionState
    _files: ValueFiles
    _journal: Journal
    _reserve: DiskReserve
    _stats_lock: threading.Lock
    _pending_counters: dict[str, int]
    _counters_deadline: float
    _counters_limit: int
    _accesses: dict[bytes, list[float]]
    _accesses_deadline: float
    _accesses_limit: int
    _record_time: bool
    _record_count: bool

    def _reset_accounting(self) -> None:
        """Start with nothing pending (at open, and in a child after fork)."""
        self._txn = TransactionState()
        self._stats_lock = threading.Lock()
        self._pending_counters = {}
        self._counters_deadline = time.monotonic() + PENDING_SECONDS
        self._counters_limit = PENDING_LIMIT
        self._accesses = {}
        self._accesses_deadline = float("inf")
        self._accesses_limit = PENDING_LIMIT

    def _count(self, name: str, amount: int = 1) -> int:
        """Add to a pending counter; return how many counts are pending in all."""
        with self._stats_lock:
            counters = self._pending_counters
            counters[name] = counters.get(name, 0) + amount
            return sum(counters.values())

    def _count_lookup(self, name: str) -> None:
        now = time.monotonic()
        if self._count(name) >= self._counters_limit or now >= self._counters_deadline:
            self._counters_deadline = now + PENDING_SECONDS
            try:
                self._flush_counters(wait=False)
            except (Timeout, StorageFull):
                # Still pending.  Ask again after twice as many, so that a
                # lock held elsewhere (or a full disk) does not cost every read an attempt.
                self._counters_limit *= 2
            else:
                self._counters_limit = PENDING_LIMIT

    def _flush_counters(self, wait: bool = True) -> None:
        """Write pending counts; without ``wait``, only if the write lock is free right now.

        Inside a transaction of this thread they stay pending: written there, they
        would be lost with it if it rolled back."""
        if self._txn.depth:
            return
        with self._stats_lock:
            pending, self._pending_counters = self._pending_counters, {}
        if not pending:
            return
        try:
            with WriteTransaction(self, retry=False, timeout=None if wait else 0):
                self._store.add_counters(pending)
        except BaseException:
            with self._stats_lock:
                for name, amount in pending.items():
                    self._pending_counters[name] = self._pending_counters.get(name, 0) + amount
            raise

    def _persisted_counters(self) -> dict[str, int]:
        """The directory's counters plus this object's pending ones (written out if possible)."""
        with contextlib.suppress(Timeout, StorageFull):  # on a full disk they stay pending
            self._flush_counters()
        counters = self._store.counters()
        with self._stats_lock:
            for name, amount in self._pending_counters.items():
                counters[name] = counters.get(name, 0) + amount
        return counters

    def _record_access(self, db_key: bytes, now: float) -> None:
        # Accesses are batched: a read must not cost a write transaction.
        # Races between threads may merge two counts into one; eviction order
        # is approximate by design (see docs: eviction policies).
        accesses = self._accesses
        record = accesses.get(db_key)
        if record is None:
            if not accesses:
                self._accesses_deadline = now + PENDING_SECONDS
            accesses[db_key] = [now, 1.0]
        else:
            record[0] = now
            record[1] += 1
        if len(accesses) >= self._accesses_limit or now >= self._accesses_deadline:
            self._accesses_deadline = now + PENDING_SECONDS
            if self._flush_accesses(wait=False):
                self._accesses_limit = PENDING_LIMIT
            else:
                self._accesses_limit *= 2  # as for statistics: try again later, not on every read

    def _flush_accesses(self, wait: bool = False) -> bool:
        """Write pending accesses; return False if the lock was busy (the batch is kept)."""
        if not self._accesses:
            return True
        if self._txn.depth:
            self._apply_accesses()
            return True
        try:
            with WriteTransaction(self, retry=False, timeout=None if wait else 0):
                self._apply_accesses()
        except (Timeout, StorageFull):
            return False
        return True

    def _apply_accesses(self) -> None:
        """Write pending accesses; called inside a write transaction."""
        batch, self._accesses = self._accesses, {}
        store = self._store
        # list() copies atomically: a reader that loaded the old dict just before the
        # swap may still add to it.
        for db_key, (access_time, count) in list(batch.items()):
            entry = store.get(db_key)
            if entry is None:
                continue
            changes: dict[str, Any] = {}
            if self._record_time and access_time > entry.access_time:
                changes["access_time"] = access_time
            if self._record_count:
                changes["access_count"] = entry.access_count + int(count)
            if changes:
                store.update(db_key, changes)
