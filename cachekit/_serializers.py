"""The built-in serializers: ``pickle`` (the default), ``msgpack``, ``json``, ``raw``."""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from typing import Any

from ._interfaces import Serializer

__all__ = ["JSONSerializer", "MsgpackSerializer", "PickleSerializer", "RawSerializer"]


class PickleSerializer(Serializer):
    """Any picklable object, as python-diskcache stores it.

    Unpickling runs code chosen by whoever wrote the bytes, so cachekit
    refuses cache directories that other users can write to; see the
    security section of the docs.
    """

    name = "pickle"

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    @classmethod
    def create(cls, settings: Mapping[str, Any]) -> Serializer:
        return cls(settings.get("disk_pickle_protocol", pickle.HIGHEST_PROTOCOL))

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=self.protocol)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


class MsgpackSerializer(Serializer):
    """MessagePack: None, bools, numbers, str, bytes, lists and dicts; tuples come back as lists."""

    name = "msgpack"

    def __init__(self) -> None:
        import msgpack  # here, not at module level: only caches that use it pay for the import

        self._msgpack = msgpack

    def dumps(self, value: Any) -> bytes:
        return self._msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]

    def loads(self, data: bytes) -> Any:
        # unpackb bounds every length field by len(data), so a hostile header
        # cannot make it allocate more than the payload's own size.
        return self._msgpack.unpackb(data, raw=False, strict_map_key=False)


class JSONSerializer(Serializer):
    """Strict JSON (no NaN or infinity): None, bools, numbers, str, lists and dicts with str keys."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class RawSerializer(Serializer):
    """Nothing but bytes, str, int and float (which the core stores natively)."""

    name = "raw"

    def dumps(self, value: Any) -> bytes:
        raise TypeError(f"the raw serializer stores only bytes, str, int and float, not {type(value).__name__}")

    def loads(self, data: bytes) -> Any:
        raise TypeError("the raw serializer cannot decode serialized values")
