"""The disk reserve: space a cache directory gives up so that removals work on a full disk.

A full disk is injected here (the store's ``delete`` or ``put`` raising
``StorageFull``, ``posix_fallocate`` failing with ``ENOSPC``); the real thing, a
full tmpfs and a file size limit, is in ``tests/reliability/test_disk_full*.py``.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cachekit
import cachekit.plugins
from cachekit_sqlite import SQLiteStore

RESERVE = "disk-reserve"
LARGE = b"L" * 40_000  # a value file at the default disk_min_file_size


@pytest.fixture(params=cachekit.plugins.names("store"))
def store(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def cache(tmp_path: Path, store: str) -> Iterator[cachekit.Cache]:
    with cachekit.Cache(tmp_path / "cache", store=store) as opened:
        yield opened


def reserve_path(cache: cachekit.Cache) -> Path:
    return Path(cache.directory, RESERVE)


def value_files(cache: cachekit.Cache) -> list[str]:
    root = Path(cache.directory, "values")
    return sorted(str(path.relative_to(cache.directory)) for path in root.rglob("*.val")) if root.exists() else []


def messages(cache: cachekit.Cache, **options: Any) -> list[str]:
    return [str(warning.message) for warning in cache.check(**options)]


def fail_first(monkeypatch: pytest.MonkeyPatch, target: object, name: str, times: int = 1) -> Callable[[], int]:
    """Make ``target.name`` raise StorageFull on its first ``times`` calls; return a call counter."""
    real = getattr(target, name)
    calls = [0]

    def failing(*arguments: Any) -> Any:
        calls[0] += 1
        if calls[0] <= times:
            raise cachekit.StorageFull("no space left to write (injected)")
        return real(*arguments)

    monkeypatch.setattr(target, name, failing)
    return lambda: calls[0]


def refuse_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk is full for the reserve: posix_fallocate fails with ENOSPC."""

    def full(descriptor: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)


def leftovers(cache: cachekit.Cache) -> list[str]:
    return [name for name in os.listdir(cache.directory) if name.startswith(RESERVE + ".")]


