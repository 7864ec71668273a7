"""The canonical key codec: keys to bytes that stores compare as raw bytes.

Equal keys give equal bytes, and the encoding of ``str``, ``bytes``, ``int``
and ``float`` keys (and tuples of them) does not depend on the serializer.

Compatibility with python-diskcache: there, ``1`` and ``1.0`` name the same
entry (SQLite compares them as equal) while ``True`` is a different key
(it is pickled).  The codec keeps both rules: an integral float encodes like
the int, and bools have their own type byte.  Any other hashable key goes
through the cache's serializer, as in python-diskcache.

Integers between -2**63 and 2**63-1 encode in eight big-endian bytes
offset by 2**63, so their byte order is their numeric order; queues
(``push``/``pull``) rely on it, and on strings sorting by code point.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

from ._errors import CachekitError, SerializationError

__all__ = ["KeyCodec", "queue_bounds", "queue_key"]

_INT_OFFSET = 2**63
_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1
_FLOAT = struct.Struct(">d")
_CANONICAL_NAN = _FLOAT.pack(math.nan)
_SIGN_BIT = 1 << 63
_ALL_BITS = (1 << 64) - 1

STR = b"s"[0]
BYTES = b"b"[0]
INT = b"i"[0]
BIG_INT = b"j"[0]
FLOAT = b"f"[0]
BOOL = b"?"[0]
NONE = b"n"[0]
TUPLE = b"t"[0]
FROZENSET = b"z"[0]
SERIALIZED = b"p"[0]


def _encode_varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _join(encoded_items: Any) -> bytes:
    parts = []
    for encoded in encoded_items:
        parts.append(_encode_varint(len(encoded)))
        parts.append(encoded)
    return b"".join(parts)


def _decode_varint(data: bytes, position: int) -> tuple[int, int]:
    number = shift = 0
    while True:
        byte = data[position]
        position += 1
        number |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return number, position
        shift += 7


class KeyCodec:
    """Encodes keys (and tags) to canonical bytes and back.

    ``dumps`` and ``loads`` are the cache's serializer functions (already
    wrapped with signing when a secret key is set), used only for keys of
    types the codec does not know natively.
    """

    __slots__ = ("_dumps", "_loads")

    def __init__(self, dumps: Callable[[Any], bytes], loads: Callable[[bytes], Any]) -> None:
        self._dumps = dumps
        self._loads = loads

    def encode(self, key: Any) -> bytes:
        """Return the canonical bytes of ``key``."""
        # The common case first, without any other type test.
        if type(key) is str:
            return b"s" + key.encode("utf-8", "surrogatepass")
        return self._encode_other(key)

    def _encode_other(self, key: Any) -> bytes:
        kind = type(key)
        if kind is bytes:
            return b"b" + bytes(key)
        if kind is int:
            return _encode_int(key)
        if kind is float:
            if key.is_integer():
                return _encode_int(int(key))
            return b"f" + _encode_float(key)
        if kind is bool:
            return b"?\x01" if key else b"?\x00"
        if key is None:
            return b"n"
        if isinstance(key, int):  # int subclasses (IntEnum) equal their int value
            return _encode_int(int(key))
        if kind is tuple:
            return b"t" + _join(self.encode(item) for item in key)
        if kind is frozenset:
            # Sorted by encoding: a pickled set's bytes follow its iteration
            # order, which string hash randomisation changes from run to run.
            return b"z" + _join(sorted(self.encode(item) for item in key))
        if isinstance(key, str):  # str subclasses (e.g. enum.StrEnum) compare as str
            return b"s" + str.encode(key, "utf-8", "surrogatepass")
        # Anything else, hashable or not (lists in memoized arguments), goes
        # through the serializer, as python-diskcache pickles such keys.
        try:
            return b"p" + self._dumps(key)
        except SerializationError:
            raise
        except Exception as error:
            raise SerializationError(f"cannot encode key of type {kind.__name__}: {error}") from error

    def _split(self, data: bytes) -> list[Any]:
        """Decode the length-prefixed items that follow a container's type byte."""
        items = []
        position = 1
        while position < len(data):
            length, position = _decode_varint(data, position)
            items.append(self._decode(data[position : position + length]))
            position += length
        return items

    def decode(self, data: bytes) -> Any:
        """Return the key whose canonical bytes are ``data``; damaged bytes raise SerializationError."""
        try:
            return self._decode(data)
        except CachekitError:
            raise
        except Exception as error:  # truncated or garbled bytes: IndexError, ValueError, UnicodeDecodeError...
            raise SerializationError(f"cannot decode the key bytes {bytes(data[:40])!r}: {error!r}") from error

    def _decode(self, data: bytes) -> Any:
        kind = data[0]
        if kind == STR:
            return data[1:].decode("utf-8", "surrogatepass")
        if kind == BYTES:
            return data[1:]
        if kind == INT:
            return int.from_bytes(data[1:9], "big") - _INT_OFFSET
        if kind == BIG_INT:
            return int(data[1:].decode("ascii"))
        if kind == FLOAT:
            return _decode_float(data[1:9])
        if kind == BOOL:
            return data[1:2] == b"\x01"
        if kind == NONE:
            return None
        if kind == TUPLE:
            return tuple(self._split(data))
        if kind == FROZENSET:
            return frozenset(self._split(data))
        if kind == SERIALIZED:
            return self._loads(data[1:])
        raise SerializationError(f"unknown key encoding byte {kind:#x}")


def _encode_float(number: float) -> bytes:
    """Eight bytes whose unsigned order is the numeric order of non-NaN floats.

    Positive floats get their sign bit set; negative ones have every bit
    inverted, so that more negative sorts lower.  NaN has one encoding.
    """
    bits = int.from_bytes(_CANONICAL_NAN if math.isnan(number) else _FLOAT.pack(number), "big")
    bits = bits ^ _ALL_BITS if bits & _SIGN_BIT else bits | _SIGN_BIT
    return bits.to_bytes(8, "big")


def _decode_float(data: bytes) -> float:
    bits = int.from_bytes(data, "big")
    bits = bits & ~_SIGN_BIT if bits & _SIGN_BIT else bits ^ _ALL_BITS
    value: float = _FLOAT.unpack(bits.to_bytes(8, "big"))[0]
    return value


def _encode_int(number: int) -> bytes:
    if _INT_MIN <= number <= _INT_MAX:
        return b"i" + (number + _INT_OFFSET).to_bytes(8, "big")
    return b"j" + str(number).encode("ascii")


#: python-diskcache's queue numbering: 15 digits, starting in the middle.
QUEUE_START = 500_000_000_000_000
QUEUE_MAX = 999_999_999_999_999


def queue_key(prefix: str | None, number: int) -> str | int:
    """The key python-diskcache gives queue item ``number`` under ``prefix``."""
    if prefix is None:
        return number
    return f"{prefix}-{number:015d}"


def queue_bounds(codec: KeyCodec, prefix: str | None) -> tuple[bytes, bytes]:
    """Encoded key range ``[start, stop)`` that holds every queue key of ``prefix``."""
    return (
        codec.encode(queue_key(prefix, 0)),
        codec.encode(queue_key(prefix, QUEUE_MAX)) + b"\x00",
    )
