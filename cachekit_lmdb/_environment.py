"""One LMDB environment per cache directory per process, shared by every store open on it.

LMDB allows a process to open an environment only once (its locks belong
to the process), so stores on the same directory share a
:class:`SharedEnvironment`.  It owns what every store needs to use LMDB
safely from many threads and processes:

- the **writer lock**: a thread lock, then an ``flock()`` on
  ``lmdb-write.lock`` across processes, both taken with the cache's
  timeout before LMDB's own (timeout-less) writer mutex is asked for;
- the **gate**: a lock held around every plain read, so that growing the
  map or forking never happens while another thread is inside LMDB;
- the count of open **snapshots** (``Store.read()``), which growing the map
  and forking wait for;
- growing the map geometrically up to ``map_size_limit``, adopting a map
  another process grew, and dropping the environment in a forked child.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import itertools
import os
import stat
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import lmdb

from cachekit import CorruptCache, StorageFull, StoreError, Timeout

from ._guard import Guard

__all__ = [
    "FORMAT",
    "Handles",
    "SharedEnvironment",
    "acquire",
    "network_filesystem",
    "reacquire",
    "release",
    "translate",
]

T = TypeVar("T")

DATA_FILE = "data.mdb"
LOCK_FILE = "lock.mdb"
WRITE_LOCK_FILE = "lmdb-write.lock"
#: The format marker, stored under ``META_FORMAT``; a database without it is not ours.
FORMAT = b"cachekit-lmdb/1"
META_FORMAT = b"Mformat"
# Everything lives in LMDB's main database, in regions told apart by the first
# byte of the key (see cachekit_lmdb._store).  No named sub-databases: py-lmdb
# keeps their handles only from a committed write transaction, so opening them
# would make every open wait for the writer of another process.
#: Seconds a fork waits for other threads to leave their transactions.
FORK_WAIT = 5.0
#: Filesystems on which LMDB's locks and memory map are not coherent.
_NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "ceph", "glusterfs", "lustre", "fuse.sshfs", "9p"}
)


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_FULL_WORDS = ("no space left", "quota exceeded", "file too large")


class Handles(NamedTuple):
    """An open environment (the store uses its main database only)."""

    env: lmdb.Environment


def translate(error: BaseException, path: str) -> Exception:
    """Turn an ``lmdb`` (or OS) exception into the cachekit exception it means."""
    message = str(error)
    if isinstance(error, lmdb.MapFullError):
        return StorageFull(f"the LMDB map of {path} is full ({message}); raise map_size_limit or lower size_limit")
    if isinstance(error, lmdb.InvalidError | lmdb.VersionMismatchError | lmdb.CorruptedError | lmdb.PageNotFoundError):
        _distrust(path)
        return CorruptCache(f"{path} is damaged or is not a cachekit LMDB database ({message})")
    if isinstance(error, lmdb.PanicError):
        return CorruptCache(f"LMDB hit a fatal error on {path} ({message}); reopen the cache")
    if isinstance(error, lmdb.ReadersFullError):
        return StoreError(f"the LMDB reader table of {path} is full ({message}); raise lmdb_max_readers")
    code = getattr(error, "errno", None) or getattr(error, "code", None)
    lowered = message.lower()
    if isinstance(error, lmdb.DiskError) or code in _FULL_ERRNOS or any(words in lowered for words in _FULL_WORDS):
        return StorageFull(f"no space left to write {path} ({message}); free space or lower size_limit")
    if (code == errno.EIO or "input/output error" in lowered) and "commit" in lowered:
        # LMDB reports a short write (the disk or the file size limit ran out
        # mid-write) as EIO, as SQLite reports SQLITE_IOERR_WRITE.
        return StorageFull(
            f"could not write {path} ({message}): the disk, a quota or the file size limit is probably exhausted"
        )
    if code in (errno.EACCES, errno.EPERM, errno.EROFS) or "permission denied" in lowered or "read-only" in lowered:
        return StoreError(
            f"cannot use {path}: permission denied or read-only for this user ({message}); "
            "give this user read and write access to it (cachekit writes even when it only reads), "
            "or use another directory"
        )
    return StoreError(f"LMDB failed on {path}: {message}")


def _distrust(path: str) -> None:
    """LMDB found ``path`` damaged: no process may seal it as sound (see cachekit_lmdb._guard)."""
    for shared in list(_all):
        if shared.path == path:
            shared.guard.distrust()


def network_filesystem(directory: str) -> str | None:
    """The type of the filesystem holding ``directory`` if it is a network one, else ``None``."""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as mounts:
            lines = mounts.read().splitlines()
    except OSError:
        return None
    real = os.path.realpath(directory)
    best, kind = "", ""
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, fields[2]
    return kind if kind in _NETWORK_FILESYSTEMS else None


def _adopt(env: lmdb.Environment, cap: int) -> int:
    """Take on the map size recorded in the database, at most ``cap`` (LMDB rounds a
    smaller size up to the pages in use); return the new size."""
    env.set_mapsize(0)
    if env.info()["map_size"] > cap:
        env.set_mapsize(cap)
    return int(env.info()["map_size"])


def _has_content(path: str) -> bool:
    try:
        return os.stat(path).st_size > 0
    except OSError:
        return False


def _check_length(env: lmdb.Environment, path: str) -> None:
    """Refuse a ``data.mdb`` shorter than the pages its meta page says are in use.

    LMDB maps the file and trusts it: reading a page past the end of a truncated
    file kills the process with ``SIGBUS`` instead of raising.  The meta pages are
    read with ``read()``, so this check itself touches no page past the end.
    """
    try:
        length = os.stat(path).st_size
    except OSError:
        return  # the open that follows reports it
    needed = (int(env.info()["last_pgno"]) + 1) * int(env.stat()["psize"])
    if length < needed:
        raise CorruptCache(
            f"{path} is truncated: it holds {length} bytes, but its pages in use end at byte {needed}; "
            "move the cache directory away (or delete it) so cachekit can start afresh"
        )


def _try_flock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class _Settings(NamedTuple):
    map_size: int
    map_size_limit: int
    max_readers: int
    durable: bool
    timeout: float
    verify: bool


class SharedEnvironment:
    """The LMDB environment of one directory in this process, and the locks around it."""

    def __init__(self, directory: str, settings: _Settings) -> None:
        self.directory = directory
        self.path = os.path.join(directory, DATA_FILE)
        self.settings = settings
        self.handles: Handles | None = None
        self.fast: tuple[Any, threading.Lock] | None = None
        """``(env, gate)`` for the read path, or ``None`` when not open."""
        self.users = 0
        self.poisoned: str | None = None
        """Why this process cannot use the directory any more (set in a child forked at a bad moment)."""
        self.guard = Guard(directory, self.path)
        self._reset_locks()

    def _reset_locks(self) -> None:
        self.gate = threading.Lock()
        self.writer = threading.Lock()
        self.writer_ident = 0
        self.condition = threading.Condition(threading.Lock())
        self.snapshots: dict[int, int] = {}  # thread ident -> open snapshots
        self.paused = 0
        self.opening = threading.Lock()
        self.lock_fd = -1

    # -- opening and closing ---------------------------------------------------
    def open_handles(self) -> Handles:
        """The open environment, opening it if needed (after close or fork)."""
        handles = self.handles
        if handles is not None:
            return handles
        with self.opening:
            handles = self.handles
            if handles is None:
                if self.poisoned is not None:
                    raise StoreError(self.poisoned)
                handles = self._open()
                self.handles = handles
                self.fast = (handles.env, self.gate)
            return handles

    def _open(self) -> Handles:
        kind = network_filesystem(self.directory)
        if kind is not None:
            raise StoreError(
                f"{self.directory} is on a network filesystem ({kind}); LMDB needs a local disk, "
                "because its locks and memory map are not shared correctly over a network. "
                "Use a local directory, or the sqlite store"
            )
        for name in (DATA_FILE, LOCK_FILE):
            path = os.path.join(self.directory, name)
            try:
                status = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(status.st_mode):
                what = "a directory" if stat.S_ISDIR(status.st_mode) else "not a regular file"
                raise CorruptCache(f"{path} is {what}; move it away so cachekit can create its LMDB database")
        settings = self.settings
        for attempt in range(5):
            try:
                env = lmdb.open(
                    self.directory,
                    map_size=settings.map_size,
                    subdir=True,
                    readonly=False,
                    sync=settings.durable,
                    metasync=settings.durable,
                    mode=0o600,
                    create=True,
                    readahead=False,
                    writemap=False,
                    max_readers=settings.max_readers,
                    max_dbs=0,
                    max_spare_txns=0,  # a spare read transaction must not survive into a forked child
                    lock=True,
                )
                break
            except lmdb.MapResizedError as error:
                # Another process grew the map between LMDB reading its size and py-lmdb's first
                # transaction: opening again reads the new size.
                if attempt == 4:
                    raise translate(error, self.path) from error
            except (lmdb.Error, OSError) as error:
                if _has_content(self.path) and "invalid argument" in str(error).lower():
                    # The parameters are cachekit's own: EINVAL means a damaged meta page.
                    raise CorruptCache(
                        f"{self.path} is damaged: LMDB cannot read its header ({error}); "
                        "move the cache directory away (or delete it) so cachekit can start afresh"
                    ) from error
                raise translate(error, self.path) from error
        try:
            _check_length(env, self.path)
            # Before LMDB reads a page of the tree: check the file if something else may have
            # changed it since a cachekit process last closed it (see cachekit_lmdb._guard).
            self.guard.enter(self._deadline(settings.timeout), walk=settings.verify)
        except BaseException:
            env.close()
            raise
        try:
            env.reader_check()  # free the reader slots of processes that were killed
            # LMDB opens with the largest map size any process recorded; a lower
            # map_size_limit (or a reserve used for removals) caps it again.
            _adopt(env, settings.map_size_limit)
            handles = self._open_databases(env)
        except BaseException:
            env.close()
            self.guard.leave()
            raise
        return handles

    def _open_databases(self, env: lmdb.Environment) -> Handles:
        """Check that the database is ours (or empty, then mark it), without the write lock if possible."""
        keys: list[bytes] = []
        for _ in range(3):
            try:
                with env.begin() as txn:
                    marker = txn.get(META_FORMAT)
                    if marker != FORMAT:
                        keys = [key for key, _ in itertools.islice(txn.cursor(), 3)]
                break
            except lmdb.MapResizedError:
                env.set_mapsize(0)  # grown by another process; no other thread sees env yet
            except lmdb.Error as error:
                raise translate(error, self.path) from error
        else:
            raise StoreError(f"the LMDB map of {self.path} kept being resized while it was opened")
        if marker is None and not keys:
            self._mark_new(env)
        elif marker != FORMAT:
            shown = ", ".join(repr(key[:40]) for key in keys)
            raise CorruptCache(
                f"{self.path} is an LMDB database of another program (it holds {shown}; format marker {marker!r}); "
                "point cachekit at another directory"
            )
        return Handles(env)

    def _mark_new(self, env: lmdb.Environment) -> None:
        """Write the format marker into a new, empty database (under the write lock)."""
        self._lock_file(self._deadline(self.settings.timeout))
        try:
            with env.begin(write=True) as txn:
                if txn.get(META_FORMAT) is None:
                    if txn.cursor().first():
                        raise CorruptCache(f"{self.path} is an LMDB database of another program")
                    txn.put(META_FORMAT, FORMAT)
        except lmdb.Error as error:
            raise translate(error, self.path) from error
        finally:
            self._unlock_file()

    def close_if_unused(self) -> None:
        """Close the environment when no store uses it and no thread is inside it."""
        if self.users or self.handles is None:
            return
        handles = self.handles
        # If a thread is still inside it (a write transaction, a snapshot, a
        # read), it stays open until the next close, or the end of the process.
        if not self.writer.acquire(blocking=False):
            return
        try:
            with contextlib.suppress(Timeout):
                self.exclusive(0.0, lambda: self._close(handles))
        finally:
            self.writer.release()

    def _close(self, handles: Handles) -> None:
        if self.users or self.handles is not handles:
            return
        self.fast = None
        self.handles = None
        handles.env.close()
        self.guard.leave()
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1

    # -- the writer lock ---------------------------------------------------------
    @staticmethod
    def _deadline(timeout: float) -> float:
        return time.monotonic() + timeout

    def lock_writer(self, timeout: float) -> None:
        """Take the in-process writer lock, then the file lock; raise ``Timeout`` after ``timeout``."""
        me = threading.get_ident()
        if self.writer_ident == me:
            raise Timeout(
                f"this thread already holds the write lock of {self.directory} through another "
                "cache object; a second write transaction would wait for itself"
            )
        writer = self.writer
        started = 0.0
        if not writer.acquire(False):  # the clock is read only when there is a wait
            started = time.monotonic()
            if timeout <= 0 or not writer.acquire(True, timeout):
                raise Timeout(
                    f"the cache {self.directory} stayed locked by another writer beyond the timeout ({timeout}s)"
                )
        try:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (OSError, ValueError):  # held by another process, or the lock file is not open yet (-1)
                self._lock_file((started or time.monotonic()) + timeout)
        except BaseException:
            writer.release()
            raise
        self.writer_ident = me

    def unlock_writer(self) -> None:
        self.writer_ident = 0
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
        finally:
            self.writer.release()

    def _lock_file(self, deadline: float) -> None:
        if self.lock_fd < 0:
            path = os.path.join(self.directory, WRITE_LOCK_FILE)
            try:
                self.lock_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except OSError as error:
                raise translate(error, path) from error
        # Sleep, not spin, so the holder gets the CPU; but wake at least every 0.5 ms:
        # a longer pause adds up to its own length to every contended write (the
        # mixed benchmark's set p99 at 8 processes halved going from 2 ms to 0.5 ms).
        pause = 0.00005
        while not _try_flock(self.lock_fd):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(f"the cache {self.directory} stayed locked by another process beyond the timeout")
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.0005)

    def _unlock_file(self) -> None:
        fcntl.flock(self.lock_fd, fcntl.LOCK_UN)

    # -- snapshots and exclusive work --------------------------------------------
    def begin_snapshot(self, timeout: float) -> None:
        """Count a snapshot about to open; waits while the map is being grown."""
        me = threading.get_ident()
        with self.condition:
            if not self.condition.wait_for(lambda: not self.paused, timeout):
                raise Timeout(f"the LMDB map of {self.directory} was being resized beyond the timeout")
            self.snapshots[me] = self.snapshots.get(me, 0) + 1

    def end_snapshot(self) -> None:
        me = threading.get_ident()
        with self.condition:
            left = self.snapshots.get(me, 0) - 1
            if left > 0:
                self.snapshots[me] = left
            else:
                self.snapshots.pop(me, None)
            self.condition.notify_all()

    def exclusive(self, timeout: float, action: Callable[[], T]) -> T:
        """Run ``action`` while no other thread of this process is inside LMDB:
        no snapshot open, no plain read in flight (the caller holds the writer lock
        or needs no protection from writers)."""
        with self.condition:
            self.paused += 1
            try:
                if not self.condition.wait_for(lambda: not self.snapshots, timeout):
                    raise Timeout(
                        f"a read transaction on {self.directory} stayed open beyond the timeout "
                        "while the LMDB map needed resizing"
                    )
            except BaseException:
                self.paused -= 1
                self.condition.notify_all()
                raise
        try:
            acquired = self.gate.acquire(timeout=timeout) if timeout > 0 else self.gate.acquire(blocking=False)
            if not acquired:
                raise Timeout(f"readers of {self.directory} did not leave LMDB within the timeout")
            try:
                return action()
            finally:
                self.gate.release()
        finally:
            with self.condition:
                self.paused -= 1
                self.condition.notify_all()

    # -- the map ----------------------------------------------------------------------
    def grow(self, timeout: float, removing: bool = False) -> None:
        """Double the map (up to ``map_size_limit``); the caller holds the writer lock and no transaction.

        Raises :class:`cachekit.StorageFull` when the map is already at the
        limit.  A transaction that only removes data (``removing``) may grow
        into a reserve of a sixteenth (at least 1 MiB) beyond the limit: even a deletion needs
        fresh pages (LMDB copies on write), and making room must stay possible.
        """
        handles = self.open_handles()
        env = handles.env
        limit = self.settings.map_size_limit
        if removing:
            limit += max(limit // 16, 2**20)

        def resize() -> None:
            current = env.info()["map_size"]
            # Adopt a size another process may have set meanwhile, but never more than
            # this transaction may use: LMDB records the largest size any process ever
            # used, the reserve included, and adopting that would hand the reserve out.
            adopted = _adopt(env, limit)
            if adopted > current:
                return  # another process grew it: try again with that
            if env.reader_check():
                return  # a killed process's reader slot pinned old pages: they are free now
            if current >= limit:
                if removing:
                    raise StorageFull(
                        f"the LMDB map of {self.path} is full past map_size_limit ({self.settings.map_size_limit} "
                        "bytes) and its reserve for removals is used up, so even removing entries fails; "
                        "reopen the cache with a larger map_size_limit (or delete the directory)"
                    )
                raise StorageFull(
                    f"the LMDB map of {self.path} reached map_size_limit ({self.settings.map_size_limit} bytes); "
                    "raise map_size_limit or lower size_limit"
                )
            env.set_mapsize(min(limit, current * 2))

        try:
            self.exclusive(timeout, resize)
        except lmdb.Error as error:
            raise translate(error, self.path) from error

    def shrink_to_limit(self, timeout: float) -> None:
        """After a removal grew the map into the reserve: give back what it did not use,
        so that ordinary writes cannot fill the reserve (LMDB keeps the pages in use)."""
        handles = self.open_handles()
        limit = self.settings.map_size_limit
        if handles.env.info()["map_size"] <= limit:
            return
        try:
            self.exclusive(timeout, lambda: handles.env.set_mapsize(limit))
        except lmdb.Error as error:
            raise translate(error, self.path) from error

    def adopt_map_size(self, timeout: float) -> None:
        """Take on the map size another process grew the map to (``MDB_MAP_RESIZED``)."""
        handles = self.open_handles()
        holding = self.writer_ident == threading.get_ident()
        if not holding:
            self.lock_writer_in_process(timeout)
        try:
            self.exclusive(timeout, lambda: _adopt(handles.env, self.settings.map_size_limit))
        except lmdb.Error as error:
            raise translate(error, self.path) from error
        finally:
            if not holding:
                self.writer.release()

    def lock_writer_in_process(self, timeout: float) -> None:
        if not self.writer.acquire(timeout=max(timeout, 0.001)):
            raise Timeout(f"a writer of {self.directory} kept its transaction open beyond the timeout")

    def map_size(self) -> int:
        return int(self.open_handles().env.info()["map_size"])

    # -- fork ---------------------------------------------------------------------------
    def before_fork(self) -> list[Callable[[], None]]:
        """Quiesce this environment for ``fork()``; return what to release in the parent.

        Waits (at most :data:`FORK_WAIT` seconds) for other threads to end their
        write transactions and snapshots and to leave LMDB.  If they do not,
        the child is told it cannot use the environment (see :meth:`after_fork_in_child`).
        """
        releases: list[Callable[[], None]] = []
        self._fork_safe = True
        if self.handles is None:
            return releases
        me = threading.get_ident()
        deadline = self._deadline(FORK_WAIT)
        if self.writer_ident != me:
            if self.writer.acquire(timeout=FORK_WAIT):
                releases.append(self.writer.release)
            else:
                self._fork_safe = False
                return releases
        with self.condition:
            self.paused += 1

            def unpause() -> None:
                with self.condition:
                    self.paused -= 1
                    self.condition.notify_all()

            releases.append(unpause)
            if me in self.snapshots or not self.condition.wait_for(
                lambda: not self.snapshots, max(0.0, deadline - time.monotonic())
            ):
                self._fork_safe = False
                return releases
        if self.gate.acquire(timeout=max(0.001, deadline - time.monotonic())):
            releases.append(self.gate.release)
        else:
            self._fork_safe = False
        return releases

    def after_fork_in_child(self) -> None:
        handles, self.handles = self.handles, None
        self.fast = None
        safe = getattr(self, "_fork_safe", True)
        lock_fd = self.lock_fd
        self._reset_locks()
        if lock_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(lock_fd)  # the parent's lock stays the parent's
        self.guard.forget()
        if handles is None:
            return
        if safe:
            handles.env.close()
        else:
            # Closing would release reader slots and locks that belong to the parent.
            _graveyard.append(handles.env)
            self.poisoned = (
                f"this process was forked while another thread was using the LMDB cache in {self.directory}; "
                "it cannot be used in the child: fork before opening it, or outside its transactions"
            )


_lock = threading.Lock()
_environments: weakref.WeakValueDictionary[str, SharedEnvironment] = weakref.WeakValueDictionary()
_all: weakref.WeakSet[SharedEnvironment] = weakref.WeakSet()
_graveyard: list[lmdb.Environment] = []
_pending_releases: list[Callable[[], None]] = []


def acquire(
    directory: str,
    map_size: int,
    map_size_limit: int,
    max_readers: int,
    durable: bool,
    timeout: float,
    verify: bool = True,
) -> SharedEnvironment:
    """The shared environment of ``directory`` (created on first use), with one more user."""
    key = os.path.realpath(directory)
    settings = _Settings(min(map_size, map_size_limit), map_size_limit, max_readers, durable, timeout, verify)
    with _lock:
        shared = _environments.get(key)
        if shared is None:
            shared = SharedEnvironment(directory, settings)
            _environments[key] = shared
            _all.add(shared)
        elif shared.handles is None and shared.settings != settings:
            shared.settings = settings  # not open: the next opener's settings apply
        shared.users += 1
        return shared


def release(shared: SharedEnvironment) -> None:
    """One user fewer; the environment closes when the last one leaves."""
    with _lock:
        shared.users -= 1
    shared.close_if_unused()


def reacquire(shared: SharedEnvironment) -> None:
    """One more user of an environment whose store was closed and is used again."""
    with _lock:
        shared.users += 1


def _before_fork() -> None:
    _lock.acquire()
    for shared in list(_all):
        _pending_releases.extend(shared.before_fork())


def _after_fork_in_parent() -> None:
    releases = _pending_releases[:]
    _pending_releases.clear()
    for release_one in reversed(releases):
        release_one()
    _lock.release()


def _after_fork_in_child() -> None:
    global _lock
    _pending_releases.clear()
    _lock = threading.Lock()
    for shared in list(_all):
        shared.after_fork_in_child()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


def _at_exit() -> None:
    """Seal the files of environments still open when the interpreter ends (a later first
    open then need not check them).  LMDB stays open: a daemon thread may still be in it,
    and a write after the seal only makes the next first open check the file."""
    for shared in list(_all):
        if shared.handles is not None:
            with contextlib.suppress(OSError):
                shared.guard.leave()


atexit.register(_at_exit)
