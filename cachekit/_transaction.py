"""Write transactions of a cache: nesting, timeouts, and value-file clean-up.

A value file written for an entry is removed if the transaction rolls
back; a value file an entry stops referencing is removed only after the
transaction commits, so a crash never leaves an entry without its file.
Obsolete files are journaled just before the commit (and new files before
they were written: :mod:`cachekit._journal`), so that the file a killed
process leaves unreferenced is removed by the next process that opens the
cache.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING

from ._errors import Timeout

if TYPE_CHECKING:
    from ._accounting import Accounting

__all__ = ["TransactionState", "UserTransaction", "WriteTransaction"]


class TransactionState(threading.local):
    """Per-thread state of the transaction a thread is in."""

    def __init__(self) -> None:
        self.depth = 0
        self.created: list[str] = []
        """Value files written inside ``transact()``: removed on rollback, settled in the journal
        (no longer in flight) once the outermost transaction ends."""
        self.obsolete: list[tuple[bytes, str]] = []
        """Value files no longer referenced, with the key of the entry that referenced them:
        journaled before the commit, removed after it."""


class WriteTransaction:
    """Context manager for one (possibly nested) write transaction of a cache."""

    __slots__ = ("_cache", "_nested", "_retry", "_store_transaction", "_timeout")

    def __init__(self, cache: Accounting, retry: bool, timeout: float | None = None) -> None:
        self._cache = cache
        self._retry = retry
        self._timeout = timeout
        self._nested = False
        self._store_transaction: AbstractContextManager[None] | None = None

    def __enter__(self) -> TransactionState:
        cache = self._cache
        state = cache._txn
        if state.depth:
            state.depth += 1
            self._nested = True
            return state
        store = cache._store
        while True:
            transaction = store.write() if self._timeout is None else store.write(self._timeout)
            try:
                transaction.__enter__()
                break
            except Timeout:
                cache._count("timeouts")
                if not self._retry:
                    raise
        self._store_transaction = transaction
        state.depth = 1
        state.created = []
        state.obsolete = []
        return state

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        state = self._cache._txn
        if self._nested:
            state.depth -= 1
            return
        state.depth = 0
        created, obsolete = state.created, state.obsolete
        state.created = []
        state.obsolete = []
        cache = self._cache
        files = cache._files
        if obsolete and exc_type is None:
            cache._journal.record_many(obsolete)  # a kill between the commit and the removals loses nothing
        assert self._store_transaction is not None
        try:
            self._store_transaction.__exit__(exc_type, exc, traceback)
        except BaseException:
            for name in created:
                files.remove(name)
            if obsolete:
                cache._journal.settle([name for _, name in obsolete])  # rolled back: still referenced
            raise
        if exc_type is not None:
            for name in created:
                files.remove(name)
            return
        for _, name in obsolete:
            files.remove(name)
        if created:
            cache._journal.settle(created)  # referenced by committed entries now
        reserve = cache._reserve
        if reserve.wanted:
            reserve.restore()  # given up on a full disk: take the room back now that a write succeeded


class UserTransaction(WriteTransaction):
    """What :meth:`cachekit.Cache.transact` returns; ``with`` binds ``None``, as in python-diskcache."""

    __slots__ = ()

    def __enter__(self) -> None:  # type: ignore[override]
        super().__enter__()
