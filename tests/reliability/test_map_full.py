"""Scenario 5: the LMDB map grows under concurrent writers, and at its ceiling fails cleanly.

LMDB only: the map is a fixed-size memory mapping that cachekit doubles when a
write finds it full, from ``lmdb_map_size`` up to ``map_size_limit``; past the
limit a write raises ``cachekit.StorageFull`` (``docs/stores.md``, "The map
and its ceiling" and "When the map is full").
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
from pathlib import Path
from typing import Any

import _workers
import pytest
from conftest import scaled

import cachekit
from cachekit.plugins import Order

#: The long mode (CACHEKIT_RELIABILITY=long) runs for minutes: it needs more than pytest-timeout's 120 s.
pytestmark = pytest.mark.timeout(scaled(120, 1800))

KIB = 1024
MIB = 2**20


@pytest.fixture
def lmdb_store(store: str) -> str:
    if store != "lmdb":
        pytest.skip("map growth is specific to LMDB")
    return store


def map_size(cache: cachekit.Cache) -> int:
    return int(cache.store._shared.open_handles().env.info()["map_size"])  # type: ignore[attr-defined]


def volume_of(cache: cachekit.Cache) -> int:
    """What the entries themselves add up to (key and payload bytes)."""
    with cache.store.read():
        return sum(entry.size for entry in cache.store.scan(Order.INSERTION))


def run_writers(
    directory: Path, workers: int, count: int, settings: dict[str, Any], large_share: float, logs: Path
) -> tuple[_workers.Model, dict[str, Any]]:
    """Run ``workers`` map writers at once, with a reader that opened the cache before them;
    return the model their logs give and the reader's outcome."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(workers)
    stop, outcome = logs / "stop", logs / "reader.json"
    keys = [f"w{worker}-{index}" for worker in range(workers) for index in range(count)]
    with _workers.cleaned_up([]) as processes:
        ready = context.Event()
        reader = context.Process(
            target=_workers.watch,
            args=(str(directory), "lmdb", settings, keys, _workers.WAIT, str(stop), str(outcome), ready),
        )
        reader.start()
        processes.append(reader)
        assert ready.wait(_workers.WAIT), "the reader did not open the cache"
        writers = [
            context.Process(
                target=_workers.map_writer,
                args=(str(directory), worker, count, settings, str(logs / f"w{worker}"), start, large_share),
            )
            for worker in range(workers)
        ]
        processes.extend(writers)
        for process in writers:
            process.start()
        hung = _workers.finish(writers, 90)
        stop.touch()
        hung += _workers.finish([reader], _workers.WAIT)
        assert not hung, hung
        assert [process.exitcode for process in processes] == [0] * len(processes)
    model = _workers.Model()
    for worker in range(workers):
        model.absorb(_workers.read_log(logs / f"w{worker}"))
    return model, json.loads(outcome.read_text())


