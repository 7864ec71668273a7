"""Scenario 10: model checking and decoder fuzzing.

1. A hypothesis state machine drives a ``Cache`` (with a fake clock) and a dict
   model through set, get, delete, add, incr, touch, expire, pop, push, pull and
   clock steps, on every store:

   - *exact*: no culling (``cull_limit=0``), so the model knows every entry on
     disk, expired ones included, and every result must match it exactly;
   - *evicting*: a small ``size_limit`` with the default culling; the model is
     loose (an entry may have been evicted), and what must hold is what the docs
     promise: never a wrong value, never an expired one, nothing comes back
     after it was removed, the volume within ``size_limit`` give or take one cull
     step after every write and within it after ``cull()``.

2. A decoder fuzz for every installed serializer, the native kinds, signed
   payloads, the key codec and the LMDB record decoder: random bytes and
   mutations of valid encodings give a value or a clear decode error
   (``SerializationError``, the LMDB store's ``RecordError``), nothing else; a
   mutated signed payload never decodes to anything.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import hypothesis.strategies as st
import pytest
from conftest import scaled
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import cachekit
import cachekit.plugins
from cachekit import SerializationError
from cachekit._keys import KeyCodec
from cachekit._registry import registry
from cachekit._values import ValueCodec
from cachekit.plugins import Entry
from cachekit.testing import FakeClock

QUEUE_START = 500_000_000_000_000
MISSING = object()

KEYS = st.sampled_from(["a", "b", "c", "d", 1, 2.5, ("t", 1), b"k", None])
SMALL_VALUES = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=40),
    st.lists(st.integers(-5, 5), max_size=3),
    st.none(),
    st.booleans(),
)
FILE_VALUES = st.integers(0, 255).map(lambda byte: bytes([byte]) * 40_000)
EXPIRES = st.sampled_from([None, None, 0, 1, 5, 100])


def _same(first: Any, second: Any) -> bool:
    return bool(type(first) is type(second) and first == second)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class CacheMachine(RuleBasedStateMachine):
    """The exact model: every entry on disk, with its expiry, and the clock."""

    store: ClassVar[str] = "sqlite"
    settings: ClassVar[dict[str, Any]] = {"cull_limit": 0}
    values: ClassVar[st.SearchStrategy[Any]] = st.one_of(SMALL_VALUES, FILE_VALUES)

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="cachekit-model-")
        self.clock = FakeClock()
        self.cache = cachekit.Cache(Path(self.directory, "cache"), store=self.store, clock=self.clock, **self.settings)
        self.model: dict[Any, tuple[Any, float | None]] = {}

    def teardown(self) -> None:
        self.cache.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- model helpers ------------------------------------------------------------------------------
    def _expire_time(self, expire: float | None) -> float | None:
        return None if expire is None else self.clock.now + expire

    def _live(self, key: Any) -> Any:
        """The model's value for ``key`` if present and not expired, else MISSING."""
        found = self.model.get(key)
        if found is None:
            return MISSING
        value, expire_time = found
        return value if expire_time is None or expire_time > self.clock.now else MISSING

    @staticmethod
    def _normal(key: Any) -> Any:
        return int(key) if isinstance(key, float) and key.is_integer() else key

    def _queue(self) -> list[Any]:
        return sorted(key for key in self.model if isinstance(key, str) and key.startswith("q-"))

    # -- rules ---------------------------------------------------------------------------------------
    @rule(seconds=st.sampled_from([0.5, 1, 3, 50]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(key=KEYS, value=st.data(), expire=EXPIRES)
    def set(self, key: Any, value: st.DataObject, expire: float | None) -> None:
        stored = value.draw(self.values)
        assert self.cache.set(key, stored, expire=expire) is True
        self.model[key] = (stored, self._expire_time(expire))

    @rule(key=KEYS)
    def get(self, key: Any) -> None:
        found = self.cache.get(key, MISSING)
        expected = self._live(key)
        assert found is expected or _same(found, expected), (key, found, expected)

    @rule(key=KEYS)
    def delete(self, key: Any) -> None:
        assert self.cache.delete(key) is (self._live(key) is not MISSING)
        self.model.pop(key, None)

    @rule(key=KEYS, value=st.data(), expire=EXPIRES)
    def add(self, key: Any, value: st.DataObject, expire: float | None) -> None:
        stored = value.draw(self.values)
        added = self.cache.add(key, stored, expire=expire)
        assert added is (self._live(key) is MISSING)
        if added:
            self.model[key] = (stored, self._expire_time(expire))

    @rule(key=KEYS, delta=st.integers(-1000, 1000))
    def incr(self, key: Any, delta: int) -> None:
        current = self._live(key)
        if current is not MISSING and not _is_number(current):
            with pytest.raises(TypeError):
                self.cache.incr(key, delta)
            return
        result = self.cache.incr(key, delta)
        expected = delta if current is MISSING else current + delta
        assert result == expected or (math.isnan(result) and math.isnan(expected))
        expire_time = None if current is MISSING else self.model[key][1]
        self.model[key] = (expected, expire_time)

    @rule(key=KEYS, expire=EXPIRES)
    def touch(self, key: Any, expire: float | None) -> None:
        live = self._live(key) is not MISSING
        assert self.cache.touch(key, expire) is live
        if live:
            self.model[key] = (self.model[key][0], self._expire_time(expire))

    @rule()
    def expire(self) -> None:
        expired = [key for key in self.model if self._live(key) is MISSING]
        assert self.cache.expire() == len(expired)
        for key in expired:
            del self.model[key]

    @rule(key=KEYS)
    def pop(self, key: Any) -> None:
        expected = self._live(key)
        found = self.cache.pop(key, MISSING)
        assert found is expected or _same(found, expected)
        if expected is not MISSING:
            del self.model[key]

    @rule(value=SMALL_VALUES, expire=EXPIRES)
    def push(self, value: Any, expire: float | None) -> None:
        queue = self._queue()
        number = int(queue[-1][2:]) + 1 if queue else QUEUE_START
        key = self.cache.push(value, prefix="q", expire=expire)
        assert key == f"q-{number:015d}"
        self.model[key] = (value, self._expire_time(expire))

    @rule()
    def pull(self) -> None:
        expected: Any = (None, None)
        for key in self._queue():
            value = self._live(key)
            del self.model[key]  # expired items are discarded on the way
            if value is not MISSING:
                expected = (key, value)
                break
        found = self.cache.pull("q")
        assert found[0] == expected[0]
        assert found[1] is expected[1] or _same(found[1], expected[1])

    # -- invariants ------------------------------------------------------------------------------------
    @invariant()
    def same_entries(self) -> None:
        assert len(self.cache) == len(self.model)
        assert sorted(map(repr, self.cache)) == sorted(repr(self._normal(key)) for key in self.model)


class EvictingMachine(CacheMachine):
    """The loose model under eviction: the model holds what may still be there."""

    size_limit: ClassVar[int] = 1000
    cull_limit: ClassVar[int] = 10
    settings: ClassVar[dict[str, Any]] = {"size_limit": size_limit}
    values = SMALL_VALUES
    #: The largest entry the strategies make (key plus encoded payload), with room to spare.
    largest: ClassVar[int] = 200

    def _evicted(self, key: Any) -> None:
        self.model.pop(key, None)

    @rule(key=KEYS, value=st.data(), expire=EXPIRES)
    def set(self, key: Any, value: st.DataObject, expire: float | None) -> None:
        super().set(key, value, expire)
        self._check_volume()

    @rule(key=KEYS)
    def get(self, key: Any) -> None:
        found = self.cache.get(key, MISSING)
        expected = self._live(key)
        if found is MISSING:
            if expected is not MISSING:
                self._evicted(key)
            return
        assert expected is not MISSING, f"{key!r} read back after it was removed or expired: {found!r}"
        assert _same(found, expected), (key, found, expected)

    @rule(key=KEYS)
    def delete(self, key: Any) -> None:
        deleted = self.cache.delete(key)
        assert not deleted or self._live(key) is not MISSING
        self.model.pop(key, None)

    @rule(key=KEYS, value=st.data(), expire=EXPIRES)
    def add(self, key: Any, value: st.DataObject, expire: float | None) -> None:
        stored = value.draw(self.values)
        added = self.cache.add(key, stored, expire=expire)
        if added:
            self.model[key] = (stored, self._expire_time(expire))
        else:
            assert self._live(key) is not MISSING, "add refused a key that is not there"
        self._check_volume()

    @rule(key=KEYS, delta=st.integers(-1000, 1000))
    def incr(self, key: Any, delta: int) -> None:
        current = self._live(key)
        try:
            result = self.cache.incr(key, delta)
        except TypeError:
            assert current is not MISSING
            assert not _is_number(current)
            return
        allowed = [delta] if current is MISSING or not _is_number(current) else [delta, current + delta]
        assert any(result == each or (math.isnan(result) and math.isnan(each)) for each in allowed)
        expire_time = self.model[key][1] if current is not MISSING and result != delta else None
        self.model[key] = (result, expire_time)
        self._check_volume()

    @rule(key=KEYS, expire=EXPIRES)
    def touch(self, key: Any, expire: float | None) -> None:
        touched = self.cache.touch(key, expire)
        if touched:
            assert self._live(key) is not MISSING
            self.model[key] = (self.model[key][0], self._expire_time(expire))
        elif self._live(key) is not MISSING:
            self._evicted(key)

    @rule()
    def expire(self) -> None:
        expired = [key for key in self.model if self._live(key) is MISSING]
        assert self.cache.expire() >= 0
        for key in expired:
            del self.model[key]

    @rule(key=KEYS)
    def pop(self, key: Any) -> None:
        expected = self._live(key)
        found = self.cache.pop(key, MISSING)
        if found is not MISSING:
            assert expected is not MISSING, (key, found)
            assert _same(found, expected), (key, found, expected)
            del self.model[key]
        elif expected is not MISSING:
            self._evicted(key)

    @rule(value=SMALL_VALUES, expire=EXPIRES)
    def push(self, value: Any, expire: float | None) -> None:
        key = self.cache.push(value, prefix="q", expire=expire)
        assert isinstance(key, str)
        assert key.startswith("q-")
        for other in self._queue():
            if other >= key:  # the back of the queue was evicted or expired and removed
                del self.model[other]
        self.model[key] = (value, self._expire_time(expire))
        self._check_volume()

    @rule()
    def pull(self) -> None:
        found = self.cache.pull("q")
        queue = self._queue()
        if found == (None, None):
            for key in queue:
                del self.model[key]
            return
        key, value = found
        assert key in self.model, f"pulled {key!r}, which was removed or never pushed"
        assert self._live(key) is not MISSING
        assert _same(value, self._live(key))
        for earlier in queue[: queue.index(key) + 1]:
            del self.model[earlier]  # the ones before it were evicted or expired

    @rule()
    def cull(self) -> None:
        self.cache.cull()
        assert self.cache.volume() <= self.size_limit

    def _check_volume(self) -> None:
        # docs/api.md: the volume stays within size_limit "give or take one cull step".
        assert self.cache.volume() <= self.size_limit + self.cull_limit * self.largest

    @invariant()
    def same_entries(self) -> None:
        present = {repr(key) for key in self.cache}
        known = {repr(self._normal(key)) for key in self.model}
        assert present <= known, f"entries came back after they were removed: {present - known}"


def _run(machine: type[CacheMachine], store: str) -> None:
    bound = type(f"{machine.__name__}On{store.title()}", (machine,), {"store": store})
    run_state_machine_as_test(
        bound,
        settings=settings(
            max_examples=scaled(60, 400),
            stateful_step_count=scaled(30, 80),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


@pytest.mark.slow
def test_the_cache_matches_a_dict_model(store: str) -> None:
    """Without culling, every result of every operation matches the model exactly."""
    _run(CacheMachine, store)


@pytest.mark.slow
def test_under_eviction_the_cache_never_returns_a_wrong_or_expired_value(store: str) -> None:
    """With a small size_limit, entries may go, but none comes back wrong, expired or after removal, and
    the volume stays within the documented bound."""
    _run(EvictingMachine, store)


# -- decoder fuzzing -----------------------------------------------------------------------------------------
SERIALIZERS = cachekit.plugins.names("serializer")
NATIVE = ["bytes", "str", "int", "float"]
FUZZ = settings(max_examples=scaled(200, 3000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
SECRET = b"0123456789abcdef-fuzzing-secret"

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text()),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(), children, max_size=4)),
    max_leaves=12,
)
msgpack_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False),
        st.text(),
        st.binary(),
    ),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(), children, max_size=4)),
    max_leaves=12,
)
pickle_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(), st.binary()),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(st.text(), children, max_size=4),
        st.frozensets(st.integers(), max_size=4),
    ),
    max_leaves=12,
)
VALUES_OF: dict[str, st.SearchStrategy[Any]] = {"json": json_values, "msgpack": msgpack_values}
native_values: dict[str, st.SearchStrategy[Any]] = {
    "bytes": st.binary(),
    "str": st.text(),
    "int": st.integers(),
    "float": st.floats(),
}


