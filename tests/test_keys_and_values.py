"""The canonical key codec, the value codec (native kinds, signing, refusal) and the built-in serializers."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import hmac
import http
import json
import math
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cachekit
from cachekit import InsecureDirectory, SerializationError
from cachekit._keys import KeyCodec
from cachekit._serializers import JSONSerializer, MsgpackSerializer, PickleSerializer, RawSerializer
from cachekit._values import IntegrityError, ValueCodec
from cachekit.plugins import Serializer

SECRET = b"0123456789abcdef-secret"
NESTED = {"list": [1, 2.5, "x", None, True], "dict": {"k": "v"}, "empty": []}
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def pickle_codec() -> KeyCodec:
    """A key codec whose fallback serializer is plain pickle."""
    return KeyCodec(pickle.dumps, pickle.loads)


def resolve(name: str) -> Serializer:
    """Serializer lookup as the cache does it."""
    classes: dict[str, type[Serializer]] = {
        "pickle": PickleSerializer,
        "msgpack": MsgpackSerializer,
        "json": JSONSerializer,
        "raw": RawSerializer,
    }
    return classes[name]()


def value_codec(
    serializer: Serializer | None = None, secret_key: bytes | None = None, refuse_pickle: bool = False
) -> ValueCodec:
    return ValueCodec(serializer or PickleSerializer(), secret_key, refuse_pickle, resolve)


@dataclasses.dataclass(frozen=True)
class Point:
    """A hashable key of a type the codec does not know natively."""

    x: int
    y: int


class Colour(enum.Enum):
    RED = "red"


class Name(str):
    """A str subclass."""


native_scalars = st.one_of(
    st.text(),
    st.binary(),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
native_keys = st.recursive(native_scalars, lambda children: st.lists(children, max_size=4).map(tuple), max_leaves=12)


class TestKeyCodec:
    def test_equal_keys_give_equal_bytes(self) -> None:
        """Keys that compare equal encode to the same bytes."""
        codec = pickle_codec()
        assert codec.encode("abc") == codec.encode("".join(["a", "b", "c"]))
        assert codec.encode(1) == codec.encode(1.0)
        assert codec.encode(0) == codec.encode(-0.0)
        assert codec.encode((1, "a", (2.0,))) == codec.encode((1.0, "a", (2,)))

    def test_bool_is_distinct_from_int(self) -> None:
        """True and 1 (and False and 0) are different keys, as in python-diskcache."""
        codec = pickle_codec()
        assert codec.encode(True) != codec.encode(1)
        assert codec.encode(False) != codec.encode(0)
        assert codec.decode(codec.encode(True)) is True
        assert codec.decode(codec.encode(False)) is False

    def test_layout_of_native_kinds(self) -> None:
        """Each native kind has a one-byte tag and a fixed layout."""
        codec = pickle_codec()
        assert codec.encode("é") == b"s\xc3\xa9"
        assert codec.encode(b"\x00\xff") == b"b\x00\xff"
        assert codec.encode(0) == b"i\x80" + b"\x00" * 7
        assert codec.encode(-1) == b"i\x7f" + b"\xff" * 7
        assert codec.encode(None) == b"n"
        assert codec.encode(()) == b"t"
        assert codec.encode(1.5) == b"f" + bytes([0xBF]) + struct.pack(">d", 1.5)[1:]  # sign bit set
        assert codec.encode(-1.5) == b"f" + bytes(byte ^ 0xFF for byte in struct.pack(">d", -1.5))

    def test_non_integral_floats_sort_numerically(self) -> None:
        """Encoded non-integral floats (and infinities) sort in numeric order."""
        codec = pickle_codec()
        values = [math.inf, 2.5, -0.25, -math.inf, 0.5, -1749.5, 1e-300, -2.5]
        assert sorted(values, key=codec.encode) == sorted(values)

    def test_str_subclasses_encode_like_str(self) -> None:
        """A str subclass encodes like the equal str and decodes to a plain str."""
        codec = pickle_codec()
        assert codec.encode(Name("key")) == codec.encode("key")
        assert type(codec.decode(codec.encode(Name("key")))) is str

    def test_int_subclasses_encode_like_int(self) -> None:
        """An int subclass such as an IntEnum encodes like the int it equals."""
        codec = pickle_codec()
        assert http.HTTPStatus.OK == 200
        assert codec.encode(http.HTTPStatus.OK) == codec.encode(200)

    def test_big_ints_round_trip(self) -> None:
        """Ints outside int64 have their own encoding and round-trip exactly."""
        codec = pickle_codec()
        for number in (2**63, -(2**63) - 1, 10**100, -(10**100)):
            encoded = codec.encode(number)
            assert encoded[:1] == b"j"
            assert codec.decode(encoded) == number
        assert codec.encode(INT64_MAX)[:1] == b"i"
        assert codec.encode(INT64_MIN)[:1] == b"i"

    def test_special_floats(self) -> None:
        """NaN has one canonical encoding; infinities round-trip."""
        codec = pickle_codec()
        negative_nan = -math.nan
        assert codec.encode(math.nan) == codec.encode(negative_nan) == codec.encode(float("nan"))
        assert math.isnan(codec.decode(codec.encode(math.nan)))
        assert codec.decode(codec.encode(math.inf)) == math.inf
        assert codec.decode(codec.encode(-math.inf)) == -math.inf
        assert codec.encode(math.inf) != codec.encode(-math.inf)

    def test_integral_float_decodes_as_int(self) -> None:
        """An integral float is the same key as the int, so it decodes as that int."""
        codec = pickle_codec()
        decoded = codec.decode(codec.encode(3.0))
        assert decoded == 3
        assert type(decoded) is int

    @pytest.mark.parametrize("number", [2**63, 10**20, -(2**64), 2**1000], ids=["2**63", "10**20", "-2**64", "2**1000"])
    def test_integral_floats_beyond_int64_encode_like_the_int(self, number: int) -> None:
        """A huge integral float is the same key as the int it equals."""
        codec = pickle_codec()
        as_float = float(number)
        assert as_float == number
        assert codec.encode(as_float) == codec.encode(number)

    def test_nested_tuples_round_trip(self) -> None:
        """Nested tuples with every native kind round-trip."""
        codec = pickle_codec()
        key = ("a", (b"b", (1, -2.5, (None, True))), (), 2**70)
        assert codec.decode(codec.encode(key)) == key

    @pytest.mark.parametrize("key", [[1, 2], {"a": 1}, {1, 2}, bytearray(b"x")])
    def test_unhashable_keys_go_through_the_serializer(self, key: object) -> None:
        """Unhashable keys are pickled, as python-diskcache does, so memoized functions may take lists."""
        codec = pickle_codec()
        assert codec.encode(key) == b"p" + pickle.dumps(key)
        assert codec.decode(codec.encode(key)) == key
        assert codec.decode(codec.encode(("ok", key))) == ("ok", key)

    def test_frozensets_encode_canonically(self) -> None:
        """Equal frozensets give equal bytes whatever their iteration order, and round-trip."""
        codec = pickle_codec()
        words = [f"word-{index}" for index in range(50)]
        forward, backward = frozenset(words), frozenset(reversed(words))
        assert codec.encode(forward) == codec.encode(backward)
        assert codec.decode(codec.encode(forward)) == forward
        assert codec.encode(frozenset([1.0, 2])) == codec.encode(frozenset([1, 2]))

    @pytest.mark.parametrize("key", [Point(1, 2), Colour.RED, 1 + 2j])
    def test_other_hashables_go_through_the_serializer(self, key: object) -> None:
        """Other hashable keys are serialized with the cache's serializer and round-trip."""
        codec = pickle_codec()
        encoded = codec.encode(key)
        assert encoded == b"p" + pickle.dumps(key)
        assert codec.decode(encoded) == key

    def test_serializer_failure_on_a_key_is_a_serialization_error(self) -> None:
        """A key the serializer cannot encode raises SerializationError with the cause chained."""
        codec = KeyCodec(RawSerializer().dumps, RawSerializer().loads)
        with pytest.raises(SerializationError, match="cannot encode key of type Point") as raised:
            codec.encode(Point(1, 2))
        assert isinstance(raised.value.__cause__, TypeError)

    def test_unknown_tag_byte(self) -> None:
        """Bytes with an unknown tag byte raise SerializationError."""
        with pytest.raises(SerializationError, match="unknown key encoding byte 0x78"):
            pickle_codec().decode(b"xxx")

    def test_equal_keys_find_the_same_entry(self, tmp_path: Path) -> None:
        """Through a cache, 1 and 1.0 are one key, True another, and a str subclass finds the str."""
        with cachekit.Cache(tmp_path / "c") as cache:
            cache.set(1, "one")
            cache.set(True, "true")
            cache.set("name", "plain")
            assert cache[1.0] == "one"
            assert cache[True] == "true"
            assert cache[Name("name")] == "plain"
            assert len(cache) == 3

    @given(native_keys)
    def test_round_trip(self, key: Any) -> None:
        """decode(encode(key)) == key for every native key."""
        codec = pickle_codec()
        assert codec.decode(codec.encode(key)) == key

    @given(native_keys)
    def test_encoding_is_deterministic(self, key: Any) -> None:
        """Encoding a key twice, or its decoded copy, gives the same bytes."""
        codec = pickle_codec()
        encoded = codec.encode(key)
        assert codec.encode(key) == encoded
        assert codec.encode(codec.decode(encoded)) == encoded

    @given(st.integers(INT64_MIN, INT64_MAX), st.integers(INT64_MIN, INT64_MAX))
    def test_int64_byte_order_is_numeric_order(self, first: int, second: int) -> None:
        """Within int64, the byte order of encoded ints is their numeric order."""
        codec = pickle_codec()
        assert (codec.encode(first) < codec.encode(second)) == (first < second)

    @given(st.text(), st.text())
    def test_str_byte_order_is_code_point_order(self, first: str, second: str) -> None:
        """Encoded strings sort by code point, which queues rely on."""
        codec = pickle_codec()
        assert (codec.encode(first) < codec.encode(second)) == (first < second)

    @given(st.integers())
    def test_int_and_equal_float_give_equal_bytes(self, number: int) -> None:
        """Whenever float(n) == n, the float and the int encode to the same bytes."""
        codec = pickle_codec()
        try:
            as_float = float(number)
        except OverflowError:
            return
        if as_float == number:
            assert codec.encode(as_float) == codec.encode(number)