@pytest.mark.slow
def test_the_map_grows_under_four_writer_processes(lmdb_store: str, tmp_path: Path) -> None:
    """From a 64 KiB map, four processes writing at once (a tenth of the values in value files) and a
    reader that opened the cache before any growth: every acknowledged write reads back, the reader
    never sees a damaged value, the map doubled its way up, and check() is clean."""
    settings: dict[str, Any] = {"lmdb_map_size": "64KiB", "map_size_limit": "256MiB"}
    directory = tmp_path / "cache"
    cache = cachekit.Cache(directory, store="lmdb", **settings)
    try:
        assert map_size(cache) == 64 * KIB
        count = scaled(400, 4000)
        model, reader = run_writers(directory, 4, count, settings, 0.1, tmp_path)
        assert model.errors == []
        assert model.storage_full == []
        assert model.acknowledged == 4 * count
        problems, lost = model.compare(cache)
        assert (problems, lost) == ([], 0)
        assert cache.get("counter") == model.increments == 4 * ((count + 3) // 4)
        assert len(cache) == 4 * count + 1
        assert cache.volume() == volume_of(cache)
        grown = map_size(cache)
        assert grown > 64 * KIB
        assert grown & (grown - 1) == 0, f"the map did not grow by doubling: {grown} bytes"
        assert os.path.getsize(directory / "data.mdb") <= grown
        assert reader["problems"] == []
        assert reader["found"] > 0
        assert cache.check() == []
        assert _workers.unreferenced_value_files(cache) == set()
        print(
            f"\n4 writers: {model.acknowledged} writes acknowledged, {lost} lost; map 64 KiB -> {grown // KIB} KiB; "
            f"reader: {reader['reads']} reads, {reader['found']} found"
        )
    finally:
        cache.close()


def fill(cache: cachekit.Cache, prefix: str, rng: random.Random, written: dict[str, bytes]) -> cachekit.StorageFull:
    """Write self-checking values (a fifth in value files) until the map is full; return the error."""
    for index in range(100_000):
        key = f"{prefix}-{index}"
        value = _workers.make_value(key, prefix, _workers.value_size(rng), rng)
        try:
            assert cache.set(key, value) is True
        except cachekit.StorageFull as error:
            assert key not in cache, "the write that failed left its entry"
            return error
        written[key] = value
    raise AssertionError("the map never filled up")


def assert_consistent(cache: cachekit.Cache, written: dict[str, bytes]) -> None:
    """Exactly ``written`` is in the cache, byte for byte, and the totals and files agree with it."""
    for key, value in written.items():
        assert cache.get(key) == value, key
    assert len(cache) == len(written)
    assert cache.volume() == volume_of(cache) == sum(1 + len(key) + len(value) for key, value in written.items())
    assert _workers.unreferenced_value_files(cache) == set()
    assert cache.check() == []


def incr_until_full(cache: cachekit.Cache) -> list[str]:
    """``incr`` new counters until the map is full; return those created."""
    counters: list[str] = []
    for index in range(1000):
        try:
            cache.incr(f"counter-{index}")
        except cachekit.StorageFull:
            return counters
        counters.append(f"counter-{index}")
    raise AssertionError("the map never filled up")


def too_big_transaction(cache: cachekit.Cache, rng: random.Random) -> None:
    """A transaction that deletes an entry, then writes more than the map can hold."""
    with cache.transact():
        cache.delete("first-0")
        for index in range(1000):
            cache.set(f"batch-{index}", rng.randbytes(1500))


@pytest.mark.slow
def test_at_the_ceiling_writes_fail_cleanly_and_work_again(lmdb_store: str, tmp_path: Path) -> None:
    """With nothing to evict, a write past map_size_limit raises StorageFull naming the setting and leaves
    nothing behind (no entry, no value file, totals unchanged); a transaction crossing the ceiling
    keeps none of its changes; writes work again after delete, after clear() and with a larger limit."""
    directory = tmp_path / "cache"
    rng = random.Random(5)
    written: dict[str, bytes] = {}
    settings: dict[str, Any] = {"lmdb_map_size": "64KiB", "map_size_limit": "1MiB", "eviction_policy": "none"}
    cache = cachekit.Cache(directory, store="lmdb", **settings)
    try:
        error = fill(cache, "first", rng, written)
        assert "map_size_limit" in str(error)
        assert "data.mdb" in str(error)
        assert len(written) > 50
        assert map_size(cache) == MIB
        assert_consistent(cache, written)
        counters = incr_until_full(cache)
        assert f"counter-{len(counters)}" not in cache
        for counter in counters:
            assert cache.pop(counter) == 1
        assert_consistent(cache, written)

        with pytest.raises(cachekit.StorageFull):
            too_big_transaction(cache, rng)
        assert not [key for key in cache if not key.startswith("first-")], "a rolled-back batch left entries"
        assert_consistent(cache, written)

        for key in list(written)[:20]:
            assert cache.delete(key) is True
            del written[key]
        again = fill(cache, "after-delete", rng, written)
        assert "map_size_limit" in str(again)
        assert any(key.startswith("after-delete-") for key in written)
        assert_consistent(cache, written)

        assert cache.clear() == len(written)
        written.clear()
        assert_consistent(cache, written)
        fill(cache, "after-clear", rng, written)
        assert len(written) > 50
        assert_consistent(cache, written)
    finally:
        cache.close()

    larger = cachekit.Cache(directory, store="lmdb", **{**settings, "map_size_limit": "4MiB"})
    try:
        before = len(written)
        fill(larger, "larger", rng, written)
        assert len(written) > 2 * before
        assert map_size(larger) == 4 * MIB
        assert_consistent(larger, written)
    finally:
        larger.close()


def write_at_the_ceiling(cache: cachekit.Cache, writes: int, rng: random.Random) -> tuple[dict[str, bytes], int]:
    """Rewrite 2000 keys ``writes`` times in all with self-checking values; each ``set`` that returns True
    must read back at once.  Return the last acknowledged value of each key and how many writes raised
    ``StorageFull``."""
    acknowledged: dict[str, bytes] = {}
    refused = 0
    for index in range(writes):
        key = f"key-{index % 2000}"
        value = _workers.make_value(key, str(index), _workers.value_size(rng), rng)
        try:
            stored = cache.set(key, value)
        except cachekit.StorageFull as error:
            failure = str(error)
        else:
            failure = ""
            assert stored is True
        if failure:
            assert "map_size_limit" in failure
            assert cache.get(key) != value
            refused += 1
            continue
        acknowledged[key] = value
        assert cache.get(key) == value, f"{key} did not read back right after set() returned True"
    return acknowledged, refused


@pytest.mark.slow
def test_at_the_ceiling_set_makes_room_and_keeps_what_it_acknowledged(lmdb_store: str, tmp_path: Path) -> None:
    """With an evicting policy but a size_limit far beyond what the map holds, writes past the ceiling
    make room by evicting: each set that returned True reads back at once, every key holds its last
    acknowledged value or nothing (evicted), no entry is left without its value file, and removals
    still work.  A set may still raise StorageFull, as documented, when the room made was not enough."""
    settings: dict[str, Any] = {"lmdb_map_size": "64KiB", "map_size_limit": "1MiB"}
    directory = tmp_path / "cache"
    writes = scaled(3000, 20000)
    with cachekit.Cache(directory, store="lmdb", **settings) as cache:
        acknowledged, refused = write_at_the_ceiling(cache, writes, random.Random(3))
        lost = [key for key, value in acknowledged.items() if cache.get(key) not in (value, None)]
        assert lost == []
        assert cache.counters()["evictions"] > 0
        assert cache.volume() == volume_of(cache)
        assert cache.check() == []
        assert _workers.unreferenced_value_files(cache) == set()
        try:
            cache.clear()
        except cachekit.StorageFull as error:
            reserve = str(error)
        else:
            reserve = "left"
        # Documented: writing on at the ceiling may use up the reserve kept for removals, and then even
        # clear() fails; the way out is to reopen the cache with a larger map_size_limit.
        assert reserve == "left" or "reserve for removals is used up" in reserve
    with cachekit.Cache(directory, store="lmdb", **{**settings, "map_size_limit": "2MiB"}) as cache:
        cache.clear()
        assert len(cache) == cache.volume() == 0
        assert cache.set("after clear()", b"x" * 1000) is True
        assert cache.check() == []
        assert _workers.unreferenced_value_files(cache) == set()
    print(
        f"\nset at the ceiling: {writes} writes, {refused} raised StorageFull, {len(lost)} acknowledged lost; "
        f"the reserve for removals was {'left' if reserve == 'left' else 'used up'}"
    )


@pytest.mark.slow
def test_a_size_limit_the_map_can_hold_never_reaches_the_ceiling(lmdb_store: str, tmp_path: Path) -> None:
    """With size_limit sized as docs/stores.md advises (the map at least twice size_limit plus 300 bytes
    an entry), culling keeps the map within map_size_limit: no write ever raises StorageFull."""
    settings: dict[str, Any] = {"lmdb_map_size": "64KiB", "map_size_limit": "1MiB", "size_limit": "256KiB"}
    with cachekit.Cache(tmp_path / "cache", store="lmdb", **settings) as cache:
        _, refused = write_at_the_ceiling(cache, scaled(3000, 20000), random.Random(4))
        assert refused == 0
        assert cache.volume() <= 256 * KIB + 3 * _workers.LARGE
        assert cache.check() == []
        assert _workers.unreferenced_value_files(cache) == set()


@pytest.mark.slow
def test_four_writer_processes_reach_the_ceiling(lmdb_store: str, tmp_path: Path) -> None:
    """Four processes writing into a map capped at 1 MiB, with nothing to evict: each stops at a clean
    StorageFull, every write acknowledged before it reads back, nothing half-written is left, and
    removing entries makes writes possible again."""
    settings: dict[str, Any] = {"lmdb_map_size": "64KiB", "map_size_limit": "1MiB", "eviction_policy": "none"}
    directory = tmp_path / "cache"
    cache = cachekit.Cache(directory, store="lmdb", **settings)
    try:
        model, reader = run_writers(directory, 4, 2000, settings, 0.2, tmp_path)
        assert model.errors == []
        assert len(model.storage_full) == 4, "every writer should have reached the ceiling"
        assert all("map_size_limit" in message for message in model.storage_full)
        cut_short = [
            fields[1]
            for worker in range(4)
            for fields in _workers.read_log(tmp_path / f"w{worker}")[-2:]
            if fields[0] == "S"
        ]
        assert len(cut_short) == 4
        assert not [key for key in cut_short if key in cache], "a write that raised StorageFull left its entry"
        problems, lost = model.compare(cache)
        assert (problems, lost) == ([], 0)
        present = sum(1 for allowed in model.values.values() if allowed != {None})
        assert len(cache) == present + ("counter" in cache)
        assert cache.volume() == volume_of(cache)
        assert reader["problems"] == []
        assert cache.check() == []
        assert _workers.unreferenced_value_files(cache) == set()
        for key in [key for key in cache if key != "counter"][:50]:
            cache.delete(key)
        assert cache.set("after the ceiling", b"x" * 500) is True
        assert cache.check() == []
        print(
            f"\n4 writers at the ceiling: {model.acknowledged} writes acknowledged, {lost} lost, "
            f"{present} entries when the map was full"
        )
    finally:
        cache.close()
