"""The eviction policy, serializer and plugins that :class:`PluginContract` registers at run time."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from cachekit.plugins import EvictionPolicy, Serializer, hookimpl


class LargestFirst(EvictionPolicy):
    """An eviction policy that removes the largest entries first."""

    name = "conformance-largest-first"
    rank = ("-size",)


class MarkedJSONSerializer(Serializer):
    """JSON behind a marker, recording every call so a test can see that it is used."""

    name = "conformance-json"
    marker: ClassVar[bytes] = b"CKJSON:"
    calls: ClassVar[list[str]] = []

    def dumps(self, value: Any) -> bytes:
        self.calls.append("dumps")
        return self.marker + json.dumps(value).encode()

    def loads(self, data: bytes) -> Any:
        self.calls.append("loads")
        if not data.startswith(self.marker):
            raise ValueError("not written by MarkedJSONSerializer")
        return json.loads(data[len(self.marker) :])


class _PolicyPlugin:
    @hookimpl
    def cachekit_eviction_policies(self) -> Mapping[str, object]:
        return {LargestFirst.name: LargestFirst}


class _SerializerPlugin:
    @hookimpl
    def cachekit_serializers(self) -> Mapping[str, object]:
        return {MarkedJSONSerializer.name: MarkedJSONSerializer}
