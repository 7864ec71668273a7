"""``CachekitCache``: a Django cache backend on a cachekit cache, on any store.

``LOCATION`` is a directory or a cachekit config string (``lmdb:///var/cache/site``);
``OPTIONS`` takes cachekit's settings by their names, plus Django's ``MAX_ENTRIES``
and ``CULL_FREQUENCY``.  Every option is validated when the backend is created:
an unknown one raises ``ImproperlyConfigured`` naming it (Django's own backends
would silently ignore it).

Keys are Django's (``make_and_validate_key``: prefix, version, key function,
memcached-safety warnings); values go through cachekit's serializer (``pickle``
by default, as Django's backends pickle).  Timeouts follow Django: the
``TIMEOUT`` default, ``None`` for never, ``0`` or less for "do not keep".
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.exceptions import ImproperlyConfigured

import cachekit
from cachekit import ENOVAL

__all__ = ["CachekitCache"]

#: Django's own OPTIONS, which BaseCache reads.
_DJANGO_OPTIONS = frozenset({"MAX_ENTRIES", "CULL_FREQUENCY"})


@contextlib.contextmanager
def _pickle_errors() -> Iterator[None]:
    """Let a value that pickle refuses raise ``pickle.PickleError``, as from Django's own backends."""
    try:
        yield
    except cachekit.SerializationError as error:
        if isinstance(error.__cause__, pickle.PickleError):
            raise error.__cause__ from error
        raise


