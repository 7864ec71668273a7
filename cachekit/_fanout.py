"""``FanoutCache``: the Cache API over several shards, each a :class:`cachekit.Cache`.

A key lives in the shard chosen by a stable hash (CRC-32) of its canonical
bytes from the key codec, so every process, platform and Python run picks
the same shard; Python's ``hash()`` is never used.  Shards are the
subdirectories ``000``, ``001``, ... of the directory, as in python-diskcache.

Writers to different shards never wait for each other, and a shard whose
lock cannot be had within ``timeout`` makes a single-key operation give up
at once (``False``, ``None`` or the default, shaped as a success would be)
instead of blocking; the timeout is counted in that shard's ``timeouts``
counter (see :meth:`FanoutCache.counters`).  Bulk operations retry until
they are done.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, ParamSpec, TypeVar, cast

from ._cache import Cache
from ._errors import DirectoryError, Timeout, UnsupportedOperation
from ._interfaces import Order
from ._memoize import ENOVAL, Memoized, memoize
from ._settings import CORE_SETTINGS, parse_setting

if TYPE_CHECKING:
    import warnings

    from ._core import CacheCore
    from ._deque import Deque
    from ._index import Index

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["FanoutCache"]

_Self = TypeVar("_Self", bound="FanoutCache")

#: Options that belong to the opener rather than the directory: pickling and
#: sub-collections carry them over, since reopening without them could fail.
_CARRIED_OPTIONS = ("secret_key", "allow_insecure_directory")
#: Settings given for the whole FanoutCache: each shard gets an equal part.
_TOTALS = ("size_limit", "disk_reserve")


def _shaped(value: Any, expire_time: bool, tag: bool) -> Any:
    """``value`` in the shape :meth:`Cache.get` gives a miss: a tuple when ``expire_time`` or ``tag``."""
    if expire_time and tag:
        return value, None, None
    if expire_time or tag:
        return value, None
    return value


class FanoutCache:
    """A cache spread over ``shards`` caches, so writers to different keys rarely wait.

    ``FanoutCache(directory=None, shards=8, timeout=0.010, store=None, **settings)``
    opens (or creates) one :class:`cachekit.Cache` per shard in the
    subdirectories ``000``, ``001``, ... of ``directory`` (a new temporary
    directory if ``None``), each with ``timeout``, ``store`` and the settings.
    ``size_limit`` and ``disk_reserve`` are totals over all shards: each shard gets an
    equal part (each shard directory keeps its part of the disk reserve).

    A single-key operation on a shard that stays locked for ``timeout``
    seconds gives up: writes return ``False`` (``incr``/``decr`` and ``push``
    return ``None``), reads return the default in the shape a success would
    have.  Pass ``retry=True`` to wait instead.  Bulk operations (``clear``,
    ``expire``, ``evict``, ``cull``, ``stats``, ``reset``) always retry.

    Iteration goes shard by shard, in insertion order within each shard;
    ``iterkeys`` merges the shards into the global key order.  A queue
    (``push``/``pull``/``peek``) lives whole in the shard chosen by its
    prefix, so it is an exact FIFO.  ``peekitem`` is refused: insertion order
    across shards is not recorded.

    >>> import tempfile
    >>> cache = FanoutCache(tempfile.mkdtemp(), shards=4)
    >>> cache.set("answer", 42), cache.get("answer"), len(cache)
    (True, 42, 1)
    >>> cache.close()
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        shards: int = 8,
        timeout: float = 0.010,
        *,
        store: str | None = None,
        **settings: Any,
    ) -> None:
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
            raise ValueError(f"shards must be a positive integer, got {shards!r}")
        if directory is None:
            directory = tempfile.mkdtemp(prefix="cachekit-")
        self._directory = os.path.abspath(os.fspath(directory))
        try:
            os.makedirs(self._directory, mode=0o700, exist_ok=True)
        except OSError as error:
            raise DirectoryError(
                f"cannot use {self._directory} for a FanoutCache: {error.strerror or error}; "
                "give a directory path that is not a file"
            ) from error
        self._count = shards
        self._timeout = timeout
        self._options = {name: settings[name] for name in _CARRIED_OPTIONS if name in settings}
        shard_settings = dict(settings)
        self._shards: list[Cache] = []
        try:
            for number in range(shards):
                shard_directory = os.path.join(self._directory, f"{number:03d}")
                new = not os.path.exists(shard_directory)
                for name in _TOTALS:
                    if name in settings:
                        shard_settings[name] = self._part(name, settings[name])
                    elif new:
                        # A new shard gets its part of the default total; an existing
                        # one keeps the part it was created with.
                        shard_settings[name] = self._part(name, CORE_SETTINGS[name].default)
                    else:
                        shard_settings.pop(name, None)
                shard = Cache(shard_directory, timeout, store=store, **shard_settings)
                self._shards.append(shard)
                if not new:
                    saved = shard.store.load_settings()
                    for name in _TOTALS:
                        if name not in settings and name not in saved:
                            # A shard older than the setting: its part of the default, without a write.
                            shard.reset(name, self._part(name, CORE_SETTINGS[name].default), update=False)
        except BaseException:
            for shard in self._shards:
                shard.close()
            raise
        self._store_name = self._shards[0].store_name
        self._encode_key = self._shards[0]._encode_key
        self._collections: dict[tuple[str, str], Cache] = {}

    def _part(self, name: str, value: Any) -> int:
        """One shard's share of a total ``size_limit`` or ``disk_reserve``."""
        total: int = parse_setting(CORE_SETTINGS, name, value)
        return total // self._count

    def _shard(self, key: Any) -> Cache:
        """The shard holding ``key``: CRC-32 of its canonical bytes, stable everywhere."""
        return self._shards[zlib.crc32(self._encode_key(key)) % self._count]

    # -- attributes ------------------------------------------------------------
    @property
    def directory(self) -> str:
        """The absolute path of the directory holding the shards."""
        return self._directory

    @property
    def timeout(self) -> float:
        """Seconds a single-key write waits for its shard's lock."""
        return self._timeout

    @property
    def shards(self) -> int:
        """The number of shards."""
        return self._count

    @property
    def store_name(self) -> str:
        """Name of the store every shard runs on."""
        return self._store_name

    def __getattr__(self, name: str) -> Any:
        # Settings read as attributes, as on Cache; size_limit and disk_reserve are totals.
        if name.startswith("_") or name not in CORE_SETTINGS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        if name in _TOTALS:
            return sum(getattr(shard, name) for shard in self._shards)
        return getattr(self._shards[0], name)

    # -- single-key writes -------------------------------------------------------
    def set(
        self,
        key: Any,
        value: Any,
        expire: float | None = None,
        read: bool = False,
        tag: Any = None,
        retry: bool = False,
    ) -> bool:
        """Store ``value`` under ``key``; ``False`` if refused or if the shard stayed locked."""
        try:
            return self._shard(key).set(key, value, expire, read, tag, retry)
        except Timeout:
            return False

    def __setitem__(self, key: Any, value: Any) -> None:
        """``cache[key] = value``: :meth:`set` with ``retry=True``."""
        self.set(key, value, retry=True)

    def touch(self, key: Any, expire: float | None = None, retry: bool = False) -> bool:
        """Give ``key`` a new expiry; ``False`` if missing, expired or the shard stayed locked."""
        try:
            return self._shard(key).touch(key, expire, retry)
        except Timeout:
            return False

    def add(
        self,
        key: Any,
        value: Any,
        expire: float | None = None,
        read: bool = False,
        tag: Any = None,
        retry: bool = False,
    ) -> bool:
        """Store ``value`` only if ``key`` is absent; ``False`` if present or the shard stayed locked."""
        try:
            return self._shard(key).add(key, value, expire, read, tag, retry)
        except Timeout:
            return False

    def incr(self, key: Any, delta: int | float = 1, default: int | float | None = 0, retry: bool = False) -> Any:
        """Add ``delta`` to the number under ``key``; ``None`` if the shard stayed locked."""
        try:
            return self._shard(key).incr(key, delta, default, retry)
        except Timeout:
            return None

    def decr(self, key: Any, delta: int | float = 1, default: int | float | None = 0, retry: bool = False) -> Any:
        """Subtract ``delta`` from the number under ``key``; ``None`` if the shard stayed locked."""
        try:
            return self._shard(key).decr(key, delta, default, retry)
        except Timeout:
            return None

    def pop(
        self,
        key: Any,
        default: Any = None,
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = False,
    ) -> Any:
        """Remove ``key`` and return its value; ``default`` (shaped) if missing or the shard stayed locked."""
        try:
            return self._shard(key).pop(key, default, expire_time, tag, retry)
        except Timeout:
            return _shaped(default, expire_time, tag)

    def delete(self, key: Any, retry: bool = False) -> bool:
        """Remove ``key``; ``False`` if missing, expired or the shard stayed locked."""
        try:
            return self._shard(key).delete(key, retry)
        except Timeout:
            return False

    def __delitem__(self, key: Any) -> None:
        """``del cache[key]``; ``KeyError`` if missing or expired."""
        if not self.delete(key, retry=True):
            raise KeyError(key)

    # -- reads -------------------------------------------------------------------
    def get(
        self,
        key: Any,
        default: Any = None,
        read: bool = False,
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = False,
    ) -> Any:
        """The value under ``key``, or ``default`` (shaped as :meth:`Cache.get` shapes it).

        Reads rarely wait for a lock; if one times out, the default comes
        back, the timeout is counted, and with statistics on the read counts
        as a miss in :meth:`stats`, since that is what the caller got.
        """
        shard = self._shard(key)
        try:
            return shard.get(key, default, read, expire_time, tag, retry)
        except Timeout:
            shard._count("timeouts")
            if shard._statistics:
                shard._count("misses")
            return _shaped(default, expire_time, tag)

    def __getitem__(self, key: Any) -> Any:
        """``cache[key]``; ``KeyError`` if missing or expired."""
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
        """Whether ``key`` is present and not expired."""
        return key in self._shard(key)

    # -- queues ------------------------------------------------------------------
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
        """Add ``value`` to the queue ``prefix`` (which lives in one shard); return its key.

        ``None`` if the value is refused or the queue's shard stayed locked.
        """
        try:
            return self._shard(prefix).push(value, prefix, side, expire, read, tag, retry)
        except Timeout:
            return None

    def pull(
        self,
        prefix: str | None = None,
        default: Any = (None, None),
        side: str = "front",
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = False,
    ) -> Any:
        """Remove and return ``(key, value)`` from the queue ``prefix``; ``default`` (shaped) if
        empty or its shard stayed locked."""
        try:
            return self._shard(prefix).pull(prefix, default, side, expire_time, tag, retry)
        except Timeout:
            return _shaped(default, expire_time, tag)

    def peek(
        self,
        prefix: str | None = None,
        default: Any = (None, None),
        side: str = "front",
        expire_time: bool = False,
        tag: bool = False,
        retry: bool = False,
    ) -> Any:
        """Like :meth:`pull`, without removing the item."""
        try:
            return self._shard(prefix).peek(prefix, default, side, expire_time, tag, retry)
        except Timeout:
            return _shaped(default, expire_time, tag)

    def peekitem(self, last: bool = True, expire_time: bool = False, tag: bool = False, retry: bool = False) -> Any:
        """Refused: the order of insertions across shards is not recorded, so "the item
        inserted last" has no meaning here.  Use an ``index(name)`` or a ``cache(name)``."""
        raise UnsupportedOperation(
            "FanoutCache.peekitem is not supported: insertion order across shards is not recorded; "
            "use fanout.index(name) or fanout.cache(name), whose peekitem is exact"
        )

    # -- bulk operations (always retried) ------------------------------------------
    def _each(self, method: Callable[[Cache], Any]) -> list[Any]:
        """``method`` on every shard in order, each retried until it is not timed out."""
        results = []
        for shard in self._shards:
            while True:
                try:
                    results.append(method(shard))
                    break
                except Timeout:
                    continue
        return results

    def check(self, fix: bool = False, retry: bool = False) -> list[warnings.WarningMessage]:
        """Check every shard; return all their problems as warnings."""
        found: list[warnings.WarningMessage] = []
        for problems in self._each(lambda shard: shard.check(fix, retry=True)):
            found.extend(problems)
        return found

    def expire(self, now: float | None = None, retry: bool = False) -> int:
        """Remove expired entries from every shard; return how many (``retry`` is implied)."""
        return sum(self._each(lambda shard: shard.expire(now, retry=True)))

    def evict(self, tag: Any, retry: bool = False) -> int:
        """Remove every entry with ``tag``; return how many (``retry`` is implied)."""
        return sum(self._each(lambda shard: shard.evict(tag, retry=True)))

    def cull(self, retry: bool = False) -> int:
        """Expire, then evict every shard down to its part of ``size_limit``; return how many."""
        return sum(self._each(lambda shard: shard.cull(retry=True)))

    def clear(self, retry: bool = False) -> int:
        """Remove every entry; return how many (``retry`` is implied)."""
        return sum(self._each(lambda shard: shard.clear(retry=True)))

    def create_tag_index(self) -> None:
        """Index entries by tag in every shard."""
        self._each(lambda shard: shard.create_tag_index())

    def drop_tag_index(self) -> None:
        """Remove the tag index of every shard."""
        self._each(lambda shard: shard.drop_tag_index())

    def stats(self, enable: bool = True, reset: bool = False) -> tuple[int, int]:
        """``(hits, misses)`` summed over the shards; enables statistics, as ``Cache.stats`` does.

        A read that gave up on a locked shard returned the default, and is
        counted as a miss; :meth:`counters` also counts it in ``timeouts``.
        """
        results = self._each(lambda shard: shard.stats(enable, reset))
        return sum(hits for hits, _ in results), sum(misses for _, misses in results)

    def counters(self) -> dict[str, int]:
        """Every counter of :meth:`cachekit.Cache.counters`, summed over the shards.

        ``timeouts`` counts the operations that gave up on a locked shard.
        """
        total: dict[str, int] = {}
        for shard in self._shards:
            for name, count in shard.counters().items():
                total[name] = total.get(name, 0) + count
        return total

    def volume(self) -> int:
        """Bytes held in all the shards."""
        return sum(shard.volume() for shard in self._shards)

    def __len__(self) -> int:
        """Number of entries in all the shards, expired ones included."""
        return sum(len(shard) for shard in self._shards)

    def reset(self, key: str, value: Any = ENOVAL, update: bool = True) -> Any:
        """Read or change a setting in every shard and return it.

        ``size_limit`` and ``disk_reserve`` are totals: each shard gets an equal part.
        """
        if key in _TOTALS and value is not ENOVAL:
            part = self._part(key, value)
            self._each(lambda shard: shard.reset(key, part, update))
            return part * self._count
        results = self._each(lambda shard: shard.reset(key, value, update))
        return sum(results) if key in _TOTALS else results[0]

    # -- iteration ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        """Keys shard by shard, in insertion order within each shard."""
        for shard in self._shards:
            yield from shard

    def __reversed__(self) -> Iterator[Any]:
        """The keys of :meth:`__iter__`, backwards."""
        for shard in reversed(self._shards):
            yield from reversed(shard)

    def iterkeys(self, reverse: bool = False) -> Iterator[Any]:
        """Keys of all shards in one key order (of their canonical bytes), as on a single Cache."""
        for shard in self._shards:
            shard._require_ordered_scans("iterkeys")
        scans = [shard.store.scan(Order.KEY, reverse=reverse) for shard in self._shards]
        decode = self._shards[0]._keys.decode
        for entry in heapq.merge(*scans, key=lambda entry: entry.key, reverse=reverse):
            yield decode(entry.key)

    # -- transactions and memoize ---------------------------------------------------------
    @contextlib.contextmanager
    def transact(self, retry: bool = False) -> Iterator[None]:
        """Lock every shard, in shard order, for one atomic group of operations.

        It blocks every writer of the whole cache: keep it short.
        """
        with contextlib.ExitStack() as stack:
            for shard in self._shards:
                stack.enter_context(shard.transact(retry))
            yield

    def memoize(
        self,
        name: str | None = None,
        typed: bool = False,
        expire: float | None = None,
        tag: Any = None,
        ignore: Iterable[int | str] = (),
    ) -> Callable[[Callable[P, R]], Memoized[P, R]]:
        """A decorator that caches a function's results by its arguments; see :meth:`Cache.memoize`."""
        # memoize() needs only get and set, which this class provides with Cache's signatures.
        return memoize(cast("CacheCore", self), name, typed, expire, tag, ignore)

    # -- sub-collections ------------------------------------------------------------------
    def _collection(self, kind: str, name: str, timeout: float, store: str | None, settings: dict[str, Any]) -> Cache:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        found = self._collections.get((kind, name))
        if found is None:
            parts = name.split("/")
            if any(part in ("", ".", "..") for part in parts):
                raise ValueError(f"name must be a relative path without empty, '.' or '..' parts, got {name!r}")
            directory = os.path.join(self._directory, kind, *parts)
            settings.setdefault("serializer", self._shards[0].serializer)
            for option, value in self._options.items():
                settings.setdefault(option, value)
            found = Cache(directory, timeout, store=self._store_name if store is None else store, **settings)
            self._collections[kind, name] = found
        return found

    def cache(self, name: str, timeout: float = 60, store: str | None = None, **settings: Any) -> Cache:
        """The :class:`cachekit.Cache` in ``cache/<name>`` under the directory, opened once.

        It uses ``store`` and the ``serializer`` setting if given, else this cache's.
        """
        return self._collection("cache", name, timeout, store, dict(settings))

    def deque(self, name: str, maxlen: int | None = None) -> Deque:
        """The :class:`cachekit.Deque` in ``deque/<name>``, on this cache's store and serializer."""
        from ._deque import Deque

        cache = self._collection("deque", name, 60, None, {"eviction_policy": "none"})
        return Deque.fromcache(cache, maxlen=maxlen)

    def index(self, name: str) -> Index:
        """The :class:`cachekit.Index` in ``index/<name>``, on this cache's store and serializer."""
        from ._index import Index

        cache = self._collection("index", name, 60, None, {"eviction_policy": "none"})
        return Index.fromcache(cache)

    # -- life cycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Close every shard and every sub-collection (each reopens by itself on next use)."""
        for cache in [*self._collections.values(), *self._shards]:
            cache.close()
        self._collections.clear()

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
        return {
            "directory": self._directory,
            "shards": self._count,
            "timeout": self._timeout,
            "store": self._store_name,
            "options": dict(self._options),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["directory"], state["shards"], state["timeout"], store=state["store"], **state["options"]
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._directory!r}, shards={self._count}, store={self._store_name!r})"
