"""Bad input and faults: clear errors before any change, nothing lost, no file left behind.

These complement the conformance suite with cases that need fault injection
(a full disk, a lock held elsewhere, a store lacking capabilities) or that
are about the core rather than a store.
"""

from __future__ import annotations

import errno
import io
import math
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

import cachekit
import cachekit.plugins
from cachekit.plugins import Capabilities, EvictionPolicy, hookimpl
from cachekit_sqlite import SQLiteStore


def value_files(cache: cachekit.Cache) -> list[str]:
    root = Path(cache.directory, "values")
    return sorted(str(path) for path in root.rglob("*.val")) if root.exists() else []


class InlineOnlyStore(SQLiteStore):
    """A store that keeps every payload inline, accepts at most 1000 bytes and cannot scan in order."""

    capabilities: ClassVar[Capabilities] = Capabilities(value_files=False, max_value_size=1000, ordered_scans=False)


class NoTransactionStore(SQLiteStore):
    capabilities: ClassVar[Capabilities] = Capabilities(transactions=False)


class _StorePlugin:
    @hookimpl
    def cachekit_stores(self) -> Mapping[str, object]:
        return {"inline-only": InlineOnlyStore, "no-transactions": NoTransactionStore}


class Oldest(EvictionPolicy):
    name = "faults-oldest"
    rank = ("store_time",)


class _PolicyPlugin:
    @hookimpl
    def cachekit_eviction_policies(self) -> Mapping[str, object]:
        return {"faults-oldest": Oldest}


@pytest.fixture
def limited_stores() -> Iterator[None]:
    plugin = _StorePlugin()
    cachekit.plugins.register(plugin)
    yield
    cachekit.plugins.unregister(plugin)


