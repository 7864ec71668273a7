"""Deciding when ``data.mdb`` must be checked before LMDB may read it.

LMDB aborts the process on a damaged page (see :mod:`cachekit_lmdb._verify`),
and checking every page costs a read of the whole tree, so cachekit checks
only when the file may have been changed by something other than LMDB in a
cachekit process that closed it properly:

- every process that has the environment open holds a shared ``flock()`` on
  ``lmdb-open.lock``;
- the process that closes it last (it can take the lock exclusively) writes
  a **seal** into that file: ``data.mdb``'s inode, size, modification and
  change times, and the machine's boot id;
- the process that opens it first (again: the lock is free for an exclusive
  hold) compares the seal with ``data.mdb``.  If they differ (another program
  wrote the file, or the last user was killed or crashed) or the machine has
  restarted since (a system crash can leave damaged pages unless every
  writer flushed its commits, which the seal cannot tell), it walks the file
  first, and refuses a damaged one with :class:`cachekit.CorruptCache`.
  Openers arriving meanwhile wait for it, within the cache's timeout;
- a file nobody walked (``lmdb_verify=false``) or in which damage was found
  gets the seal ``unchecked`` instead, which vouches for nothing.

A process killed while it held the environment leaves no seal, so the next
first open after such a crash pays for one walk (about 1 s per million
records).  Damage that happens while processes have the file open, or that
keeps its inode, size and times (a disk's own silent bit rot, or a rewrite
of the same size within the clock tick of LMDB's last commit), is not seen.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import stat
import time

from cachekit import CorruptCache, StoreError, Timeout

__all__ = ["GUARD_FILE", "Guard", "verify"]

GUARD_FILE = "lmdb-open.lock"
_BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
#: The seal of a file nobody has vouched for: the next first opener walks it.
UNCHECKED = "unchecked\n"


def verify(data_path: str) -> None:
    """Walk ``data_path``; raise :class:`cachekit.CorruptCache` if it is damaged or not cachekit's."""
    from . import _verify  # only when a walk is due: most opens never need it

    if not _verify.SUPPORTED:
        return  # nothing to check with
    try:
        _verify.verify(data_path)
    except _verify.Foreign as error:
        raise CorruptCache(
            f"{data_path} is an LMDB database of another program ({error}); point cachekit at another directory"
        ) from error
    except _verify.Damaged as error:
        raise CorruptCache(
            f"{data_path} is damaged: {error}. LMDB would stop the process reading it; "
            "move the cache directory away (or delete it) so cachekit can start afresh"
        ) from error


@functools.cache
def _boot_id() -> str:
    """This boot of the machine (constant for the life of the process)."""
    try:
        with open(_BOOT_ID_PATH, encoding="ascii") as file:
            return file.read().strip()
    except OSError:
        return ""


def _seal(data_path: str) -> str:
    """The seal of the data file as it is now (``""`` when there is none)."""
    try:
        status = os.stat(data_path)
    except FileNotFoundError:
        return ""
    return f"{status.st_ino} {status.st_size} {status.st_mtime_ns} {status.st_ctime_ns} {_boot_id()}\n"


class Guard:
    """This process's hold on ``lmdb-open.lock`` for one open environment."""

    def __init__(self, directory: str, data_path: str) -> None:
        self.path = os.path.join(directory, GUARD_FILE)
        self.data_path = data_path
        self.descriptor = -1
        self.distrusted = False
        """Damage was found while open: the last process out must not seal the file."""
        self.verified = False
        """Whether the last :meth:`enter` walked the data file (for tests and counters)."""

    def enter(self, deadline: float, walk: bool = True) -> None:
        """Take the shared hold, first checking ``data.mdb`` when this is the first opener
        and the seal does not vouch for it (``walk=False`` skips the check)."""
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise StoreError(f"cannot open {self.path}: {error.strerror}; {_ACCESS}") from error
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise CorruptCache(f"{self.path} is not a regular file; move it away so cachekit can use the cache")
            self.verified = False
            pause = 0.0005
            while True:
                if _try(descriptor, fcntl.LOCK_EX):
                    self._as_first_opener(descriptor, walk)
                    fcntl.flock(descriptor, fcntl.LOCK_SH)  # not atomic: a racing opener may go first
                    break
                if _try(descriptor, fcntl.LOCK_SH):
                    break
                # Another process holds it exclusively: it is checking the file, or closing.
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Timeout(
                        f"another process kept {self.path} locked beyond the timeout "
                        "(it checks data.mdb before first use, which takes long for a large cache)"
                    )
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, 0.01)
        except BaseException:
            os.close(descriptor)
            raise
        self.descriptor = descriptor

    def _as_first_opener(self, descriptor: int, walk: bool) -> None:
        now = _seal(self.data_path)
        recorded = os.pread(descriptor, 4096, 0).decode("ascii", "replace")
        if recorded == now:
            return
        if not walk:
            seal = UNCHECKED
        else:
            verify(self.data_path)
            self.verified = True
            self.distrusted = False  # whatever damage was found before is gone
            seal = now
        if recorded != seal:
            _write(descriptor, seal)

    def distrust(self) -> None:
        """Damage was found: the file keeps the seal ``unchecked`` (see the module)."""
        self.distrusted = True
        if self.descriptor >= 0:
            with contextlib.suppress(OSError):
                _write(self.descriptor, UNCHECKED)

    def leave(self) -> None:
        """Give up the hold; the last process out writes the seal.  Call after closing LMDB."""
        descriptor, self.descriptor = self.descriptor, -1
        if descriptor < 0:
            return
        try:
            # Fails (and drops the shared hold) while another process has the environment open.
            if _try(descriptor, fcntl.LOCK_EX):
                with contextlib.suppress(OSError):
                    unchecked = self.distrusted or os.pread(descriptor, 64, 0) == UNCHECKED.encode()
                    _write(descriptor, UNCHECKED if unchecked else _seal(self.data_path))
        finally:
            os.close(descriptor)

    def forget(self) -> None:
        """In a forked child: drop the inherited descriptor without touching the parent's hold."""
        descriptor, self.descriptor = self.descriptor, -1
        if descriptor >= 0:
            with contextlib.suppress(OSError):
                os.close(descriptor)


_ACCESS = "give this user read and write access to the cache directory, or use another one"


def _try(descriptor: int, operation: int) -> bool:
    try:
        fcntl.flock(descriptor, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write(descriptor: int, seal: str) -> None:
    raw = seal.encode("ascii")
    os.pwrite(descriptor, raw, 0)
    os.ftruncate(descriptor, len(raw))
