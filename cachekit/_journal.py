"""Crash recovery for value files: each process journals the value files it has in flight.

A value file is written before the transaction that stores its entry commits,
and the file an entry stops referencing is removed after the commit (see
:mod:`cachekit._files`).  A process killed in between leaves a file no entry
references.  To find such files again, a cache object keeps a small journal,
``pending/<pid>-<random>.journal``, which it holds with an exclusive
``flock`` while it is open:

- before it creates a value file, it appends ``<key> <file name>`` (the key as
  hex of its encoded bytes, ``-`` while the key is not known yet: ``push``);
- before it commits a transaction that makes value files obsolete, it appends
  one such line per file;
- once nothing it journaled is in flight any more (every file it wrote is
  referenced or removed, every obsolete one removed), it truncates the journal.

The kernel releases a ``flock`` when the process holding it dies, so a journal
whose lock can be taken belongs to a dead process (or to one that closed the
cache).  :func:`recover` replays such journals when a cache opens and at
``check()``: each file named is deleted unless the entry of its key references
it right now, then the journal goes.  That is safe because file names are
random and never move to another key: once the process that wrote a file is
gone, only the entry of the key it was written for can ever reference it.

Records are appended with one ``write()`` on an ``O_APPEND`` descriptor and
never fsynced: a write that returned is in the kernel and survives the death
of the process, which is what the journal is for.  A crash of the machine may
lose the journal (and value files with it); ``check(fix=True)`` remains the
way to clean up after that.  Nothing here ever fails a cache operation: a
journal that cannot be written (a full disk) is reported in the log, and the
operation goes on as it did before journals existed.

Journals are created under a temporary name, locked, then renamed into place,
so that a recovering process never takes a journal that is about to be locked
for one of a live process.  A forked child closes its copy of its parent's
descriptor (which leaves the parent's lock in place) and starts a journal of
its own on its first value file.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable

__all__ = ["PENDING", "Journal", "in_flight", "recover"]

log = logging.getLogger("cachekit")

PENDING = "pending"
_JOURNAL = re.compile(r"[0-9]+-[0-9a-f]{16}\.journal")
_TEMPORARY = re.compile(r"[0-9]+-[0-9a-f]{16}\.tmp")
#: A temporary journal this old whose lock can be taken was left by a process killed while creating it.
_TEMPORARY_GRACE_SECONDS = 60.0
_READ_LIMIT = 2**26  # a journal is tiny; more than this is not one cachekit wrote

Record = tuple[bytes | None, str]
"""A journal record: the encoded key (``None`` if not known yet) and a value file's name."""


class Journal:
    """The journal of value files in flight of one cache object (thread-safe, fork-aware)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._descriptor: int | None = None
        self._path = ""
        self._size = 0
        self._pending: set[str] = set()
        self._warned = False

    @property
    def path(self) -> str | None:
        """The journal's path, or ``None`` while this process has none."""
        return self._path if self._descriptor is not None and self._pid == os.getpid() else None

    @property
    def in_flight(self) -> frozenset[str]:
        """Names of the value files journaled and not settled yet."""
        with self._lock:
            return frozenset(self._pending)

    def record(self, key: bytes | None, name: str) -> None:
        """Journal a value file about to be created for ``key``, or about to become obsolete."""
        self.record_many(((key, name),))

    def record_many(self, records: Iterable[Record]) -> None:
        """Journal several value files at once (one ``write()``); they stay in flight until :meth:`settle`."""
        names = []
        lines = []
        for key, name in records:
            names.append(name)
            lines.append(f"{'-' if key is None else key.hex()} {name}\n")
        data = "".join(lines).encode()
        with self._lock:
            if self._pid != os.getpid():
                self._forget()  # forked without the at-fork hook: never write into the parent's journal
            self._pending.update(names)
            try:
                descriptor = self._descriptor
                if descriptor is None:
                    descriptor = self._create()
                self._append(descriptor, data)
            except OSError as error:
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "cachekit: could not journal value files in flight in %s (%s); a crash now may leave "
                        "unreferenced value files that only check(fix=True) removes",
                        self.directory,
                        error,
                    )

    def settle(self, names: Iterable[str]) -> None:
        """These value files are no longer in flight (referenced by a committed entry, or removed);
        once none is, empty the journal."""
        with self._lock:
            pending = self._pending
            if not pending:
                return
            for name in names:
                pending.discard(name)
            if not pending and self._size and self._descriptor is not None and self._pid == os.getpid():
                try:
                    os.ftruncate(self._descriptor, 0)
                    self._size = 0
                except OSError as error:  # pragma: no cover - ftruncate to 0 needs no space
                    log.warning("cachekit: could not empty the journal %s: %s", self._path, error)

    def close(self) -> None:
        """Remove the journal and release its lock, unless another thread still has files in flight."""
        with self._lock:
            if self._descriptor is None or self._pid != os.getpid() or self._pending:
                return
            with contextlib.suppress(OSError):
                os.unlink(self._path)  # first: a recovering process then finds nothing to replay
            with contextlib.suppress(OSError):
                os.close(self._descriptor)
            self._descriptor = None
            self._size = 0

    def after_fork_in_child(self) -> None:
        """In a forked child: drop the parent's journal (its lock stays the parent's)."""
        self._lock = threading.Lock()  # another thread of the parent may have held it
        self._forget()

    def _forget(self) -> None:
        if self._descriptor is not None:
            # Closing this copy of the descriptor leaves the parent's flock in place: the lock
            # belongs to the open file description, which the parent's descriptor keeps.
            with contextlib.suppress(OSError):
                os.close(self._descriptor)
        self._descriptor = None
        self._path = ""
        self._size = 0
        self._pending = set()
        self._pid = os.getpid()

    def _create(self) -> int:
        folder = os.path.join(self.directory, PENDING)
        if not os.path.isdir(folder):
            os.makedirs(folder, mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)
        stem = f"{os.getpid()}-{os.urandom(8).hex()}"
        temporary = os.path.join(folder, stem + ".tmp")
        path = os.path.join(folder, stem + ".journal")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        descriptor = os.open(temporary, flags, 0o600)
        try:
            os.fchmod(descriptor, 0o600)
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: no one else holds it
            os.rename(temporary, path)  # only now may a recovering process see it, already locked
        except BaseException:
            os.close(descriptor)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        self._descriptor = descriptor
        self._path = path
        self._size = 0
        return descriptor

    def _append(self, descriptor: int, data: bytes) -> None:
        # No fsync: the journal guards against the death of this process, and a write()
        # that returned is in the kernel whatever happens to the process afterwards.
        view = memoryview(data)
        try:
            while view:
                count = os.write(descriptor, view)
                view = view[count:]
        except OSError:
            # Cut what a failed write left (a full disk), so that the next record starts a line.
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, self._size)
            raise
        self._size += len(data)


