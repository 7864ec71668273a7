"""Scenario 9: bad input (RELIABILITY.md section 4(g)), on every store and every serializer it concerns.

Each bad call must raise a clear exception (its type, and a message naming the
argument or the problem) *before* anything changes: the cache's entries, its
length, ``volume()``, its counters and its files are compared before and after.
``tests/test_faults.py`` checks a few of these on the default store only, by
looking at one value; here every case runs on every store against a full
snapshot of the cache.
"""

from __future__ import annotations

import datetime
import io
import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _faults import snapshot

import cachekit

Call = Callable[[Any], object]
"""A call on a cache (typed loosely: the arguments are wrong on purpose)."""


def _recursive_list() -> list[Any]:
    looped: list[Any] = []
    looped.append(looped)
    return looped


def _generator() -> Iterator[int]:
    yield 1


def _with_open_file(use: Callable[[object], object]) -> object:
    with open(os.devnull, encoding="utf-8") as file:
        return use(file)


#: (call, exception, words the message must contain), for a cache with the default (pickle) serializer.
BAD_CALLS: dict[str, tuple[Call, type[Exception], str]] = {
    # expire and timeouts: bools, strings, NaN, negative numbers, dates
    "set-expire-True": (lambda c: c.set("present", 1, expire=True), TypeError, "expire"),
    "set-expire-False": (lambda c: c.set("present", 1, expire=False), TypeError, "expire"),
    "set-expire-str": (lambda c: c.set("present", 1, expire="10"), TypeError, "expire"),
    "set-expire-nan": (lambda c: c.set("present", 1, expire=math.nan), ValueError, "expire"),
    "set-expire-negative": (lambda c: c.set("present", 1, expire=-1), ValueError, "expire"),
    "set-expire--inf": (lambda c: c.set("present", 1, expire=-math.inf), ValueError, "expire"),
    "set-expire-datetime": (lambda c: c.set("present", 1, expire=datetime.datetime(2000, 1, 1)), TypeError, "expire"),
    "set-expire-timedelta": (lambda c: c.set("present", 1, expire=datetime.timedelta(days=1)), TypeError, "expire"),
    "set-large-expire-nan": (lambda c: c.set("present", b"x" * 50_000, expire=math.nan), ValueError, "expire"),
    "add-expire-True": (lambda c: c.add("absent", 1, expire=True), TypeError, "expire"),
    "touch-expire-negative": (lambda c: c.touch("present", expire=-5), ValueError, "expire"),
    "touch-expire-nan": (lambda c: c.touch("present", expire=math.nan), ValueError, "expire"),
    "push-expire-nan": (lambda c: c.push(b"x" * 50_000, expire=math.nan), ValueError, "expire"),
    "expire-now-True": (lambda c: c.expire(now=True), TypeError, "now"),
    "expire-now-nan": (lambda c: c.expire(now=math.nan), TypeError, "now"),
    "memoize-expire-negative": (lambda c: c.memoize(expire=-1), ValueError, "expire"),
    # incr and decr
    "incr-delta-True": (lambda c: c.incr("counter", True), TypeError, "delta"),
    "incr-delta-str": (lambda c: c.incr("counter", "1"), TypeError, "delta"),
    "incr-default-False": (lambda c: c.incr("absent", 1, False), TypeError, "default"),
    "decr-delta-True": (lambda c: c.decr("counter", True), TypeError, "delta"),
    "incr-a-str-value": (lambda c: c.incr("present"), TypeError, "not a number"),
    "incr-a-file-value": (lambda c: c.incr("large"), TypeError, "not a number"),
    "incr-missing-no-default": (lambda c: c.incr("absent", default=None), KeyError, "absent"),
    # values the serializer cannot encode, small and large
    "set-lambda": (lambda c: c.set("present", lambda: 1), cachekit.SerializationError, "cannot encode a function"),
    "set-lock": (lambda c: c.set("present", threading.Lock()), cachekit.SerializationError, "cannot encode a lock"),
    "set-generator": (lambda c: c.set("present", _generator()), cachekit.SerializationError, "generator"),
    "set-open-file": (lambda c: _with_open_file(lambda f: c.set("present", f)), cachekit.SerializationError, "cannot"),
    "set-memoryview": (lambda c: c.set("present", memoryview(b"x")), cachekit.SerializationError, "memoryview"),
    "add-lambda": (lambda c: c.add("absent", lambda: 1), cachekit.SerializationError, "function"),
    "push-lambda": (lambda c: c.push(lambda: 1, prefix="queue"), cachekit.SerializationError, "function"),
    "set-large-then-bad-tag": (
        lambda c: c.set("present", b"x" * 50_000, tag=lambda: 1),
        cachekit.SerializationError,
        "function",
    ),
    "set-bad-key": (lambda c: c.set(threading.Lock(), 1), cachekit.SerializationError, "lock"),
    "get-bad-key": (lambda c: c.get(threading.Lock()), cachekit.SerializationError, "lock"),
    "delete-bad-key": (lambda c: c.delete(threading.Lock()), cachekit.SerializationError, "lock"),
    "evict-bad-tag": (lambda c: c.evict(threading.Lock()), cachekit.SerializationError, "lock"),
    # wrong types and values of other arguments
    "set-read-text-stream": (lambda c: c.set("present", io.StringIO("text"), read=True), TypeError, "binary file"),
    "set-read-not-a-stream": (lambda c: c.set("present", b"bytes", read=True), TypeError, "binary file"),
    "push-bad-side": (lambda c: c.push(1, side="middle"), ValueError, "side"),
    "push-bad-prefix": (lambda c: c.push(1, prefix=5), TypeError, "prefix"),
    "pull-bad-prefix": (lambda c: c.pull(prefix=b"queue"), TypeError, "prefix"),
    "peek-bad-side": (lambda c: c.peek("queue", side="up"), ValueError, "side"),
    "reset-size_limit-negative": (lambda c: c.reset("size_limit", -1), cachekit.ConfigError, "size_limit"),
    "reset-size_limit-nan": (lambda c: c.reset("size_limit", math.nan), cachekit.ConfigError, "size_limit"),
    "reset-size_limit-True": (lambda c: c.reset("size_limit", True), cachekit.ConfigError, "size_limit"),
    "reset-cull_limit-nan": (lambda c: c.reset("cull_limit", math.nan), cachekit.ConfigError, "cull_limit"),
    "reset-unknown-policy": (lambda c: c.reset("eviction_policy", "random-ish"), cachekit.ConfigError, "random-ish"),
    "reset-unknown-serializer": (lambda c: c.reset("serializer", "yaml"), cachekit.ConfigError, "yaml"),
    "reset-unknown-setting": (lambda c: c.reset("colour", "blue"), cachekit.ConfigError, "colour"),
    "reset-durability": (lambda c: c.reset("durability", "full"), cachekit.ConfigError, "durability"),
}

