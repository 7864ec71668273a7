"""Scenario 4: a full disk, on every store.

Three ways to run out of room:

- a small tmpfs mounted for the test (needs root or CAP_SYS_ADMIN), filled with
  cache writes until one fails;
- a file size limit (``RLIMIT_FSIZE``, no root needed): writes past it fail with
  ``EFBIG`` or a short write, which the engines report as I/O errors;
- ``os.write`` failing with ``ENOSPC`` at its N-th call, in process: the value files.

Each run checks the documented outcome (docs/api.md, "When the store is full"):
the failing write raises ``cachekit.StorageFull`` and changes nothing, every
earlier entry reads back, no value file is left without its entry, the cache
reopens while the disk is still full, and writes succeed again once there is
room.  The fills run in a child process, so a crash of an engine (``SIGBUS`` on a
memory-mapped file) fails the test instead of killing pytest.

Removals on a full disk (delete, clear, evict, expire) are in
``test_disk_full_removals.py``.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _faults import fill, mount_reason, referenced_files, run_child, snapshot, tmpfs, value_files, value_of

import cachekit

MOUNT_REASON = mount_reason()
#: The size of the tmpfs: a few hundred writes fill it.
TMPFS_SIZE = "3m"


@pytest.fixture
def place(tmp_path: Path, mechanism: str) -> Iterator[tuple[Path, Path]]:
    """Where the cache lives (on a fresh tmpfs for ``tmpfs``) and the path of a ballast file beside it."""
    if mechanism == "tmpfs":
        if MOUNT_REASON:
            pytest.skip(MOUNT_REASON)
        with tmpfs(tmp_path / "mnt", TMPFS_SIZE) as mount_point:
            yield mount_point / "cache", mount_point / "ballast"
    else:
        yield tmp_path / "cache", tmp_path / "ballast"


@pytest.mark.slow
@pytest.mark.parametrize("payloads", ["small", "mixed"], ids=["inline-values", "with-value-files"])
@pytest.mark.parametrize("mechanism", ["tmpfs", "rlimit"])
def test_a_full_disk_fails_one_write_cleanly_and_the_cache_recovers(
    store: str, mechanism: str, payloads: str, place: tuple[Path, Path]
) -> None:
    """Writing until the disk is full: the failing write raises StorageFull and leaves nothing behind; every
    acknowledged entry reads back, before and after reopening while full; once room is freed, writes succeed
    and check() finds nothing wrong."""
    directory, ballast = place
    report = run_child("full_disk", str(directory), store, mechanism, payloads, str(ballast))
    kind, message, _failing_key = report["failure"]
    assert kind == "StorageFull", f"the first failed write raised {kind}: {message}"
    assert str(directory) in message
    assert report["acked"] > 0
    assert report["failing_key_present"] == ["ok", False]
    assert report["wrong_reads"] == []
    assert report["length"] == ["ok", report["acked"]]
    assert report["files_on_disk"] == report["files_referenced"], "orphan or missing value files"
    assert report["close"][0] == "ok"
    assert report["reopen_while_full"][0] == "ok", report["reopen_while_full"]
    assert report["wrong_reads_after_reopen"] == []
    assert report["set_small_after_freeing"] == ["ok", True]
    assert report["set_large_after_freeing"] == ["ok", True]
    assert report["read_back_after_freeing"] is True
    assert report["check_after_freeing"] == []


# -- ENOSPC from os.write at the N-th call ------------------------------------------------------------------
#: Large enough for a value file (the threshold is lowered to 1 KiB below).
LARGE = 20_000
#: A stream long enough to be copied in three chunks (value files copy 4 MiB at a time).
STREAM = 9 * 2**20


def _operations() -> list[tuple[str, Callable[[cachekit.Cache], Any]]]:
    """Writes that each create one value file (the stream: three ``os.write`` calls), in order."""
    return [
        ("set", lambda cache: cache.set("replaced", b"a" * LARGE)),
        ("add", lambda cache: cache.add("added", b"b" * LARGE)),
        ("push", lambda cache: cache.push(b"c" * LARGE, prefix="queue")),
        ("set-stream", lambda cache: cache.set("streamed", io.BytesIO(b"d" * STREAM), read=True)),
        ("set-again", lambda cache: cache.set("replaced", b"e" * LARGE, tag="again")),
    ]


#: Which operation makes each os.write call of the sequence (the stream makes three).
OWNER = ["set", "add", "push", "set-stream", "set-stream", "set-stream", "set-again"]


@pytest.mark.parametrize("failing_call", range(1, len(OWNER) + 1))
def test_enospc_at_the_nth_write_fails_only_that_operation(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_call: int
) -> None:
    """With the N-th os.write failing (once) with ENOSPC, the write it belongs to raises StorageFull and
    changes nothing; every other write of the sequence takes effect, and no value file is orphaned."""
    reference = cachekit.Cache(tmp_path / "reference", store=store, disk_min_file_size=1024)
    cache = cachekit.Cache(tmp_path / "cache", store=store, disk_min_file_size=1024)
    for each in (reference, cache):
        fill(each, 12, large_every=4)
        each.set("replaced", b"old" * LARGE)
    operations = _operations()
    calls = [0]
    real_write = os.write

    def counting(descriptor: int, data: Any) -> int:
        if descriptor == cache._journal._descriptor:
            # The journal of value files in flight: its failures never fail a write
            # (tests/test_value_file_journal.py); this test is about the value files.
            return real_write(descriptor, data)
        calls[0] += 1
        if calls[0] == failing_call:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(descriptor, data)

    failed: list[str] = []
    monkeypatch.setattr(os, "write", counting)
    for name, operation in operations:
        before = snapshot(cache)
        error: cachekit.StorageFull | None = None
        try:
            operation(cache)
        except cachekit.StorageFull as raised:
            error = raised
        if error is not None:
            assert "no space left" in str(error)
            assert snapshot(cache) == before, f"the failed {name} changed the cache"
            failed.append(name)
        else:
            monkeypatch.undo()
            operation(reference)  # the same write, on a cache where nothing fails
            monkeypatch.setattr(os, "write", counting)
    monkeypatch.undo()
    assert failed == [OWNER[failing_call - 1]]
    assert value_files(cache.directory) == referenced_files(cache), "orphan or missing value files"
    assert [str(warning.message) for warning in cache.check()] == []
    expected = {repr(name): reference.get(name, expire_time=True, tag=True) for name in reference}
    assert {repr(name): cache.get(name, expire_time=True, tag=True) for name in cache} == expected
    assert len(cache) == len(reference)
    assert cache.volume() == reference.volume()
    reference.close()
    cache.close()


def test_enospc_creating_a_value_file_is_storage_full(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC (or EDQUOT) from creating the value file itself is StorageFull too, and leaves no file."""
    cache = cachekit.Cache(tmp_path / "cache", store=store, disk_min_file_size=1024)
    cache.set("kept", value_of(3, large=True))
    before = snapshot(cache)
    real_open = os.open

    for code in (errno.ENOSPC, errno.EDQUOT):

        def refuse(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None, code: int = code) -> int:
            if str(path).endswith(".val") and flags & os.O_CREAT:
                raise OSError(code, os.strerror(code))
            return real_open(path, flags, mode, dir_fd=dir_fd)

        monkeypatch.setattr(os, "open", refuse)
        with pytest.raises(cachekit.StorageFull):
            cache.set("kept", value_of(4, large=True))
        monkeypatch.undo()
        assert snapshot(cache) == before
    assert value_files(cache.directory) == referenced_files(cache)
    cache.close()
