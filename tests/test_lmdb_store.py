"""Behaviour specific to the LMDB store: map growth, the shared environment, locks, fork, long keys, repair."""

from __future__ import annotations

import errno
import hashlib
import io
import itertools
import multiprocessing
import os
import select
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cachekit
from cachekit.plugins import Order
from cachekit.testing import FakeClock

lmdb = pytest.importorskip("lmdb", reason="the LMDB store needs the lmdb package: pip install 'cachekit[lmdb]'")

import _lmdb_workers  # noqa: E402 - a sibling module, importable by name in spawned processes
import _processes  # noqa: E402 - a sibling helper module

from cachekit_lmdb import LMDBStore, _environment, _records  # noqa: E402
from cachekit_lmdb._environment import Handles  # noqa: E402

#: Settings that keep every value inline and never cull, so that only the map limits a write.
NO_CULLING: dict[str, Any] = {"size_limit": "1GiB", "disk_min_file_size": "1MiB", "eviction_policy": "none"}
#: Seconds a child process may take before the test kills it and fails instead of hanging.
CHILD_WAIT = 10.0


def open_lmdb(directory: Path | str, **settings: Any) -> cachekit.Cache:
    return cachekit.Cache(directory, store="lmdb", **settings)


def handles(cache: cachekit.Cache) -> Handles:
    store = cache.store
    assert isinstance(store, LMDBStore)
    return store._shared.open_handles()


def map_size(cache: cachekit.Cache) -> int:
    return int(handles(cache).env.info()["map_size"])


@pytest.fixture
def closing() -> Iterator[Callable[[cachekit.Cache], cachekit.Cache]]:
    """Register caches to close after the test (even when it fails)."""
    opened: list[cachekit.Cache] = []

    def register(cache: cachekit.Cache) -> cachekit.Cache:
        opened.append(cache)
        return cache

    yield register
    for cache in reversed(opened):
        cache.close()


# -- child processes -------------------------------------------------------------------------------
def _fork() -> int:
    return _processes.fork()


def _reap(pid: int, timeout: float = CHILD_WAIT) -> int:
    return _processes.reap(pid, timeout)


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def run_forked(body: Callable[[], object], timeout: float = CHILD_WAIT) -> str:
    """Run ``body`` in a forked child; return ``repr`` of its result, or ``"Name: message"`` of its exception."""
    read_end, write_end = os.pipe()
    pid = _fork()
    if pid == 0:  # pragma: no cover - the child, which must never return into pytest
        os.close(read_end)
        try:
            try:
                outcome = repr(body())
            except BaseException as error:
                outcome = f"{type(error).__name__}: {error}"
            os.write(write_end, outcome.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([read_end], [], [], max(0.0, remaining))
            if not readable:
                _kill(pid)
                raise AssertionError(f"the forked child did not finish within {timeout} seconds: it hung")
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    assert _reap(pid) == 0
    return b"".join(chunks).decode()


def fork_holding(hold: Callable[[Callable[[], None]], object]) -> int:
    """Fork a child that runs ``hold(ready)``; ``ready()`` tells the parent and blocks for good.

    Returns the child's pid once it called ``ready()``; the caller kills it.
    """
    read_end, write_end = os.pipe()
    pid = _fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)

        def ready() -> None:
            os.write(write_end, b"r")
            time.sleep(60)

        try:
            hold(ready)
        finally:
            os._exit(1)
    os.close(write_end)
    try:
        readable, _, _ = select.select([read_end], [], [], CHILD_WAIT)
        signalled = os.read(read_end, 1) if readable else b""
    finally:
        os.close(read_end)
    if signalled != b"r":
        _kill(pid)
        raise AssertionError("the child process failed before it was ready")
    return pid


def spawn_pool(processes: int) -> Any:
    return multiprocessing.get_context("spawn").Pool(processes)


