"""``Deque``: a persistent, process-shared ``collections.deque`` on a :class:`cachekit.Cache`.

The items are the cache's queue entries without a prefix: the keys are
integers (python-diskcache's numbering, starting at 500000000000000), kept
in the store's key order (:attr:`Order.KEY`), front first.  ``append`` and
``pop`` are the cache's ``push`` and ``pull``; the cache belongs to the
deque (its length is the cache's length, as in python-diskcache).

**The keys are kept contiguous by design.**  Every operation of this class
that removes or adds an item in the middle (``del d[i]``, ``remove``,
``insert``) moves the values on the shorter side of it one key along, inside
the same transaction, so the keys from front to back have no gaps.  That
makes ``d[i]`` one lookup of ``front + i`` (after two one-entry seeks for
the front and back keys), and ``len(d)`` stays the cache's count, both
independent of the deque's length.  Recording holes instead would make
``del d[i]`` cheaper but every later ``d[i]`` a scan until the hole is
popped, and would need a persisted hole count to keep ``len`` exact; a
deque is indexed far more often than it is cut in the middle, and
``collections.deque`` itself pays O(min(i, n - i)) for ``del d[i]``.

Holes can still appear from outside this class: an item pushed through the
cache with ``expire=`` and culled, a ``cache.delete`` of one key, eviction
when the cache was given a ``size_limit`` and a policy.  ``span != len``
detects them, and indexing then falls back to a key-ordered scan from the
nearer end, bounded and limited: O(min(i, n - i)) entries read, until the
items around the hole are popped.  Expired or unreadable items met by
indexing are removed, as ``pull`` and ``peek`` remove them; those a move
meets (``del``, ``insert``, ``reverse``) are dropped rather than moved.

Costs for a deque of n items, counted in store operations (each one seek
in the store's ordered index), all inside one transaction::

    append[left], pop[left], peek[left]     O(1)
    len(d)                                  O(1)
    d[i], d[i] = x                          O(1); O(min(i, n - i)) with holes
    del d[i], insert(i, x)                  O(min(i, n - i)): values moved one key along
    remove(x)                               O(position of x) reads, then del
    rotate(k)                               O(min(k, n - k)) pulls and pushes
    reverse()                               O(n) reads and writes
    iteration, count, index, comparisons    O(n), keys read in batches of 100

Every multi-step operation runs inside ``cache.transact()``, so it is atomic
across threads and processes.  Iteration is not one transaction (it would
hold the write lock while the caller's loop runs): it reads batches of keys
in order and each item once, skipping items removed meanwhile; for a
consistent view while others write, iterate inside ``d.transact()``.
"""

from __future__ import annotations

import contextlib
import copy
import operator
import os
from collections.abc import Callable, Iterable, Iterator, MutableSequence, Sequence
from typing import Any

from ._cache import Cache
from ._interfaces import Order
from ._keys import KeyCodec, queue_bounds

__all__ = ["Deque"]

_BATCH = 100
"""Keys read per scan when walking the deque."""
_ABSENT: Any = object()
"""A ``get`` default that no stored value can equal."""
_UNBOUNDED = float("inf")
"""``maxlen`` of a deque without a bound, as python-diskcache reports it."""


def _no_serializer(value: Any) -> Any:  # pragma: no cover - deque keys are integers, encoded natively
    raise TypeError(f"deque keys are integers, got {value!r}")


# Queue keys without a prefix are integers, which the key codec encodes by
# itself, so the deque needs no access to the cache's serializer.
_KEYS = KeyCodec(_no_serializer, _no_serializer)
_START, _STOP = queue_bounds(_KEYS, None)


def _check_maxlen(maxlen: float | None) -> float:
    """``maxlen`` as kept: a non-negative integer, or infinity for no bound (as python-diskcache keeps it)."""
    if maxlen is None or maxlen == _UNBOUNDED:
        return _UNBOUNDED
    try:
        bound = operator.index(maxlen)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"maxlen must be an integer or None, got {maxlen!r}") from None
    if bound < 0:
        raise ValueError(f"maxlen must be non-negative, got {bound}")
    return bound


