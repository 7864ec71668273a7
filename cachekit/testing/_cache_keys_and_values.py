"""python-diskcache's API, part two: the kinds of keys and values, and tags."""

from __future__ import annotations

import math
import threading
from decimal import Decimal
from typing import Any

import pytest

import cachekit

from ._support import CacheFactory, Point, _Harness, _short_id, value_files


class _CacheKeysAndValuesContract(_Harness):
    """Part of :class:`CacheContract`: every kind of key and value, and tags."""

    # -- keys and values ---------------------------------------------------------------------
    @pytest.mark.parametrize(
        "key",
        [
            "text",
            "",
            "ünïcødé ✓",
            b"bytes",
            b"",
            b"\x00\xff",
            0,
            42,
            -7,
            2**64,
            -(2**80),
            1.5,
            -2.25,
            (),
            ("a", 1),
            ("nested", (b"x", 2.5, None), 3),
            None,
            True,
            False,
            frozenset({1, 2}),
        ],
        ids=_short_id,
    )
    def test_keys_of_every_supported_kind(self, cache: cachekit.Cache, key: Any) -> None:
        """str, bytes, int, float, tuples, None, bool and serialized keys store, read, iterate and delete."""
        assert cache.set(key, "value") is True
        assert cache.get(key) == "value"
        assert key in cache
        assert cache[key] == "value"
        (stored,) = list(cache)
        assert stored == key
        assert type(stored) is type(key)
        assert cache.pop(key) == "value"
        assert len(cache) == 0

    def test_an_integral_float_is_the_same_key_as_the_int(self, cache: cachekit.Cache) -> None:
        """``1`` and ``1.0`` name the same entry, as in python-diskcache; ``2.5`` does not match ``2``."""
        cache.set(1, "int")
        assert cache.get(1.0) == "int"
        cache.set(1.0, "float")
        assert len(cache) == 1
        assert cache.get(1) == "float"
        cache.set(2.5, "fraction")
        assert cache.get(2) is None
        assert len(cache) == 2

    def test_bools_are_keys_distinct_from_ints(self, cache: cachekit.Cache) -> None:
        """``True`` and ``False`` are keys of their own, distinct from ``1`` and ``0``."""
        cache.set(1, "one")
        cache.set(True, "true")
        cache.set(0, "zero")
        cache.set(False, "false")
        assert len(cache) == 4
        assert [cache.get(key) for key in (1, True, 0, False)] == ["one", "true", "zero", "false"]
        assert [type(key) for key in cache] == [int, bool, int, bool]

    @pytest.mark.parametrize(
        "value",
        [
            None,
            True,
            False,
            0,
            -1,
            2**100,
            -(2**70),
            0.0,
            -0.0,
            1.5,
            math.inf,
            -math.inf,
            "",
            "text",
            "ünïcødé ✓",
            "x" * 5000,
            b"",
            b"\x00\xff" * 10,
            bytearray(b"mutable"),
            [1, "two", [3.0]],
            {"a": {"b": [1, 2]}, 1: None},
            (1, (2, "3")),
            {1, 2, 3},
            frozenset({"x"}),
            Point(1, 2),
            Decimal("1.10"),
            complex(1, -1),
        ],
        ids=_short_id,
    )
    def test_values_of_every_kind_round_trip(self, cache: cachekit.Cache, value: Any) -> None:
        """Native values and pickled objects read back equal, of the same type."""
        cache.set("key", value)
        stored = cache.get("key")
        assert type(stored) is type(value)
        assert stored == value
        assert repr(stored) == repr(value)

    def test_an_unserializable_value_raises_a_clear_error_and_stores_nothing(self, make_cache: CacheFactory) -> None:
        """A value the serializer cannot encode raises ``SerializationError``; nothing else changes."""
        cache = make_cache(disk_min_file_size=1024)
        cache.set("kept", "value")
        with pytest.raises(cachekit.SerializationError):
            cache.set("bad", lambda: None)
        with pytest.raises(cachekit.SerializationError):
            cache.add("bad", [threading.Lock()] * 1000)
        with pytest.raises(cachekit.SerializationError):
            cache.push(lambda: None)
        assert list(cache) == ["kept"]
        assert cache["kept"] == "value"
        assert value_files(cache) == []

    def test_long_keys_work_or_raise_a_clear_error(self, cache: cachekit.Cache) -> None:
        """A key of several KiB is stored and read back, or refused with a cachekit error; other entries stay."""
        cache.set("kept", 1)
        for key in ("k" * 5000, b"\xff" * 3000, ("t" * 2000, 1)):
            try:
                stored = cache.set(key, "long")
            except cachekit.CachekitError:
                continue  # refused clearly; the final check shows that nothing was stored
            assert stored is True
            assert cache[key] == "long"
            assert cache.delete(key) is True
        assert list(cache) == ["kept"]

    def test_nan_round_trips(self, cache: cachekit.Cache) -> None:
        """A NaN float value reads back as NaN."""
        cache.set("nan", math.nan)
        assert math.isnan(cache.get("nan"))

    # -- tags ----------------------------------------------------------------------------------
    def test_evict_removes_exactly_the_entries_with_the_tag(self, cache: cachekit.Cache) -> None:
        """``evict(tag)`` removes the entries with that tag only and returns how many."""
        cache.set("a", 1, tag="red")
        cache.set("b", 2, tag="blue")
        cache.set("c", 3, tag="red")
        cache.set("d", 4)
        cache.set("e", 5, tag=("group", 1))
        assert cache.get("a", tag=True) == (1, "red")
        assert cache.get("e", tag=True) == (5, ("group", 1))
        assert cache.evict("red") == 2
        assert list(cache) == ["b", "d", "e"]
        assert cache.evict("red") == 0
        assert cache.evict(("group", 1)) == 1
        assert cache.evict("green") == 0
        assert list(cache) == ["b", "d"]

    def test_tag_index_keeps_results_the_same(self, cache: cachekit.Cache) -> None:
        """Creating and dropping the tag index changes neither what is stored nor what ``evict`` removes."""
        for index in range(750):
            cache.set(index, index, tag=f"tag-{index % 3}")
        cache.create_tag_index()
        indexed = cache.tag_index
        assert indexed is True
        assert cache.get(4, tag=True) == (4, "tag-1")
        assert cache.evict("tag-1") == 250
        cache.drop_tag_index()
        assert cache.tag_index is False
        assert cache.evict("tag-2") == 250
        assert list(cache) == list(range(0, 750, 3))
