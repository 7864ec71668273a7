"""Large values in files, and ``check``."""

from __future__ import annotations

import io
import os
import random
from typing import Any

import pytest

import cachekit

from ._support import CacheFactory, FakeClock, _Harness, _read_all, _Rollback, value_files


class ValueFileContract(_Harness):
    """Large values in files under ``values/``, and ``check`` finding damaged ones."""

    @pytest.fixture
    def files_cache(self, make_cache: CacheFactory, clock: FakeClock) -> cachekit.Cache:
        """A cache that puts payloads of 1 KiB or more in value files."""
        cache = make_cache(clock=clock, disk_min_file_size=1024)
        if not cache.store.capabilities.value_files:
            pytest.skip(f"the {self.store!r} store keeps every value inline")
        return cache

    def test_large_values_live_in_files_and_read_back_identical(self, files_cache: cachekit.Cache) -> None:
        """Values at or above ``disk_min_file_size`` go to files under ``values/`` and read back identical."""
        cache = files_cache
        data = random.Random(4).randbytes(5000)
        text = "ünïcødé " * 500
        numbers = list(range(2000))
        cache.set("bytes", data)
        cache.set("text", text)
        cache.set("object", numbers)
        cache.set("small", b"x" * 10)
        assert len(value_files(cache)) == 3
        assert cache.get("bytes") == data
        assert cache.get("text") == text
        assert cache.get("object") == numbers
        assert _read_all(cache.read("bytes")) == data
        assert _read_all(cache.get("bytes", read=True)) == data

    def test_default_threshold_keeps_small_values_inline(self, make_cache: CacheFactory) -> None:
        """With the default threshold (32 KiB) small values make no file and large ones do."""
        cache = make_cache()
        if not cache.store.capabilities.value_files:
            pytest.skip(f"the {self.store!r} store keeps every value inline")
        cache.set("small", b"x" * 1000)
        assert value_files(cache) == []
        large = random.Random(6).randbytes(40_000)
        cache.set("large", large)
        assert len(value_files(cache)) == 1
        assert cache.get("large") == large

    def test_set_with_read_streams_a_large_file_object(self, files_cache: cachekit.Cache) -> None:
        """``set(read=True)`` copies a large stream to a value file; ``push(read=True)`` does too."""
        cache = files_cache
        data = random.Random(8).randbytes(100_000)
        assert cache.set("streamed", io.BytesIO(data), read=True) is True
        assert cache.get("streamed") == data
        key = cache.push(io.BytesIO(data), read=True)
        assert cache.pull() == (key, data)
        assert len(value_files(cache)) == 1

    @pytest.mark.parametrize(
        "operation",
        ["overwrite", "overwrite-small", "delete", "del", "pop", "clear", "evict", "expire", "pull", "cull"],
    )
    def test_value_file_is_removed_with_its_entry(
        self, files_cache: cachekit.Cache, clock: FakeClock, operation: str
    ) -> None:
        """The value file goes when its entry is replaced, deleted, popped, cleared, evicted, expired or pulled."""
        cache = files_cache
        data = random.Random(9).randbytes(3000)
        key: Any = "key"
        if operation == "pull":
            key = cache.push(data, expire=60, tag="tag")
        else:
            cache.set(key, data, expire=60, tag="tag")
        (path,) = value_files(cache)
        replacement = random.Random(10).randbytes(4000)
        if operation == "overwrite":
            cache.set(key, replacement)
        elif operation == "overwrite-small":
            cache.set(key, b"small")
        elif operation == "delete":
            assert cache.delete(key) is True
        elif operation == "del":
            del cache[key]
        elif operation == "pop":
            assert cache.pop(key) == data
        elif operation == "clear":
            assert cache.clear() == 1
        elif operation == "evict":
            assert cache.evict("tag") == 1
        elif operation == "expire":
            clock.advance(60)
            assert cache.expire() == 1
        elif operation == "pull":
            assert cache.pull() == (key, data)
        else:
            cache.reset("size_limit", 5000)
            cache.set("other", replacement)
            cache.cull()
            assert key not in cache
        assert not os.path.exists(path)
        if operation == "overwrite":
            assert cache.get(key) == replacement
            assert len(value_files(cache)) == 1
        elif operation == "cull":
            assert cache.get("other") == replacement
        else:
            assert value_files(cache) == []

    def test_a_missing_value_file_is_a_miss_that_check_reports_and_fixes(self, files_cache: cachekit.Cache) -> None:
        """A value file deleted by hand makes its key a miss; ``check`` reports it and ``check(fix=True)`` drops it."""
        cache = files_cache
        cache.set("broken", b"b" * 2000)
        (path,) = value_files(cache)
        cache.set("kept", b"k" * 2000)
        assert cache.check() == []
        os.remove(path)
        assert cache.get("broken", "default") == "default"
        problems = cache.check()
        assert len(problems) == 1
        assert os.path.basename(path) in str(problems[0].message)
        assert len(cache) == 2
        assert cache.check(fix=True)
        assert list(cache) == ["kept"]
        assert cache.get("kept") == b"k" * 2000
        assert cache.check() == []

    def test_rolled_back_transaction_leaves_no_value_file(self, files_cache: cachekit.Cache) -> None:
        """Value files written inside a transaction that rolls back are removed."""
        cache = files_cache

        def fail() -> None:
            with cache.transact():
                cache.set("large", b"x" * 5000)
                cache.push(b"y" * 5000)
                raise _Rollback

        with pytest.raises(_Rollback):
            fail()
        assert len(cache) == 0
        assert value_files(cache) == []