def _codec(serializer: str, secret_key: bytes | None = None) -> ValueCodec:
    def resolve(name: str) -> Any:
        return registry.resolve("serializer", name).create({})

    main = resolve(serializer if serializer in SERIALIZERS else "pickle")
    return ValueCodec(main, secret_key, False, resolve)


mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "truncate", "insert", "delete", "replace"]),
        st.integers(0, 2**16),
        st.binary(max_size=8),
    ),
    min_size=1,
    max_size=4,
)


def _mutate(data: bytes, steps: list[tuple[str, int, bytes]]) -> bytes:
    mutable = bytearray(data)
    for kind, position, extra in steps:
        where = position % (len(mutable) + 1)
        if kind == "flip" and mutable:
            mutable[where % len(mutable)] ^= 1 << (position % 8)
        elif kind == "truncate":
            del mutable[where:]
        elif kind == "insert":
            mutable[where:where] = extra or b"\x00"
        elif kind == "delete":
            del mutable[where : where + 1 + position % 4]
        elif kind == "replace" and mutable:
            mutable[where : where + len(extra)] = extra
    return bytes(mutable)


def _decode_or_clear_error(codec: ValueCodec, serializer: str, data: bytes) -> Any:
    """A value, or MISSING after a clear decode error; anything else fails the test."""
    try:
        return codec.decode(serializer, data)
    except SerializationError:
        return MISSING


