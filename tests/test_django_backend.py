"""``cachekit_django.CachekitCache`` beyond Django's own cache-backend contract.

Django's ``BaseCacheTests`` (run by ``tests/test_django_contract.py``) cover
the sync API; these tests cover the async methods, the python-diskcache
extras, strict ``OPTIONS``, the system checks, and processes sharing a cache.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

django = pytest.importorskip("django", reason="the Django backend needs Django: pip install 'cachekit[django]'")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(INSTALLED_APPS=["cachekit_django"], CACHES={}, USE_TZ=True)
    django.setup()

from django.core.checks import run_checks  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

import cachekit  # noqa: E402
from cachekit_django import CachekitCache  # noqa: E402

STORES = ["sqlite", "lmdb"]


def location(store: str, directory: Path) -> str:
    return f"{store}://{directory}"


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(store: str, tmp_path: Path) -> Iterator[CachekitCache]:
    cache = CachekitCache(location(store, tmp_path / "cache"), {"TIMEOUT": 300, "OPTIONS": {}})
    yield cache
    cache.close()


class TestDjangoSemantics:
    def test_timeouts_follow_django(self, backend: CachekitCache) -> None:
        """The default TIMEOUT, None for never, 0 or negative for not kept (add reports success)."""
        backend.set("default", 1)
        backend.set("forever", 2, timeout=None)
        backend.set("zero", 3, timeout=0)
        backend.set("negative", 4, timeout=-5)
        assert backend.add("added-with-zero", 5, timeout=0) is True
        assert (backend.get("default"), backend.get("forever")) == (1, 2)
        assert [backend.get(key) for key in ("zero", "negative", "added-with-zero")] == [None, None, None]
        now = time.time()
        _, default_expiry = backend._cache.get(backend.make_key("default"), expire_time=True)
        _, forever_expiry = backend._cache.get(backend.make_key("forever"), expire_time=True)
        assert 290 < default_expiry - now <= 300
        assert forever_expiry is None

    def test_a_zero_timeout_removes_what_was_there(self, backend: CachekitCache) -> None:
        backend.set("key", "old")
        backend.set("key", "new", timeout=0)
        assert backend.get("key") is None
        assert backend.has_key("key") is False

    def test_incr_of_a_missing_key_is_value_error(self, backend: CachekitCache) -> None:
        with pytest.raises(ValueError, match="not found"):
            backend.incr("missing")
        backend.set("count", 10)
        assert (backend.incr("count", 5), backend.decr("count", 2)) == (15, 13)

    @pytest.mark.parametrize(("max_entries", "cull_frequency", "left"), [(30, 3, 29), (30, 0, 19), (10, 2, 9)])
    def test_max_entries_and_cull_frequency(
        self, store: str, tmp_path: Path, max_entries: int, cull_frequency: int, left: int
    ) -> None:
        """Django's culling arithmetic: at MAX_ENTRIES, a CULL_FREQUENCY-th goes (all of them for 0)."""
        options = {"MAX_ENTRIES": max_entries, "CULL_FREQUENCY": cull_frequency}
        backend = CachekitCache(location(store, tmp_path / "cull"), {"OPTIONS": options})
        for index in range(1, 50):
            backend.set(f"cull{index}", "value", 1000)
        assert sum(backend.has_key(f"cull{index}") for index in range(1, 50)) == left
        assert backend.has_key("cull49")  # the newest always stays
        backend.close()

    def test_close_writes_out_statistics_and_keeps_the_store_open(self, store: str, tmp_path: Path) -> None:
        """Django closes caches after every request: pending counts reach the directory, the store stays."""
        directory = tmp_path / "stats"
        backend = CachekitCache(location(store, directory), {"OPTIONS": {"statistics": True}})
        backend.set("key", 1)
        backend.get("key")
        backend.get("missing")
        store_object = backend._cache.store
        backend.close()
        other = cachekit.Cache(directory)
        assert other.stats() == (1, 1)
        other.close()
        assert backend._cache.store is store_object
        assert backend.get("key") == 1

    @pytest.mark.parametrize(
        "key",
        ["plain:1:key", "with space", "tab\there", "del\x7f", "ünïcode", "x" * 250, "x" * 251, "é" * 251, ""],
    )
    def test_key_warnings_are_djangos(self, backend: CachekitCache, key: str) -> None:
        """The fast path of validate_key warns exactly when Django's own check does."""
        from django.core.cache.backends.base import CacheKeyWarning, memcache_key_warnings

        expected = list(memcache_key_warnings(key))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            backend.validate_key(key)
        assert [str(warning.message) for warning in caught if warning.category is CacheKeyWarning] == expected


