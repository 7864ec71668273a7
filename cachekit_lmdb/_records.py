"""How the LMDB store lays out entries and index keys as bytes.

Pure functions over bytes: nothing here imports ``lmdb``.

An entry is one record in the ``entries`` database under its key::

    header (64 bytes, little-endian)
        expire_time   double   NaN when the entry never expires
        serializer    uint8    code of a well-known serializer, or NAMED
        name_len      uint8    length of the serializer name (NAMED only)
        value_offset  uint32   where the inline payload starts; 0 when it lives in a value file
        store_time    double
        access_time   double
        access_count  int64
        size          int64
        seq           uint64   insertion sequence number
        filename_len  uint16   0 when the payload is inline
        tag_len       uint32   0 when the entry has no tag
        key_len       uint32   0 unless the key was too long to be the record's own key
    serializer name, filename, tag, full key (each as long as the header says)
    payload (the rest; empty when the payload lives in a value file)

The read path (``LMDBStore.lookup``) unpacks only the first three fields (:data:`PEEK`).

Index keys sort as unsigned bytes (LMDB's default order), so every number
in them is encoded big-endian with its order preserved: floats by the usual
sign-flip trick, integers offset by 2**63, descending fields inverted.
Each index key ends with the entry's sequence number, which makes it unique
and breaks ties in insertion order.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

from cachekit.plugins import Entry

__all__ = [
    "HEADER",
    "MAX_KEY",
    "PREFIX",
    "RANK_ENCODERS",
    "RecordError",
    "decode",
    "decode_sortable_float",
    "encode",
    "expiry_key",
    "rank_encoder",
    "record_key",
    "sequence_of",
    "sortable_float",
    "tag_prefix",
]

HEADER = struct.Struct("<dBBIddqqQHII")
_HEADER_SIZE = HEADER.size
_new_tuple = tuple.__new__
PEEK = struct.Struct("<dBxI")
"""The fields of the header the read path needs: expire time, serializer code, value offset."""
_SEQ_FIELD = struct.Struct("<46xQ")
_SEQ = struct.Struct(">Q")
_DOUBLE = struct.Struct(">d")
_UNSIGNED = struct.Struct(">Q")
_PAIR = struct.Struct(">QQ")
_BITS = struct.Struct(">Q")

#: Serializers common enough to be recorded as one byte; any other name is stored in full.
CODES: tuple[str, ...] = ("bytes", "str", "int", "float", "pickle", "msgpack", "json", "raw")
_CODE_OF = {name: code for code, name in enumerate(CODES)}
NAMED = 255

#: Longest entry key stored as it is, plus one: LMDB accepts keys of up to
#: 511 bytes, and the store puts a one-byte region prefix in front.  Keys this
#: long or longer are stored under a prefix of themselves plus a digest (exactly
#: MAX_KEY bytes), with the full key in the record; shorter keys as they are,
#: so a stored key of MAX_KEY bytes is always a digest form and never collides.
MAX_KEY = 510
PREFIX = MAX_KEY - 32

_SIGN = 1 << 63
_ALL = (1 << 64) - 1
_NEVER = math.nan


def record_key(key: bytes) -> bytes:
    """The key an entry is stored under: the key itself, or for a key of
    :data:`MAX_KEY` bytes or more its first :data:`PREFIX` bytes followed by
    a SHA-256 digest of the whole."""
    if len(key) < MAX_KEY:
        return key
    import hashlib  # here: only long keys need it, and importing OpenSSL costs milliseconds at open

    return key[:PREFIX] + hashlib.sha256(key).digest()


def encode(entry: Entry, seq: int) -> bytes:
    """The record for ``entry`` with insertion number ``seq``."""
    key, value, filename_text, serializer, size, store_time, expire, access_time, access_count, tag_bytes = entry
    code = _CODE_OF.get(serializer, NAMED)
    if filename_text is None and tag_bytes is None and code != NAMED and len(key) < MAX_KEY:
        # The common record: a header and the payload, nothing in between.
        return HEADER.pack(
            _NEVER if expire is None else expire,
            code,
            0,
            _HEADER_SIZE,
            store_time,
            access_time,
            access_count,
            size,
            seq,
            0,
            0,
            0,
        ) + (value or b"")
    return _encode(entry, seq)


def _encode(entry: Entry, seq: int) -> bytes:
    serializer = entry.serializer
    code = _CODE_OF.get(serializer, NAMED)
    name = serializer.encode("utf-8") if code == NAMED else b""
    filename = entry.filename.encode("ascii") if entry.filename is not None else b""
    tag = entry.tag if entry.tag is not None else b""
    key = entry.key
    full_key = key if len(key) >= MAX_KEY else b""
    expire = entry.expire_time
    value = entry.value if entry.filename is None and entry.value is not None else b""
    variable = b"".join((name, filename, tag, full_key))
    header = HEADER.pack(
        _NEVER if expire is None else expire,
        code,
        len(name),
        0 if filename else HEADER.size + len(variable),
        entry.store_time,
        entry.access_time,
        entry.access_count,
        entry.size,
        seq,
        len(filename),
        len(tag),
        len(full_key),
    )
    return b"".join((header, variable, value))


class RecordError(ValueError):
    """A record that cannot be decoded: the database is damaged."""


def decode(stored_key: bytes, record: bytes) -> tuple[Entry, int]:
    """The entry in ``record`` (stored under ``stored_key``) and its sequence number.

    Raises :class:`RecordError` for a damaged record.
    """
    try:
        (
            expire,
            code,
            _,
            value_offset,
            store_time,
            access_time,
            access_count,
            size,
            seq,
            filename_len,
            tag_len,
            key_len,
        ) = HEADER.unpack_from(record)
        if value_offset == _HEADER_SIZE and code != NAMED and not (filename_len or tag_len or key_len):
            # The common record (see encode): no serializer name, file, tag or long key.
            # tuple.__new__ builds the named tuple without its Python-level __new__ (twice as fast).
            if expire != expire:  # noqa: PLR0124 - NaN: never expires
                expire = None
            entry = (
                stored_key,
                record[_HEADER_SIZE:],
                None,
                CODES[code],
                size,
                store_time,
                expire,
                access_time,
                access_count,
                None,
            )
            return _new_tuple(Entry, entry), seq
        return _decode_any(stored_key, record)
    except (struct.error, UnicodeDecodeError, IndexError) as error:
        raise RecordError(f"the record under {stored_key[:40]!r} is damaged ({error})") from error


def _decode_any(stored_key: bytes, record: bytes) -> tuple[Entry, int]:
    (
        expire,
        code,
        name_len,
        value_offset,
        store_time,
        access_time,
        access_count,
        size,
        seq,
        filename_len,
        tag_len,
        key_len,
    ) = HEADER.unpack_from(record)
    position = HEADER.size
    if code == NAMED:
        serializer = record[position : position + name_len].decode("utf-8")
        position += name_len
    else:
        serializer = CODES[code]
    filename = None
    if filename_len:
        filename = record[position : position + filename_len].decode("ascii")
        position += filename_len
    tag = None
    if tag_len:
        tag = record[position : position + tag_len]
        position += tag_len
    key = stored_key
    if key_len:
        key = record[position : position + key_len]
        position += key_len
    if value_offset and value_offset != position:
        raise RecordError(
            f"the record under {stored_key[:40]!r} is damaged (payload offset {value_offset}, not {position})"
        )
    value = None if filename is not None else record[position:]
    entry = Entry(
        key,
        value,
        filename,
        serializer,
        size,
        store_time,
        None if expire != expire else expire,  # noqa: PLR0124 - NaN: never expires
        access_time,
        access_count,
        tag,
    )
    return entry, seq


def sequence_of(record: bytes) -> int:
    """The insertion sequence number of a record."""
    return int(_SEQ_FIELD.unpack_from(record)[0])


def seq_bytes(seq: int) -> bytes:
    """A sequence number as an index key (or key suffix)."""
    return _SEQ.pack(seq)


def seq_from(index_key: bytes) -> int:
    """The sequence number that ends an index key."""
    return int(_SEQ.unpack_from(index_key, len(index_key) - 8)[0])


def sortable_float(number: float) -> int:
    """A 64-bit unsigned integer with the same order as ``number``."""
    (bits,) = _UNSIGNED.unpack(_DOUBLE.pack(number))
    return int(bits ^ _ALL if bits & _SIGN else bits | _SIGN)


def decode_sortable_float(encoded: bytes) -> float:
    """Invert :func:`sortable_float` on its eight big-endian bytes."""
    (bits,) = _UNSIGNED.unpack_from(encoded)
    bits = bits ^ _SIGN if bits & _SIGN else bits ^ _ALL
    return float(_DOUBLE.unpack(_UNSIGNED.pack(bits))[0])


def _sortable_int(number: int) -> int:
    return max(0, min(_ALL, number + _SIGN))


#: For each rank field, how to turn its value into an order-preserving unsigned integer.
RANK_ENCODERS: dict[str, Callable[[Entry], int]] = {
    "store_time": lambda entry: sortable_float(entry.store_time),
    "access_time": lambda entry: sortable_float(entry.access_time),
    "access_count": lambda entry: _sortable_int(entry.access_count),
    "size": lambda entry: _sortable_int(entry.size),
}


def rank_encoder(rank: Sequence[str]) -> Callable[[Entry, int], bytes] | None:
    """A function giving the eviction-index key of an entry for ``rank`` (``None`` for no rank).

    Built once per rank, with one ``struct`` call per key: it runs on every write.
    """
    if not rank:
        return None
    layout = struct.Struct(">" + "Q" * (len(rank) + 1))
    pack = layout.pack
    if rank in (("store_time",), ("access_time",)):  # the built-in time-based policies
        index = Entry._fields.index(rank[0])
        to_bits = _BITS.unpack

        def encode_time(entry: Entry, seq: int) -> bytes:
            (bits,) = to_bits(_DOUBLE.pack(entry[index]))
            return pack(bits ^ _ALL if bits & _SIGN else bits | _SIGN, seq)

        return encode_time
    if len(rank) == 1 and rank[0][0] != "-":
        field = RANK_ENCODERS[rank[0]]
        return lambda entry, seq: pack(field(entry), seq)
    fields = [(RANK_ENCODERS[name.lstrip("-")], _ALL if name[0] == "-" else 0) for name in rank]

    def encode_rank(entry: Entry, seq: int) -> bytes:
        return pack(*[field(entry) ^ flip for field, flip in fields], seq)

    return encode_rank


def expiry_key(expire_time: float, seq: int) -> bytes:
    """The key of an expiring entry in the expiry index."""
    return _PAIR.pack(sortable_float(expire_time), seq)


def tag_prefix(tag: bytes) -> bytes:
    """The fixed-length prefix under which the tag index groups entries with ``tag``."""
    import hashlib  # here: see record_key

    return hashlib.blake2b(tag, digest_size=16).digest()
