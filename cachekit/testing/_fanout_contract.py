"""``cachekit.FanoutCache`` on the store under test: the Cache API over shards, stable shard choice,
and honest failure on a shard that another process holds locked."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cachekit
from cachekit import FanoutCache

from ._collection_workers import hold_shard
from ._support import _WAIT, _Harness


class FanoutContract(_Harness):
    """:class:`cachekit.FanoutCache` with every shard on the store under test."""

    @pytest.fixture
    def fanout(self, tmp_path: Path) -> Iterator[FanoutCache]:
        """A FanoutCache of 4 shards on the store under test, closed after the test."""
        cache = FanoutCache(tmp_path / "fanout", shards=4, store=self.store)
        yield cache
        cache.close()

    def _shard_keys(self, directory: str | Path, number: int) -> list[Any]:
        """The keys in shard ``number`` of the FanoutCache in ``directory``, read through a Cache of its own."""
        with cachekit.Cache(os.path.join(directory, f"{number:03d}"), store=self.store) as shard:
            return list(shard)

    # -- the Cache API -------------------------------------------------------------------------
    def test_fanout_set_get_add_delete_pop(self, fanout: FanoutCache) -> None:
        """Single-key operations behave as on a Cache."""
        assert fanout.set("a", 1) is True
        fanout["b"] = 2
        assert fanout.get("a") == 1
        assert fanout["b"] == 2
        assert fanout.get("missing", "default") == "default"
        assert fanout.add("a", 10) is False
        assert fanout.add("c", 3) is True
        assert "c" in fanout
        assert "missing" not in fanout
        assert fanout.pop("c") == 3
        assert fanout.pop("c", "gone") == "gone"
        assert fanout.delete("a") is True
        assert fanout.delete("a") is False
        del fanout["b"]
        with pytest.raises(KeyError):
            fanout["b"]
        with pytest.raises(KeyError):
            del fanout["b"]

    def test_fanout_incr_decr(self, fanout: FanoutCache) -> None:
        """incr and decr count from the default."""
        assert fanout.incr("n") == 1
        assert fanout.incr("n", 5) == 6
        assert fanout.decr("n", 2) == 4
        with pytest.raises(KeyError):
            fanout.incr("absent", default=None)

    def test_fanout_result_shapes(self, fanout: FanoutCache) -> None:
        """expire_time and tag give tuples on hits and misses alike."""
        fanout.set("k", "v", expire=100, tag="t")
        value, expire_time = fanout.get("k", expire_time=True)
        assert value == "v"
        assert expire_time is not None
        assert expire_time > time.time()
        assert fanout.get("k", tag=True) == ("v", "t")
        assert fanout.get("nope", expire_time=True) == (None, None)
        assert fanout.get("nope", expire_time=True, tag=True) == (None, None, None)
        assert fanout.pop("nope", 0, expire_time=True) == (0, None)
        assert fanout.touch("k", 1000) is True
        assert fanout.touch("nope") is False

    def test_fanout_read_bytes(self, fanout: FanoutCache) -> None:
        """read() returns a file handle on a bytes value."""
        fanout.set("blob", b"x" * 100)
        with fanout.read("blob") as handle:
            assert handle.read() == b"x" * 100
        with pytest.raises(KeyError):
            fanout.read("none")

    def test_fanout_tags_evict_expire_clear(self, fanout: FanoutCache) -> None:
        """evict, expire and clear work over every shard and count what they remove."""
        fanout.create_tag_index()
        for number in range(20):
            fanout.set(number, number, tag="even" if number % 2 == 0 else "odd")
        assert fanout.evict("even") == 10
        assert sorted(fanout) == list(range(1, 20, 2))
        fanout.drop_tag_index()
        fanout.set("short", 1, expire=0.001)
        time.sleep(0.01)
        assert fanout.expire() == 1
        assert fanout.clear() == 10
        assert len(fanout) == 0
        assert fanout.volume() == 0

    def test_fanout_iteration_and_size(self, fanout: FanoutCache) -> None:
        """len, iteration both ways, iterkeys in key order, and volume cover all shards."""
        keys = [f"key-{number:02d}" for number in range(30)]
        for key in keys:
            fanout.set(key, "value")
        assert len(fanout) == 30
        assert sorted(fanout) == keys
        assert list(reversed(fanout)) == list(fanout)[::-1]
        assert list(fanout.iterkeys()) == keys
        assert list(fanout.iterkeys(reverse=True)) == keys[::-1]
        assert fanout.volume() > 30 * len("value")

    def test_fanout_keys_spread_over_shards(self, fanout: FanoutCache) -> None:
        """Keys land in more than one shard directory."""
        for number in range(40):
            fanout.set(number, number)
        fanout.close()
        used = [number for number in range(4) if self._shard_keys(fanout.directory, number)]
        assert len(used) > 1
        everything = [key for number in range(4) for key in self._shard_keys(fanout.directory, number)]
        assert sorted(everything) == list(range(40))

    def test_fanout_stats_and_counters(self, fanout: FanoutCache) -> None:
        """stats() sums hits and misses over shards."""
        fanout.stats(enable=True)
        fanout.set("a", 1)
        fanout.get("a")
        fanout.get("b")
        assert fanout.stats() == (1, 1)
        assert fanout.counters()["hits"] == 1

    def test_fanout_read_that_gives_up_counts_as_a_miss_and_a_timeout(
        self, fanout: FanoutCache, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A get that times out on its shard returns the shaped default, a miss in stats() and a timeout."""
        fanout.stats(enable=True)
        fanout.set("a", 1)
        shard = fanout._shard("a")

        def locked(*args: Any, **kwargs: Any) -> Any:
            raise cachekit.Timeout("held by another writer (simulated)")

        monkeypatch.setattr(shard, "get", locked)
        assert fanout.get("a", "default", expire_time=True, tag=True) == ("default", None, None)
        assert fanout.get("a") is None
        assert fanout.stats() == (0, 2)
        assert fanout.counters()["timeouts"] == 2
        monkeypatch.undo()
        assert fanout.get("a") == 1
        assert fanout.stats() == (1, 2)

    def test_fanout_peekitem_is_refused(self, fanout: FanoutCache) -> None:
        """peekitem has no meaning across shards and says so."""
        with pytest.raises(cachekit.UnsupportedOperation, match="insertion order across shards"):
            fanout.peekitem()

    def test_fanout_check(self, fanout: FanoutCache) -> None:
        """check() on a healthy cache finds nothing."""
        fanout.set("a", 1)
        assert fanout.check() == []

    # -- settings and reopening ----------------------------------------------------------------
    def test_fanout_size_limit_is_split(self, tmp_path: Path) -> None:
        """Each shard gets its part of size_limit, and the total reads back."""
        with FanoutCache(tmp_path / "f", shards=4, store=self.store, size_limit=40_000) as fanout:
            assert fanout.size_limit == 40_000
            assert fanout.reset("size_limit", 80_000) == 80_000
        with cachekit.Cache(tmp_path / "f" / "002", store=self.store) as shard:
            assert shard.size_limit == 20_000
        with FanoutCache(tmp_path / "f", shards=4, store=self.store) as reopened:
            assert reopened.size_limit == 80_000

    def test_fanout_size_limit_holds(self, tmp_path: Path) -> None:
        """Writes beyond size_limit are culled in every shard."""
        with FanoutCache(tmp_path / "f", shards=2, store=self.store, size_limit=20_000) as fanout:
            for number in range(200):
                fanout.set(number, b"x" * 500)
            assert fanout.volume() <= 20_000 + 2 * 10 * 600

    def test_fanout_pickle_reopens_same_directory(self, fanout: FanoutCache) -> None:
        """A pickled FanoutCache reopens the same directory, shard count and store."""
        fanout.set("a", 1)
        copy = pickle.loads(pickle.dumps(fanout))
        try:
            assert copy.directory == fanout.directory
            assert copy.shards == 4
            assert copy.store_name == fanout.store_name
            assert copy["a"] == 1
        finally:
            copy.close()

    def test_fanout_same_shard_in_another_process(self, tmp_path: Path) -> None:
        """A process with another PYTHONHASHSEED, reopening the directory without naming the store,
        finds every key (so chose the same shard)."""
        keys: list[Any] = ["alpha", "beta", ("tuple", 1), 12345, b"bytes", 2.5, frozenset({"x"})]
        with FanoutCache(tmp_path / "f", shards=8, store=self.store) as fanout:
            for number, key in enumerate(keys):
                fanout.set(key, number)
        script = (
            "import sys, cachekit\n"
            f"keys = {keys!r}\n"
            "f = cachekit.FanoutCache(sys.argv[1], shards=8)\n"
            "print(all(f.get(k) == n for n, k in enumerate(keys)))\n"
            "f.close()\n"
        )
        for seed in ("1", "12345"):
            result = subprocess.run(
                [sys.executable, "-c", script, str(tmp_path / "f")],
                env={**os.environ, "PYTHONHASHSEED": seed},
                capture_output=True,
                text=True,
                timeout=_WAIT,
                check=True,
            )
            assert result.stdout.strip() == "True", result.stderr

    # -- transactions, memoize, queues and sub-collections -------------------------------------
    def test_fanout_transact_is_atomic(self, fanout: FanoutCache) -> None:
        """transact() spans every shard; an exception rolls back all of them."""
        with fanout.transact():
            for number in range(10):
                fanout.set(number, number)
        assert len(fanout) == 10

        def fill_then_fail() -> None:
            with fanout.transact():
                for number in range(10, 20):
                    fanout.set(number, number)
                raise RuntimeError("roll back")

        with pytest.raises(RuntimeError):
            fill_then_fail()
        assert len(fanout) == 10

    def test_fanout_memoize(self, fanout: FanoutCache) -> None:
        """memoize computes once per argument."""
        calls: list[int] = []

        @fanout.memoize()
        def double(number: int) -> int:
            calls.append(number)
            return number * 2

        assert [double(1), double(1), double(2)] == [2, 2, 4]
        assert calls == [1, 2]

    def test_fanout_push_pull_order_per_prefix(self, fanout: FanoutCache) -> None:
        """Each queue is an exact FIFO, whatever its prefix."""
        for prefix in ("jobs", "mail", None):
            for number in range(5):
                fanout.push(number, prefix=prefix)
        fanout.push(-1, prefix="jobs", side="front")
        assert fanout.peek("jobs") == ("jobs-499999999999999", -1)
        assert [fanout.pull("jobs")[1] for _ in range(6)] == [-1, 0, 1, 2, 3, 4]
        assert fanout.pull("jobs") == (None, None)
        assert [fanout.pull("mail", side="back")[1] for _ in range(5)] == [4, 3, 2, 1, 0]
        assert [fanout.pull()[1] for _ in range(5)] == [0, 1, 2, 3, 4]
        assert fanout.pull(expire_time=True) == ((None, None), None)

    def test_fanout_sub_collections_use_the_store(self, tmp_path: Path) -> None:
        """cache(), deque() and index() open in their own directories on the store and serializer given."""
        with FanoutCache(tmp_path / "f", shards=2, store=self.store, serializer="json") as fanout:
            sub = fanout.cache("sub/part")
            assert sub.store_name == self.store
            assert sub.serializer == "json"
            assert sub.directory == str(tmp_path / "f" / "cache" / "sub" / "part")
            assert fanout.cache("sub/part") is sub
            assert fanout.cache("other", serializer="pickle").serializer == "pickle"
            deque = fanout.deque("jobs", maxlen=2)
            deque.extend([1, 2, 3])
            assert list(deque) == [2, 3]
            assert deque.cache.store_name == self.store
            index = fanout.index("names")
            index["a"] = 1
            assert index.cache.store_name == self.store
            assert index.cache.serializer == "json"
            assert dict(index) == {"a": 1}
            with pytest.raises(ValueError, match="relative path"):
                fanout.cache("../escape")

    # -- a shard locked by another process -----------------------------------------------------
    def test_fanout_locked_shard_reports_failure_honestly(self, tmp_path: Path) -> None:
        """FanoutCache under a shard held locked (in ``transact()``) by another process: writes to other
        shards succeed, writes to the locked shard give up after ``timeout`` and report failure."""
        directory = tmp_path / "f"
        with FanoutCache(directory, shards=4, store=self.store) as fanout:
            for number in range(40):
                fanout.set(number, number)
        locked_keys = set(self._shard_keys(directory, 0))
        other_keys = set(range(40)) - locked_keys
        assert locked_keys
        assert other_keys
        locked, other = min(locked_keys), min(other_keys)

        context = multiprocessing.get_context("spawn")
        ready, release = context.Event(), context.Event()
        holder = context.Process(target=hold_shard, args=(str(directory / "000"), self.store, ready, release))
        holder.start()
        fanout = FanoutCache(directory, shards=4, store=self.store, timeout=0.05)
        try:
            assert ready.wait(_WAIT), "the holder never locked the shard"
            started = time.monotonic()
            assert fanout.set(locked, "new") is False
            assert time.monotonic() - started < 5
            assert fanout.touch(locked, 100) is False
            assert fanout.incr(locked) is None
            assert fanout.delete(locked) is False
            assert fanout.pop(locked, "default", expire_time=True) == ("default", None)
            # A read either sees the last committed value (both built-in stores read
            # without the writer's lock) or, on a store whose reads wait, gives up
            # with the default in the same shape.
            assert fanout.get(locked, expire_time=True) in ((locked, None), (None, None))
            assert fanout.set(other, "new") is True
            assert fanout.get(other) == "new"
            assert fanout.counters()["timeouts"] >= 4
        finally:
            release.set()
            holder.join(_WAIT)
            if holder.is_alive():
                holder.kill()
        try:
            assert holder.exitcode == 0
            assert fanout.get(locked) == locked
            assert fanout.set(locked, "after") is True
        finally:
            fanout.close()