class TestOptions:
    def test_cachekit_settings_pass_through(self, store: str, tmp_path: Path) -> None:
        options = {"size_limit": "1MiB", "eviction_policy": "least-recently-used", "MAX_ENTRIES": 50}
        backend = CachekitCache(location(store, tmp_path / "c"), {"OPTIONS": options})
        inner = backend._cache
        assert (inner.size_limit, inner.eviction_policy, inner.store_name) == (2**20, "least-recently-used", store)
        assert backend._max_entries == 50
        backend.close()

    def test_an_unknown_option_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(ImproperlyConfigured, match="unknown setting 'sise_limit'"):
            CachekitCache(str(tmp_path / "c"), {"OPTIONS": {"sise_limit": "1GiB"}})
        assert not (tmp_path / "c").exists()

    def test_a_bad_value_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(ImproperlyConfigured, match="size_limit"):
            CachekitCache(str(tmp_path / "c"), {"OPTIONS": {"size_limit": "lots"}})

    @pytest.mark.parametrize("location_value", ["", None, 5])
    def test_a_missing_location_is_refused(self, location_value: Any) -> None:
        with pytest.raises(ImproperlyConfigured, match="LOCATION"):
            CachekitCache(location_value, {})

    def test_an_unknown_store_lists_the_installed_ones(self, tmp_path: Path) -> None:
        with pytest.raises(ImproperlyConfigured, match="Installed stores: lmdb, sqlite"):
            CachekitCache(f"nosuch://{tmp_path}/c", {})


class TestAsync:
    def test_every_async_method(self, backend: CachekitCache) -> None:
        async def scenario() -> list[Any]:
            results: list[Any] = []
            await backend.aset("a", 1)
            results.append(await backend.aget("a"))
            results.append(await backend.aadd("a", 2))
            results.append(await backend.aadd("b", 2))
            results.append(await backend.aincr("a", 10))
            results.append(await backend.adecr("a", 1))
            results.append(await backend.ahas_key("b"))
            results.append(await backend.atouch("b", 100))
            results.append(await backend.aset_many({"c": 3, "d": 4}))
            results.append(await backend.aget_many(["a", "c", "d", "missing"]))
            await backend.adelete_many(["c", "d"])
            results.append(await backend.aget_or_set("e", lambda: 5))
            results.append(await backend.aincr_version("e"))
            results.append(await backend.aget("e", version=2))
            results.append(await backend.adelete("b"))
            await backend.aclear()
            results.append(await backend.aget("a", "gone"))
            await backend.aclose()
            return results

        assert asyncio.run(scenario()) == [
            1,
            False,
            True,
            11,
            10,
            True,
            True,
            [],
            {"a": 10, "c": 3, "d": 4},
            5,
            2,
            5,
            True,
            "gone",
        ]


class TestExtras:
    def test_tags_evict_and_the_tag_index(self, backend: CachekitCache) -> None:
        backend.create_tag_index()
        backend.set("a", 1, tag="red")
        backend.add("b", 2, tag="red")
        backend.set("c", 3, tag="blue")
        assert backend.evict("red") == 2
        assert backend.get_many(["a", "b", "c"]) == {"c": 3}
        backend.drop_tag_index()
        assert backend.evict("blue") == 1

    def test_read_expire_stats_and_cull(self, backend: CachekitCache) -> None:
        backend.set("blob", b"\x00binary", timeout=None)
        with backend.read("blob") as handle:
            assert handle.read() == b"\x00binary"
        with pytest.raises(KeyError):
            backend.read("missing")
        backend.set("short", 1, timeout=0.05)
        backend.stats(enable=True, reset=True)
        backend.get("blob")
        backend.get("nothing")
        assert backend.stats() == (1, 1)
        time.sleep(0.1)
        assert backend.expire() == 1
        assert backend.cull() == 0

    def test_memoize(self, backend: CachekitCache) -> None:
        calls: list[int] = []

        @backend.memoize(timeout=60)
        def square(number: int) -> int:
            calls.append(number)
            return number * number

        assert (square(4), square(4), square(5)) == (16, 16, 25)
        assert calls == [4, 5]

    def test_sub_caches(self, backend: CachekitCache, store: str) -> None:
        sub = backend.cache("sessions")
        sub.set("k", "v")
        assert (sub.store_name, backend.cache("sessions").get("k")) == (store, "v")
        assert backend.get("k") is None
        with pytest.raises(ValueError, match="plain directory name"):
            backend.cache("../escape")

    def test_sub_deques_and_indexes(self, backend: CachekitCache, store: str) -> None:
        queue = backend.deque("jobs", maxlen=3)
        queue.extend([1, 2, 3, 4])
        assert list(backend.deque("jobs")) == [2, 3, 4]
        assert queue.cache.store_name == store
        index = backend.index("users")
        index["ada"] = {"id": 1}
        index["bob"] = {"id": 2}
        assert list(backend.index("users").items()) == [("ada", {"id": 1}), ("bob", {"id": 2})]
        assert backend.get("ada") is None
        with pytest.raises(ValueError, match="sub-deque name"):
            backend.deque("")


