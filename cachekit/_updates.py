"""Single-key updates of ``Cache``: ``touch``, ``incr``/``decr``, ``pop`` and ``delete``."""

from __future__ import annotations

from typing import Any

from ._core import _MISSING, CacheCore, validate_expire
from ._interfaces import Entry
from ._transaction import WriteTransaction

__all__ = ["UpdateMixin"]


class UpdateMixin(CacheCore):
    """Single-key updates, mixed into :class:`cachekit.Cache`."""

    def touch(self, key: Any, expire: float | None = None, retry: bool = False) -> bool:
        """Give ``key`` a new expiry; return whether it was present and unexpired."""
        now = self._clock()
        expire_time = validate_expire(expire, now)
        db_key = self._encode_key(key)
        with WriteTransaction(self, retry):
            entry = self._store.get(db_key)
            if entry is None or (entry.expire_time is not None and entry.expire_time <= now):
                return False
            return self._store.update(db_key, {"expire_time": expire_time})

    def incr(self, key: Any, delta: int | float = 1, default: int | float | None = 0, retry: bool = False) -> Any:
        """Add ``delta`` to the number under ``key`` atomically and return the result.

        A missing or expired key starts at ``default``; with ``default=None``
        it raises ``KeyError``.  A value that is not a number raises
        ``TypeError`` and is left unchanged.
        """
        if isinstance(delta, bool) or not isinstance(delta, int | float):
            raise TypeError(f"delta must be a number, got {delta!r}")
        if default is not None and (isinstance(default, bool) or not isinstance(default, int | float)):
            raise TypeError(f"default must be a number or None, got {default!r}")
        now = self._clock()
        db_key = self._encode_key(key)
        with WriteTransaction(self, retry) as state:
            entry = self._store.get(db_key)
            if entry is None or (entry.expire_time is not None and entry.expire_time <= now):
                if default is None:
                    raise KeyError(key)
                value = default + delta
                expire_time = None
                tag_bytes = None
                access_count = 0
            else:
                current = self._load_locked(entry)
                if current is _MISSING:
                    raise KeyError(key)
                if isinstance(current, bool) or not isinstance(current, int | float):
                    raise TypeError(f"cannot increment {key!r}: its value is a {type(current).__name__}, not a number")
                value = current + delta
                expire_time = entry.expire_time
                tag_bytes = entry.tag
                access_count = entry.access_count
            serializer, payload = self._codec.encode(value)
            size = len(db_key) + len(payload)
            new = Entry._make((db_key, payload, None, serializer, size, now, expire_time, now, access_count, tag_bytes))
            self._put(new, state, now)
        return value

    def decr(self, key: Any, delta: int | float = 1, default: int | float | None = 0, retry: bool = False) -> Any:
        """Subtract ``delta`` from the number under ``key``; see :meth:`incr`."""
        if isinstance(delta, bool) or not isinstance(delta, int | float):
            raise TypeError(f"delta must be a number, got {delta!r}")
        return self.incr(key, -delta, default, retry)

    def pop(
        self,
        key: Any,
        default: Any = None,
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = False,
    ) -> Any:
        """Remove ``key`` and return its value, or ``default`` if missing or expired."""
        entry, value = self._removal(self._pop, self._encode_key(key), retry)
        if value is _MISSING:
            if expire_time and tag:
                return default, None, None
            if expire_time or tag:
                return default, None
            return default
        assert entry is not None
        if expire_time and tag:
            return value, entry.expire_time, self._decode_tag(entry.tag)
        if expire_time:
            return value, entry.expire_time
        if tag:
            return value, self._decode_tag(entry.tag)
        return value

    def _pop(self, db_key: bytes, retry: bool) -> tuple[Entry | None, Any]:
        now = self._clock()
        with WriteTransaction(self, retry) as state:
            entry = self._store.get(db_key)
            value: Any = _MISSING
            if entry is not None and (entry.expire_time is None or entry.expire_time > now):
                value = self._load_locked(entry)
            if value is not _MISSING:
                assert entry is not None
                self._store.delete(db_key)
                if entry.filename is not None:
                    state.obsolete.append((db_key, entry.filename))
        return entry, value

    def delete(self, key: Any, retry: bool = False) -> bool:
        """Remove ``key``; return whether it was present and unexpired."""
        return self._removal(self._delete, self._encode_key(key), retry)

    def _delete(self, db_key: bytes, retry: bool) -> bool:
        now = self._clock()
        with WriteTransaction(self, retry) as state:
            entry = self._store.delete(db_key)
            if entry is None:
                return False
            if entry.filename is not None:
                state.obsolete.append((entry.key, entry.filename))
            return entry.expire_time is None or entry.expire_time > now

    def __delitem__(self, key: Any) -> None:
        """``del cache[key]``; raises ``KeyError`` if missing or expired."""
        if not self.delete(key, retry=True):
            raise KeyError(key)
