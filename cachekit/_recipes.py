"""Recipes on top of a cache, as in ``diskcache.recipes``: a running average, rate limiting, a
barrier, and memoization that protects against cache stampedes.

The locks they build on live in :mod:`cachekit._locks`.  Like them, the
recipes use only the public :class:`cachekit.Cache` API, so they work on
every store and across threads and processes that open the same directory.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ._locks import POLL_INTERVAL, delete_if_held_by, holder_is_dead, new_owner
from ._memoize import ENOVAL, Memoized, args_to_key, check_ignore, full_name, ignored_arguments

if TYPE_CHECKING:
    from ._cache import Cache

__all__ = ["Averager", "barrier", "memoize_stampede", "throttle"]

log = logging.getLogger("cachekit")

P = ParamSpec("P")
R = TypeVar("R")

_DEAD_HOLDER_CHECK_INTERVAL = 0.1
"""Seconds between two checks, by a waiter of ``memoize_stampede``, that the computing process lives."""
_COMPUTING = "cachekit.memoize_stampede:computing"
"""Last item of the key under which one caller computes a ``memoize_stampede`` result for the others.
A plain string, so that every serializer can encode the key."""


# -- Averager ---------------------------------------------------------------------------------------
class Averager:
    """A running average shared through the cache: the total and count live under ``key``.

    >>> import cachekit, tempfile
    >>> cache = cachekit.Cache(tempfile.mkdtemp())
    >>> latency = cachekit.Averager(cache, "latency")
    >>> latency.add(0.080)
    >>> latency.add(0.120)
    >>> latency.get()
    0.1
    >>> cache.close()
    """

    def __init__(self, cache: Cache, key: Any, expire: float | None = None, tag: Any = None) -> None:
        self._cache = cache
        self._key = key
        self._expire = expire
        self._tag = tag

    def add(self, value: float) -> None:
        """Add ``value`` to the average."""
        cache = self._cache
        with cache.transact(retry=True):
            total, count = cache.get(self._key, default=(0.0, 0))
            cache.set(self._key, (total + value, count + 1), expire=self._expire, tag=self._tag, retry=True)

    def get(self) -> float | None:
        """The current average, or ``None`` if nothing was added."""
        total: float
        count: int
        total, count = self._cache.get(self._key, default=(0.0, 0), retry=True)
        return None if count == 0 else total / count

    def pop(self) -> float | None:
        """Remove the average from the cache and return it (``None`` if nothing was added)."""
        total: float
        count: int
        total, count = self._cache.pop(self._key, default=(0.0, 0), retry=True)
        return None if count == 0 else total / count


# -- decorators -------------------------------------------------------------------------------------
def throttle(
    cache: Cache,
    count: float,
    seconds: float,
    name: str | None = None,
    expire: float | None = None,
    tag: Any = None,
    time_func: Callable[[], float] = time.time,
    sleep_func: Callable[[float], object] = time.sleep,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator that lets at most ``count`` calls through every ``seconds``, across processes.

    Calls beyond the rate sleep (with ``sleep_func``) until their turn.  The
    allowance refills continuously (a token bucket holding at most ``count``
    calls) and lives in the cache under ``name`` (by default the function's
    full name); decorating in another process joins it rather than
    resetting it.  ``expire`` and ``tag`` apply to that entry.
    """
    if not count > 0 or not seconds > 0:
        raise ValueError(f"count and seconds must be positive, got count={count!r}, seconds={seconds!r}")
    rate = count / float(seconds)

    def decorator(function: Callable[P, R]) -> Callable[P, R]:
        key = full_name(function) if name is None else name
        cache.add(key, (time_func(), count), expire=expire, tag=tag, retry=True)

        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            while True:
                with cache.transact(retry=True):
                    now = time_func()
                    state = cache.get(key)
                    if state is None:  # expired or evicted: a full allowance again
                        last, tally = now, count
                    else:
                        last, tally = state
                        tally += max(0.0, now - last) * rate
                    tally = min(tally, count)
                    delay = 0.0 if tally >= 1 else (1 - tally) / rate
                    # Saved even when waiting: a clock that went back then counts from now.
                    cache.set(key, (now, tally - 1 if not delay else tally), expire=expire, tag=tag, retry=True)
                if not delay:
                    return function(*args, **kwargs)
                sleep_func(delay)

        return wrapper

    return decorator