#: Values each alternative serializer cannot encode: (value, words of the message).
UNENCODABLE: dict[str, list[tuple[object, str]]] = {
    "json": [
        ({1, 2}, "set"),
        (datetime.datetime(2024, 1, 1), "datetime"),
        ([b"bytes"], "bytes"),
        ([math.nan], "Out of range float"),
        ({"a": math.inf}, "Out of range float"),
        ({(1, 2): "tuple key"}, "keys must be"),
        (_recursive_list(), "Circular reference"),
    ],
    "msgpack": [
        ({1, 2}, "set"),
        (datetime.datetime(2024, 1, 1), "datetime"),
        ([2**64], "out of range"),
        ([-(2**70)], "out of range"),
    ],
    "raw": [([1], "list"), (None, "NoneType"), (True, "bool"), ({"a": 1}, "dict")],
}


def _populate(cache: cachekit.Cache) -> None:
    """Entries of every kind that a bad call could disturb: inline, in a value file, tagged, expiring,
    a counter and a queue."""
    cache.set("present", "value", tag="tag")
    cache.set("large", b"L" * 50_000)
    cache.set("expiring", 1.5, expire=3600)
    cache.set("counter", 41)
    cache.push("first", prefix="queue")


@pytest.fixture
def cache(store: str, tmp_path: Path) -> Iterator[cachekit.Cache]:
    with cachekit.Cache(tmp_path / "cache", store=store) as opened:
        _populate(opened)
        yield opened


@pytest.mark.parametrize("case", BAD_CALLS)
def test_a_bad_call_raises_clearly_and_changes_nothing(cache: cachekit.Cache, case: str) -> None:
    """The call raises the documented exception naming the problem, and the cache is exactly as before."""
    call, kind, words = BAD_CALLS[case]
    before = snapshot(cache)
    with pytest.raises(kind) as raised:
        call(cache)
    assert words.lower() in str(raised.value).lower(), str(raised.value)
    assert snapshot(cache) == before


