"""Locks shared by every thread and process using a cache: ``Lock``, ``RLock``, ``BoundedSemaphore``.

They follow ``diskcache.recipes`` and use only the public :class:`cachekit.Cache`
API, so they work on every store.  A waiter polls the cache every millisecond,
as python-diskcache does.

Each lock records who holds it: the process id, the thread id and a random
token.  So a lock that outlived its ``expire`` and was taken over is never
released by its former holder, and a process id reused after a crash is not
mistaken for the process that held the lock.
"""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cache import Cache

__all__ = ["POLL_INTERVAL", "BoundedSemaphore", "Lock", "RLock", "delete_if_held_by", "holder_is_dead", "new_owner"]

POLL_INTERVAL = 0.001
"""Seconds a waiter sleeps between two looks at the cache (python-diskcache's value)."""


# -- who holds a lock -------------------------------------------------------------------------------
def _random_token() -> str:
    return os.urandom(8).hex()


_process_token = _random_token()


def _new_process_token() -> None:
    global _process_token
    _process_token = _random_token()


# A forked child is another holder than its parent, even in the thread that forked.
os.register_at_fork(after_in_child=_new_process_token)


def _thread_owner() -> str:
    """This thread of this process, told apart from a later process that gets the same id."""
    return f"{os.getpid()}-{threading.get_ident()}-{_process_token}"


def new_owner() -> str:
    """One acquisition by this thread: its owner plus a token of its own."""
    return f"{_thread_owner()}-{_random_token()}"