class CachekitCache(BaseCache):
    """A Django cache on cachekit: ``BACKEND = "cachekit_django.CachekitCache"``."""

    def __init__(self, location: str, params: Mapping[str, Any]) -> None:
        self._location = location
        options = dict(params.get("OPTIONS") or {})
        super().__init__(params)
        settings = {name: value for name, value in options.items() if name not in _DJANGO_OPTIONS}
        if not isinstance(location, str) or not location:
            raise ImproperlyConfigured(
                "CachekitCache needs a LOCATION: a directory or a cachekit config string such as "
                f"'lmdb:///var/cache/site'; got {location!r}"
            )
        try:
            self._cache = cachekit.open(location, **settings)
        except cachekit.ConfigError as error:
            # Option names only: a value may be a secret_key.
            raise ImproperlyConfigured(
                f"cache LOCATION {location!r} with OPTIONS {sorted(options)}: {error}"
            ) from error

    # -- attributes --------------------------------------------------------------
    @property
    def directory(self) -> str:
        """The cache directory."""
        return self._cache.directory

    def _expire(self, timeout: Any) -> float | None:
        """cachekit's ``expire`` (seconds from now, ``None`` for never) for a Django timeout."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        return float(timeout)

    # -- Django's BaseCache API ---------------------------------------------------
    def validate_key(self, key: str) -> None:
        """Django's check for keys memcached would refuse (warning ``CacheKeyWarning``).

        Plain keys, short and of printable ASCII without spaces, are passed at
        once: Django's check runs a generator and a regular expression on every
        call, which costs more than a read of the cache itself.
        """
        if len(key) <= 250 and key.isascii() and key.isprintable() and " " not in key:
            return
        super().validate_key(key)

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None, tag: Any = None
    ) -> bool:
        key = self.make_and_validate_key(key, version=version)
        expire = self._expire(timeout)
        if expire is not None and expire <= 0:
            # Django stores it already expired: "added", yet never readable.
            return key not in self._cache
        self._make_room()
        with _pickle_errors():
            return self._cache.add(key, value, expire=expire, tag=tag, retry=True)

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        return self._cache.get(key, default, retry=True)

    def set(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None, tag: Any = None
    ) -> None:
        key = self.make_and_validate_key(key, version=version)
        self._set(key, value, self._expire(timeout), tag)

    def _set(self, key: str, value: Any, expire: float | None, tag: Any = None) -> bool:
        if expire is not None and expire <= 0:
            self._cache.delete(key, retry=True)
            return True
        self._make_room()
        with _pickle_errors():
            return self._cache.set(key, value, expire=expire, tag=tag, retry=True)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        expire = self._expire(timeout)
        if expire is not None and expire <= 0:
            return self._cache.delete(key, retry=True)
        return self._cache.touch(key, expire, retry=True)

    def delete(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._cache.delete(key, retry=True)

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        found = {}
        for key in keys:
            value = self._cache.get(self.make_and_validate_key(key, version=version), ENOVAL, retry=True)
            if value is not ENOVAL:
                found[key] = value
        return found

    def has_key(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return key in self._cache

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        try:
            return self._cache.incr(key, delta, default=None, retry=True)
        except KeyError:
            raise ValueError(f"Key '{key}' not found") from None

    def decr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return self.incr(key, -delta, version)

    def set_many(
        self, data: Mapping[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        expire = self._expire(timeout)
        failed = []
        for key, value in data.items():
            if not self._set(self.make_and_validate_key(key, version=version), value, expire):
                failed.append(key)
        return failed

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        for key in keys:
            self._cache.delete(self.make_and_validate_key(key, version=version), retry=True)

    def clear(self) -> None:
        self._cache.clear(retry=True)

    def close(self, **kwargs: Any) -> None:
        """Write out pending statistics and recorded reads, if the lock is free right now.

        Django calls this at the end of every request.  The store stays open:
        reopening it on the next request (an LMDB environment, an SQLite
        connection) would cost more than the request's cache calls, and a local
        cache holds no connection that needs closing.
        """
        with contextlib.suppress(cachekit.Timeout):
            self._cache._flush_accesses(wait=False)
            self._cache._flush_counters(wait=False)

    # -- MAX_ENTRIES and CULL_FREQUENCY ------------------------------------------
    def _make_room(self) -> None:
        """Django's culling: at ``MAX_ENTRIES`` entries, remove a ``CULL_FREQUENCY``-th of
        them (all of them for 0), first to leave first by the eviction policy."""
        count = len(self._cache)
        if count < self._max_entries:
            return
        if self._cull_frequency == 0:
            self._cache.clear(retry=True)
        else:
            self._cache._evict_entries(count // self._cull_frequency, retry=True)

    # -- python-diskcache's DjangoCache extras --------------------------------------
    def read(self, key: Any, version: int | None = None) -> BinaryIO:
        """A file handle on a bytes value (``KeyError`` if missing)."""
        key = self.make_and_validate_key(key, version=version)
        return self._cache.read(key, retry=True)

    def memoize(
        self,
        name: str | None = None,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        typed: bool = False,
        tag: Any = None,
        ignore: Iterable[int | str] = (),
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Memoize a function in this cache (python-diskcache's ``DjangoCache.memoize``).

        Entries are stored under cachekit keys (``version`` is accepted for
        compatibility and ignored), with Django's default ``TIMEOUT``.
        """
        return self._cache.memoize(name, typed=typed, expire=self._expire(timeout), tag=tag, ignore=ignore)

    def evict(self, tag: Any) -> int:
        """Remove every entry with ``tag``; return how many."""
        return self._cache.evict(tag, retry=True)

    def expire(self) -> int:
        """Remove expired entries; return how many."""
        return self._cache.expire(retry=True)

    def stats(self, enable: bool = True, reset: bool = False) -> tuple[int, int]:
        """``(hits, misses)``; enables statistics, as python-diskcache does."""
        return self._cache.stats(enable=enable, reset=reset)

    def cull(self) -> int:
        """Remove expired entries, then evict down to ``size_limit``; return how many."""
        return self._cache.cull(retry=True)

    def create_tag_index(self) -> None:
        """Index entries by tag, which makes :meth:`evict` fast."""
        self._cache.create_tag_index()

    def drop_tag_index(self) -> None:
        """Remove the tag index."""
        self._cache.drop_tag_index()

    def cache(self, name: str) -> cachekit.Cache:
        """A separate cachekit cache named ``name``, in a subdirectory, on the same store."""
        return self._sub_cache("cache", name)

    def deque(self, name: str, maxlen: int | None = None) -> cachekit.Deque:
        """A persistent :class:`cachekit.Deque` named ``name``, in a subdirectory, on the same store."""
        return cachekit.Deque.fromcache(self._sub_cache("deque", name), maxlen=maxlen)

    def index(self, name: str) -> cachekit.Index:
        """A persistent :class:`cachekit.Index` named ``name``, in a subdirectory, on the same store."""
        return cachekit.Index.fromcache(self._sub_cache("index", name))

    def _sub_cache(self, kind: str, name: str) -> cachekit.Cache:
        if not isinstance(name, str) or not name or os.sep in name or name in (".", ".."):
            raise ValueError(f"a sub-{kind} name must be a plain directory name, got {name!r}")
        return cachekit.Cache(os.path.join(self._cache.directory, kind, name), store=self._cache.store_name)

    def __repr__(self) -> str:
        return f"CachekitCache({self._location!r})"
