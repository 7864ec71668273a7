"""Queue operations of ``Cache``: ``push``, ``pull``, ``peek`` and ``peekitem``.

Queue keys follow python-diskcache: a prefix, a dash and a 15-digit number
(or the bare number without a prefix), starting at 500000000000000 and
growing at the back, shrinking at the front.  They rely on the store's
key order (:attr:`Order.KEY`).
"""

from __future__ import annotations

from typing import Any

from ._core import _MISSING, CacheCore, validate_expire
from ._interfaces import Entry, Order
from ._keys import QUEUE_START, queue_bounds, queue_key
from ._transaction import TransactionState, WriteTransaction

__all__ = ["QueueMixin"]

_SIDES = ("back", "front")


def _check_side(side: str) -> None:
    if side not in _SIDES:
        raise ValueError(f"side must be 'back' or 'front', got {side!r}")


def _check_prefix(prefix: Any) -> None:
    if prefix is not None and not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str or None, got {type(prefix).__name__}")


def _shape(item: Any, entry: Entry | None, cache: CacheCore, expire_time: bool, tag: bool) -> Any:
    expire = None if entry is None else entry.expire_time
    tag_value = None if entry is None else cache._decode_tag(entry.tag)
    if expire_time and tag:
        return item, expire, tag_value
    if expire_time:
        return item, expire
    if tag:
        return item, tag_value
    return item


class QueueMixin(CacheCore):
    """Queue methods, mixed into :class:`cachekit.Cache`."""

    def push(
        self,
        value: Any,
        prefix: str | None = None,
        side: str = "back",
        expire: float | None = None,
        read: bool = False,
        tag: Any = None,
        retry: bool = False,
    ) -> Any:
        """Add ``value`` at the ``back`` or ``front`` of the queue named ``prefix``; return its key.

        Returns ``None`` (and counts a refusal) if the value is larger than
        ``size_limit``.
        """
        _check_side(side)
        _check_prefix(prefix)
        self._require_ordered_scans("push")
        now = self._clock()
        expire_time = validate_expire(expire, now)
        tag_bytes = self._encode_tag(tag)
        start, stop = queue_bounds(self._keys, prefix)
        # A value file is journaled without a key (the queue key is chosen inside the
        # transaction), and again with it before the commit.
        serializer, payload, name, payload_size = self._prepare_value(value, read)
        if payload_size > self._size_limit:
            self._refuse(f"a push to queue {prefix!r}", payload_size, name)
            return None
        try:
            with WriteTransaction(self, retry) as state:
                edge = next(self._store.scan(Order.KEY, reverse=side == "back", start=start, stop=stop, limit=1), None)
                if edge is None:
                    number = QUEUE_START
                else:
                    edge_key = self._keys.decode(edge.key)
                    number = edge_key if prefix is None else int(edge_key.rsplit("-", 1)[1])
                    number += 1 if side == "back" else -1
                key = queue_key(prefix, number)
                db_key = self._encode_key(key)
                entry = Entry._make(
                    (db_key, payload, name, serializer, len(db_key) + payload_size, now, expire_time, now, 0, tag_bytes)
                )
                if name is not None:
                    self._journal.record(db_key, name)
                self._put(entry, state, now)
        except BaseException:
            if name is not None:
                self._files.remove(name)
            raise
        finally:
            if name is not None:
                self._settle(name)
        return key

    def _first_in_queue(
        self,
        state: TransactionState,
        order: Order,
        reverse: bool,
        remove: bool,
        bounds: tuple[bytes, bytes] | None,
    ) -> tuple[Entry, Any] | None:
        """The first live entry in ``order`` and its value; expired or unreadable ones are deleted."""
        start, stop = bounds if bounds is not None else (None, None)
        while True:
            entry = next(self._store.scan(order, reverse=reverse, start=start, stop=stop, limit=1), None)
            if entry is None:
                return None
            expired = entry.expire_time is not None and entry.expire_time <= self._clock()
            value = _MISSING if expired else self._load_locked(entry)
            if remove or value is _MISSING:
                self._store.delete(entry.key)
                if entry.filename is not None:
                    state.obsolete.append((entry.key, entry.filename))
            if value is not _MISSING:
                return entry, value

    def _find_first(
        self, order: Order, reverse: bool, remove: bool, bounds: tuple[bytes, bytes] | None, retry: bool
    ) -> tuple[Entry, Any] | None:
        with WriteTransaction(self, retry) as state:
            return self._first_in_queue(state, order, reverse, remove, bounds)

    def _take(
        self,
        prefix: str | None,
        default: Any,
        side: str,
        expire_time: bool,
        tag: bool,
        retry: bool,
        remove: bool,
    ) -> Any:
        _check_side(side)
        _check_prefix(prefix)
        self._require_ordered_scans("pull" if remove else "peek")
        bounds = queue_bounds(self._keys, prefix)
        # Only removes (expired items, and the one pulled): it may use the disk reserve.
        found = self._removal(self._find_first, Order.KEY, side == "back", remove, bounds, retry)
        if found is None:
            return _shape(default, None, self, expire_time, tag)
        entry, value = found
        return _shape((self._keys.decode(entry.key), value), entry, self, expire_time, tag)

    def pull(
        self,
        prefix: str | None = None,
        default: Any = (None, None),
        side: str = "front",
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = False,
    ) -> Any:
        """Remove and return ``(key, value)`` from the ``front`` or ``back`` of the queue ``prefix``.

        Returns ``default`` when the queue is empty; expired items are
        discarded on the way.
        """
        return self._take(prefix, default, side, expire_time, tag, retry, remove=True)

    def peek(
        self,
        prefix: str | None = None,
        default: Any = (None, None),
        side: str = "front",
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = False,
    ) -> Any:
        """Like :meth:`pull`, without removing the item (expired items are still discarded)."""
        return self._take(prefix, default, side, expire_time, tag, retry, remove=False)

    def peekitem(self, last: bool = True, expire_time: bool = False, tag: bool = False, retry: bool = False) -> Any:
        """The ``(key, value)`` inserted last (or first); ``KeyError`` if the cache is empty."""
        self._require_ordered_scans("peekitem")
        found = self._removal(self._find_first, Order.INSERTION, last, False, None, retry)
        if found is None:
            raise KeyError("dictionary is empty")
        entry, value = found
        return _shape((self._keys.decode(entry.key), value), entry, self, expire_time, tag)
