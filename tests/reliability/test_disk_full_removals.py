"""Scenario 4, removals: on a full disk, delete, pop, evict, expire and clear must still work.

A removal is a write too: SQLite appends it to the write-ahead log and LMDB copies
the pages it changes, so on a disk with no room left both would fail with
``StorageFull`` (python-diskcache fails that way), and a full cache could not be
emptied from inside.  What makes them work (docs/api.md, "Removals on a full
disk"): each cache directory keeps a disk reserve, ``disk-reserve``, which a
removal that finds the disk full deletes before it tries again; the store also
gives back what it can (SQLite checkpoints and truncates its log, LMDB commits a
transaction so that the pages the last one freed become reusable), and bulk
removals shrink their batches when one does not fit.  Under the file size limit
(``rlimit``) deleting the reserve frees nothing that counts, so those runs
check the store's part alone.  The LMDB map's own reserve (docs/stores.md,
"When the map is full") covers a full *map*, not a full disk.

Each fill runs in a child process (see ``test_disk_full.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _faults import mount_reason, run_child, tmpfs

MOUNT_REASON = mount_reason()


@pytest.fixture
def place(tmp_path: Path, mechanism: str) -> Iterator[tuple[Path, Path]]:
    """Where the cache lives (on a fresh tmpfs for ``tmpfs``) and the path of a ballast file beside it."""
    if mechanism == "tmpfs":
        if MOUNT_REASON:
            pytest.skip(MOUNT_REASON)
        with tmpfs(tmp_path / "mnt", "3m") as mount_point:
            yield mount_point / "cache", mount_point / "ballast"
    else:
        yield tmp_path / "cache", tmp_path / "ballast"


@pytest.mark.slow
@pytest.mark.parametrize("payloads", ["small", "mixed"], ids=["inline-values", "with-value-files"])
@pytest.mark.parametrize("mechanism", ["tmpfs", "rlimit"])
def test_removals_work_while_the_disk_is_full(
    store: str, mechanism: str, payloads: str, place: tuple[Path, Path]
) -> None:
    """After the first StorageFull, and with no room freed: expire() removes the expired entries, evict()
    the tagged ones, delete() and pop() one entry each, and clear() everything; the rest reads back."""
    directory, ballast = place
    report = run_child("full_disk_removals", str(directory), store, mechanism, payloads, str(ballast))
    assert report["failure"][0] == "StorageFull", report["failure"]
    problems = {name: report[name] for name in ("expire", "evict", "delete", "pop", "clear") if report[name][0] != "ok"}
    assert problems == {}, f"removals failed on a full disk: {problems}"
    assert report["expire"] == ["ok", report["expected"]["expire"]]
    assert report["evict"] == ["ok", report["expected"]["evict"]]
    assert report["delete"] == ["ok", True]
    assert report["pop"] == ["ok", True]
    assert report["wrong_reads"] == []
    assert report["length_after_clear"] == ["ok", 0]
