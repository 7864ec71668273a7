"""The plugin that registers cachekit's own serializers and eviction policies."""

from __future__ import annotations

from collections.abc import Mapping

from ._hookspecs import hookimpl


@hookimpl
def cachekit_serializers() -> Mapping[str, object]:
    return {
        "pickle": "cachekit._serializers:PickleSerializer",
        "msgpack": "cachekit._serializers:MsgpackSerializer",
        "json": "cachekit._serializers:JSONSerializer",
        "raw": "cachekit._serializers:RawSerializer",
    }


@hookimpl
def cachekit_eviction_policies() -> Mapping[str, object]:
    return {
        "none": "cachekit._policies:NoEviction",
        "least-recently-stored": "cachekit._policies:LeastRecentlyStored",
        "least-recently-used": "cachekit._policies:LeastRecentlyUsed",
        "least-frequently-used": "cachekit._policies:LeastFrequentlyUsed",
    }
