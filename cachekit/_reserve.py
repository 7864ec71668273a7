"""The disk reserve: space a cache directory holds back so that removals work on a full disk.

A removal is a write too: SQLite appends it to its write-ahead log, and LMDB
copies the pages it changes (and may have to extend ``data.mdb``).  On a disk
with no room left, ``delete`` and ``clear`` would then fail like ``set``, and a
full cache could not be emptied from inside.  So each cache directory keeps a
file of ``disk_reserve`` bytes, :data:`RESERVE`, whose blocks are really
allocated (``posix_fallocate``, or written out where that is unsupported;
never a sparse file).  When an operation that only removes entries fails with
:class:`cachekit.StorageFull`, the core deletes the file, which gives its
blocks back to the file system, and tries the removal again (see
``CacheCore._removal``).

The file is created when a cache opens, if there is room (a cache opens
without it on a full disk), and again after the next successful write of a
process that gave it up or found it missing.  It is replaced through a
temporary file and a rename, so it never has a size other than a complete one;
nothing but this module creates or deletes it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import time

__all__ = ["RESERVE", "DiskReserve"]

log = logging.getLogger("cachekit")

#: The reserve's file name in the cache directory.
RESERVE = "disk-reserve"
#: Seconds between attempts to re-create the reserve while there is no room for it.
RETRY_SECONDS = 1.0
_CHUNK = 2**20
#: Errors of ``posix_fallocate`` that mean "not supported here" rather than "no room".
_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})


class DiskReserve:
    """The reserve file of one cache directory, as one cache object sees it."""

    def __init__(self, directory: str, size: int) -> None:
        self.directory = directory
        self.path = os.path.join(directory, RESERVE)
        self.size = size
        self.wanted = False
        """Whether this object should (re-)create the file at its next successful write:
        it gave the file up, or found it missing or of the wrong size and had no room."""
        self._next_try = 0.0

    # -- state ------------------------------------------------------------------------
    def _status(self) -> os.stat_result | None:
        try:
            return os.lstat(self.path)
        except FileNotFoundError:
            return None

    def problem(self) -> str:
        """What is wrong with the reserve (for ``check()``), or ``""``."""
        try:
            status = self._status()
        except OSError as error:
            return f"cannot inspect the disk reserve {self.path}: {error.strerror or error}"
        if status is None:
            if not self.size:
                return ""
            return (
                f"the disk reserve {self.path} is missing (it was used on a full disk, or there was no room "
                f"to create it); check(fix=True) creates it ({self.size} bytes) when there is room"
            )
        if not stat.S_ISREG(status.st_mode):
            return f"the disk reserve {self.path} is not a regular file; move it away"
        if status.st_size != self.size:
            wanted = f"{self.size} bytes" if self.size else "none (disk_reserve=0)"
            return f"the disk reserve {self.path} holds {status.st_size} bytes, expected {wanted}"
        return ""

    def leftovers(self) -> list[tuple[str, float]]:
        """Temporary files of an interrupted creation (a crash), with their modification times."""
        found = []
        prefix = RESERVE + "."
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return []
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(".tmp"):
                try:
                    found.append((entry.path, entry.stat(follow_symlinks=False).st_mtime))
                except FileNotFoundError:
                    continue
        return found

    # -- making and giving up ----------------------------------------------------------------
    def ensure(self) -> bool:
        """Make the file match ``size``: create or resize it, or remove it when ``size`` is 0.

        Best effort (at open, on ``reset`` and ``check(fix=True)``): a full disk, a
        read-only directory or any other error leaves things as they are, and
        :attr:`wanted` set so that a later successful write tries again.  Returns
        whether the reserve is as it should be.
        """
        try:
            status = self._status()
        except OSError:
            self.wanted = True
            return False
        if status is not None and not stat.S_ISREG(status.st_mode):
            self.wanted = False  # not ours to touch; check() reports it
            return False
        if not self.size:
            self.wanted = False
            if status is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            return True
        if status is not None and status.st_size == self.size:
            self.wanted = False
            return True
        return self._create()

    def restore(self) -> None:
        """After a successful write: re-create the file if it is :attr:`wanted`, trying at
        most once every :data:`RETRY_SECONDS` while there is no room for it."""
        now = time.monotonic()
        if now >= self._next_try and not self.ensure():
            self._next_try = now + RETRY_SECONDS

    def release(self) -> bool:
        """Delete the file, which frees its blocks; return whether there was one to delete.

        Called when a removal failed with ``StorageFull``.  Either way the file
        is :attr:`wanted` again from now on.
        """
        self.wanted = self.size > 0
        self._next_try = 0.0
        try:
            status = os.lstat(self.path)
            if not stat.S_ISREG(status.st_mode):
                return False
            os.unlink(self.path)
        except FileNotFoundError:
            return False
        except OSError as error:
            log.warning("cachekit: could not delete the disk reserve %s: %s", self.path, error)
            return False
        return True

    def _create(self) -> bool:
        """Allocate a complete reserve under a temporary name and rename it into place."""
        self.wanted = True
        temporary = f"{self.path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        try:
            descriptor = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return False
        try:
            try:
                os.fchmod(descriptor, 0o600)
                _allocate(descriptor, self.size)
            finally:
                os.close(descriptor)
            os.replace(temporary, self.path)
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                log.debug("cachekit: could not create the disk reserve %s: %s", self.path, error)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            return False
        self.wanted = False
        return True


def _allocate(descriptor: int, size: int) -> None:
    """Give the open file ``size`` bytes of real blocks: ``posix_fallocate``, or writing
    them out where the file system does not support it (never a sparse file)."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        try:
            fallocate(descriptor, 0, size)
            return
        except OSError as error:
            if error.errno not in _UNSUPPORTED:
                raise
    # Random bytes rather than zeros: a compressing file system (ZFS, btrfs) would
    # store zeros in no blocks at all, and the reserve would free nothing.
    chunk = os.urandom(min(size, _CHUNK))
    written = 0
    while written < size:
        written += os.write(descriptor, memoryview(chunk)[: min(len(chunk), size - written)])
    os.fsync(descriptor)
