"""Value files: large payloads live in their own files beside the store.

Files are written before the write transaction starts (so the lock is not
held during the copy) and removed only after the transaction that stops
referencing them has committed.  A file is journaled before it is created
(:mod:`cachekit._journal`), so that a process killed before its entry commits
leaves nothing the next opener does not clean up.  Names are random, never derived from
keys, and every name read back from a store is checked against the one
pattern cachekit writes, so a tampered store cannot point outside the
cache directory.  Files open with ``O_NOFOLLOW``: a planted symlink is not
followed.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from collections.abc import Iterator
from typing import BinaryIO

from ._errors import StorageFull, StoreError
from ._journal import Journal

__all__ = ["ValueFiles"]

log = logging.getLogger("cachekit")

SUBDIRECTORY = "values"
_NAME = re.compile(r"values/[0-9a-f]{2}/[0-9a-f]{30}\.val")
_CHUNK = 2**22
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class ValueFiles:
    """The value files of one cache directory."""

    def __init__(self, directory: str, durable: bool = False, journal: Journal | None = None) -> None:
        self.directory = directory
        self.durable = durable
        self.journal = journal

    def path(self, name: str) -> str:
        """Absolute path of a value file, refusing names cachekit would never write."""
        if not _NAME.fullmatch(name):
            raise StoreError(f"refusing value file name {name!r}: the store is damaged or was tampered with")
        return os.path.join(self.directory, name)

    def _new_name(self) -> str:
        token = os.urandom(16).hex()
        subdirectory = os.path.join(self.directory, SUBDIRECTORY, token[:2])
        if not os.path.isdir(subdirectory):
            os.makedirs(subdirectory, mode=0o700, exist_ok=True)
            os.chmod(subdirectory, 0o700)
            os.chmod(os.path.dirname(subdirectory), 0o700)
        return f"{SUBDIRECTORY}/{token[:2]}/{token[2:]}.val"

    def write(self, chunks: Iterator[bytes], key: bytes | None = None) -> tuple[str, int]:
        """Write ``chunks`` to a new file for the entry of ``key`` (``None``: not known yet); return
        its name and size.

        The file is journaled first; it stays in flight until the caller settles
        it (:meth:`Journal.settle`) or removes it.  On any failure the partial file
        is removed; a full disk raises :class:`cachekit.StorageFull`.
        """
        try:
            name = self._new_name()
        except OSError as error:
            raise _translate(error, self.directory) from error
        if self.journal is not None:
            self.journal.record(key, name)
        path = os.path.join(self.directory, name)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except BaseException as error:
            self.remove(name)  # settles it in the journal
            if isinstance(error, OSError):
                raise _translate(error, self.directory) from error
            raise
        written = 0
        try:
            # Errors of the source (a stream passed with read=True) propagate
            # as they are; only errors writing the file are translated.
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    try:
                        count = os.write(descriptor, view)
                    except OSError as error:
                        raise _translate(error, path) from error
                    view = view[count:]
                    written += count
            try:
                os.fchmod(descriptor, 0o600)
                if self.durable:
                    os.fsync(descriptor)
            except OSError as error:
                raise _translate(error, path) from error
        except BaseException:
            os.close(descriptor)
            self.remove(name)
            raise
        os.close(descriptor)
        return name, written

    def write_bytes(self, data: bytes, key: bytes | None = None) -> tuple[str, int]:
        """Write ``data`` to a new file; return its name and size."""
        return self.write(iter((data,)), key)

    def write_stream(self, stream: BinaryIO, key: bytes | None = None) -> tuple[str, int]:
        """Copy a binary file object to a new file; return its name and size."""

        def chunks() -> Iterator[bytes]:
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    return
                if not isinstance(chunk, bytes | bytearray | memoryview):
                    raise TypeError(f"read=True needs a binary file object; read() returned {type(chunk).__name__}")
                yield bytes(chunk)

        return self.write(chunks(), key)

    def open(self, name: str) -> BinaryIO:
        """Open a value file for reading, without following symlinks.

        ``O_NONBLOCK`` keeps a FIFO planted in a value file's place from blocking
        the open forever; anything but a regular file is refused.
        """
        path = self.path(name)
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise OSError(errno.EIO, f"value file {path} is not a regular file")
            os.set_blocking(descriptor, True)
        except BaseException:
            os.close(descriptor)
            raise
        return os.fdopen(descriptor, "rb")

    def read(self, name: str, expected_size: int) -> bytes:
        """The content of a value file; ``OSError`` if it is missing or not ``expected_size`` long."""
        with self.open(name) as file:
            data = file.read()
        if len(data) != expected_size:
            raise OSError(errno.EIO, f"value file {name} holds {len(data)} bytes, expected {expected_size}")
        return data

    def remove(self, name: str) -> bool:
        """Remove a value file if it exists (and settle it in the journal); return whether it was
        removed.  A file that cannot be removed is left for ``check``.

        Removal happens after a commit, when raising would report a failure
        for a write that succeeded, so errors are logged instead.
        """
        removed = False
        try:
            os.unlink(self.path(name))
            removed = True
        except FileNotFoundError:
            pass
        except StoreError:
            pass  # never act on a name cachekit did not write
        except OSError as error:
            log.warning("cachekit: could not remove the value file %s (%s); check(fix=True) will", name, error)
        if self.journal is not None:
            self.journal.settle((name,))
        return removed

    def names(self) -> Iterator[str]:
        """Every file under the value directory, as names relative to the cache directory."""
        root = os.path.join(self.directory, SUBDIRECTORY)
        for folder, _, files in os.walk(root):
            relative = os.path.relpath(folder, self.directory)
            for file in files:
                yield f"{relative}/{file}".replace(os.sep, "/")


def _translate(error: OSError, path: str) -> Exception:
    if error.errno in _FULL_ERRNOS:
        return StorageFull(f"no space left to write a value file under {path} ({error.strerror})")
    return StoreError(f"cannot write a value file under {path}: {error.strerror or error}")