@pytest.mark.parametrize(
    ("serializer", "value", "words"),
    [(name, value, words) for name, cases in UNENCODABLE.items() for value, words in cases],
    ids=[
        f"{name}-{type(value).__name__}-{index}"
        for name, cases in UNENCODABLE.items()
        for index, (value, _) in enumerate(cases)
    ],
)
def test_a_value_the_serializer_cannot_encode_changes_nothing(
    store: str, tmp_path: Path, serializer: str, value: object, words: str
) -> None:
    """json, msgpack and raw refuse what they cannot represent with SerializationError (also a TypeError),
    chained to the cause, naming the serializer; the previous value and every file stay as they were."""
    with cachekit.Cache(tmp_path / "cache", store=store, serializer=serializer) as cache:
        _populate(cache)
        before = snapshot(cache)
        calls: list[Callable[[], object]] = [lambda: cache.set("present", value), lambda: cache.add("absent", value)]
        for call in calls:
            with pytest.raises(cachekit.SerializationError) as raised:
                call()
            message = str(raised.value)
            assert f"the {serializer} serializer cannot encode" in message
            assert words.lower() in message.lower(), message
            assert isinstance(raised.value, TypeError)
            assert raised.value.__cause__ is not None
        assert snapshot(cache) == before


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("timeout", True),
        ("timeout", math.nan),
        ("timeout", -1),
        ("size_limit", -1),
        ("size_limit", math.nan),
        ("size_limit", True),
        ("cull_limit", -1),
        ("cull_limit", 1.5),
        ("disk_min_file_size", -1),
        ("eviction_policy", "nope"),
        ("serializer", "nope"),
        ("statistics", "maybe"),
        ("durability", "eventually"),
        ("secret_key", "short"),
        ("secret_key", 12345),
        ("allow_insecure_directory", "perhaps"),
        ("no_such_setting", 1),
    ],
)
def test_a_bad_setting_is_refused_before_the_directory_is_touched(
    store: str, tmp_path: Path, setting: str, value: object
) -> None:
    """Opening with a bad setting raises ConfigError (also a ValueError) naming it, and creates nothing."""
    directory = tmp_path / "new" / "cache"
    options: dict[str, Any] = {setting: value}
    with pytest.raises(cachekit.ConfigError, match=f"{setting}|{setting.replace('_', ' ')}") as raised:
        cachekit.Cache(directory, store=store, **options)
    assert isinstance(raised.value, ValueError)
    assert not (tmp_path / "new").exists()


def test_size_limit_zero_refuses_every_value(cache: cachekit.Cache) -> None:
    """size_limit=0 is accepted and refuses every new value (set and add return False, push None), counted
    as refusals; what is stored already stays readable."""
    cache.reset("size_limit", 0)
    before = snapshot(cache)
    assert cache.set("new", "x") is False
    assert cache.add("new", b"y" * 50_000) is False
    assert cache.push("second", prefix="queue") is None
    after = snapshot(cache)
    assert after["counters"]["refusals"] == before["counters"]["refusals"] + 3
    del after["counters"], before["counters"]
    assert after == before
    assert cache.get("present") == "value"


def test_a_value_larger_than_size_limit_is_refused_not_stored_then_evicted(cache: cachekit.Cache) -> None:
    """A value bigger than size_limit: set returns False, the previous value under the key stays, nothing
    else is evicted for it, and no value file is left behind."""
    cache.reset("size_limit", 60_000)
    before = snapshot(cache)
    assert cache.set("present", b"z" * 70_000) is False
    after = snapshot(cache)
    assert after["counters"]["refusals"] == before["counters"]["refusals"] + 1
    assert after["counters"]["evictions"] == before["counters"]["evictions"]
    del after["counters"], before["counters"]
    assert after == before


@pytest.mark.parametrize(
    "huge_key",
    ["k" * 2**20, b"k" * 10 * 2**20, ("nested", "t" * 100_000), "\x00../../etc/passwd\n\r", "e\u0301"],
    ids=["1MB-str", "10MB-bytes", "tuple-100k", "control-and-traversal", "nfd"],
)
def test_huge_and_odd_keys_work_everywhere(cache: cachekit.Cache, huge_key: object) -> None:
    """Keys of megabytes, with NUL, newlines or ``../``, or in Unicode NFD, work as keys (no file name comes
    from a key), and stay distinct from their look-alikes."""
    assert cache.set(huge_key, "stored") is True
    assert cache.get(huge_key) == "stored"
    assert huge_key in cache
    assert cache.incr(("count", huge_key)) == 1
    if huge_key == "e\u0301":
        assert "\u00e9" not in cache  # the NFC twin is another key
    assert cache.delete(huge_key) is True
    assert huge_key not in cache
    assert [str(warning.message) for warning in cache.check()] == []


def test_int_float_and_bool_keys(cache: cachekit.Cache) -> None:
    """1 and 1.0 are one key, True another (documented in docs/api.md)."""
    cache.set(1, "one")
    assert cache.get(1.0) == "one"
    assert cache.get(True) is None
    cache.set(True, "true")
    assert (cache[1], cache[True]) == ("one", "true")


def test_incr_beyond_64_bits_is_exact(cache: cachekit.Cache) -> None:
    """Counters are Python ints: incr past 2**63 (SQLite's integer range) is exact, not an overflow."""
    cache.set("big", 2**63 - 1)
    assert cache.incr("big") == 2**63
    assert cache.decr("big", 2**64) == 2**63 - 2**64
    assert cache.get("big") == -(2**63)
