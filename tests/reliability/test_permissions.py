"""Scenario 7: permissions, as an unprivileged user, on every store.

Permissions mean nothing to root, so when the tests run as root each scenario
runs in a child process as ``nobody`` (``setpriv --reuid=65534 --regid=65534
--clear-groups``); otherwise it runs as the current user.  A read-only,
unreadable, world-writable or foreign directory, or one that cannot be created,
must give a clear error: a cachekit exception (an ``OSError`` too, for directory
problems) whose message names the path and says how to fix it.  A read-only
open is not documented, so a cache the user may not write is refused (or, where
the store can open it, reads work and writes raise), and its files stay as they
were.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _faults import NOBODY, run_child, unprivileged_reason

import cachekit

ROOT = os.geteuid() == 0
REASON = unprivileged_reason()
#: A message must say how to fix the problem: one of these.
FIXES = ("chmod 700", "read and write access", "choose a path", "use another", "allow_insecure_directory")


@pytest.fixture
def base(tmp_path: Path) -> Iterator[Path]:
    """A directory the scenario's user owns (``nobody``'s, outside pytest's root-only tree, under root)."""
    if REASON:
        pytest.skip(REASON)
    if not ROOT:
        yield tmp_path
        for inner, _, _ in os.walk(tmp_path):
            with contextlib.suppress(OSError):
                os.chmod(inner, 0o700)
        return
    folder = Path(tempfile.mkdtemp(prefix="cachekit-permissions-"))
    os.chown(folder, NOBODY, NOBODY)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(base: Path, store: str, case: str) -> dict[str, Any]:
    report: dict[str, Any] = run_child("permissions", str(base), store, case, unprivileged=ROOT, deadline=30)
    if ROOT:
        assert report["uid"] == NOBODY, "the scenario did not run unprivileged"
    assert report["seconds"] < 5
    return report


def _assert_clear(report: dict[str, Any], kind: type[Exception], path: str) -> str:
    name, message = report["open"]
    assert name == kind.__name__, f"expected {kind.__name__}, got {name}: {message}"
    assert path in message, message
    assert any(fix in message for fix in FIXES), f"the message does not say how to fix it: {message}"
    return str(message)


@pytest.mark.slow
def test_a_read_only_cache_is_refused_or_read_only(store: str, base: Path) -> None:
    """A directory (and files) the user may only read: StoreError naming the path and the fix, at open or
    at the first write (reads working), and no file changes."""
    report = _run(base, store, "read-only")
    if report["open"][0] == "ok":
        assert report["get_small"] == ["ok", "value"]
        assert report["set"][0] == "StoreError"
        assert str(base / "cache") in report["set"][1]
    else:
        _assert_clear(report, cachekit.StoreError, str(base / "cache"))
    assert report["unchanged"] is True


@pytest.mark.slow
def test_a_read_only_database_file_is_refused_or_read_only(store: str, base: Path) -> None:
    """The database file alone made read-only (0o400): StoreError naming it and the fix, at open or at
    the first write with reads working; no file changes."""
    report = _run(base, store, "database-read-only")
    if report["open"][0] == "ok":
        assert report["get_small"] == ["ok", "value"]
        assert report["get_large"] == ["ok", 4096]
        name, message = report["set"]
        assert name == "StoreError", message
        assert "read and write access" in message
    else:
        _assert_clear(report, cachekit.StoreError, str(base / "cache"))
    assert report["unchanged"] is True


@pytest.mark.slow
def test_an_unreadable_directory_is_a_directory_error(store: str, base: Path) -> None:
    """A directory with mode 000: DirectoryError (an OSError) naming the path and the fix."""
    report = _run(base, store, "unreadable")
    _assert_clear(report, cachekit.DirectoryError, str(base / "cache"))
    assert "OSError" in report["kinds"]


@pytest.mark.slow
def test_a_directory_that_cannot_be_created_is_a_directory_error(store: str, base: Path) -> None:
    """A cache path under a directory the user may not write: DirectoryError naming it and the fix."""
    report = _run(base, store, "missing-parent")
    _assert_clear(report, cachekit.DirectoryError, str(base / "sub" / "cache"))
    assert report["created"] is False


@pytest.mark.slow
@pytest.mark.parametrize("case", ["world-writable", "world-writable-sticky"])
def test_a_world_writable_directory_is_refused(store: str, base: Path, case: str) -> None:
    """A directory everyone may write (with or without the sticky bit): InsecureDirectory, files unchanged."""
    report = _run(base, store, case)
    message = _assert_clear(report, cachekit.InsecureDirectory, str(base / "cache"))
    assert "writable by group or others" in message
    assert report["unchanged"] is True


@pytest.fixture
def theirs(base: Path, store: str) -> Path:
    """A cache that root made (mode 0o700), inside the unprivileged user's directory."""
    if not ROOT:
        pytest.skip("another user's directory needs root to make (test_security.py fakes it with a patched uid)")
    directory = base / "theirs"
    with cachekit.Cache(directory, store=store) as cache:
        cache.set("root's", "secret")
    return directory


@pytest.mark.slow
def test_another_users_directory_is_refused(store: str, base: Path, theirs: Path) -> None:
    """A cache directory owned by root: InsecureDirectory naming the path, the owner and the fix."""
    report = _run(base, store, "foreign")
    message = _assert_clear(report, cachekit.InsecureDirectory, str(theirs))
    assert "owned by another user (uid 0)" in message


@pytest.mark.slow
def test_another_users_directory_with_the_opt_out_is_a_clear_access_error(store: str, base: Path, theirs: Path) -> None:
    """With allow_insecure_directory=True, root's private cache still cannot be read: a DirectoryError or
    StoreError naming the path and the fix, not a raw PermissionError."""
    report = _run(base, store, "foreign-opt-out")
    name, message = report["open"]
    assert name in ("DirectoryError", "StoreError"), f"{name}: {message}"
    assert str(theirs) in message
    assert any(fix in message for fix in FIXES), message
    with cachekit.Cache(theirs) as cache:
        assert cache["root's"] == "secret"