@pytest.mark.parametrize("signed", [False, True], ids=["plain", "signed"])
@pytest.mark.parametrize("serializer", SERIALIZERS + NATIVE)
@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_decode_to_a_value_or_a_clear_error(serializer: str, signed: bool, data: bytes) -> None:
    """Random bytes recorded under any serializer (or native kind) decode to a value or SerializationError."""
    _decode_or_clear_error(_codec(serializer, SECRET if signed else None), serializer, data)


@pytest.mark.parametrize("signed", [False, True], ids=["plain", "signed"])
@pytest.mark.parametrize("serializer", SERIALIZERS + NATIVE)
@FUZZ
@given(data=st.data(), steps=mutations)
def test_mutated_valid_encodings_decode_to_a_value_or_a_clear_error(
    serializer: str, signed: bool, data: st.DataObject, steps: list[tuple[str, int, bytes]]
) -> None:
    """A valid encoding with bits flipped, bytes inserted, deleted or replaced, or cut short, decodes to a
    value or SerializationError; signed, it never decodes at all once changed."""
    codec = _codec(serializer, SECRET if signed else None)
    if serializer in NATIVE:
        kind, payload = codec.encode(data.draw(native_values[serializer]))
        assert kind == serializer
    elif serializer == "raw":
        kind, payload = "raw", data.draw(st.binary(max_size=256))
    else:
        kind, payload = serializer, codec.dumps(data.draw(VALUES_OF.get(serializer, json_values)))
    mutated = _mutate(payload, steps)
    decoded = _decode_or_clear_error(codec, kind, mutated)
    if signed and kind not in NATIVE and mutated != payload:
        assert decoded is MISSING, "a tampered signed payload decoded"
    if kind == "raw":
        assert decoded is MISSING


