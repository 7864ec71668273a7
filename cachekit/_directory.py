"""The cache directory: creation (owner-only), safety checks, and the marker file.

A pickled value runs code when it is read, so a directory that another user
owns, or that group or others may write to, is refused unless the caller
opts out explicitly.  The marker file records which store created the
directory, so that reopening it with another store fails clearly.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from typing import Any

from ._errors import CorruptCache, DirectoryError, InsecureDirectory

__all__ = ["MARKER", "prepare", "read_marker", "write_marker"]

MARKER = "cachekit.json"
_ACCESS = "the cache directory must be readable and writable by this user (chmod 700 as its owner), or use another one"
FORMAT = 1


def prepare(path: str | os.PathLike[str], allow_insecure: bool) -> tuple[str, bool]:
    """Create ``path`` if needed and check that it is safe; return it absolute and whether it is insecure."""
    directory = os.path.abspath(os.fspath(path))
    try:
        status = os.stat(directory)
    except FileNotFoundError:
        _create(directory)
        status = os.stat(directory)
    except NotADirectoryError:
        raise DirectoryError(f"cannot create the cache directory {directory}: a parent is a file") from None
    except PermissionError as error:
        raise DirectoryError(f"cannot reach the cache directory {directory}: {error.strerror}; {_ACCESS}") from error
    if not stat.S_ISDIR(status.st_mode):
        raise DirectoryError(f"the cache path {directory} is a file, not a directory; choose another path")
    problem = _insecurity(status)
    where = directory
    if not problem:
        # The files in it matter as much: a cache.db or values/ folder that
        # others can write to is the same open door.
        where, problem = _insecure_entry(directory)
    if problem and not allow_insecure:
        subject = "it" if where == directory else where
        raise InsecureDirectory(
            f"refusing to open the cache directory {directory}: {subject} {problem}. Another user could "
            "plant a pickled value there that runs code when read. Fix it with `chmod 700` on a directory "
            "you own (`chmod 600` on its files), or pass allow_insecure_directory=True together with a "
            "secret_key (values are then only unpickled when their signature matches)"
        )
    return directory, bool(problem)


def _insecure_entry(directory: str) -> tuple[str, str]:
    """The first entry directly in ``directory`` that others own or may write to, and why."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return directory, ""  # unreadable: the store's own open reports it
    for entry in entries:
        try:
            problem = _insecurity(entry.stat(follow_symlinks=False))
        except OSError:
            continue
        if problem:
            return entry.path, problem
    return directory, ""


def _create(directory: str) -> None:
    """Create ``directory`` and any missing parents, each owner-only whatever the umask."""
    missing = []
    path = directory
    while not os.path.exists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if os.path.isdir(path):
                continue  # another opener created it at the same moment
            raise DirectoryError(f"the cache path {path} is a file, not a directory; choose another path") from None
        except NotADirectoryError:
            raise DirectoryError(f"cannot create the cache directory {directory}: a parent is a file") from None
        except OSError as error:
            raise DirectoryError(
                f"cannot create the cache directory {directory}: {error.strerror}; "
                "choose a path under a directory this user may write to"
            ) from error
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask


def _insecurity(status: os.stat_result) -> str:
    if status.st_uid != os.geteuid():
        return f"is owned by another user (uid {status.st_uid})"
    if status.st_mode & 0o022 and not stat.S_ISLNK(status.st_mode):  # a symlink's own mode means nothing
        return f"is writable by group or others (mode {stat.S_IMODE(status.st_mode):o})"
    return ""


def read_marker(directory: str) -> dict[str, Any] | None:
    """The marker's content, or ``None`` when the directory has none yet."""
    path = os.path.join(directory, MARKER)
    try:
        # O_NONBLOCK: a FIFO planted under the marker's name must not block the open forever.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise DirectoryError(f"cannot read {path}: {error.strerror}; {_ACCESS}") from error
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise CorruptCache(f"{path} is {kind}; cachekit keeps a small file there")
    with os.fdopen(descriptor, "rb") as file:
        raw = file.read(65536)
    try:
        marker = json.loads(raw)
    except ValueError:
        marker = None
    if not isinstance(marker, dict) or not isinstance(marker.get("store"), str):
        raise CorruptCache(f"{path} is damaged or was not written by cachekit; remove it to start afresh")
    return marker


def write_marker(directory: str, store: str) -> dict[str, Any]:
    """Record ``store`` in the marker unless another opener won the race; return the marker."""
    path = os.path.join(directory, MARKER)
    marker = {"store": store, "format": FORMAT}
    temporary = f"{path}.{os.getpid()}.{id(marker):x}.tmp"
    try:
        descriptor = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(descriptor, 0o600)
            os.write(descriptor, json.dumps(marker).encode())
        finally:
            os.close(descriptor)
        with contextlib.suppress(FileExistsError):  # a concurrent opener was first
            os.link(temporary, path)  # atomic
    except OSError as error:
        raise DirectoryError(f"cannot write {path}: {error.strerror or error}") from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    existing = read_marker(directory)
    assert existing is not None
    return existing