# -- the file ------------------------------------------------------------------------------------------
class TestTheFile:
    def test_created_at_open_with_its_size_mode_and_real_blocks(self, cache: cachekit.Cache) -> None:
        """A new cache has a 1 MiB reserve, owner-only, with every block allocated (not sparse)."""
        status = os.lstat(reserve_path(cache))
        assert stat.S_ISREG(status.st_mode)
        assert stat.S_IMODE(status.st_mode) == 0o600
        assert status.st_size == 2**20 == cache.disk_reserve
        assert status.st_blocks * 512 >= 2**20
        assert leftovers(cache) == []

    def test_the_size_is_a_setting(self, tmp_path: Path, store: str) -> None:
        """disk_reserve sets the size; it is saved, and a reopen without it keeps it."""
        with cachekit.Cache(tmp_path, store=store, disk_reserve="64KiB") as cache:
            assert os.path.getsize(reserve_path(cache)) == 65536
        with cachekit.Cache(tmp_path) as cache:
            assert cache.disk_reserve == 65536
            assert os.path.getsize(reserve_path(cache)) == 65536

    def test_zero_turns_it_off(self, tmp_path: Path, store: str) -> None:
        """disk_reserve=0: no file; reopening an existing cache with 0 deletes its file."""
        with cachekit.Cache(tmp_path / "off", store=store, disk_reserve=0) as cache:
            assert not reserve_path(cache).exists()
            assert messages(cache) == []
        with cachekit.Cache(tmp_path / "on", store=store) as cache:
            assert reserve_path(cache).exists()
        with cachekit.Cache(tmp_path / "on", disk_reserve=0) as cache:
            assert not reserve_path(cache).exists()
            assert messages(cache) == []

    def test_reset_resizes_it(self, cache: cachekit.Cache) -> None:
        assert cache.reset("disk_reserve", "128KiB") == 131072
        assert os.path.getsize(reserve_path(cache)) == 131072
        cache.reset("disk_reserve", 0)
        assert not reserve_path(cache).exists()
        cache.reset("disk_reserve", 4096)
        assert os.path.getsize(reserve_path(cache)) == 4096

    @pytest.mark.parametrize("value", [-1, "lots", True, 1.5])
    def test_bad_values_are_refused(self, tmp_path: Path, value: object) -> None:
        with pytest.raises(cachekit.ConfigError, match="disk_reserve"):
            cachekit.Cache(tmp_path, disk_reserve=value)

    def test_written_out_where_fallocate_is_unsupported(
        self, tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without posix_fallocate support the file is written out: still every block allocated."""

        def unsupported(descriptor: int, offset: int, length: int) -> None:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")

        monkeypatch.setattr(os, "posix_fallocate", unsupported)
        with cachekit.Cache(tmp_path, store=store, disk_reserve="256KiB") as cache:
            status = os.lstat(reserve_path(cache))
            assert status.st_size == 262144
            assert status.st_blocks * 512 >= 262144

    def test_invisible_to_volume_and_check(self, cache: cachekit.Cache) -> None:
        assert cache.volume() == 0
        cache.set("key", b"value")
        assert cache.volume() == len(cache._encode_key("key")) + len(b"value")
        assert messages(cache) == []
        assert RESERVE not in [os.path.basename(name) for name in value_files(cache)]

    def test_check_reports_a_missing_or_wrong_reserve_and_fix_restores_it(self, cache: cachekit.Cache) -> None:
        path = reserve_path(cache)
        path.unlink()
        (problem,) = messages(cache)
        assert "disk reserve" in problem
        assert "missing" in problem
        assert not path.exists()
        assert len(messages(cache, fix=True)) == 1
        assert os.path.getsize(path) == 2**20
        assert messages(cache) == []
        os.truncate(path, 100)
        (problem,) = messages(cache, fix=True)
        assert "holds 100 bytes, expected 1048576 bytes" in problem
        assert os.path.getsize(path) == 2**20
        assert messages(cache) == []

    def test_check_fix_removes_old_leftovers_of_an_interrupted_creation(self, cache: cachekit.Cache) -> None:
        leftover = Path(cache.directory, f"{RESERVE}.12345.abcd.tmp")
        leftover.write_bytes(b"\0" * 100)
        os.utime(leftover, (1, 1))
        (problem,) = messages(cache, fix=True)
        assert "leftover temporary file of the disk reserve" in problem
        assert not leftover.exists()
        assert messages(cache) == []

    def test_not_a_regular_file_is_reported_and_left_alone(self, tmp_path: Path, store: str) -> None:
        directory = tmp_path / "cache"
        (directory / RESERVE).mkdir(parents=True, mode=0o700)
        directory.chmod(0o700)
        with cachekit.Cache(directory, store=store) as cache:
            cache.set("key", 1)
            assert cache.delete("key")
            (problem,) = messages(cache, fix=True)
            assert "is not a regular file" in problem
            assert (directory / RESERVE).is_dir()


class TestOpeningWithoutRoom:
    def test_a_cache_opens_without_its_reserve_and_makes_it_after_a_write(
        self, tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No room for the reserve: the cache opens (new or existing) all the same, leaves no
        temporary file, and creates the reserve after its first successful write with room."""
        refuse_allocation(monkeypatch)
        with cachekit.Cache(tmp_path, store=store) as cache:
            assert not reserve_path(cache).exists()
            assert leftovers(cache) == []
            cache.set("first", 1)
        with cachekit.Cache(tmp_path) as cache:  # reopening: the same
            assert cache.get("first") == 1
            assert not reserve_path(cache).exists()
            monkeypatch.undo()  # room again
            cache.set("second", 2)
            assert os.path.getsize(reserve_path(cache)) == 2**20
            assert leftovers(cache) == []

    def test_reopening_an_older_cache_writes_nothing(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A cache saved before disk_reserve existed reopens without a write (a full disk allows
        none) and uses the default."""
        cachekit.Cache(tmp_path, store="sqlite").close()
        connection = sqlite3.connect(tmp_path / "cache.db")
        with connection:
            connection.execute("DELETE FROM settings WHERE name = 'disk_reserve'")
        connection.close()
        saved: list[object] = []
        real = SQLiteStore.save_settings

        def spy(self: SQLiteStore, settings: Any) -> None:
            saved.append(dict(settings))
            real(self, settings)

        monkeypatch.setattr(SQLiteStore, "save_settings", spy)
        with cachekit.Cache(tmp_path) as cache:
            assert cache.disk_reserve == 2**20
        assert saved == []
        with cachekit.Cache(tmp_path, disk_reserve="64KiB") as cache:  # given: saved
            assert cache.disk_reserve == 65536
        assert saved == [{"disk_reserve": 65536}]


# -- removals on a full disk -------------------------------------------------------------------------------
def _fill(cache: cachekit.Cache) -> None:
    for number in range(30):
        cache.set(f"key-{number}", LARGE if number % 3 == 0 else b"small", tag="tagged" if number % 2 else None)
    for number in range(30, 40):
        cache.set(f"key-{number}", b"expiring", expire=60)
    for number in range(5):
        cache.push(f"item-{number}", prefix="queue")


REMOVALS: dict[str, tuple[Callable[[cachekit.Cache], Any], Any]] = {
    "delete": (lambda cache: cache.delete("key-3"), True),
    "pop": (lambda cache: cache.pop("key-3"), LARGE),
    "pull": (lambda cache: cache.pull("queue")[1], "item-0"),
    "expire": (lambda cache: cache.expire(now=cache._clock() + 120), 10),
    "evict": (lambda cache: cache.evict("tagged"), 15),
    "clear": (lambda cache: cache.clear(), 45),
}


class TestRemovalsOnAFullDisk:
    @pytest.mark.parametrize("operation", sorted(REMOVALS))
    def test_a_removal_that_finds_the_disk_full_gives_up_the_reserve_and_succeeds(
        self,
        cache: cachekit.Cache,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        operation: str,
    ) -> None:
        _fill(cache)
        action, expected = REMOVALS[operation]
        calls = fail_first(monkeypatch, cache.store, "delete")
        with caplog.at_level(logging.WARNING, logger="cachekit"):
            assert action(cache) == expected
        assert calls() > 1  # the first attempt failed and rolled back; the second did the work
        assert cache.counters()["reserve_used"] == 1
        assert any("gave up its disk reserve" in record.getMessage() for record in caplog.records)
        # The retried removal's commit was a successful write: with room again, the reserve is back.
        assert os.path.getsize(reserve_path(cache)) == 2**20
        referenced = sorted(
            entry.filename for entry in cache.store.scan(cachekit.plugins.Order.INSERTION) if entry.filename
        )
        assert value_files(cache) == referenced
        assert messages(cache) == []

    def test_the_reserve_comes_back_after_the_next_successful_write(
        self, cache: cachekit.Cache, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Still no room right after the removal: the reserve stays away, is not retried on every
        write, and comes back with the first successful write once there is room."""
        cache.set("key", b"value")
        fail_first(monkeypatch, cache.store, "delete")
        refuse_allocation(monkeypatch)
        assert cache.delete("key")
        assert not reserve_path(cache).exists()
        cache.set("while full", 1)  # within a second of the failed attempt: not tried again
        assert not reserve_path(cache).exists()
        monkeypatch.undo()
        cache._reserve._next_try = 0.0  # a second later
        assert not reserve_path(cache).exists()
        cache.set("room again", 2)
        assert os.path.getsize(reserve_path(cache)) == 2**20
        assert cache.counters()["reserve_used"] == 1
        assert leftovers(cache) == []

    def test_a_set_that_finds_the_disk_full_keeps_the_reserve(
        self, cache: cachekit.Cache, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """set and add raise StorageFull (after making room, which works), and the reserve stays."""
        for number in range(20):
            cache.set(number, number)
        before = os.lstat(reserve_path(cache)).st_ino
        fail_first(monkeypatch, cache.store, "put", times=1000)
        with pytest.raises(cachekit.StorageFull):
            cache.set("new", b"x" * 100)
        with pytest.raises(cachekit.StorageFull):
            cache.add("added", LARGE)
        assert os.lstat(reserve_path(cache)).st_ino == before
        assert cache.counters()["reserve_used"] == 0
        assert value_files(cache) == []

    def test_a_removal_that_fails_even_so_changes_nothing(
        self, cache: cachekit.Cache, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The retry fails too: StorageFull, the entry and its value file are still there."""
        cache.set("large", LARGE)
        files = value_files(cache)
        fail_first(monkeypatch, cache.store, "delete", times=1000)
        with pytest.raises(cachekit.StorageFull):
            cache.delete("large")
        with pytest.raises(cachekit.StorageFull):
            cache.clear()
        monkeypatch.undo()
        assert cache.get("large") == LARGE
        assert value_files(cache) == files
        assert cache.counters()["reserve_used"] == 1  # given up once; later attempts found none

    def test_bulk_removals_shrink_their_batches_until_one_fits(
        self, cache: cachekit.Cache, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A store that fits at most 10 deletions per transaction: clear() still removes everything."""
        for number in range(250):
            cache.set(number, LARGE if number % 50 == 0 else number)
        store = cache.store
        real_write, real_delete = store.write, store.delete
        in_transaction = [0]

        def write(*arguments: Any) -> Any:
            in_transaction[0] = 0
            return real_write(*arguments)

        def delete(key: bytes) -> Any:
            in_transaction[0] += 1
            if in_transaction[0] > 10:
                raise cachekit.StorageFull("no space left to write (injected)")
            return real_delete(key)

        monkeypatch.setattr(store, "write", write)
        monkeypatch.setattr(store, "delete", delete)
        assert cache.clear() == 250
        assert len(cache) == 0
        assert value_files(cache) == []

    def test_inside_transact_nothing_is_retried(self, cache: cachekit.Cache, monkeypatch: pytest.MonkeyPatch) -> None:
        cache.set("key", 1)
        fail_first(monkeypatch, cache.store, "delete")
        with pytest.raises(cachekit.StorageFull), cache.transact():
            cache.delete("key")
        assert cache.get("key") == 1
        assert os.path.getsize(reserve_path(cache)) == 2**20
        assert cache.counters()["reserve_used"] == 0

    def test_without_a_reserve_the_store_reclaims_and_the_removal_is_retried(
        self, tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with cachekit.Cache(tmp_path, store=store, disk_reserve=0) as cache:
            cache.set("key", 1)
            fail_first(monkeypatch, cache.store, "delete")
            assert cache.delete("key")
            assert cache.counters()["reserve_used"] == 0

    def test_with_nothing_to_give_back_the_error_is_raised(
        self, tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with cachekit.Cache(tmp_path, store=store, disk_reserve=0) as cache:
            cache.set("key", 1)
            monkeypatch.setattr(cache.store, "reclaim", lambda: False)
            calls = fail_first(monkeypatch, cache.store, "delete")
            with pytest.raises(cachekit.StorageFull):
                cache.delete("key")
            assert calls() == 1
            assert cache.get("key") == 1


class TestStoresReclaim:
    def test_sqlite_checkpoints_and_truncates_its_log(self, tmp_path: Path) -> None:
        with cachekit.Cache(tmp_path, store="sqlite") as cache:
            for number in range(50):
                cache.set(number, b"x" * 1000)
            wal = Path(cache.directory, "cache.db-wal")
            assert wal.stat().st_size > 0
            assert cache.store.reclaim() is True
            assert wal.stat().st_size == 0
            assert cache.store.reclaim() is False  # nothing left to give back
            assert cache.get(49) == b"x" * 1000

    def test_sqlite_skips_a_checkpoint_the_disk_has_no_room_for(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with cachekit.Cache(tmp_path, store="sqlite") as cache:
            for number in range(50):
                cache.set(number, b"x" * 1000)
            real = os.statvfs

            class Full:
                def __init__(self, status: os.statvfs_result) -> None:
                    self.f_frsize = status.f_frsize
                    self.f_bavail = 0

            monkeypatch.setattr(os, "statvfs", lambda path: Full(real(path)))
            assert cache.store.reclaim() is False
            assert Path(cache.directory, "cache.db-wal").stat().st_size > 0

    def test_lmdb_commits_a_transaction_that_changes_nothing(self, tmp_path: Path) -> None:
        pytest.importorskip("lmdb")
        with cachekit.Cache(tmp_path, store="lmdb") as cache:
            cache.set("key", 1)
            info = cache.store._shared.open_handles().env.info()
            assert cache.store.reclaim() is True
            assert cache.store._shared.open_handles().env.info()["last_txnid"] == info["last_txnid"] + 1
            assert cache.get("key") == 1
            assert messages(cache) == []


class TestFanout:
    def test_each_shard_keeps_an_equal_part(self, tmp_path: Path, store: str) -> None:
        with cachekit.FanoutCache(tmp_path, shards=4, store=store, disk_reserve="1MiB") as cache:
            assert cache.disk_reserve == 2**20
            for number in range(4):
                assert os.path.getsize(tmp_path / f"{number:03d}" / RESERVE) == 2**18
            assert not (tmp_path / RESERVE).exists()
            assert cache.reset("disk_reserve", "512KiB") == 2**19
            assert os.path.getsize(tmp_path / "000" / RESERVE) == 2**17
        with cachekit.FanoutCache(tmp_path, shards=4) as cache:
            assert cache.disk_reserve == 2**19

    def test_the_default_is_a_total_too(self, tmp_path: Path, store: str) -> None:
        with cachekit.FanoutCache(tmp_path, shards=8, store=store) as cache:
            assert cache.disk_reserve == 2**20
            assert os.path.getsize(tmp_path / "007" / RESERVE) == 2**17