def recover(directory: str, referenced: Callable[[bytes, str], bool], remove: Callable[[str], bool]) -> int:
    """Replay the journals of dead processes in ``directory``; return how many value files went.

    ``referenced(key, name)`` tells whether the entry of ``key`` references the
    value file ``name`` now; ``remove(name)`` deletes a value file (refusing any
    name cachekit does not write) and returns whether it did.  A journal whose
    replay fails (the store busy or damaged) is left for the next attempt.
    """
    folder = os.path.join(directory, PENDING)
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    removed = 0
    for filename in names:
        path = os.path.join(folder, filename)
        if _JOURNAL.fullmatch(filename):
            try:
                removed += _replay(path, referenced, remove)
            except Exception as error:
                log.warning("cachekit: could not replay the value-file journal %s: %s", path, error)
        elif _TEMPORARY.fullmatch(filename):
            _remove_leftover(path)
    if removed:
        log.info("cachekit: removed %d value files left by processes that ended mid-write in %s", removed, directory)
    return removed


def in_flight(directory: str) -> set[str]:
    """Names of the value files the journals in ``directory`` list: files that live processes
    have in flight (read without locking; a journal being replayed may be listed too)."""
    folder = os.path.join(directory, PENDING)
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return set()
    files: set[str] = set()
    for filename in names:
        if not _JOURNAL.fullmatch(filename):
            continue
        try:
            descriptor = os.open(os.path.join(folder, filename), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if stat.S_ISREG(os.fstat(descriptor).st_mode):
                files.update(_parse(os.read(descriptor, _READ_LIMIT)))
        except OSError:
            pass
        finally:
            os.close(descriptor)
    return files


def _replay(path: str, referenced: Callable[[bytes, str], bool], remove: Callable[[str], bool]) -> int:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0  # replayed by another process meanwhile
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            return 0
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # its process is alive (or another process is replaying it)
        try:
            if os.stat(path, follow_symlinks=False).st_ino != status.st_ino:
                return 0
        except FileNotFoundError:
            return 0  # replayed and removed by another process before we took the lock
        chunks = []
        total = 0
        while total < _READ_LIMIT:
            chunk = os.read(descriptor, 2**20)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        removed = 0
        for name, key in _parse(b"".join(chunks)).items():
            if (key is None or not referenced(key, name)) and remove(name):
                removed += 1
        os.unlink(path)
        return removed
    finally:
        os.close(descriptor)


def _parse(data: bytes) -> dict[str, bytes | None]:
    """Each value file named in a journal, with the key its last record gives it."""
    files: dict[str, bytes | None] = {}
    for line in data.split(b"\n")[:-1]:  # whatever follows the last newline was never finished
        fields = line.split(b" ")
        if len(fields) != 2:
            continue
        try:
            key = None if fields[0] == b"-" else bytes.fromhex(fields[0].decode("ascii"))
            name = fields[1].decode("ascii")
        except (UnicodeDecodeError, ValueError):
            continue
        files[name] = key
    return files


def _remove_leftover(path: str) -> None:
    """Remove a temporary journal a process was killed while creating (once it is old and unlocked)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if time.time() - os.fstat(descriptor).st_mtime < _TEMPORARY_GRACE_SECONDS:
            return
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        with contextlib.suppress(OSError):
            os.unlink(path)
    finally:
        os.close(descriptor)