class Deque(MutableSequence[Any]):
    """A persistent, thread-safe and process-safe double-ended queue.

    ``Deque(iterable=(), directory=None, maxlen=None)`` opens (or creates) a
    cache in ``directory`` (a new temporary directory if ``None``) with the
    ``none`` eviction policy and appends the items of ``iterable``.  Any
    number of ``Deque`` objects, in any number of processes, may share one
    directory.  ``maxlen`` belongs to this object, not to the directory.

    >>> import tempfile
    >>> deque = Deque(range(5), tempfile.mkdtemp())
    >>> deque.appendleft(-1)
    >>> deque.pop(), deque.popleft(), deque[1], len(deque)
    (4, -1, 1, 4)
    >>> deque.rotate(1)
    >>> list(deque)
    [3, 0, 1, 2]
    >>> deque.cache.close()
    """

    _cache: Cache
    _maxlen: float

    def __init__(
        self, iterable: Iterable[Any] = (), directory: str | os.PathLike[str] | None = None, maxlen: int | None = None
    ) -> None:
        self._maxlen = _check_maxlen(maxlen)
        self._cache = Cache(directory, eviction_policy="none")
        self.extend(iterable)

    @classmethod
    def fromcache(cls, cache: Cache, iterable: Iterable[Any] = (), maxlen: int | None = None) -> Deque:
        """A deque on an open ``cache`` (which it then owns), extended by ``iterable``."""
        deque = cls.__new__(cls)
        deque._maxlen = _check_maxlen(maxlen)
        deque._cache = cache
        deque.extend(iterable)
        return deque

    # -- attributes --------------------------------------------------------------
    @property
    def cache(self) -> Cache:
        """The cache holding the items."""
        return self._cache

    @property
    def directory(self) -> str:
        """The directory of the cache holding the items."""
        return self._cache.directory

    @property
    def maxlen(self) -> float:
        """The largest length, or ``float('inf')`` for none.

        python-diskcache's value; ``collections.deque`` says ``None``.
        """
        return self._maxlen

    @maxlen.setter
    def maxlen(self, value: float | None) -> None:
        """Set the largest length, removing items from the front until the deque fits."""
        self._maxlen = _check_maxlen(value)
        with self._cache.transact(retry=True):
            while len(self._cache) > self._maxlen:
                self._take("front")

    # -- keys ------------------------------------------------------------------------
    def _scan_keys(self, reverse: bool = False, after: int | None = None, limit: int | None = None) -> list[int]:
        """Keys in order from the front (or back), beyond ``after`` if given, at most ``limit``."""
        start, stop = _START, _STOP
        if after is not None:
            if reverse:
                stop = _KEYS.encode(after)
            else:
                start = _KEYS.encode(after + 1)
        entries = self._cache.store.scan(Order.KEY, reverse=reverse, start=start, stop=stop, limit=limit)
        return [_KEYS.decode(entry.key) for entry in entries]

    def _keys_at(self, first: int, count: int, size: int, trust_offsets: bool = True) -> list[int]:
        """Keys of the items at positions ``first`` to ``first + count - 1``, inside a transaction.

        Without holes (the span from front to back key equals the length) they
        are offsets from the front key; otherwise a scan from the nearer end.
        """
        if trust_offsets:
            front = self._scan_keys(limit=1)
            back = self._scan_keys(reverse=True, limit=1)
            if front and back and back[0] - front[0] + 1 == size:
                return list(range(front[0] + first, front[0] + first + count))
        if first + count <= size - first:
            keys = self._scan_keys(limit=first + count)[first:]
        else:
            keys = self._scan_keys(reverse=True, limit=size - first)[::-1][:count]
        if len(keys) != count:
            raise IndexError("deque index out of range")
        return keys

    @staticmethod
    def _position(index: Any, size: int) -> int:
        try:
            position = operator.index(index)
        except TypeError:
            raise TypeError(f"deque indices must be integers, not {type(index).__name__}") from None
        if position < 0:
            position += size
        if not 0 <= position < size:
            raise IndexError("deque index out of range")
        return position

    # -- single steps, called inside a transaction ------------------------------------
    def _refused(self, value: Any) -> ValueError:
        return ValueError(
            f"a {type(value).__name__} value larger than the cache's size_limit "
            f"({self._cache.size_limit} bytes) cannot be stored in the deque"
        )

    def _push(self, value: Any, side: str) -> None:
        if self._cache.push(value, side=side, retry=True) is None:
            raise self._refused(value)

    def _take(self, side: str, remove: bool = True) -> Any:
        take = self._cache.pull if remove else self._cache.peek
        _, value = take(default=(None, _ABSENT), side=side, retry=True)
        return value

    def _put(self, key: int, value: Any) -> None:
        """Store ``value`` at ``key``; ``_ABSENT`` (an unreadable item moved here) removes the key."""
        if value is _ABSENT:
            self._cache.delete(key, retry=True)
        elif not self._cache.set(key, value, retry=True):
            raise self._refused(value)

    def _move(self, source: int, target: int) -> None:
        self._put(target, self._cache.get(source, _ABSENT, retry=True))

    def _delete_at(self, position: int, size: int) -> None:
        """Remove the item at ``position``, closing the gap from the nearer end."""
        if position < size - 1 - position:
            keys = self._keys_at(0, position + 1, size)
            for index in range(position, 0, -1):
                self._move(keys[index - 1], keys[index])
            self._cache.delete(keys[0], retry=True)
        else:
            keys = self._keys_at(position, size - position, size)
            for index in range(len(keys) - 1):
                self._move(keys[index + 1], keys[index])
            self._cache.delete(keys[-1], retry=True)

    # -- the sequence protocol ----------------------------------------------------------
    def __len__(self) -> int:
        """The number of items (the cache's length)."""
        return len(self._cache)

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]  # no slices, as collections.deque
        """``d[index]``; ``IndexError`` if out of range.  One lookup while the keys have no holes."""
        cache = self._cache
        trust_offsets = True
        with cache.transact(retry=True):
            while True:
                size = len(cache)
                key = self._keys_at(self._position(index, size), 1, size, trust_offsets)[0]
                value = cache.get(key, _ABSENT, retry=True)
                if value is not _ABSENT:
                    return value
                # Expired or unreadable: remove it, as pull does, and look again.  If nothing
                # was there, the cache holds keys that are not the deque's: stop trusting offsets.
                cache.delete(key, retry=True)
                if len(cache) == size:
                    if not trust_offsets:
                        raise IndexError("deque index out of range")
                    trust_offsets = False

    def __setitem__(self, index: int, value: Any) -> None:  # type: ignore[override]  # no slices
        """``d[index] = value``; ``IndexError`` if out of range."""
        with self._cache.transact(retry=True):
            size = len(self._cache)
            key = self._keys_at(self._position(index, size), 1, size)[0]
            self._put(key, value)

    def __delitem__(self, index: int) -> None:  # type: ignore[override]  # no slices
        """``del d[index]``; ``IndexError`` if out of range.  Moves the items on the shorter side."""
        with self._cache.transact(retry=True):
            size = len(self._cache)
            self._delete_at(self._position(index, size), size)

    def _values(self, reverse: bool) -> Iterator[Any]:
        cache = self._cache
        after: int | None = None
        while True:
            keys = self._scan_keys(reverse=reverse, after=after, limit=_BATCH)
            for key in keys:
                value = cache.get(key, _ABSENT, retry=True)
                if value is not _ABSENT:
                    yield value
            if len(keys) < _BATCH:
                return
            after = keys[-1]

    def __iter__(self) -> Iterator[Any]:
        """The items from front to back (read in batches; see the module docstring)."""
        return self._values(reverse=False)

    def __reversed__(self) -> Iterator[Any]:
        """The items from back to front."""
        return self._values(reverse=True)

    # -- comparisons: with any sequence, item by item as lists compare (python-diskcache's rule) --
    def _compare(self, other: Sequence[Any], test: Callable[[Any, Any], bool]) -> bool:
        size, other_size = len(self), len(other)
        if size != other_size and test in (operator.eq, operator.ne):
            return test is operator.ne
        for mine, theirs in zip(self, other, strict=False):  # lengths may differ for < and >
            if mine != theirs:
                return bool(test(mine, theirs))
        return test(size, other_size)

    def __eq__(self, other: object) -> bool:
        """Whether ``other`` is a sequence with equal items in the same order (a list or tuple may be)."""
        if not isinstance(other, Sequence):
            return NotImplemented
        return self._compare(other, operator.eq)

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return self._compare(other, operator.ne)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return self._compare(other, operator.lt)

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return self._compare(other, operator.le)

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return self._compare(other, operator.gt)

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return self._compare(other, operator.ge)

    __hash__ = None  # type: ignore[assignment]  # mutable, like collections.deque

    def __iadd__(self, iterable: Iterable[Any]) -> Deque:
        """``d += iterable``: extend the back."""
        self.extend(iterable)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(directory={self.directory!r})"

    # -- pickling: a reference to the cache, as a cache pickles ------------------------------
    def __getstate__(self) -> tuple[Cache, float]:
        return self._cache, self._maxlen

    def __setstate__(self, state: tuple[Cache, float]) -> None:
        self._cache, self._maxlen = state

    # -- the deque API -----------------------------------------------------------------------
    def append(self, value: Any) -> None:
        """Add ``value`` at the back; with ``maxlen`` reached, the front item goes."""
        with self._cache.transact(retry=True):
            self._push(value, "back")
            if self._maxlen != _UNBOUNDED and len(self._cache) > self._maxlen:
                self._take("front")

    def appendleft(self, value: Any) -> None:
        """Add ``value`` at the front; with ``maxlen`` reached, the back item goes."""
        with self._cache.transact(retry=True):
            self._push(value, "front")
            if self._maxlen != _UNBOUNDED and len(self._cache) > self._maxlen:
                self._take("back")

    def extend(self, iterable: Iterable[Any]) -> None:
        """Append the items of ``iterable``, each in its own transaction."""
        for value in list(iterable) if iterable is self else iterable:
            self.append(value)

    def extendleft(self, iterable: Iterable[Any]) -> None:
        """Append each item of ``iterable`` at the front (so they end up reversed)."""
        for value in list(iterable) if iterable is self else iterable:
            self.appendleft(value)

    def pop(self) -> Any:  # type: ignore[override]  # no index argument, as collections.deque
        """Remove and return the back item; ``IndexError`` if the deque is empty."""
        value = self._take("back")
        if value is _ABSENT:
            raise IndexError("pop from an empty deque")
        return value

    def popleft(self) -> Any:
        """Remove and return the front item; ``IndexError`` if the deque is empty."""
        value = self._take("front")
        if value is _ABSENT:
            raise IndexError("pop from an empty deque")
        return value

    def peek(self) -> Any:
        """The back item, without removing it; ``IndexError`` if the deque is empty."""
        value = self._take("back", remove=False)
        if value is _ABSENT:
            raise IndexError("peek from an empty deque")
        return value

    def peekleft(self) -> Any:
        """The front item, without removing it; ``IndexError`` if the deque is empty."""
        value = self._take("front", remove=False)
        if value is _ABSENT:
            raise IndexError("peek from an empty deque")
        return value

    def insert(self, index: int, value: Any) -> None:
        """Insert ``value`` before position ``index`` (as ``list.insert``), moving the shorter side.

        ``IndexError`` if the deque already holds ``maxlen`` items.
        """
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(f"deque indices must be integers, not {type(index).__name__}") from None
        with self._cache.transact(retry=True):
            size = len(self._cache)
            if size >= self._maxlen:
                raise IndexError("deque already at its maximum size")
            position = max(index + size, 0) if index < 0 else min(index, size)
            if position in (0, size):
                self._push(value, "front" if position == 0 else "back")
            elif position <= size - position:
                keys = self._keys_at(0, position, size)
                moved = self._cache.get(keys[0], _ABSENT, retry=True)
                if moved is not _ABSENT:
                    self._push(moved, "front")
                for offset in range(1, position):
                    self._move(keys[offset], keys[offset - 1])
                self._put(keys[-1], value)
            else:
                keys = self._keys_at(position, size - position, size)
                moved = self._cache.get(keys[-1], _ABSENT, retry=True)
                if moved is not _ABSENT:
                    self._push(moved, "back")
                for offset in range(len(keys) - 1, 0, -1):
                    self._move(keys[offset - 1], keys[offset])
                self._put(keys[0], value)

    def remove(self, value: Any) -> None:
        """Remove the first item equal to ``value``; ``ValueError`` if there is none."""
        cache = self._cache
        with cache.transact(retry=True):
            size = len(cache)
            position = 0
            after: int | None = None
            while True:
                keys = self._scan_keys(after=after, limit=_BATCH)
                for key in keys:
                    item = cache.get(key, _ABSENT, retry=True)
                    if item is not _ABSENT and item == value:
                        self._delete_at(position, size)
                        return
                    position += 1
                if len(keys) < _BATCH:
                    break
                after = keys[-1]
        raise ValueError("deque.remove(value): value not in deque")

    def count(self, value: Any) -> int:
        """How many items equal ``value``."""
        return sum(1 for item in self if item == value)

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        """The position of the first item equal to ``value`` in ``[start, stop)``; ``ValueError`` if none."""
        size = len(self)
        start = max(start + size, 0) if start < 0 else start
        if stop is not None and stop < 0:
            stop += size
        for position, item in enumerate(self):
            if stop is not None and position >= stop:
                break
            if position >= start and item == value:
                return position
        raise ValueError(f"{value!r} is not in deque")

    def reverse(self) -> None:
        """Reverse the items in place, in one transaction (O(n) reads and writes)."""
        cache = self._cache
        with cache.transact(retry=True):
            size = len(cache)
            if size < 2:
                return
            keys = self._keys_at(0, size, size)
            for offset in range(size // 2):
                left, right = keys[offset], keys[size - 1 - offset]
                left_value = cache.get(left, _ABSENT, retry=True)
                self._put(left, cache.get(right, _ABSENT, retry=True))
                self._put(right, left_value)

    def rotate(self, steps: int = 1) -> None:
        """Rotate ``steps`` to the right (to the left if negative), in one transaction."""
        if not isinstance(steps, int):
            raise TypeError(f"integer argument expected, got {type(steps).__name__}")
        with self._cache.transact(retry=True):
            size = len(self._cache)
            if not size:
                return
            steps %= size
            # Rotating right by k moves k items; rotating left by n - k is the same, so take the shorter way.
            source, target = ("back", "front") if steps <= size - steps else ("front", "back")
            for _ in range(min(steps, size - steps)):
                value = self._take(source)
                if value is _ABSENT:
                    return
                self._push(value, target)

    def clear(self) -> None:
        """Remove every item (the whole cache, in batches: not one transaction)."""
        self._cache.clear(retry=True)

    def copy(self) -> Deque:
        """A new ``Deque`` object on the same directory with the same ``maxlen``, as in python-diskcache.

        Unlike ``collections.deque.copy``, it shares the items: to copy them
        elsewhere, use ``Deque(deque, directory=...)``.
        """
        twin = type(self).__new__(type(self))
        twin.__setstate__((copy.copy(self._cache), self._maxlen))  # a cache copies as a reopened reference
        return twin

    @contextlib.contextmanager
    def transact(self) -> Iterator[None]:
        """A context manager that makes the deque operations inside it one atomic transaction.

        Other writers wait until it ends, so keep it short.
        """
        with self._cache.transact(retry=True):
            yield