class TestValueCodec:
    @pytest.mark.parametrize(
        ("value", "kind"),
        [
            (b"\x00bytes", "bytes"),
            (b"", "bytes"),
            ("text é \udc80", "str"),
            ("", "str"),
            (0, "int"),
            (-1, "int"),
            (127, "int"),
            (128, "int"),
            (-128, "int"),
            (-129, "int"),
            (2**64, "int"),
            (-(10**500), "int"),
            (10**500, "int"),
            (1.5, "float"),
            (-0.0, "float"),
            (math.inf, "float"),
        ],
    )
    def test_native_kinds_round_trip(self, value: object, kind: str) -> None:
        """bytes, str, int and float are stored natively, bypassing the serializer."""
        codec = value_codec(RawSerializer())
        recorded, payload = codec.encode(value)
        assert recorded == kind
        decoded = codec.decode(recorded, payload)
        assert decoded == value
        assert type(decoded) is type(value)

    def test_negative_zero_and_nan_floats(self) -> None:
        """-0.0 keeps its sign and NaN stays NaN."""
        codec = value_codec()
        negative_zero = codec.decode(*codec.encode(-0.0))
        assert math.copysign(1.0, negative_zero) == -1.0
        assert math.isnan(codec.decode(*codec.encode(math.nan)))

    @given(st.integers())
    def test_ints_round_trip(self, number: int) -> None:
        """Every int, however large or negative, round-trips natively."""
        codec = value_codec()
        kind, payload = codec.encode(number)
        assert kind == "int"
        assert codec.decode(kind, payload) == number

    def test_ints_are_stored_compactly(self) -> None:
        """Small ints take one byte, as two's complement."""
        codec = value_codec()
        assert codec.encode(0) == ("int", b"\x00")
        assert codec.encode(-1) == ("int", b"\xff")
        assert codec.encode(255) == ("int", b"\x00\xff")

    def test_other_values_go_through_the_serializer(self) -> None:
        """Values that are not native are recorded under the serializer's name."""
        codec = value_codec(JSONSerializer())
        assert codec.encode([1, "a"]) == ("json", b'[1,"a"]')
        assert codec.encode(True) == ("json", b"true")
        assert codec.encode(None) == ("json", b"null")

    def test_unencodable_value_is_a_serialization_error(self) -> None:
        """A serializer failure becomes SerializationError naming serializer and type, with the cause."""
        with pytest.raises(SerializationError, match="the pickle serializer cannot encode a function") as raised:
            value_codec().dumps(lambda: None)
        assert raised.value.__cause__ is not None

    def test_undecodable_payload_is_a_serialization_error(self) -> None:
        """A payload the serializer cannot decode raises SerializationError naming the serializer."""
        with pytest.raises(SerializationError, match="cannot decode a value stored with 'pickle'"):
            value_codec().decode("pickle", b"definitely not a pickle")

    def test_unknown_serializer_name_is_resolved_on_demand(self) -> None:
        """A payload recorded with another serializer is decoded with that serializer."""
        codec = value_codec(PickleSerializer())
        assert codec.decode("json", b'{"a":[1]}') == {"a": [1]}

    def test_signed_round_trip(self) -> None:
        """With a secret_key the payload carries an HMAC-SHA256 and round-trips."""
        codec = value_codec(secret_key=SECRET)
        kind, payload = codec.encode({"a": (1, 2)})
        assert kind == "pickle"
        plain = pickle.dumps({"a": (1, 2)}, protocol=pickle.HIGHEST_PROTOCOL)
        assert payload == hmac.new(SECRET, plain, hashlib.sha256).digest() + plain
        assert codec.decode(kind, payload) == {"a": (1, 2)}

    @pytest.mark.parametrize(
        "tamper",
        [
            lambda payload: payload[:-1] + bytes([payload[-1] ^ 1]),
            lambda payload: bytes([payload[0] ^ 1]) + payload[1:],
            lambda payload: payload[32:],
            lambda payload: payload[:10],
            lambda payload: b"",
            lambda payload: payload + b".",
        ],
    )
    def test_tampered_payload_is_an_integrity_error_and_never_decoded(self, tamper: Callable[[bytes], bytes]) -> None:
        """A payload whose signature does not match raises IntegrityError and never reaches the serializer."""
        calls: list[bytes] = []

        class Spy(PickleSerializer):
            def loads(self, data: bytes) -> Any:
                calls.append(data)
                return super().loads(data)

        codec = value_codec(Spy(), secret_key=SECRET)
        kind, payload = codec.encode(["value"])
        with pytest.raises(IntegrityError, match="signature does not match"):
            codec.decode(kind, tamper(payload))
        assert calls == []
        assert codec.decode(kind, payload) == ["value"]
        assert len(calls) == 1
        assert issubclass(IntegrityError, SerializationError)

    def test_other_key_is_an_integrity_error(self) -> None:
        """A payload signed with another key does not verify."""
        kind, payload = value_codec(secret_key=SECRET).encode(["value"])
        with pytest.raises(IntegrityError):
            value_codec(secret_key=b"another-secret-key-000").decode(kind, payload)

    def test_natives_are_not_signed(self) -> None:
        """Native kinds are stored as they are even with a secret_key."""
        codec = value_codec(secret_key=SECRET)
        assert codec.encode(b"raw") == ("bytes", b"raw")
        assert codec.encode("text") == ("str", b"text")

    def test_insecure_directory_refuses_to_unpickle_without_a_key(self) -> None:
        """Without a secret_key, an insecure directory's pickled values are refused before unpickling."""
        codec = value_codec(refuse_pickle=True)
        with pytest.raises(InsecureDirectory, match="refusing to store a pickled value"):
            codec.encode({"a": 1})
        with pytest.raises(InsecureDirectory, match="refusing to unpickle"):
            codec.decode("pickle", pickle.dumps({"a": 1}))
        assert codec.decode(*codec.encode(b"bytes")) == b"bytes"
        assert codec.decode(*codec.encode(42)) == 42

    def test_insecure_directory_refuses_pickle_recorded_by_another_serializer(self) -> None:
        """The refusal also covers pickle payloads in a cache whose own serializer is json."""
        codec = value_codec(JSONSerializer(), refuse_pickle=True)
        assert codec.decode("json", b"[1]") == [1]
        with pytest.raises(InsecureDirectory, match="refusing to unpickle"):
            codec.decode("pickle", pickle.dumps({"a": 1}))

    def test_insecure_directory_with_a_key_unpickles_signed_values(self) -> None:
        """With a secret_key, pickled values in an insecure directory load when their signature matches."""
        codec = value_codec(secret_key=SECRET, refuse_pickle=True)
        assert codec.decode(*codec.encode({"a": 1})) == {"a": 1}


