"""``Index``: a persistent, process-shared, insertion-ordered mapping on a :class:`cachekit.Cache`.

Keys and values are the cache's own entries, and iteration follows the
cache's insertion order (:attr:`Order.INSERTION`): replacing a value keeps
the key's place, deleting and setting it again moves it to the end, as in a
``dict``.  The cache belongs to the index (its length is the cache's
length, as in python-diskcache).

Single-key operations are single cache operations; those made of several
steps (``setdefault``, ``popitem``) run inside ``cache.transact()``, so they
are atomic across threads and processes.  Iteration is not a snapshot: the
views read keys in batches and values one by one, skipping keys removed
meanwhile; for a consistent view while others write, iterate inside
``index.transact()``.  ``clear()`` removes in batches (python-diskcache's
behaviour), so a concurrent writer may add keys while it runs.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, MutableMapping, ValuesView
from typing import Any, ParamSpec, TypeVar

from ._cache import Cache
from ._memoize import ENOVAL, Memoized

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["Index"]

_ABSENT: Any = object()
"""A ``get`` default that no stored value can equal."""


class _Values(ValuesView[Any]):
    """The values in insertion order, skipping keys removed while iterating."""

    _mapping: Index

    def __iter__(self) -> Iterator[Any]:
        for _, value in self._mapping._items():
            yield value

    def __contains__(self, value: object) -> bool:
        # ValuesView's own looks each key up again, which raises for a key removed meanwhile.
        return any(item is value or item == value for item in self)


class _Items(ItemsView[Any, Any]):
    """The ``(key, value)`` pairs in insertion order, skipping keys removed while iterating."""

    _mapping: Index

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return self._mapping._items()


class Index(MutableMapping[Any, Any]):
    """A persistent, thread-safe and process-safe mapping that remembers insertion order.

    ``Index(directory=None, /, *args, **kwargs)``: when the first argument is
    a path (or ``None``) the index opens (or creates) the cache there (a new
    temporary directory for ``None`` or no path) with the ``none`` eviction
    policy; the other arguments update it as ``dict.update`` does.

    >>> import tempfile
    >>> index = Index(tempfile.mkdtemp(), [("a", 1), ("b", 2)], c=3)
    >>> index["b"], list(index), len(index)
    (2, ['a', 'b', 'c'], 3)
    >>> index.popitem(), index.popitem(last=False)
    (('c', 3), ('a', 1))
    >>> index.cache.close()
    """

    _cache: Cache

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        directory: str | os.PathLike[str] | None = None
        if args and (args[0] is None or isinstance(args[0], str | bytes | os.PathLike)):
            first, *rest = args
            directory = os.fsdecode(first) if isinstance(first, bytes) else first
            args = tuple(rest)
        self._cache = Cache(directory, eviction_policy="none")
        self.update(*args, **kwargs)

    @classmethod
    def fromcache(cls, cache: Cache, *args: Any, **kwargs: Any) -> Index:
        """An index on an open ``cache`` (which it then owns), updated with the other arguments."""
        index = cls.__new__(cls)
        index._cache = cache
        index.update(*args, **kwargs)
        return index

    # -- attributes ----------------------------------------------------------------
    @property
    def cache(self) -> Cache:
        """The cache holding the items."""
        return self._cache

    @property
    def directory(self) -> str:
        """The directory of the cache holding the items."""
        return self._cache.directory

    # -- the mapping protocol -------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        """``index[key]``; ``KeyError`` if missing."""
        return self._cache[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        """``index[key] = value``; ``ValueError`` if the value is larger than the cache's ``size_limit``."""
        if not self._cache.set(key, value, retry=True):
            raise ValueError(
                f"the value for {key!r} is larger than the cache's size_limit "
                f"({self._cache.size_limit} bytes) and was not stored"
            )

    def __delitem__(self, key: Any) -> None:
        """``del index[key]``; ``KeyError`` if missing."""
        del self._cache[key]

    def __contains__(self, key: object) -> bool:
        return key in self._cache

    def __len__(self) -> int:
        """The number of keys (the cache's length)."""
        return len(self._cache)

    def __iter__(self) -> Iterator[Any]:
        """The keys in insertion order."""
        return iter(self._cache)

    def __reversed__(self) -> Iterator[Any]:
        """The keys in reverse insertion order."""
        return reversed(self._cache)

    def _items(self) -> Iterator[tuple[Any, Any]]:
        cache = self._cache
        for key in cache:
            value = cache.get(key, _ABSENT, retry=True)
            if value is not _ABSENT:
                yield key, value

    # keys() is Mapping's: a set-like view over __iter__.
    def values(self) -> ValuesView[Any]:
        """A view of the values, in insertion order."""
        return _Values(self)

    def items(self) -> ItemsView[Any, Any]:
        """A set-like view of the ``(key, value)`` pairs, in insertion order."""
        return _Items(self)

    def get(self, key: Any, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        return self._cache.get(key, default, retry=True)

    def __eq__(self, other: object) -> bool:
        """Equality with a mapping: order-sensitive with an ``Index`` or ``OrderedDict``, as they
        compare among themselves; order-insensitive with any other mapping, as a ``dict``."""
        if not isinstance(other, Mapping):
            return NotImplemented
        items = list(self._items())
        if len(items) != len(other):
            return False
        if isinstance(other, Index | OrderedDict):
            return all(
                key == other_key and value == other_value
                for (key, value), (other_key, other_value) in zip(items, other.items(), strict=False)
            )
        return all(other.get(key, _ABSENT) == value for key, value in items)

    __hash__ = None  # type: ignore[assignment]  # mutable, like dict

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.directory!r})"

    # -- pickling: a reference to the cache, as a cache pickles ----------------------
    def __getstate__(self) -> Cache:
        return self._cache

    def __setstate__(self, state: Cache) -> None:
        self._cache = state

    # -- the python-diskcache API ---------------------------------------------------------
    def setdefault(self, key: Any, default: Any = None) -> Any:
        """The value under ``key``; if missing, store ``default`` and return it, atomically."""
        cache = self._cache
        value = cache.get(key, _ABSENT, retry=True)
        if value is not _ABSENT:
            return value
        with cache.transact(retry=True):
            value = cache.get(key, _ABSENT, retry=True)
            if value is not _ABSENT:
                return value
            self[key] = default
        return default

    def pop(self, key: Any, default: Any = ENOVAL) -> Any:
        """Remove ``key`` and return its value; ``default`` if missing, or ``KeyError`` without one."""
        value = self._cache.pop(key, default, retry=True)
        if value is ENOVAL:
            raise KeyError(key)
        return value

    def popitem(self, last: bool = True) -> tuple[Any, Any]:
        """Remove and return the ``(key, value)`` inserted last (first with ``last=False``).

        ``KeyError`` if the index is empty.
        """
        cache = self._cache
        with cache.transact(retry=True):
            key, value = cache.peekitem(last, retry=True)
            cache.delete(key, retry=True)
        return key, value

    def peekitem(self, last: bool = True) -> tuple[Any, Any]:
        """The ``(key, value)`` inserted last (first with ``last=False``); ``KeyError`` if empty."""
        item: tuple[Any, Any] = self._cache.peekitem(last, retry=True)
        return item

    def push(self, value: Any, prefix: str | None = None, side: str = "back") -> Any:
        """Add ``value`` at the ``back`` or ``front`` of the queue named ``prefix``; return its key.

        The key is an integer without a prefix, else ``"prefix-<15 digits>"``
        (see the cache's ``push``).
        """
        key = self._cache.push(value, prefix, side, retry=True)
        if key is None:
            raise ValueError(
                f"a {type(value).__name__} value larger than the cache's size_limit "
                f"({self._cache.size_limit} bytes) cannot be pushed"
            )
        return key

    def pull(self, prefix: str | None = None, default: Any = (None, None), side: str = "front") -> Any:
        """Remove and return ``(key, value)`` from the ``front`` or ``back`` of the queue ``prefix``.

        ``default`` if the queue is empty.
        """
        return self._cache.pull(prefix, default, side, retry=True)

    def clear(self) -> None:
        """Remove every item (in batches: not one transaction)."""
        self._cache.clear(retry=True)

    def memoize(
        self, name: str | None = None, typed: bool = False, ignore: Iterable[int | str] = ()
    ) -> Callable[[Callable[P, R]], Memoized[P, R]]:
        """A decorator that keeps a function's results in the index, keyed by its arguments.

        As :meth:`cachekit.Cache.memoize` without ``expire`` and ``tag``
        (an index keeps what it is given).
        """
        return self._cache.memoize(name, typed, ignore=ignore)

    @contextlib.contextmanager
    def transact(self) -> Iterator[None]:
        """A context manager that makes the index operations inside it one atomic transaction.

        Other writers wait until it ends, so keep it short.
        """
        with self._cache.transact(retry=True):
            yield