def _hold_lock(cache: cachekit.Cache) -> sqlite3.Connection:
    holder = sqlite3.connect(os.path.join(cache.directory, "cache.db"), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


class TestBadArguments:
    @pytest.mark.parametrize(
        ("expire", "error"),
        [(True, TypeError), ("10", TypeError), (math.nan, ValueError), (-1, ValueError)],
    )
    def test_bad_expire_is_refused_before_writing(self, tmp_path: Path, expire: Any, error: type[Exception]) -> None:
        """A bool, string, NaN or negative expire raises before anything is written or any file created."""
        cache = cachekit.Cache(tmp_path, disk_min_file_size=16)
        cache.set("key", "old")
        with pytest.raises(error, match="expire"):
            cache.set("key", "x" * 100, expire=expire)
        with pytest.raises(error, match="expire"):
            cache.touch("key", expire=expire)
        assert cache["key"] == "old"
        assert value_files(cache) == []
        cache.close()

    def test_infinite_expire_means_never(self, tmp_path: Path) -> None:
        """``expire=float('inf')`` stores the value without an expire time."""
        with cachekit.Cache(tmp_path) as cache:
            cache.set("key", 1, expire=math.inf)
            assert cache.get("key", expire_time=True) == (1, None)

    @pytest.mark.parametrize(("delta", "default"), [(True, 0), ("1", 0), (1, "0"), (1, False)])
    def test_incr_rejects_non_numbers(self, tmp_path: Path, delta: Any, default: Any) -> None:
        """incr and decr name a bool or non-number delta or default and change nothing."""
        with cachekit.Cache(tmp_path) as cache:
            cache.set("counter", 5)
            with pytest.raises(TypeError, match=r"delta|default"):
                cache.incr("counter", delta, default)
            with pytest.raises(TypeError, match=r"delta|default"):
                cache.decr("counter", delta, default)
            assert cache["counter"] == 5

    def test_queue_arguments_are_checked(self, tmp_path: Path) -> None:
        """push and pull name a bad side or a non-str prefix."""
        with cachekit.Cache(tmp_path) as cache:
            with pytest.raises(ValueError, match="side must be 'back' or 'front'"):
                cache.push(1, side="middle")
            with pytest.raises(TypeError, match="prefix must be a str"):
                cache.pull(prefix=5)  # type: ignore[arg-type]
            assert len(cache) == 0

    def test_reset_refuses_durability_and_unknown_settings(self, tmp_path: Path) -> None:
        """durability cannot change on an open cache, and store or unknown settings cannot be reset."""
        with cachekit.Cache(tmp_path) as cache:
            with pytest.raises(cachekit.ConfigError, match="durability applies when the cache is opened"):
                cache.reset("durability", "full")
            with pytest.raises(cachekit.ConfigError, match="store settings apply when the cache is opened"):
                cache.reset("sqlite_mmap_size", 0)
            with pytest.raises(cachekit.ConfigError, match="cannot be reset"):
                cache.reset("no_such_setting", 1)

    def test_reset_without_update_changes_only_this_object(self, tmp_path: Path) -> None:
        """``reset(..., update=False)`` applies to this object and leaves the directory's setting alone."""
        with cachekit.Cache(tmp_path) as cache:
            assert cache.reset("cull_limit", 3, update=False) == 3
            assert cache.cull_limit == 3
            assert cache.reset("cull_limit") == 10  # reloaded from the directory
        with cachekit.Cache(tmp_path) as reopened:
            assert reopened.cull_limit == 10

    def test_set_read_needs_a_binary_stream(self, tmp_path: Path) -> None:
        """set(read=True) with a text stream raises TypeError and leaves no file behind."""
        with cachekit.Cache(tmp_path) as cache:
            with pytest.raises(TypeError, match="binary file object"):
                cache.set("key", io.StringIO("text"), read=True)
            assert "key" not in cache
            assert value_files(cache) == []


class TestDurability:
    def test_durability_is_restored_on_reopen(self, tmp_path: Path) -> None:
        """A cache created with durability='full' reopens with synchronous=FULL when not told again."""
        cachekit.Cache(tmp_path, durability="full").close()
        with cachekit.Cache(tmp_path) as cache:
            assert cache.durability == "full"
            store = cache.store
            assert isinstance(store, SQLiteStore)
            assert store._connection().execute("PRAGMA synchronous").fetchone()[0] == 2

    def test_full_durability_fsyncs_value_files(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """With durability='full' every value file is fsynced before its entry commits."""
        synced: list[int] = []
        real_fsync = os.fsync

        def recording_fsync(descriptor: int) -> None:
            synced.append(descriptor)
            real_fsync(descriptor)

        monkeypatch.setattr(os, "fsync", recording_fsync)
        with cachekit.Cache(tmp_path, durability="full", disk_min_file_size=16) as cache:
            cache.set("big", b"x" * 100)
            assert synced
            assert cache["big"] == b"x" * 100


class TestOpenFailures:
    def test_a_missing_persisted_policy_fails_clearly_and_releases_the_store(self, tmp_path: Path) -> None:
        """Reopening a cache whose persisted policy is no longer installed names it, and leaks nothing."""
        plugin = _PolicyPlugin()
        cachekit.plugins.register(plugin)
        try:
            cachekit.Cache(tmp_path, eviction_policy="faults-oldest").close()
        finally:
            cachekit.plugins.unregister(plugin)
        with pytest.raises(cachekit.UnknownPluginError, match="faults-oldest"):
            cachekit.Cache(tmp_path)

    def test_store_without_transactions_is_refused(self, tmp_path: Path, limited_stores: None) -> None:
        """A store that cannot make several operations atomic is refused with the reason."""
        with pytest.raises(cachekit.UnsupportedOperation, match="multi-operation transactions"):
            cachekit.Cache(tmp_path, store="no-transactions")


class TestLimitedStore:
    def test_eviction_policy_needs_ordered_scans(self, tmp_path: Path, limited_stores: None) -> None:
        """A policy that ranks entries is refused on a store without ordered scans, suggesting 'none'."""
        with pytest.raises(cachekit.UnsupportedOperation, match="eviction_policy='none'"):
            cachekit.Cache(tmp_path, store="inline-only")

    def test_values_stay_inline_up_to_the_store_limit(self, tmp_path: Path, limited_stores: None) -> None:
        """Without value files, payloads stay inline; one above the store's limit is refused by name."""
        with cachekit.Cache(tmp_path, store="inline-only", eviction_policy="none", disk_min_file_size=16) as cache:
            assert cache.set("medium", b"m" * 500)
            assert cache.set("stream", io.BytesIO(b"s" * 300), read=True)
            assert cache["medium"] == b"m" * 500
            assert cache.read("stream").read() == b"s" * 300
            assert value_files(cache) == []
            with pytest.raises(cachekit.UnsupportedOperation, match="at most 1000 bytes"):
                cache.set("large", b"l" * 2000)
            assert "large" not in cache

    def test_ordered_operations_are_refused(self, tmp_path: Path, limited_stores: None) -> None:
        """Queues, peekitem and iterkeys raise UnsupportedOperation on a store without ordered scans."""
        with cachekit.Cache(tmp_path, store="inline-only", eviction_policy="none") as cache:
            with pytest.raises(cachekit.UnsupportedOperation, match="push needs ordered scans"):
                cache.push(1)
            with pytest.raises(cachekit.UnsupportedOperation, match="pull needs ordered scans"):
                cache.pull()
            with pytest.raises(cachekit.UnsupportedOperation, match="peek needs ordered scans"):
                cache.peek()
            with pytest.raises(cachekit.UnsupportedOperation, match="peekitem needs ordered scans"):
                cache.peekitem()
            with pytest.raises(cachekit.UnsupportedOperation, match="iterkeys needs ordered scans"):
                list(cache.iterkeys())


class TestDiskFull:
    def test_full_disk_while_writing_a_value_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """ENOSPC while writing a value file raises StorageFull, keeps the old value and leaves no file."""
        cache = cachekit.Cache(tmp_path, disk_min_file_size=16)
        cache.set("key", b"old" * 20)
        real_write = os.write

        def full(descriptor: int, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write", full)
        with pytest.raises(cachekit.StorageFull, match="no space left"):
            cache.set("key", b"new" * 20)
        monkeypatch.setattr(os, "write", real_write)
        assert cache["key"] == b"old" * 20
        assert len(value_files(cache)) == 1
        assert cache.check() == []
        cache.close()

    def test_failed_commit_removes_the_new_value_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """When the commit itself fails, the value file written for it is removed and the old value stays."""
        cache = cachekit.Cache(tmp_path, disk_min_file_size=16)
        cache.set("key", b"old" * 20)
        store = cache.store
        real_write = store.write

        class FailingCommit:
            def __init__(self) -> None:
                self.inner = real_write()

            def __enter__(self) -> None:
                self.inner.__enter__()

            def __exit__(self, *exc: Any) -> None:
                self.inner.__exit__(RuntimeError, RuntimeError("rolled back"), None)
                if exc[0] is None:
                    raise cachekit.StorageFull("the disk filled up during commit")

        monkeypatch.setattr(store, "write", FailingCommit)
        with pytest.raises(cachekit.StorageFull):
            cache.set("key", b"new" * 20)
        monkeypatch.undo()
        assert cache["key"] == b"old" * 20
        assert len(value_files(cache)) == 1
        cache.close()


class TestLockedCache:
    def test_timeouts_keep_files_and_entries_intact(self, tmp_path: Path) -> None:
        """A write that times out leaves no value file, and add/get/incr raise Timeout without retry."""
        cache = cachekit.Cache(tmp_path, timeout=0.01, disk_min_file_size=16)
        cache.set("key", "value")
        holder = _hold_lock(cache)
        try:
            with pytest.raises(cachekit.Timeout):
                cache.set("big", b"x" * 100)
            with pytest.raises(cachekit.Timeout):
                cache.add("other", b"y" * 100)
            with pytest.raises(cachekit.Timeout):
                cache.incr("counter")
            assert cache.get("key") == "value"  # reads never wait in WAL mode
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert value_files(cache) == []
        assert "big" not in cache
        assert cache.counters()["timeouts"] >= 3
        cache.close()

    def test_reads_retry_through_a_busy_store(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A read that hits Timeout raises it without retry, and succeeds with retry=True."""
        cache = cachekit.Cache(tmp_path)
        cache.set("key", "value")
        store = cache.store
        failures = {"lookup": 0, "get": 0}
        real_lookup, real_get = store.lookup, store.get

        def busy(name: str, real: Any) -> Any:
            def call(key: bytes) -> Any:
                if failures[name] < 2:
                    failures[name] += 1
                    raise cachekit.Timeout("busy")
                return real(key)

            return call

        monkeypatch.setattr(store, "lookup", busy("lookup", real_lookup))
        monkeypatch.setattr(store, "get", busy("get", real_get))
        cache._lookup = store.lookup
        with pytest.raises(cachekit.Timeout):
            cache.get("key")
        assert cache.get("key", retry=True) == "value"
        failures["get"] = 0
        assert cache.get("key", tag=True, retry=True) == ("value", None)
        failures["get"] = 0
        with pytest.raises(cachekit.Timeout):
            cache.get("key", tag=True)
        cache.close()


class TestDamagedValues:
    def test_vanished_file_inside_a_write_is_a_miss(self, tmp_path: Path) -> None:
        """pop, incr and pull treat an entry whose value file vanished as missing, and count it."""
        cache = cachekit.Cache(tmp_path, disk_min_file_size=1)
        cache.set("popped", b"x" * 10)
        cache.set("number", 12345)
        for path in value_files(cache):
            os.unlink(path)
        assert cache.pop("popped", default="gone") == "gone"
        with pytest.raises(KeyError):
            cache.incr("number")
        assert cache.counters()["corrupt_values"] == 2
        cache.close()

    def test_truncated_file_with_read_is_a_miss(self, tmp_path: Path) -> None:
        """A truncated value file is a miss for read=True handles too, never a short read."""
        cache = cachekit.Cache(tmp_path, disk_min_file_size=16)
        cache.set("big", b"x" * 100)
        (path,) = value_files(cache)
        os.truncate(path, 10)
        assert cache.get("big", read=True) is None
        with pytest.raises(KeyError):
            cache.read("big")
        assert cache.counters()["corrupt_values"] >= 1
        problems = [str(warning.message) for warning in cache.check()]
        assert any("holds 10 bytes, expected" in problem for problem in problems)
        cache.close()

    def test_incr_of_a_number_in_a_value_file(self, tmp_path: Path) -> None:
        """A number whose payload lives in a value file increments, and the old file goes."""
        cache = cachekit.Cache(tmp_path, disk_min_file_size=1)
        cache.set("number", 41)
        assert len(value_files(cache)) == 1
        assert cache.incr("number") == 42
        assert cache["number"] == 42
        assert value_files(cache) == []
        cache.close()


class TestRecordedAccesses:
    def test_many_distinct_reads_are_written_in_a_batch(self, tmp_path: Path) -> None:
        """Under LRU, reads of 256 distinct keys are written out without waiting for a write."""
        clock = [1000.0]
        cache = cachekit.Cache(tmp_path, eviction_policy="least-recently-used", clock=lambda: clock[0])
        with cache.transact():
            for index in range(300):
                cache.set(index, index)
        clock[0] = 2000.0
        for index in range(300):
            cache.get(index)
        entries = [cache.store.get(cache._encode_key(index)) for index in range(256)]
        assert all(entry is not None and entry.access_time == 2000.0 for entry in entries)
        cache.close()

    def test_pending_reads_survive_a_busy_store_and_a_deleted_key(self, tmp_path: Path) -> None:
        """A batch that cannot be written waits for the next one; keys deleted meanwhile are skipped."""
        cache = cachekit.Cache(tmp_path, eviction_policy="least-frequently-used", timeout=0.01)
        cache.set("kept", 1)
        cache.set("deleted", 2)
        cache.get("kept")
        cache.get("deleted")
        holder = _hold_lock(cache)
        try:
            cache._flush_accesses()  # the lock is taken: nothing is lost
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert len(cache._accesses) == 2
        cache.delete("deleted")
        cache.set("other", 3)  # a write that culls applies the pending accesses first
        kept = cache.store.get(cache._encode_key("kept"))
        assert kept is not None
        assert kept.access_count == 1
        cache.close()

    def test_accesses_inside_a_transaction_apply_in_it(self, tmp_path: Path) -> None:
        """Flushing recorded reads from inside transact() joins that transaction."""
        cache = cachekit.Cache(tmp_path, eviction_policy="least-frequently-used")
        cache.set("key", 1)
        cache.get("key")
        with cache.transact():
            cache._flush_accesses()
        entry = cache.store.get(cache._encode_key("key"))
        assert entry is not None
        assert entry.access_count == 1
        cache.close()

    def test_statistics_on_the_slow_path(self, tmp_path: Path) -> None:
        """Hits and misses count the same for reads that ask for tags or expire times."""
        with cachekit.Cache(tmp_path, statistics=True) as cache:
            cache.set("key", 1, tag="t")
            assert cache.get("key", tag=True) == (1, "t")
            assert cache.get("absent", expire_time=True) == (None, None)
            assert cache.stats() == (1, 1)

    def test_counter_flush_failure_keeps_the_counts(self, tmp_path: Path) -> None:
        """If writing pending statistics fails, the counts stay pending instead of being lost."""
        cache = cachekit.Cache(tmp_path, statistics=True, timeout=0.01)
        cache.get("absent")
        holder = _hold_lock(cache)
        try:
            with pytest.raises(cachekit.Timeout):
                cache._flush_counters(wait=False)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert cache.stats() == (0, 1)
        cache.close()

    def test_statistics_flush_on_the_read_path_tolerates_a_busy_store(self, tmp_path: Path) -> None:
        """Reads keep working when their pending statistics cannot be written; the counts are kept."""
        cache = cachekit.Cache(tmp_path, statistics=True, timeout=0.01)
        holder = _hold_lock(cache)
        try:
            for _ in range(300):
                assert cache.get("absent") is None
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert cache.stats() == (0, 300)
        cache.close()


class TestConcurrentOpen:
    def test_many_threads_open_a_fresh_directory_at_once(self, tmp_path: Path) -> None:
        """Fifty threads opening the same new directory at the same moment all succeed."""
        directory = tmp_path / "fresh"
        barrier = threading.Barrier(50)
        errors: list[BaseException] = []

        def open_it() -> None:
            barrier.wait()
            try:
                cache = cachekit.Cache(directory)
                cache.set(threading.get_ident(), 1)
                cache.close()
            except BaseException as error:  # every failure is reported below
                errors.append(error)

        threads = [threading.Thread(target=open_it) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with cachekit.Cache(directory) as cache:
            assert len(cache) == 50


class TestPendingBounds:
    def test_recorded_reads_are_written_within_a_second(self, tmp_path: Path) -> None:
        """Under LRU, a read recorded more than a second ago is written out by the next read."""
        clock = [1000.0]
        cache = cachekit.Cache(tmp_path, eviction_policy="least-recently-used", clock=lambda: clock[0])
        cache.set("key", 1)
        clock[0] = 1000.5
        cache.get("key")
        entry = cache.store.get(cache._encode_key("key"))
        assert entry is not None
        assert entry.access_time == 1000.0  # still pending
        clock[0] = 1002.0
        cache.get("key")
        entry = cache.store.get(cache._encode_key("key"))
        assert entry is not None
        assert entry.access_time == 1002.0
        cache.close()

    def test_statistics_reach_the_directory_within_a_second(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Hits and misses counted by one object are visible to another after at most about a second."""
        cache = cachekit.Cache(tmp_path, statistics=True)
        other = cachekit.Cache(tmp_path)
        cache.get("absent")
        assert other.store.counters().get("misses", 0) == 0
        later = cachekit._core.time.monotonic() + 5
        monkeypatch.setattr(cachekit._core.time, "monotonic", lambda: later)
        cache.get("absent")
        assert other.store.counters()["misses"] == 2
        cache.close()
        other.close()


class TestThreadsAndLocks:
    def test_close_while_other_threads_read_and_write(self, tmp_path: Path) -> None:
        """Closing a cache from one thread while others use it never crashes and loses no write."""
        script = f"""
import threading, cachekit
cache = cachekit.Cache({str(tmp_path)!r})
cache.set("key", 0)
stop = threading.Event()
def work(number):
    count = 0
    while not stop.is_set():
        cache.get("key")
        cache.set(("worker", number), count)
        count += 1
threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
for thread in threads:
    thread.start()
for _ in range(200):
    cache.close()
stop.set()
for thread in threads:
    thread.join()
cache.close()
print("ok", len(cachekit.Cache({str(tmp_path)!r})))
"""
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.split() == ["ok", "5"]

    def test_a_transaction_in_progress_survives_close_from_another_thread(self, tmp_path: Path) -> None:
        """A transaction keeps its connection when another thread closes the cache, and commits whole."""
        cache = cachekit.Cache(tmp_path)
        inside = threading.Event()
        closed = threading.Event()

        def close_meanwhile() -> None:
            inside.wait()
            cache.close()
            closed.set()

        closer = threading.Thread(target=close_meanwhile)
        closer.start()
        with cache.transact() as bound:
            cache.set("a", 1)
            inside.set()
            closed.wait()
            cache.set("b", 2)
        closer.join()
        assert bound is None  # as in python-diskcache
        with cachekit.Cache(tmp_path) as other:
            assert (other.get("a"), other.get("b")) == (1, 2)

    @pytest.mark.parametrize(
        "settings",
        [{"eviction_policy": "least-recently-used"}, {"statistics": True}],
        ids=["lru", "statistics"],
    )
    def test_reads_never_wait_for_a_held_write_lock(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: dict[str, Any]
    ) -> None:
        """Writing out recorded reads or statistics never makes a read wait for a lock held elsewhere."""
        clock = [1000.0]
        cache = cachekit.Cache(tmp_path, timeout=30, clock=lambda: clock[0], **settings)
        for index in range(300):
            cache.set(index, index)
        later = [cachekit._core.time.monotonic()]
        monkeypatch.setattr(cachekit._core.time, "monotonic", lambda: later[0])
        holder = _hold_lock(cache)
        try:
            waited = []
            for index in range(300):
                clock[0] += 2  # past every deadline: each read wants to write out its batch
                later[0] += 2
                started = cachekit._core.time.perf_counter()
                assert cache.get(index) == index
                waited.append(cachekit._core.time.perf_counter() - started)
            assert max(waited) < 10  # a blocked read would wait the full 30-second timeout
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        cache.close()

    def test_index_changes_and_check_are_refused_inside_a_transaction(self, tmp_path: Path) -> None:
        """reset of the policy or tag index and check() refuse to run inside transact(), changing nothing."""
        with cachekit.Cache(tmp_path) as cache:
            with cache.transact():
                with pytest.raises(cachekit.UnsupportedOperation, match="inside transact"):
                    cache.reset("eviction_policy", "least-recently-used")
                with pytest.raises(cachekit.UnsupportedOperation, match="inside transact"):
                    cache.create_tag_index()
                with pytest.raises(cachekit.UnsupportedOperation, match="inside transact"):
                    cache.check()
                cache.set("key", 1)
            assert cache.eviction_policy == "least-recently-stored"
            assert cache.tag_index is False
            assert cache.reset("eviction_policy") == "least-recently-stored"
            assert cache["key"] == 1

    def test_a_failed_policy_change_leaves_the_cache_as_it_was(self, tmp_path: Path) -> None:
        """If the store cannot change its index, the policy in force and the persisted one stay the same."""
        with cachekit.Cache(tmp_path, timeout=0.01) as cache:
            holder = _hold_lock(cache)
            try:
                with pytest.raises(cachekit.Timeout):
                    cache.reset("eviction_policy", "least-recently-used")
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            assert cache.eviction_policy == "least-recently-stored"
            assert cache.reset("eviction_policy") == "least-recently-stored"


class TestCompatibilityEdges:
    @pytest.mark.parametrize(
        ("setting", "hint"),
        [("sqlite_synchronous", "durability"), ("sqlite_journal_mode", "WAL"), ("sqlite_auto_vacuum", "manages")],
    )
    def test_diskcache_sqlite_settings_get_a_hint(self, tmp_path: Path, setting: str, hint: str) -> None:
        """python-diskcache's SQLite settings are refused with what to use instead."""
        with pytest.raises(cachekit.ConfigError, match=hint):
            cachekit.Cache(tmp_path, **{setting: 1})

    def test_expire_checks_its_now_argument(self, tmp_path: Path) -> None:
        """expire(now=...) refuses a bool, a string or NaN instead of silently removing nothing."""
        with cachekit.Cache(tmp_path) as cache:
            for now in (True, "soon", math.nan):
                with pytest.raises(TypeError, match="now must be a time"):
                    cache.expire(now=now)  # type: ignore[arg-type]

    def test_memoize_checks_its_arguments_when_decorating(self, tmp_path: Path) -> None:
        """memoize refuses a bad expire, typed or name at decoration time, not at the first call."""
        with cachekit.Cache(tmp_path) as cache:
            with pytest.raises(ValueError, match="expire"):
                cache.memoize(expire=-1)
            with pytest.raises(TypeError, match="expire"):
                cache.memoize(expire="soon")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="typed must be True or False"):
                cache.memoize(typed="yes")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="name must be a str"):
                cache.memoize(name=5)  # type: ignore[arg-type]

    def test_memoize_accepts_unhashable_arguments(self, tmp_path: Path) -> None:
        """A memoized function may take lists and dicts, as with python-diskcache."""
        calls = []
        with cachekit.Cache(tmp_path) as cache:

            @cache.memoize()
            def total(numbers: list[int], weights: dict[str, int]) -> int:
                calls.append(1)
                return sum(numbers) * weights["w"]

            assert total([1, 2, 3], {"w": 2}) == 12
            assert total([1, 2, 3], {"w": 2}) == 12
            assert len(calls) == 1

    def test_sentinels_unpickle_as_themselves(self) -> None:
        """ENOVAL and UNKNOWN survive pickling with their identity, so ``is ENOVAL`` still works."""
        import pickle

        assert pickle.loads(pickle.dumps(cachekit.ENOVAL)) is cachekit.ENOVAL
        assert pickle.loads(pickle.dumps(cachekit.UNKNOWN)) is cachekit.UNKNOWN

    def test_unencodable_values_are_type_errors_too(self, tmp_path: Path) -> None:
        """SerializationError is also a TypeError, so code catching pickle's TypeError keeps working."""
        with cachekit.Cache(tmp_path) as cache, pytest.raises(TypeError):
            cache.set("lock", threading.Lock())

    def test_source_stream_errors_are_not_storage_errors(self, tmp_path: Path) -> None:
        """An OSError from the stream given with read=True propagates as it is, and leaves no file."""

        class Broken(io.RawIOBase):
            def read(self, size: int = -1) -> bytes:
                raise OSError(errno.EIO, "the source device failed")

        with cachekit.Cache(tmp_path) as cache:
            with pytest.raises(OSError, match="the source device failed") as raised:
                cache.set("key", Broken(), read=True)
            assert not isinstance(raised.value, cachekit.CachekitError)
            assert value_files(cache) == []

    def test_a_value_file_that_cannot_be_removed_does_not_fail_the_write(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If the replaced value file cannot be removed after a commit, the write still succeeds."""
        with cachekit.Cache(tmp_path, disk_min_file_size=16) as cache:
            cache.set("key", b"old" * 20)
            real_unlink = os.unlink

            def refuse(path: str, *args: Any, **kwargs: Any) -> None:
                if str(path).endswith(".val"):
                    raise PermissionError(errno.EACCES, "Permission denied")
                real_unlink(path, *args, **kwargs)

            monkeypatch.setattr(os, "unlink", refuse)
            assert cache.set("key", b"new" * 20)
            monkeypatch.undo()
            assert cache["key"] == b"new" * 20
            orphans = [str(warning.message) for warning in cache.check()]
            assert any("orphan value file" in message for message in orphans)