# -- 1. growing the map in one process --------------------------------------------------------------
class TestGrowth:
    def test_map_grows_to_its_limit_then_writes_fail_with_storage_full(self, tmp_path: Path, closing: Any) -> None:
        """The map doubles from lmdb_map_size up to map_size_limit; past it a write raises StorageFull,
        leaves nothing behind, and earlier entries stay readable and consistent."""
        cache = closing(open_lmdb(tmp_path, lmdb_map_size="64KiB", map_size_limit="2MiB", **NO_CULLING))
        limit = 2 * 2**20
        initial = map_size(cache)
        assert initial == 64 * 1024
        sizes = [initial]
        written: list[str] = []
        failure: Exception | None = None
        for index in range(10_000):
            key = f"key-{index}"
            try:
                cache.set(key, f"{index}".encode() * 100)
            except cachekit.StorageFull as error:
                failure = error
                break
            written.append(key)
            if map_size(cache) != sizes[-1]:
                sizes.append(map_size(cache))
        assert isinstance(failure, cachekit.StorageFull), "the map never filled up"
        assert str(tmp_path / "data.mdb") in str(failure)
        failing = f"key-{len(written)}"
        assert len(sizes) >= 3, f"the map grew only through {sizes}"
        assert all(after == min(2 * before, limit) for before, after in itertools.pairwise(sizes)), sizes
        assert max(sizes) <= limit, f"the map grew past map_size_limit: {sizes}"
        assert os.path.getsize(tmp_path / "data.mdb") <= limit
        assert failing not in cache
        assert cache.get(failing) is None
        assert len(cache) == len(written)
        for index, key in enumerate(written):
            assert cache.get(key) == f"{index}".encode() * 100, key
        assert cache.check() == []

    @staticmethod
    def _fill(cache: cachekit.Cache, prefix: str) -> int:
        """Write 1000-byte values until the map is full; return how many fitted."""
        for index in range(10_000):
            try:
                cache.set(f"{prefix}-{index}", b"x" * 1000)
            except cachekit.StorageFull:
                return index
        raise AssertionError("the map never filled up")

    def test_deleting_from_a_full_map_makes_room_again(self, tmp_path: Path, closing: Any) -> None:
        """On a map at its limit, deleting entries one by one works, and then new writes succeed."""
        cache = closing(open_lmdb(tmp_path, lmdb_map_size="64KiB", map_size_limit="1MiB", **NO_CULLING))
        filled = self._fill(cache, "fill")
        for index in range(50):
            assert cache.delete(f"fill-{index}") is True
        assert cache.pop(f"fill-{filled - 1}") == b"x" * 1000
        cache.set("after deleting", b"y" * 1000)
        assert cache.get("after deleting") == b"y" * 1000
        assert len(cache) == filled - 51 + 1
        assert cache.check() == []

    def test_clearing_a_full_map(self, tmp_path: Path, closing: Any) -> None:
        """clear() empties a map at its limit (a transaction of many deletions), and writes succeed again."""
        cache = closing(open_lmdb(tmp_path, lmdb_map_size="64KiB", map_size_limit="1MiB", **NO_CULLING))
        filled = self._fill(cache, "fill")
        assert cache.clear() == filled
        assert len(cache) == 0
        assert self._fill(cache, "again") >= filled // 2
        assert cache.check() == []

    def test_a_transaction_is_replayed_when_the_map_grows_inside_it(self, tmp_path: Path, closing: Any) -> None:
        """A write transaction that fills the map mid-way commits every change exactly once after growing."""
        cache = closing(open_lmdb(tmp_path, lmdb_map_size="64KiB", map_size_limit="16MiB", **NO_CULLING))
        cache.set("counter", 0)
        with cache.transact():
            for index in range(300):
                cache.set(f"in-txn-{index}", b"v" * 500)
                cache.incr("counter")
            cache.delete("in-txn-0")
        assert map_size(cache) >= 4 * 64 * 1024
        assert cache.get("counter") == 300
        assert "in-txn-0" not in cache
        assert len(cache) == 300
        assert [key for key in cache if key != "counter"] == [f"in-txn-{index}" for index in range(1, 300)]
        assert cache.volume() == sum(entry.size for entry in cache.store.scan(Order.INSERTION))
        assert cache.check() == []

    @pytest.mark.parametrize("policy", ["none", "least-recently-stored"])
    def test_storage_full_inside_a_transaction_rolls_it_back(self, tmp_path: Path, closing: Any, policy: str) -> None:
        """A transaction too big for map_size_limit raises StorageFull and none of its changes are visible."""
        settings = {**NO_CULLING, "eviction_policy": policy}
        cache = closing(open_lmdb(tmp_path, lmdb_map_size="64KiB", map_size_limit="1MiB", **settings))
        for index in range(50):
            cache.set(f"before-{index}", b"b" * 1000)

        def too_big() -> None:
            with cache.transact():
                cache.delete("before-0")
                for index in range(5000):
                    cache.set(f"txn-{index}", b"t" * 1000)

        with pytest.raises(cachekit.StorageFull):
            too_big()
        assert "before-0" in cache
        assert not [key for key in cache if key.startswith("txn-")]
        assert len(cache) == 50
        assert cache.check() == []
        assert cache.set("after", 1) is True

    def test_a_transaction_lost_to_a_full_map_says_so_when_used_again(self, tmp_path: Path, closing: Any) -> None:
        """After StorageFull inside transact(), later writes in the same block raise an error that says the
        transaction was rolled back (not a misleading lock timeout); nothing of the block is kept."""
        cache = closing(open_lmdb(tmp_path, lmdb_map_size="64KiB", map_size_limit="1MiB", **NO_CULLING))
        cache.set("kept", 1)

        def fill(count: int) -> None:
            for index in range(count):
                cache.set(f"txn-{index}", b"t" * 1000)

        def block() -> None:
            with cache.transact():
                cache.set("first", 1)
                with pytest.raises(cachekit.StorageFull):
                    fill(5000)
                cache.set("after the failure", 2)

        with pytest.raises(cachekit.StoreError, match="rolled back") as raised:
            block()
        assert not isinstance(raised.value, cachekit.Timeout)
        assert isinstance(raised.value.__cause__, cachekit.StorageFull)
        assert list(cache) == ["kept"]
        assert cache.set("later", 3) is True
        assert cache.check() == []

    def test_a_lower_map_size_limit_caps_a_grown_map_at_reopen(self, tmp_path: Path) -> None:
        """Reopening with a smaller map_size_limit shrinks the map to it, or to the pages in use if more."""
        cache = open_lmdb(tmp_path, lmdb_map_size="64KiB", **NO_CULLING)
        for index in range(1000):
            cache.set(index, b"v" * 1000)
        grown = map_size(cache)
        assert grown > 2**20
        cache.clear()
        cache.close()
        reopened = open_lmdb(tmp_path, map_size_limit="1MiB", **NO_CULLING)
        assert map_size(reopened) < grown
        used = (handles(reopened).env.info()["last_pgno"] + 1) * handles(reopened).env.stat()["psize"]
        assert map_size(reopened) == max(2**20, used)
        reopened.close()

    def test_store_settings_reach_the_environment_and_are_not_persisted(self, tmp_path: Path) -> None:
        """map_size_limit, lmdb_map_size and lmdb_max_readers from a config string apply to that open only."""
        cache = cachekit.open(f"lmdb://{tmp_path}?map_size_limit=4MiB&lmdb_map_size=128KiB&lmdb_max_readers=77")
        store = cache.store
        assert isinstance(store, LMDBStore)
        info = handles(cache).env.info()
        assert (info["map_size"], info["max_readers"]) == (128 * 1024, 77)
        assert store._shared.settings.map_size_limit == 4 * 2**20
        cache.close()
        reopened = open_lmdb(tmp_path)
        store = reopened.store
        assert isinstance(store, LMDBStore)
        assert store._shared.settings.map_size_limit == 16 * 2**30
        assert handles(reopened).env.info()["max_readers"] == 1024
        reopened.close()

    @pytest.mark.parametrize(
        ("setting", "message"),
        [("map_size_limit=512KiB", "at least 1MiB"), ("lmdb_map_size=1KiB", "at least 64KiB")],
    )
    def test_map_settings_below_their_minimum_are_refused(self, tmp_path: Path, setting: str, message: str) -> None:
        """A map too small to hold the databases is refused when the cache opens, naming the setting."""
        with pytest.raises(cachekit.ConfigError, match=message):
            cachekit.open(f"lmdb://{tmp_path}?{setting}")