key_values = st.recursive(
    st.one_of(st.text(), st.binary(), st.integers(), st.floats(), st.booleans(), st.none()),
    lambda children: st.one_of(st.lists(children, max_size=4).map(tuple), st.frozensets(st.integers(), max_size=3)),
    max_leaves=10,
)


@FUZZ
@given(key=st.one_of(key_values, st.lists(st.integers()), st.dictionaries(st.text(), st.integers())), steps=mutations)
def test_damaged_key_bytes_decode_to_a_key_or_a_clear_error(key: Any, steps: list[tuple[str, int, bytes]]) -> None:
    """The key codec turns damaged key bytes (which iteration decodes) into a key or SerializationError."""
    codec = _codec("pickle", SECRET)
    keys = KeyCodec(codec.dumps, codec.loads)
    encoded = keys.encode(key)
    for data in (_mutate(encoded, steps), encoded[: len(encoded) // 2], b""):
        with contextlib.suppress(SerializationError):
            keys.decode(data)


try:
    from cachekit_lmdb import _records
except ImportError:  # the lmdb package is optional
    _records = None  # type: ignore[assignment]

entries = st.builds(
    Entry,
    key=st.binary(min_size=1, max_size=40),
    value=st.one_of(st.none(), st.binary(max_size=100)),
    filename=st.one_of(st.none(), st.just("values/ab/" + "c" * 30 + ".val")),
    serializer=st.sampled_from(["bytes", "str", "int", "float", "pickle", "json", "my-plugin"]),
    size=st.integers(0, 2**40),
    store_time=st.floats(allow_nan=False),
    expire_time=st.one_of(st.none(), st.floats(allow_nan=False)),
    access_time=st.floats(allow_nan=False),
    access_count=st.integers(0, 2**40),
    tag=st.one_of(st.none(), st.binary(max_size=30)),
)


@pytest.mark.skipif(_records is None, reason="the LMDB store needs the lmdb package")
@FUZZ
@given(entry=entries, sequence=st.integers(0, 2**63), steps=mutations, garbage=st.binary(max_size=300))
def test_damaged_lmdb_records_decode_or_raise_record_error(
    entry: Entry, sequence: int, steps: list[tuple[str, int, bytes]], garbage: bytes
) -> None:
    """The LMDB store's record decoder gives an entry or RecordError (which the store raises as CorruptCache)
    for mutated records and for garbage, nothing else."""
    assert _records is not None
    if entry.value is None and entry.filename is None:
        entry = entry._replace(value=b"")
    record = _records.encode(entry, sequence)
    for data in (_mutate(record, steps), garbage, record[:40]):
        with contextlib.suppress(_records.RecordError):
            _records.decode(entry.key, data)