def barrier(
    cache: Cache,
    lock_factory: Callable[..., Any],
    name: str | None = None,
    expire: float | None = None,
    tag: Any = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator that runs the function under a lock, so that one call at a time runs, in any process.

    ``lock_factory(cache, key, expire=expire, tag=tag)`` makes the lock
    (:class:`Lock`, :class:`RLock` or :class:`BoundedSemaphore`); ``key`` is
    ``name``, by default the function's full name.
    """

    def decorator(function: Callable[P, R]) -> Callable[P, R]:
        key = full_name(function) if name is None else name
        lock = lock_factory(cache, key, expire=expire, tag=tag)

        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with lock:
                return function(*args, **kwargs)

        return wrapper

    return decorator


def memoize_stampede(
    cache: Cache,
    expire: float | None,
    name: str | None = None,
    typed: bool = False,
    tag: Any = None,
    beta: float = 1,
    ignore: Iterable[int | str] = (),
) -> Callable[[Callable[P, R]], Memoized[P, R]]:
    """A memoizing decorator that protects against cache stampedes, across threads and processes.

    Keys, ``name``, ``typed``, ``tag``, ``ignore`` and ``__cache_key__`` are
    those of :meth:`cachekit.Cache.memoize`; results are stored for
    ``expire`` seconds, with the time they took to compute.

    - When a result is missing, one caller computes it while the others, in
      any thread or process, wait for it.  Should that caller's process die,
      another takes over; and one that computes for longer than ``expire``
      seconds is joined by another.
    - Before a result expires, a caller may decide to recompute it early, in
      a background thread, while everyone keeps getting the current result:
      the more so the closer the expiry and the longer the computation took
      ("probabilistic early recomputation"; a larger ``beta`` recomputes
      earlier).  One caller at a time recomputes a result.
    """
    if callable(name):
        raise TypeError("name cannot be callable: write @memoize_stampede(cache, expire) with its arguments")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {name!r}")
    if not isinstance(typed, bool):
        raise TypeError(f"typed must be True or False, got {typed!r}")
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not beta >= 0:
        raise ValueError(f"beta must be a number of zero or more, got {beta!r}")
    from ._core import validate_expire

    validate_expire(expire, 0.0)  # the rules of set(), checked when decorating
    given = check_ignore(ignore)

    def decorator(function: Callable[P, R]) -> Memoized[P, R]:
        base = (full_name(function),) if name is None else (name,)
        ignored = ignored_arguments(function, given)
        guard = _StampedeGuard(cache, function, expire, tag, beta)

        def cache_key(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
            return args_to_key(base, args, kwargs, typed, ignored)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if expire == 0:  # nothing would be stored: nothing to wait for
                return function(*args, **kwargs)
            return guard.call(cache_key(*args, **kwargs), args, kwargs)

        wrapper.__cache_key__ = cache_key  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


class _StampedeGuard:
    """What a :func:`memoize_stampede` wrapper does with the key of a call."""

    def __init__(self, cache: Cache, function: Callable[..., Any], expire: float | None, tag: Any, beta: float) -> None:
        from random import random  # imported here: `import cachekit` stays light

        self._cache = cache
        self._function = function
        self._expire = expire
        self._tag = tag
        self._beta = beta
        self._random = random

    def call(self, key: tuple[Any, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The result for ``key``: cached, computed here, or computed by another caller and waited for."""
        cache = self._cache
        claim = (*key, _COMPUTING)  # held by the one caller computing this key
        next_check = time.monotonic() + _DEAD_HOLDER_CHECK_INTERVAL
        while True:
            pair, expire_time = cache.get(key, default=ENOVAL, expire_time=True, retry=True)
            if pair is not ENOVAL:
                result, delta = pair
                if self._is_time_to_recompute(expire_time, delta):
                    owner = new_owner()
                    if claim not in cache and cache.add(claim, owner, expire=delta, retry=True):
                        threading.Thread(
                            target=self._recompute_early,
                            args=(key, claim, owner, args, kwargs),
                            name=f"cachekit recompute {key[0]}",
                            daemon=True,
                        ).start()
                return result
            owner = new_owner()
            # A read first: waiters do not queue for the write lock every millisecond.
            if claim not in cache and cache.add(claim, owner, expire=self._expire, retry=True):
                try:
                    # Another caller may have stored the result and let go of the claim
                    # between the miss above and this claim: look again before computing.
                    pair = cache.get(key, default=ENOVAL, retry=True)
                    if pair is not ENOVAL:
                        return pair[0]
                    return self._compute_and_store(key, args, kwargs)
                finally:
                    delete_if_held_by(cache, claim, owner)
            time.sleep(POLL_INTERVAL)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + _DEAD_HOLDER_CHECK_INTERVAL
                holder = cache.get(claim)
                if holder is not None and holder_is_dead(holder):
                    delete_if_held_by(cache, claim, holder)

    def _is_time_to_recompute(self, expire_time: float | None, delta: float) -> bool:
        """Whether to recompute a result now, before it expires: a draw that favours results
        close to their expiry and slow to compute (Vattani, Chierichetti and Lowenstein, 2015)."""
        if expire_time is None:
            return False
        remaining = expire_time - time.time()
        # 1 - random() lies in (0, 1]: log never sees zero.
        return -delta * self._beta * math.log(1.0 - self._random()) >= remaining

    def _compute_and_store(self, key: tuple[Any, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        start = time.time()
        result = self._function(*args, **kwargs)
        self._cache.set(key, (result, time.time() - start), expire=self._expire, tag=self._tag, retry=True)
        return result

    def _recompute_early(
        self, key: tuple[Any, ...], claim: tuple[Any, ...], owner: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        try:
            self._compute_and_store(key, args, kwargs)
        except Exception:
            log.exception("cachekit: recomputing %r early failed; the current result stays", key)
        finally:
            delete_if_held_by(self._cache, claim, owner)