def holder_is_dead(owner: Any) -> bool:
    """Whether the process named in ``owner`` is gone (caches are local, so its pid is one of ours)."""
    try:
        pid = int(str(owner).split("-", 1)[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a process of another user: alive
        return False
    return False


def delete_if_held_by(cache: Cache, key: Any, owner: str) -> bool:
    """Delete ``key`` if ``owner`` still holds it; return whether it did."""
    with cache.transact(retry=True):
        if cache.get(key) != owner:
            return False
        cache.delete(key)
        return True


# -- locks ------------------------------------------------------------------------------------------
class _Releasable:
    """``with lock:`` acquires and releases (binding ``None`` with ``as``, as in python-diskcache)."""

    def acquire(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class Lock(_Releasable):
    """A lock shared by every thread and process using the cache, held as the entry ``key``.

    With ``expire`` the lock frees itself that many seconds after it was
    taken, so a holder that crashed does not block the others forever.  The
    entry records the holder, and :meth:`release` frees only the lock this
    object acquired: once the lock expired and someone else took it, the
    former holder's release leaves it alone.  An object that never acquired
    the lock frees it whoever holds it (python-diskcache's behaviour, which
    lets a lock be broken by hand).

    >>> import cachekit, tempfile
    >>> cache = cachekit.Cache(tempfile.mkdtemp())
    >>> lock = cachekit.Lock(cache, "report", expire=60)
    >>> with lock:
    ...     lock.locked()
    True
    >>> lock.locked()
    False
    >>> cache.close()
    """

    def __init__(self, cache: Cache, key: Any, expire: float | None = None, tag: Any = None) -> None:
        self._cache = cache
        self._key = key
        self._expire = expire
        self._tag = tag
        self._owner: str | None = None
        """What this object stored in the entry when it last acquired the lock."""

    def acquire(self) -> None:
        """Wait until the lock is free, then take it."""
        cache = self._cache
        owner = new_owner()
        while True:
            # A read first: waiters do not queue for the write lock every millisecond.
            if self._key not in cache and cache.add(self._key, owner, expire=self._expire, tag=self._tag, retry=True):
                self._owner = owner
                return
            time.sleep(POLL_INTERVAL)

    def release(self) -> None:
        """Free the lock if this object holds it (see the class documentation)."""
        owner = self._owner
        if owner is None:
            self._cache.delete(self._key, retry=True)
        else:
            delete_if_held_by(self._cache, self._key, owner)

    def locked(self) -> bool:
        """Whether someone holds the lock."""
        return self._key in self._cache


class RLock(_Releasable):
    """A re-entrant lock: the thread (of the process) that holds it may acquire it again.

    Each :meth:`acquire` needs its :meth:`release`; releasing a lock that
    this thread does not hold raises ``AssertionError``, as in
    python-diskcache.  With ``expire``, the lock frees itself that many
    seconds after its last acquire or release.

    >>> import cachekit, tempfile
    >>> cache = cachekit.Cache(tempfile.mkdtemp())
    >>> rlock = cachekit.RLock(cache, "tree")
    >>> with rlock:
    ...     with rlock:
    ...         "re-entered"
    're-entered'
    >>> cache.close()
    """

    def __init__(self, cache: Cache, key: Any, expire: float | None = None, tag: Any = None) -> None:
        self._cache = cache
        self._key = key
        self._expire = expire
        self._tag = tag

    def _holder(self) -> tuple[str | None, int]:
        value = self._cache.get(self._key)
        if value is None:
            return None, 0
        owner, count = value
        return owner, count

    def acquire(self) -> None:
        """Wait until the lock is free or held by this thread, then take it once more."""
        cache = self._cache
        owner = _thread_owner()
        while True:
            holder, count = self._holder()
            if count == 0 or holder == owner:
                with cache.transact(retry=True):
                    holder, count = self._holder()
                    if count == 0 or holder == owner:
                        cache.set(self._key, (owner, count + 1), expire=self._expire, tag=self._tag, retry=True)
                        return
            time.sleep(POLL_INTERVAL)

    def release(self) -> None:
        """Undo one :meth:`acquire` of this thread; ``AssertionError`` if it holds no lock."""
        cache = self._cache
        owner = _thread_owner()
        with cache.transact(retry=True):
            holder, count = self._holder()
            if holder != owner or count <= 0:
                raise AssertionError("cannot release un-acquired lock")
            if count == 1:
                cache.delete(self._key, retry=True)
            else:
                cache.set(self._key, (owner, count - 1), expire=self._expire, tag=self._tag, retry=True)


class BoundedSemaphore(_Releasable):
    """A semaphore that at most ``value`` holders pass at once, shared through the cache.

    Releasing more often than it was acquired raises ``AssertionError``, as
    in python-diskcache.  Any thread or process may release it, as with
    ``threading.BoundedSemaphore``.

    The entry lists the holders, each with its own expiry: with ``expire``,
    a place is freed that many seconds after it was taken, so a holder that
    crashed gives its place back even while the others keep coming and
    going.  A holder whose place expired releases nothing.

    >>> import cachekit, tempfile
    >>> cache = cachekit.Cache(tempfile.mkdtemp())
    >>> pool = cachekit.BoundedSemaphore(cache, "connections", value=2)
    >>> pool.acquire()
    >>> pool.release()
    >>> pool.release()
    Traceback (most recent call last):
    ...
    AssertionError: cannot release un-acquired semaphore
    >>> cache.close()
    """

    def __init__(self, cache: Cache, key: Any, value: int = 1, expire: float | None = None, tag: Any = None) -> None:
        self._cache = cache
        self._key = key
        self._value = value
        self._expire = expire
        self._tag = tag
        self._held: list[tuple[str, float | None]] = []
        """The places this object took and has not released, oldest first."""
        self._held_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_held_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._held_lock = threading.Lock()

    def _holders(self, now: float) -> list[tuple[str, float | None]]:
        """The places taken and not expired."""
        stored = self._cache.get(self._key, default=())
        holders = [(str(owner), expire_time) for owner, expire_time in stored]
        return [holder for holder in holders if holder[1] is None or holder[1] > now]

    def _save(self, holders: list[tuple[str, float | None]]) -> None:
        if holders:
            self._cache.set(self._key, holders, tag=self._tag, retry=True)
        else:
            self._cache.delete(self._key, retry=True)

    def acquire(self) -> None:
        """Wait until a place is free, then take it."""
        cache = self._cache
        owner = new_owner()
        while True:
            if len(self._holders(time.time())) < self._value:
                with cache.transact(retry=True):
                    now = time.time()
                    holders = self._holders(now)
                    if len(holders) < self._value:
                        place = (owner, None if self._expire is None else now + self._expire)
                        self._save([*holders, place])
                        with self._held_lock:
                            self._held.append(place)
                        return
            time.sleep(POLL_INTERVAL)

    def _own_place(self) -> tuple[str, float | None] | None:
        """The place to give back: this thread's latest, else this object's latest."""
        thread = _thread_owner() + "-"
        with self._held_lock:
            if not self._held:
                return None
            mine = [place for place in self._held if place[0].startswith(thread)]
            place = mine[-1] if mine else self._held[-1]
            self._held.remove(place)
        return place

    def release(self) -> None:
        """Give a place back; ``AssertionError`` if no place is taken."""
        place = self._own_place()
        with self._cache.transact(retry=True):
            now = time.time()
            holders = self._holders(now)
            if place is not None and place in holders:
                holders.remove(place)
            elif place is not None and place[1] is not None and place[1] <= now:
                return  # this place expired, and may have gone to someone else since
            elif holders:
                del holders[0]  # released on behalf of another holder, as threading allows
            else:
                raise AssertionError("cannot release un-acquired semaphore")
            self._save(holders)