# -- 2. and 3. growth seen by other processes ---------------------------------------------------------
@pytest.mark.slow
class TestGrowthAcrossProcesses:
    def test_four_processes_grow_the_map_at_once(self, tmp_path: Path, closing: Any) -> None:
        """Four processes writing their own keys through repeated growth lose none they were told was stored."""
        settings = {"lmdb_map_size": "64KiB", "map_size_limit": "64MiB", **NO_CULLING}
        cache = closing(open_lmdb(tmp_path, **settings))
        with spawn_pool(4) as pool:
            pending = [
                pool.apply_async(_lmdb_workers.write_keys, (str(tmp_path), worker, 150, 2000, settings))
                for worker in range(4)
            ]
            results = [result.get(60) for result in pending]
        assert [result["error"] for result in results] == [None] * 4
        written = [key for result in results for key in result["written"]]
        assert len(written) == 4 * 150
        for key in written:
            worker = int(key[1 : key.index("-")])
            assert cache.get(key) == bytes([worker]) * 2000, key
        assert len(cache) == len(written)
        assert map_size(cache) >= 4 * 64 * 1024
        assert cache.check() == []

    def test_this_process_adopts_a_map_grown_by_another(self, tmp_path: Path, closing: Any) -> None:
        """A map another process grew several times is adopted here on the next read and write."""
        settings = {"lmdb_map_size": "64KiB", "map_size_limit": "64MiB", **NO_CULLING}
        cache = closing(open_lmdb(tmp_path, **settings))
        cache.set("mine", "before")
        assert map_size(cache) == 64 * 1024
        with spawn_pool(1) as pool:
            result = pool.apply_async(_lmdb_workers.write_keys, (str(tmp_path), 7, 400, 2000, settings)).get(60)
        assert result["error"] is None
        assert len(result["written"]) == 400
        assert cache.get("mine") == "before"
        for key in result["written"]:
            assert cache.get(key) == bytes([7]) * 2000, key
        assert map_size(cache) >= 8 * 64 * 1024
        with cache.store.read():
            assert len(list(cache)) == 401
            assert "w7-399" in cache
        cache.set("mine", "after")
        assert cache.get("mine") == "after"
        assert cache.check() == []

    def test_opening_while_another_process_grows_the_map(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """If another process grows the map between this process opening the environment and its first
        transaction, the open adopts the new size instead of failing."""
        settings = {"lmdb_map_size": "64KiB", "map_size_limit": "64MiB", **NO_CULLING}
        open_lmdb(tmp_path, **settings).close()
        real_open = lmdb.open
        with spawn_pool(1) as pool:
            pool.apply_async(len, ((),)).get(60)  # the worker is up

            def open_while_another_grows(*args: Any, **kwargs: Any) -> Any:
                env = real_open(*args, **kwargs)
                grown = pool.apply_async(_lmdb_workers.write_keys, (str(tmp_path), 3, 300, 2000, settings)).get(60)
                assert grown["error"] is None
                return env

            monkeypatch.setattr(_environment.lmdb, "open", open_while_another_grows)
            cache = open_lmdb(tmp_path, **settings)
            monkeypatch.undo()
        try:
            assert cache.get("w3-299") == bytes([3]) * 2000
            assert len(cache) == 300
            assert cache.check() == []
        finally:
            cache.close()


# -- 4. files that are not this store's -----------------------------------------------------------------
class TestForeignFiles:
    def _snapshot(self, directory: Path) -> dict[str, bytes]:
        return {path.name: path.read_bytes() for path in directory.iterdir() if path.is_file()}

    def test_data_file_of_random_bytes(self, tmp_path: Path) -> None:
        """A data.mdb that is not an LMDB file is CorruptCache naming it, and is left as it was."""
        data = tmp_path / "data.mdb"
        data.write_bytes(os.urandom(3 * 4096))
        before = data.read_bytes()
        with pytest.raises(cachekit.CorruptCache, match=r"data\.mdb") as raised:
            open_lmdb(tmp_path)
        assert str(data) in str(raised.value)
        assert data.read_bytes() == before

    def test_data_file_that_is_a_directory(self, tmp_path: Path) -> None:
        """A directory named data.mdb is CorruptCache naming it, and stays an (empty) directory."""
        (tmp_path / "data.mdb").mkdir()
        with pytest.raises(cachekit.CorruptCache, match="directory") as raised:
            open_lmdb(tmp_path)
        assert str(tmp_path / "data.mdb") in str(raised.value)
        assert (tmp_path / "data.mdb").is_dir()
        assert list((tmp_path / "data.mdb").iterdir()) == []

    @pytest.mark.parametrize("named", [True, False])
    def test_lmdb_environment_of_another_program(self, tmp_path: Path, named: bool) -> None:
        """An LMDB environment holding another program's keys (and named databases) is refused, untouched."""
        env = lmdb.open(str(tmp_path), max_dbs=4)
        users = env.open_db(b"users") if named else None
        with env.begin(write=True) as txn:
            txn.put(b"plain", b"value")
            if users is not None:
                txn.put(b"alice", b"1", db=users)
        env.close()
        before = (tmp_path / "data.mdb").read_bytes()
        with pytest.raises(cachekit.CorruptCache, match="another program") as raised:
            open_lmdb(tmp_path)
        assert str(tmp_path / "data.mdb") in str(raised.value)
        assert (tmp_path / "data.mdb").read_bytes() == before
        env = lmdb.open(str(tmp_path), max_dbs=4)
        with env.begin() as txn:
            names = sorted(key for key, _ in txn.cursor())
        env.close()
        assert names == ([b"plain", b"users"] if named else [b"plain"])

    def test_format_marker_of_another_version(self, tmp_path: Path) -> None:
        """A cachekit-looking environment with another format marker is CorruptCache, not silently reused."""
        cache = open_lmdb(tmp_path)
        cache.set("key", 1)
        with handles(cache).env.begin(write=True) as txn:
            txn.put(b"Mformat", b"cachekit-lmdb/999")
        cache.close()
        with pytest.raises(cachekit.CorruptCache, match="format marker"):
            open_lmdb(tmp_path)


# -- 5. processes killed while using the cache --------------------------------------------------------
@pytest.mark.slow
class TestKilledProcesses:
    def test_reader_slot_of_a_killed_process_is_freed_on_reopen(self, tmp_path: Path) -> None:
        """A process killed inside a snapshot leaves a reader slot; writers go on, and reopening clears it."""
        cache = open_lmdb(tmp_path, timeout=2)
        cache.set("key", "value")

        def hold(ready: Callable[[], None]) -> None:
            child = open_lmdb(tmp_path)
            with child.store.read():
                assert child.get("key") == "value"
                ready()

        pid = fork_holding(hold)
        try:
            assert f" {pid} " in handles(cache).env.readers()
        finally:
            _kill(pid)
        cache.set("after the kill", 1)
        assert cache.get("after the kill") == 1
        cache.close()
        reopened = open_lmdb(tmp_path, timeout=2)
        env = handles(reopened).env
        assert f" {pid} " not in env.readers()
        assert env.reader_check() == 0
        assert reopened.get("key") == "value"
        reopened.close()

    def test_reader_slot_of_a_killed_process_does_not_pin_the_map(self, tmp_path: Path, closing: Any) -> None:
        """Overwriting the same entries over and over keeps fitting in the map after a reader was killed:
        the stale slot of the dead process must not keep the freed pages from being reused forever."""
        cache = closing(open_lmdb(tmp_path, timeout=2, lmdb_map_size="256KiB", map_size_limit="1MiB", **NO_CULLING))
        for index in range(50):
            cache.set(index, b"x" * 1000)

        def hold(ready: Callable[[], None]) -> None:
            child = open_lmdb(tmp_path)
            with child.store.read():
                child.get(1)
                ready()

        _kill(fork_holding(hold))
        for step in range(3000):
            cache.set(step % 50, bytes([step % 256]) * 1000)
        assert len(cache) == 50
        assert cache.check() == []

    def test_writer_killed_inside_a_transaction(self, tmp_path: Path, closing: Any) -> None:
        """While another process holds a write transaction, writes here time out; once it is killed,
        writes here succeed within the timeout and its uncommitted changes are gone."""
        cache = closing(open_lmdb(tmp_path, timeout=0.3))
        cache.set("key", "committed")

        def hold(ready: Callable[[], None]) -> None:
            child = open_lmdb(tmp_path)
            with child.transact():
                child.set("key", "uncommitted")
                child.set("child", 1)
                ready()

        pid = fork_holding(hold)
        try:
            with pytest.raises(cachekit.Timeout):
                cache.set("blocked", 1)
            assert cache.get("key") == "committed"
        finally:
            _kill(pid)
        assert cache.set("after the kill", 1) is True
        assert cache.get("key") == "committed"
        assert "child" not in cache
        assert "blocked" not in cache
        assert cache.check() == []


# -- 6. network filesystems ---------------------------------------------------------------------------------
class TestNetworkFilesystems:
    def test_a_cache_on_a_network_filesystem_is_refused(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """LMDB on NFS would corrupt data: opening says so, naming the directory and the filesystem type."""
        seen: list[str] = []

        def nfs(directory: str) -> str:
            seen.append(directory)
            return "nfs4"

        monkeypatch.setattr(_environment, "network_filesystem", nfs)
        with pytest.raises(cachekit.StoreError, match="network filesystem") as raised:
            open_lmdb(tmp_path / "cache")
        message = str(raised.value)
        assert str(tmp_path / "cache") in message
        assert "nfs4" in message
        assert seen
        assert not (tmp_path / "cache" / "data.mdb").exists()

    def test_network_filesystem_reads_the_mount_table(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The deepest mount point holding the directory decides; siblings sharing a name prefix do not count."""
        real = os.path.realpath(tmp_path)
        spaced = os.path.join(real, "with space")
        os.makedirs(spaced)
        escaped = spaced.replace(" ", "\\040")  # how the mount table writes a space
        mounts = "\n".join(
            [
                "/dev/sda1 / ext4 rw 0 0",
                f"server:/share {real}/nfs nfs4 rw 0 0",
                f"server:/other {real}/nfs-sibling ext4 rw 0 0",
                f"//host/share {escaped} cifs rw 0 0",
                f"fuse {real}/nfs/local/deeper ext4 rw 0 0",
                "garbage",
            ]
        )
        real_open = open

        def fake_open(path: Any, *args: Any, **kwargs: Any) -> Any:
            if path == "/proc/self/mounts":
                return io.StringIO(mounts)
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(_environment, "open", fake_open, raising=False)
        check = _environment.network_filesystem
        assert check(os.path.join(real, "nfs")) == "nfs4"
        assert check(os.path.join(real, "nfs", "cache")) == "nfs4"
        assert check(os.path.join(real, "nfs-sibling", "cache")) is None
        assert check(os.path.join(real, "nfs", "local", "deeper", "cache")) is None
        assert check(os.path.join(spaced, "cache")) == "cifs"
        assert check(real) is None

    def test_an_unreadable_mount_table_means_local(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without /proc/self/mounts nothing is known to be a network filesystem, and the cache opens."""

        def refuse(path: Any, *args: Any, **kwargs: Any) -> Any:
            raise FileNotFoundError(2, "No such file or directory", path)

        monkeypatch.setattr(_environment, "open", refuse, raising=False)
        assert _environment.network_filesystem(str(tmp_path)) is None


# -- 7. the write lock ------------------------------------------------------------------------------------
class TestWriteLock:
    def test_a_write_waits_for_another_threads_transaction_then_times_out(self, tmp_path: Path, closing: Any) -> None:
        """While a thread holds transact(), another cache object's writes raise Timeout; its reads do not wait."""
        holder = closing(open_lmdb(tmp_path))
        other = closing(open_lmdb(tmp_path, timeout=0.2))
        holder.set("key", "committed")
        entered, release = threading.Event(), threading.Event()

        def hold() -> None:
            with holder.transact():
                holder.set("key", "uncommitted")
                entered.set()
                release.wait(CHILD_WAIT)

        thread = threading.Thread(target=hold)
        thread.start()
        try:
            assert entered.wait(CHILD_WAIT)
            with pytest.raises(cachekit.Timeout, match="locked"):
                other.set("other", 1)
            with pytest.raises(cachekit.Timeout):
                other.set("other", 1, retry=False)
            with pytest.raises(cachekit.Timeout):
                other.delete("key")
            assert other.get("key") == "committed"
        finally:
            release.set()
            thread.join(CHILD_WAIT)
        assert other.set("other", 1) is True
        assert other.get("key") == "uncommitted"
        assert other.get("other") == 1

    def test_same_thread_through_a_second_cache_object_times_out_at_once(self, tmp_path: Path, closing: Any) -> None:
        """A thread holding a transaction on one cache object gets Timeout writing through another (no deadlock),
        and can still read through it."""
        first = closing(open_lmdb(tmp_path))
        second = closing(open_lmdb(tmp_path, timeout=30))
        first.set("key", "committed")
        outcome: list[BaseException | None] = []

        def run() -> None:
            with first.transact():
                first.set("key", "inside")
                try:
                    second.set("second", 1)
                except BaseException as error:
                    outcome.append(error)
                else:
                    outcome.append(None)
                outcome.append(None if second.get("key") == "committed" else AssertionError(second.get("key")))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(CHILD_WAIT)
        assert not thread.is_alive(), "a second cache object in the same thread waited for the thread itself"
        assert isinstance(outcome[0], cachekit.Timeout)
        assert "already holds the write lock" in str(outcome[0])
        assert outcome[1] is None
        assert first.get("key") == "inside"
        assert "second" not in first

    @pytest.mark.slow
    def test_opening_in_another_process_reads_while_a_write_is_held(self, tmp_path: Path, closing: Any) -> None:
        """A process opening the cache while this one holds a write transaction reads the committed data
        (reads never wait for the writer), rather than blocking on the write lock."""
        cache = closing(open_lmdb(tmp_path))
        cache.set("committed", "yes")
        with spawn_pool(1) as pool:
            pool.apply_async(len, ((),)).get(60)  # the worker is up before the lock is taken
            with cache.transact():
                cache.set("pending", "no")
                pending = pool.apply_async(_lmdb_workers.read_keys, (str(tmp_path), ["committed", "pending"], 0.5))
                try:
                    values = pending.get(8)
                except multiprocessing.TimeoutError:
                    pytest.fail("opening the cache in another process blocked behind this process's write transaction")
        assert values == ["yes", None]


# -- 8. one environment per directory per process -------------------------------------------------------------
class TestSharedEnvironment:
    def test_two_caches_share_one_environment(self, tmp_path: Path) -> None:
        """Two cache objects on one directory use one environment; closing one leaves the other working."""
        (tmp_path / "link").symlink_to(tmp_path / "cache", target_is_directory=True)
        first = open_lmdb(tmp_path / "cache")
        second = open_lmdb(tmp_path / "link")
        first_store, second_store = first.store, second.store
        assert isinstance(first_store, LMDBStore)
        assert isinstance(second_store, LMDBStore)
        assert first_store._shared is second_store._shared
        assert handles(first).env is handles(second).env
        first.set("from first", 1)
        assert second.get("from first") == 1
        first.close()
        second.set("from second", 2)
        assert second.get("from first") == 1
        assert second.get("from second") == 2
        second.close()
        assert second_store._shared.handles is None
        reopened = open_lmdb(tmp_path / "cache")
        assert reopened.get("from second") == 2
        assert first.get("from first") == 1  # a closed cache reopens on use
        first.close()
        reopened.close()

    def test_open_and_close_cycles_leak_no_file_descriptors(self, tmp_path: Path) -> None:
        """Opening and closing caches (alone, in pairs, with transactions) leaves no descriptor open."""
        descriptors = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
        open_lmdb(tmp_path).close()
        before = len(os.listdir(descriptors))
        for index in range(40):
            cache = open_lmdb(tmp_path)
            cache.set(index, index)
            with cache.transact():
                cache.set("in a transaction", index)
            other = open_lmdb(tmp_path)
            assert other.get(index) == index
            cache.close()
            assert other.get("in a transaction") == index
            other.close()
        leaked = len(os.listdir(descriptors)) - before
        assert leaked < 5, f"{leaked} file descriptors stayed open after 40 open/close cycles"


# -- 9. fork ------------------------------------------------------------------------------------------------------
@pytest.mark.slow
class TestFork:
    def test_child_reopens_the_environment_after_fork(self, tmp_path: Path, closing: Any) -> None:
        """The child drops the inherited environment, reopens it on first use, reads and writes; the parent goes on."""
        cache = closing(open_lmdb(tmp_path))
        cache.set("parent", "p")
        store = cache.store
        assert isinstance(store, LMDBStore)

        def body() -> object:
            dropped = store._shared.handles is None
            value = cache.get("parent")
            cache.set("child", "c")
            return dropped, value, cache.get("child"), store._shared.handles is not None

        assert run_forked(body) == repr((True, "p", "c", True))
        assert cache.get("child") == "c"
        cache.set("parent again", 1)
        assert cache.get("parent again") == 1
        assert cache.check() == []

    def test_fork_waits_for_another_threads_write_transaction(
        self, tmp_path: Path, closing: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A fork while another thread is inside a write transaction waits for it to commit; the child works."""
        monkeypatch.setattr(_environment, "FORK_WAIT", 5.0)
        cache = closing(open_lmdb(tmp_path))
        cache.set("before", 1)
        entered = threading.Event()

        def write() -> None:
            with cache.transact():
                cache.set("from the thread", "committed")
                entered.set()
                time.sleep(0.3)

        thread = threading.Thread(target=write)
        thread.start()
        try:
            assert entered.wait(CHILD_WAIT)

            def body() -> object:
                found = cache.get("from the thread")
                cache.set("child", "c")
                return cache.get("before"), found, cache.get("child")

            assert run_forked(body) == repr((1, "committed", "c"))
        finally:
            thread.join(CHILD_WAIT)
        assert cache.get("child") == "c"
        assert cache.check() == []

    @pytest.mark.parametrize("holding", ["snapshot", "write transaction"])
    def test_fork_during_a_long_transaction_of_another_thread_poisons_only_the_child(
        self, tmp_path: Path, closing: Any, monkeypatch: pytest.MonkeyPatch, holding: str
    ) -> None:
        """When another thread stays inside a snapshot or write transaction beyond FORK_WAIT, the child
        gets a StoreError saying it cannot use the cache (it does not hang), and the parent is unaffected."""
        monkeypatch.setattr(_environment, "FORK_WAIT", 0.2)
        cache = closing(open_lmdb(tmp_path))
        cache.set("key", "value")
        entered, release = threading.Event(), threading.Event()

        def hold() -> None:
            if holding == "snapshot":
                with cache.store.read():
                    cache.get("key")
                    entered.set()
                    release.wait(CHILD_WAIT)
            else:
                with cache.transact():
                    cache.set("from the thread", 1)
                    entered.set()
                    release.wait(CHILD_WAIT)

        thread = threading.Thread(target=hold)
        thread.start()
        try:
            assert entered.wait(CHILD_WAIT)

            def body() -> object:
                try:
                    cache.get("key")
                except cachekit.StoreError as error:
                    return str(error)
                return "the child used the cache"

            outcome = run_forked(body)
        finally:
            release.set()
            thread.join(CHILD_WAIT)
        assert "cannot be used in the child" in outcome
        assert str(tmp_path) in outcome
        assert cache.get("key") == "value"
        cache.set("parent after fork", 1)
        assert cache.get("parent after fork") == 1
        assert cache.check() == []

    def test_fork_from_inside_a_write_transaction(self, tmp_path: Path, closing: Any) -> None:
        """A child forked by the thread that holds a write transaction reads the committed data (its writes
        time out: the parent holds the lock) or is refused the cache outright; its first read neither hangs
        nor waits for the parent's lock. The parent then commits."""
        cache = closing(open_lmdb(tmp_path, timeout=0.3))
        cache.set("committed", 1)
        with cache.transact():
            cache.set("uncommitted", 2)

            def body() -> object:
                try:
                    values = (cache.get("committed"), cache.get("uncommitted"))
                except cachekit.StoreError as error:
                    return f"refused: {error}"
                try:
                    cache.set("child", 3)
                except cachekit.Timeout:
                    return (*values, "timeout")
                return (*values, "written")

            outcome = run_forked(body, timeout=8)
            cache.set("after the fork", 4)
        # Either the child reads (and its write waits for the parent's lock), or it is told plainly
        # that it cannot use the cache, as after a fork inside a snapshot.
        refused = outcome.startswith("refused:") and "cannot be used in the child" in outcome
        assert outcome == repr((1, None, "timeout")) or refused, outcome
        assert (cache.get("uncommitted"), cache.get("after the fork"), cache.get("child")) == (2, 4, None)
        assert cache.check() == []


# -- 10. long keys -----------------------------------------------------------------------------------------------
class TestLongKeys:
    def test_long_keys_sharing_a_long_prefix(self, tmp_path: Path, closing: Any) -> None:
        """Keys far longer than LMDB's 511-byte limit that share a 600-character prefix all work independently."""
        cache = closing(open_lmdb(tmp_path))
        prefix = "p" * 600
        keys = [f"{prefix}{index}" for index in range(300)]
        for index, key in enumerate(keys):
            assert cache.set(key, index) is True
        assert len(cache) == 300
        for index, key in enumerate(keys):
            assert key in cache
            assert cache.get(key) == index
        assert list(cache) == keys
        assert list(reversed(cache)) == keys[::-1]
        assert cache.incr(keys[0], 10) == 10
        assert cache.add(keys[1], "no") is False
        assert cache.pop(keys[2]) == 2
        for key in keys[3::2]:
            assert cache.delete(key) is True
        remaining = [keys[0], keys[1], *keys[4::2]]
        assert sorted(cache) == sorted(remaining)
        assert f"{prefix}missing" not in cache
        assert cache.get(f"{prefix}missing") is None
        assert cache.delete(f"{prefix}missing") is False
        assert cache.check() == []

    def test_iterkeys_yields_each_long_key_once(self, tmp_path: Path, closing: Any) -> None:
        """iterkeys (and its reverse) yields every long key exactly once, across page boundaries."""
        cache = closing(open_lmdb(tmp_path))
        keys = [f"{'k' * 600}{index:04d}" for index in range(250)] + ["short", "z" * 700]
        for key in keys:
            cache.set(key, 1)
        forward = list(cache.iterkeys())
        backward = list(cache.iterkeys(reverse=True))
        assert len(forward) == len(set(forward)) == len(keys)
        assert sorted(forward) == sorted(keys)
        assert sorted(backward) == sorted(keys)
        assert len(backward) == len(keys)

    def test_queue_with_a_long_prefix(self, tmp_path: Path, closing: Any) -> None:
        """push/pull under a prefix long enough to make hashed keys keep every item, first in first out."""
        cache = closing(open_lmdb(tmp_path))
        prefix = "q" * 600
        pushed = [cache.push(index, prefix=prefix) for index in range(20)]
        assert len(set(pushed)) == 20
        assert len(cache) == 20
        assert cache.peek(prefix=prefix, side="front")[1] == 0
        assert cache.peek(prefix=prefix, side="back")[1] == 19
        assert [cache.pull(prefix=prefix)[1] for _ in range(20)] == list(range(20))
        assert len(cache) == 0

    def test_the_longest_key_stored_as_is_next_to_hashed_keys(self, tmp_path: Path, closing: Any) -> None:
        """The longest key stored as it is (one byte short of MAX_KEY, which leaves room for the region byte
        within LMDB's 511) coexists with longer keys of the same start, which are stored under a digest."""
        cache = closing(open_lmdb(tmp_path))
        exact = "r" * (_records.MAX_KEY - 2)
        assert len(cache._encode_key(exact)) == _records.MAX_KEY - 1
        assert _records.record_key(cache._encode_key(exact)) == cache._encode_key(exact)
        longer = ["r" * (_records.MAX_KEY - 1), "r" * _records.MAX_KEY, "r" * 600]
        assert all(_records.record_key(cache._encode_key(key)) != cache._encode_key(key) for key in longer)
        cache.set(exact, "exact")
        for index, key in enumerate(longer):
            cache.set(key, index)
        assert cache.get(exact) == "exact"
        assert [cache.get(key) for key in longer] == [0, 1, 2]
        assert cache.delete(longer[1]) is True
        assert cache.get(exact) == "exact"
        assert cache.get(longer[0]) == 0
        assert list(cache.iterkeys()) == [exact, longer[0], longer[2]]
        assert cache.check() == []

    def test_a_key_equal_to_the_stored_form_of_a_long_key(self, tmp_path: Path, closing: Any) -> None:
        """A short key that happens to equal the prefix-plus-digest under which a long key is stored is still
        a different key: storing one must not replace, hide or delete the other."""
        cache = closing(open_lmdb(tmp_path))
        long_key = b"L" * 700
        encoded = cache._encode_key(long_key)
        stored = encoded[: _records.MAX_KEY - 32] + hashlib.sha256(encoded).digest()
        assert _records.record_key(encoded) == stored
        short_key = stored[1:]  # bytes keys encode as b"b" + the bytes
        assert cache._encode_key(short_key) == stored
        cache.set(short_key, "short")
        cache.set(long_key, "long")
        assert cache.get(long_key) == "long"
        assert cache.get(short_key) == "short"
        assert len(cache) == 2
        assert cache.delete(long_key) is True
        assert cache.get(short_key) == "short"
        assert cache.check() == []


# -- 11. check() repairs -----------------------------------------------------------------------------------------
_TOTALS = struct.Struct("<qqQd")
_TOTALS_KEY = b"Mtotals"
# The regions of the store's single LMDB database (see cachekit_lmdb._store).
_ENTRY, _INSERTION, _EXPIRY, _EVICTION, _TAG = b"K", b"I", b"X", b"V", b"T"


class TestCheckRepairs:
    def test_missing_and_stray_index_entries_and_wrong_totals(self, tmp_path: Path, closing: Any) -> None:
        """Index entries removed or planted and wrong totals are reported by check(False), repaired by
        check(True), and the cache then scans, expires, evicts by tag and culls correctly."""
        clock = FakeClock()
        cache = closing(open_lmdb(tmp_path, clock=clock, tag_index=True, size_limit="1GiB"))
        base = clock.now
        for name in "abcdef":
            clock.advance(1)
            cache.set(name, name * 10, expire=100 if name in "ce" else None, tag="odd" if name in "bd" else None)
        store = cache.store
        assert isinstance(store, LMDBStore)
        volume = cache.volume()
        h = handles(cache)
        key = cache._encode_key

        def entry_and_seq(name: str) -> tuple[Any, int]:
            with h.env.begin() as txn:
                return _records.decode(key(name), txn.get(_ENTRY + key(name)))

        a, a_seq = entry_and_seq("a")
        _, b_seq = entry_and_seq("b")
        c, c_seq = entry_and_seq("c")
        _, d_seq = entry_and_seq("d")
        rank = _records.rank_encoder(("store_time",))
        assert rank is not None
        with h.env.begin(write=True) as txn:
            assert txn.delete(_INSERTION + _records.seq_bytes(b_seq))
            txn.put(_INSERTION + _records.seq_bytes(9999), key("ghost"))
            assert txn.delete(_EXPIRY + _records.expiry_key(c.expire_time, c_seq))
            txn.put(_EXPIRY + _records.expiry_key(base + 50, d_seq), key("d"))
            assert txn.delete(_EVICTION + rank(a, a_seq))
            txn.put(_EVICTION + rank(a._replace(store_time=base - 1000), 9998), key("ghost"))
            assert txn.delete(_TAG + _records.tag_prefix(key("odd")) + _records.seq_bytes(b_seq))
            txn.put(_TOTALS_KEY, _TOTALS.pack(99, 1, 1, float("nan")))

        reported = store.check(False)
        for index in ("insertion", "expiry", "eviction", "tag"):
            assert f"the {index} index lacks 1 and has {0 if index == 'tag' else 1} stray entries" in reported
        assert any(problem.startswith("totals say 99 entries, 1 bytes") for problem in reported)
        assert store.check(False) == reported, "check(False) changed something"
        assert len(cache) == 99
        assert [str(warning.message) for warning in cache.check()] == reported

        fixed = store.check(True)
        assert [problem for problem in fixed if not problem.startswith("totals")] == [
            problem for problem in reported if not problem.startswith("totals")
        ]
        assert any(problem.startswith("totals say 99 entries, 1 bytes") for problem in fixed)
        assert store.check(False) == []
        assert cache.check() == []

        assert len(cache) == 6
        assert cache.volume() == volume
        assert list(cache) == list("abcdef")
        assert store.totals().next_expiry == c.expire_time
        clock.advance(1)
        cache.set("g", "g" * 10)  # a sequence number after every existing one
        assert list(cache) == [*"abcdef", "g"]
        clock.advance(200)
        assert cache.expire() == 2
        assert list(cache) == ["a", "b", "d", "f", "g"]
        assert cache.evict("odd") == 2
        assert list(cache) == ["a", "f", "g"]
        cache.reset("size_limit", cache.volume() - 1)
        assert cache.cull() == 1
        assert list(cache) == ["f", "g"]
        assert cache.check() == []

    def test_a_stray_expiry_entry_is_not_reported_as_wrong_totals(self, tmp_path: Path, closing: Any) -> None:
        """check(False) judges the totals by the entries themselves: a stray expiry index entry is an index
        problem, not a wrong next expiry, and the report does not claim the entries expire at its time."""
        clock = FakeClock()
        cache = closing(open_lmdb(tmp_path, clock=clock))
        cache.set("soon", 1, expire=100)
        cache.set("never", 2)
        h = handles(cache)
        stored = cache._encode_key("never")
        with h.env.begin(write=True) as txn:
            seq = _records.sequence_of(txn.get(_ENTRY + stored))
            txn.put(_EXPIRY + _records.expiry_key(clock.now + 10, seq), stored)
        assert cache.store.check(False) == ["the expiry index lacks 0 and has 1 stray entries"]
        assert cache.store.check(True) == ["the expiry index lacks 0 and has 1 stray entries"]
        assert cache.store.check(False) == []
        assert cache.store.totals().next_expiry == clock.now + 100


# -- 12. durability and batched reads -------------------------------------------------------------------------------
class TestDurabilityAndAccesses:
    def test_durability_sets_the_sync_flags(self, tmp_path: Path) -> None:
        """durability='full' opens the environment with sync and metasync; 'normal' with neither; reopening
        a full cache without saying so keeps it full."""
        full = open_lmdb(tmp_path / "full", durability="full")
        flags = handles(full).env.flags()
        assert (flags["sync"], flags["metasync"]) == (True, True)
        full.close()
        normal = open_lmdb(tmp_path / "normal")
        flags = handles(normal).env.flags()
        assert (flags["sync"], flags["metasync"]) == (False, False)
        normal.close()
        reopened = open_lmdb(tmp_path / "full")
        assert reopened.durability == "full"
        assert handles(reopened).env.flags()["sync"] is True
        reopened.close()

    @pytest.mark.parametrize(
        ("policy", "field", "expected"),
        [("least-recently-used", "access_time", "now"), ("least-frequently-used", "access_count", 5)],
    )
    def test_reads_are_recorded_in_batches(self, tmp_path: Path, policy: str, field: str, expected: object) -> None:
        """Under LRU/LFU, fifty hits commit no write transaction; close writes the recorded reads out."""
        clock = FakeClock()
        cache = open_lmdb(tmp_path, eviction_policy=policy, clock=clock)
        for index in range(10):
            cache.set(index, index)
        clock.advance(0.5)
        env = handles(cache).env
        before = env.info()["last_txnid"]
        for step in range(50):
            assert cache.get(step % 10) == step % 10
        assert env.info()["last_txnid"] == before
        cache.close()
        reopened = open_lmdb(tmp_path, eviction_policy=policy, clock=clock)
        assert handles(reopened).env.info()["last_txnid"] > before
        entry = reopened.store.get(reopened._encode_key(3))
        assert entry is not None
        assert getattr(entry, field) == (clock.now if expected == "now" else expected)
        reopened.close()

    def test_reader_table_full_is_a_store_error(self, tmp_path: Path, closing: Any) -> None:
        """With every reader slot taken by a snapshot, another thread's read raises StoreError naming the path."""
        cache = closing(open_lmdb(tmp_path, lmdb_max_readers=1))
        cache.set("key", 1)
        entered, release = threading.Event(), threading.Event()

        def hold() -> None:
            with cache.store.read():
                entered.set()
                release.wait(CHILD_WAIT)

        thread = threading.Thread(target=hold)
        thread.start()
        try:
            assert entered.wait(CHILD_WAIT)
            with pytest.raises(cachekit.StoreError, match="reader table is full") as raised:
                cache.get("key")
            assert "data.mdb" in str(raised.value)
        finally:
            release.set()
            thread.join(CHILD_WAIT)
        assert cache.get("key") == 1


# -- 13. a damaged record ----------------------------------------------------------------------------------------------
class TestDamagedRecord:
    @pytest.mark.parametrize(
        "damage",
        [
            pytest.param(lambda record: b"\x01" * 10, id="shorter-than-the-read-header"),
            pytest.param(lambda record: record[:40], id="cut-inside-the-header"),
            pytest.param(lambda record: b"\xff" * len(record), id="all-ones"),
        ],
    )
    def test_damaged_record_is_corrupt_cache_and_check_removes_it(
        self, tmp_path: Path, closing: Any, damage: Callable[[bytes], bytes]
    ) -> None:
        """Reading a damaged record raises CorruptCache naming the path (never garbage, never a raw error);
        other keys still read; check(True) removes it and the key can be stored again."""
        cache = closing(open_lmdb(tmp_path))
        for name in ("before", "victim", "after"):
            cache.set(name, f"value of {name}")
        h = handles(cache)
        stored = cache._encode_key("victim")
        with h.env.begin(write=True) as txn:
            txn.put(_ENTRY + stored, damage(txn.get(_ENTRY + stored)))
        with pytest.raises(cachekit.CorruptCache) as raised:
            cache.get("victim")
        assert "data.mdb" in str(raised.value)
        with pytest.raises(cachekit.CorruptCache):
            cache.get("victim", expire_time=True)
        assert cache.get("before") == "value of before"
        assert cache.get("after") == "value of after"
        reported = cache.store.check(False)
        assert any("victim" in problem and "damaged" in problem for problem in reported)
        assert cache.store.check(True)
        assert cache.store.check(False) == []
        assert "victim" not in cache
        assert len(cache) == 2
        assert list(cache) == ["before", "after"]
        cache.set("victim", "stored again")
        assert cache.get("victim") == "stored again"
        assert cache.check() == []


# -- 14. how engine errors are translated ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        (lmdb.MapFullError("mdb_put: MDB_MAP_FULL"), cachekit.StorageFull, "map_size_limit"),
        (lmdb.InvalidError("mdb_env_open: MDB_INVALID"), cachekit.CorruptCache, "not a cachekit LMDB database"),
        (lmdb.VersionMismatchError("MDB_VERSION_MISMATCH"), cachekit.CorruptCache, "damaged"),
        (lmdb.CorruptedError("MDB_CORRUPTED"), cachekit.CorruptCache, "damaged"),
        (lmdb.PanicError("MDB_PANIC"), cachekit.CorruptCache, "reopen"),
        (lmdb.ReadersFullError("MDB_READERS_FULL"), cachekit.StoreError, "lmdb_max_readers"),
        (OSError(errno.ENOSPC, "No space left on device"), cachekit.StorageFull, "free space"),
        (OSError(errno.EACCES, "Permission denied"), cachekit.StoreError, "permission denied"),
        (OSError(errno.EROFS, "Read-only file system"), cachekit.StoreError, "read-only"),
        (lmdb.Error("something else"), cachekit.StoreError, "LMDB failed"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_engine_errors_become_cachekit_errors_naming_the_path(
    error: BaseException, kind: type[Exception], words: str
) -> None:
    """Every engine error maps to the cachekit exception that says what to do, with the path."""
    translated = _environment.translate(error, "/somewhere/data.mdb")
    assert type(translated) is kind
    assert "/somewhere/data.mdb" in str(translated)
    assert words in str(translated)


# -- 15. a read-only directory ---------------------------------------------------------------------------------
READ_ONLY_SCRIPT = """
import json, os, sys
import cachekit

directory = sys.argv[1]
cache = cachekit.Cache(directory, store="lmdb")
cache.set("key", "value")
cache.close()
for name in os.listdir(directory):
    os.chmod(os.path.join(directory, name), 0o400)
os.chmod(directory, 0o500)
before = {name: open(os.path.join(directory, name), "rb").read() for name in os.listdir(directory)}
try:
    cachekit.Cache(directory, store="lmdb")
    outcome = ["opened", ""]
except cachekit.CachekitError as error:
    outcome = [type(error).__name__, str(error)]
after = {name: open(os.path.join(directory, name), "rb").read() for name in os.listdir(directory)}
print(json.dumps({"outcome": outcome, "unchanged": before == after}))
"""


def test_a_read_only_directory_is_a_clear_error_naming_the_path(tmp_path: Path) -> None:
    """A cache directory (and files) the user may only read: StoreError naming the path, files untouched.

    Run as an unprivileged user: as root, permissions would not stop anything, so the script drops
    to ``nobody`` with ``setpriv``."""
    import json
    import shutil
    import subprocess
    import sys
    import tempfile

    base = tmp_path
    command = [sys.executable, "-c", READ_ONLY_SCRIPT]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot drop privileges to test permissions")
        drop = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        probe = subprocess.run([*drop, sys.executable, "-c", "import cachekit"], capture_output=True, check=False)
        if probe.returncode:
            pytest.skip("this Python or cachekit is not readable by an unprivileged user (a private venv)")
        # pytest's own temporary directories are root's alone: make one nobody can enter.
        base = Path(tempfile.mkdtemp(prefix="cachekit-read-only-"))
        base.chmod(0o777)
        command = [*drop, *command]
    try:
        completed = subprocess.run(
            [*command, str(base / "cache")], capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        if base != tmp_path:
            shutil.rmtree(base, ignore_errors=True)
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    kind, message = report["outcome"]
    assert kind == "StoreError"
    assert str(base / "cache") in message
    assert "permission denied or read-only" in message
    assert report["unchanged"] is True