class TestChecks:
    def test_a_cache_inside_media_root_or_static_root_is_warned(self, tmp_path: Path) -> None:
        caches = {
            "media": {"BACKEND": "cachekit_django.CachekitCache", "LOCATION": f"lmdb://{tmp_path}/media/cache"},
            "static": {"BACKEND": "cachekit_django.CachekitCache", "LOCATION": str(tmp_path / "static" / "c")},
            "fine": {"BACKEND": "cachekit_django.CachekitCache", "LOCATION": str(tmp_path / "private")},
        }
        with override_settings(CACHES=caches, MEDIA_ROOT=str(tmp_path / "media"), STATIC_ROOT=tmp_path / "static"):
            messages = [message for message in run_checks() if message.id.startswith("cachekit_django")]
        assert sorted((message.id, message.obj) for message in messages) == [
            ("cachekit_django.W001", "CACHES['media']"),
            ("cachekit_django.W001", "CACHES['static']"),
        ]
        assert "inside MEDIA_ROOT" in messages[0].msg or "inside MEDIA_ROOT" in messages[1].msg

    def test_turning_the_directory_checks_off_is_warned(self, tmp_path: Path) -> None:
        caches = {
            "open": {
                "BACKEND": "cachekit_django.CachekitCache",
                "LOCATION": str(tmp_path / "c"),
                "OPTIONS": {"allow_insecure_directory": True, "secret_key": "a secret key of 32 characters..."},
            },
            "by_url": {
                "BACKEND": "cachekit_django.CachekitCache",
                "LOCATION": f"sqlite://{tmp_path}/d?allow_insecure_directory=true",
            },
            "other": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        }
        with override_settings(CACHES=caches, MEDIA_ROOT="", STATIC_ROOT=None):
            ids = sorted((message.id, message.obj) for message in run_checks() if message.id.startswith("cachekit"))
        assert ids == [("cachekit_django.W002", "CACHES['by_url']"), ("cachekit_django.W002", "CACHES['open']")]


def _incr_worker(directory: str, store: str, count: int) -> list[bool]:
    """In a spawned process: configure Django, then incr a shared counter and race to add a key."""
    from django.core.cache import caches

    # Importing this module (to find this function) configured Django; the cache comes from settings.
    caches_setting = {"default": {"BACKEND": "cachekit_django.CachekitCache", "LOCATION": f"{store}://{directory}"}}
    with override_settings(CACHES=caches_setting):
        cache = caches["default"]
        return _incr_and_add(cache, count)


def _incr_and_add(cache: Any, count: int) -> list[bool]:
    added = []
    for index in range(count):
        cache.incr("counter")
        added.append(cache.add(f"once-{index}", os.getpid()))
    cache.close()
    return added


@pytest.mark.slow
def test_processes_share_one_cache_through_django(store: str, tmp_path: Path) -> None:
    """Four processes incr one counter exactly and each add() succeeds in exactly one process."""
    directory = tmp_path / "shared"
    backend = CachekitCache(location(store, directory), {})
    backend.set("counter", 0, timeout=None)
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        outcomes = pool.starmap(_incr_worker, [(str(directory), store, 50)] * 4)
    assert backend.get("counter") == 200
    for index in range(50):
        assert sum(outcome[index] for outcome in outcomes) == 1
    backend.close()


def test_the_backend_survives_pickling_of_values_it_cannot_store(backend: CachekitCache) -> None:
    """An unpicklable value raises and leaves the cache as it was."""
    backend.set("kept", 1)
    with pytest.raises(cachekit.SerializationError):
        backend.set("bad", lambda: "functions do not pickle")
    assert (backend.get("kept"), backend.has_key("bad")) == (1, False)
