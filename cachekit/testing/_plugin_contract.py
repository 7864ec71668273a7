"""An eviction policy and a serializer registered at run time, used by name."""

from __future__ import annotations

from typing import Any

import cachekit
from cachekit.plugins import Order

from ._plugins_for_tests import MarkedJSONSerializer, _PolicyPlugin, _SerializerPlugin
from ._support import CacheFactory, FakeClock, _Harness


class PluginContract(_Harness):
    """An eviction policy and a serializer registered at run time, used by name."""

    def test_a_custom_eviction_policy_changes_what_is_culled(self, make_cache: CacheFactory, clock: FakeClock) -> None:
        """A policy registered at run time (largest first) culls other entries than the default policy."""

        def culled(cache: cachekit.Cache) -> list[str]:
            cache.set("e0", b"x" * 97)
            unit = cache.volume()
            for index in range(1, 7):
                clock.advance(1)
                cache.set(f"e{index}", b"x" * (97 + (200 if index == 1 else 0)))
            cache.reset("size_limit", cache.volume() + unit // 2)
            clock.advance(1)
            cache.set("e7", b"x" * 97)
            return [f"e{index}" for index in range(8) if f"e{index}" not in list(cache)]

        plugin = _PolicyPlugin()
        cachekit.plugins.register(plugin)
        try:
            assert "conformance-largest-first" in cachekit.plugins.names("eviction_policy")
            custom = make_cache("largest-first", clock=clock, eviction_policy="conformance-largest-first")
            try:
                assert culled(custom) == ["e1"]
            finally:
                custom.close()
        finally:
            cachekit.plugins.unregister(plugin)
        assert "conformance-largest-first" not in cachekit.plugins.names("eviction_policy")
        assert culled(make_cache("default", clock=clock)) == ["e0"]

    def test_a_custom_serializer_round_trips_values(self, make_cache: CacheFactory) -> None:
        """A serializer registered at run time encodes and decodes the values, and is recorded per entry."""
        plugin = _SerializerPlugin()
        cachekit.plugins.register(plugin)
        try:
            MarkedJSONSerializer.calls.clear()
            cache = make_cache("custom-serializer", serializer="conformance-json")
            try:
                values: dict[str, Any] = {"dict": {"a": [1, 2.5, None, True]}, "list": [1, "two"], "none": None}
                for key, value in values.items():
                    assert cache.set(key, value) is True
                for key, value in values.items():
                    assert cache.get(key) == value
                assert MarkedJSONSerializer.calls.count("dumps") >= 3
                assert MarkedJSONSerializer.calls.count("loads") >= 3
                entries = list(cache.store.scan(Order.INSERTION))
                assert [entry.serializer for entry in entries] == ["conformance-json"] * 3
                assert all((entry.value or b"").startswith(MarkedJSONSerializer.marker) for entry in entries)
            finally:
                cache.close()
        finally:
            cachekit.plugins.unregister(plugin)