class TestSerializers:
    def test_pickle_round_trips_anything_picklable(self) -> None:
        """pickle keeps tuples, sets and custom classes."""
        serializer = PickleSerializer()
        value = {"tuple": (1, 2), "set": {3}, "point": Point(1, 2)}
        assert serializer.loads(serializer.dumps(value)) == value

    def test_pickle_protocol_comes_from_the_settings(self) -> None:
        """disk_pickle_protocol chooses the pickle protocol."""
        serializer = PickleSerializer.create({"disk_pickle_protocol": 2})
        assert serializer.dumps([1])[:2] == b"\x80\x02"
        default = PickleSerializer.create({})
        assert default.dumps([1])[:2] == bytes([0x80, pickle.HIGHEST_PROTOCOL])

    def test_msgpack_round_trips_its_types(self) -> None:
        """msgpack round-trips None, bools, numbers, str, bytes, lists and dicts."""
        serializer = MsgpackSerializer()
        value = {**NESTED, "bytes": b"\x00\xff", 1: "int key"}
        assert serializer.loads(serializer.dumps(value)) == value

    def test_msgpack_gives_lists_for_tuples(self) -> None:
        """msgpack has no tuple: a tuple comes back as a list."""
        serializer = MsgpackSerializer()
        assert serializer.loads(serializer.dumps((1, (2, 3)))) == [1, [2, 3]]

    def test_msgpack_refuses_other_types(self) -> None:
        """msgpack cannot encode a set."""
        with pytest.raises(TypeError):
            MsgpackSerializer().dumps({1, 2})

    def test_json_round_trips_its_types(self) -> None:
        """json round-trips None, bools, numbers, str, lists and dicts with str keys, compactly."""
        serializer = JSONSerializer()
        assert serializer.loads(serializer.dumps(NESTED)) == NESTED
        assert serializer.dumps({"a": "é"}) == '{"a":"é"}'.encode()

    def test_json_gives_lists_for_tuples(self) -> None:
        """json has no tuple: a tuple comes back as a list."""
        serializer = JSONSerializer()
        assert serializer.loads(serializer.dumps({"t": (1, 2)})) == {"t": [1, 2]}

    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1.0, math.nan]])
    def test_json_rejects_nan_and_infinity(self, value: object) -> None:
        """Strict JSON has no NaN or infinity."""
        with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
            JSONSerializer().dumps(value)

    def test_json_rejects_bytes(self) -> None:
        """json cannot encode bytes (inside a container; top-level bytes are native)."""
        with pytest.raises(TypeError, match="not JSON serializable"):
            JSONSerializer().dumps([b"x"])

    @pytest.mark.parametrize("value", [None, True, [1], {"a": 1}, (1,), Point(1, 2)])
    def test_raw_rejects_everything(self, value: object) -> None:
        """raw encodes nothing: only the core's native kinds can be stored with it."""
        with pytest.raises(
            TypeError, match=f"raw serializer stores only bytes, str, int and float, not {type(value).__name__}"
        ):
            RawSerializer().dumps(value)
        with pytest.raises(TypeError, match="cannot decode"):
            RawSerializer().loads(b"anything")

    def test_raw_cache_stores_natives_and_refuses_the_rest(self, tmp_path: Path) -> None:
        """A cache with serializer=raw stores natives and refuses other values without storing them."""
        with cachekit.Cache(tmp_path / "c", serializer="raw") as cache:
            for value in (b"b", "s", 1, 1.5):
                assert cache.set("key", value)
                assert cache["key"] == value
            with pytest.raises(SerializationError, match="the raw serializer cannot encode a list"):
                cache.set("key", [1])
            assert cache["key"] == 1.5

    @pytest.mark.parametrize("serializer", ["pickle", "msgpack", "json"])
    def test_round_trip_through_a_cache(self, tmp_path: Path, serializer: str) -> None:
        """Each serializer round-trips a nested value through a cache, also after reopening."""
        value = {"list": [1, 2.5, "x", None, True], "dict": {"k": "v"}}
        with cachekit.Cache(tmp_path / "c", serializer=serializer) as cache:
            assert cache.set("key", value)
            assert cache.get("key", "missing") == value
        with cachekit.Cache(tmp_path / "c") as cache:
            assert cache.serializer == serializer
            assert cache.get("key", "missing") == value

    def test_json_cache_refuses_nan_in_a_value(self, tmp_path: Path) -> None:
        """A json cache refuses a value with NaN and stores nothing."""
        with cachekit.Cache(tmp_path / "c", serializer="json") as cache:
            with pytest.raises(SerializationError, match="json serializer cannot encode a list"):
                cache.set("key", [math.nan])
            assert "key" not in cache

    @pytest.mark.parametrize("serializer", [PickleSerializer(), MsgpackSerializer(), JSONSerializer(), RawSerializer()])
    # No deadline: some garbage makes pickle build a large memo (a LONG_BINPUT index of millions),
    # which is slow but legitimate; these tests are about never crashing, not about speed.
    @settings(max_examples=300, deadline=None)
    @given(data=st.binary(max_size=512))
    def test_decoders_survive_random_bytes(self, serializer: Serializer, data: bytes) -> None:
        """Random bytes into a decoder give a value or an ordinary exception, never a crash."""
        with contextlib.suppress(Exception):  # any ordinary exception is an acceptable outcome
            serializer.loads(data)

    @pytest.mark.parametrize("name", ["pickle", "msgpack", "json"])
    # No deadline: some garbage makes pickle build a large memo (a LONG_BINPUT index of millions),
    # which is slow but legitimate; these tests are about never crashing, not about speed.
    @settings(max_examples=300, deadline=None)
    @given(data=st.binary(max_size=512))
    def test_value_codec_turns_garbage_into_serialization_errors(self, name: str, data: bytes) -> None:
        """Through the value codec, undecodable bytes only ever raise SerializationError."""
        codec = value_codec(resolve(name))
        with contextlib.suppress(SerializationError):
            codec.decode(name, data)

    @pytest.mark.parametrize(
        "header",
        [b"\xdd\x7f\xff\xff\xfe", b"\xdf\x7f\xff\xff\xfe", b"\xc6\x7f\xff\xff\xfe", b"\xdb\x7f\xff\xff\xfe"],
    )
    def test_msgpack_hostile_length_fields_are_refused(self, header: bytes) -> None:
        """A msgpack header announcing a two-billion-item container on a few bytes is refused as invalid."""
        with pytest.raises(ValueError, match=r"(?i)exceeds|incomplete|insufficient"):
            MsgpackSerializer().loads(header + b"\x00" * 16)


def test_json_serializer_output_is_valid_json() -> None:
    """The json serializer's output is parsed back by the standard json module."""
    assert json.loads(JSONSerializer().dumps({"a": [1, None]})) == {"a": [1, None]}


def test_statistics_counted_inside_a_rolled_back_transaction_are_kept(tmp_path: Path) -> None:
    """Hits and misses counted inside transact() are not written in it, so a rollback does not lose them."""
    cache = cachekit.Cache(tmp_path / "stats", statistics=True)
    cache.set("key", 1)

    def read_then_fail() -> None:
        with cache.transact():
            for _ in range(300):
                cache.get("key")
                cache.get("missing")
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError, match="roll back"):
        read_then_fail()
    assert cache.stats() == (300, 300)
    cache.close()
    assert cachekit.Cache(tmp_path / "stats").stats() == (300, 300)
