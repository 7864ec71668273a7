"""What every contract uses: the fake clock, the cache fixtures and small helpers."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import pytest

import cachekit
from cachekit.plugins import Entry, Store

T = TypeVar("T")

#: Seconds a helper thread or process may take before the test fails instead of hanging.
_WAIT = 60.0


class FakeClock:
    """A clock that moves only when told to; pass it as ``Cache(..., clock=clock)``."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new time."""
        self.now += seconds
        return self.now


class CacheFactory(Protocol):
    """The ``make_cache`` fixture: opens a cache on the store under test, closed after the test."""

    def __call__(self, subdir: str = "cache", **settings: Any) -> cachekit.Cache: ...


@dataclass(frozen=True)
class Point:
    """A user-defined type: values of such types go through the serializer (pickle by default)."""

    x: int
    y: int


class _Rollback(Exception):
    """Raised inside a transaction to make it roll back."""


def value_files(cache: cachekit.Cache) -> list[str]:
    """Absolute paths of every file under the cache directory's ``values/`` folder."""
    found: list[str] = []
    for folder, _, files in os.walk(os.path.join(cache.directory, "values")):
        found.extend(os.path.join(folder, name) for name in files)
    return sorted(found)


def _run_in_thread(function: Callable[[], T], timeout: float = _WAIT) -> T:
    """Call ``function`` in a new thread and return its result (or raise its exception)."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(function())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"the call in another thread did not finish within {timeout} seconds")
    if errors:
        raise errors[0]
    return results[0]


def _entry(
    key: bytes,
    value: bytes | None = b"value",
    *,
    filename: str | None = None,
    serializer: str = "bytes",
    size: int | None = None,
    store_time: float = 1.0,
    expire_time: float | None = None,
    access_time: float | None = None,
    access_count: int = 0,
    tag: bytes | None = None,
) -> Entry:
    """An :class:`Entry` for raw store tests; the size defaults to key plus payload."""
    if size is None:
        size = len(key) + (0 if value is None else len(value))
    return Entry(
        key=key,
        value=value,
        filename=filename,
        serializer=serializer,
        size=size,
        store_time=store_time,
        expire_time=expire_time,
        access_time=store_time if access_time is None else access_time,
        access_count=access_count,
        tag=tag,
    )


def _put(store: Store, *entries: Entry) -> None:
    with store.write():
        for entry in entries:
            store.put(entry)


def _keys(entries: Iterable[Entry]) -> list[bytes]:
    return [entry.key for entry in entries]


def _totals(store: Store) -> tuple[int, int]:
    totals = store.totals()
    return totals.count, totals.volume


def _payload(store: Store, key: bytes) -> bytes | None:
    entry = store.get(key)
    return None if entry is None else entry.value


def _short_id(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 32 else text[:29] + "..."


def _read_all(handle: Any) -> bytes:
    with handle:
        data: bytes = handle.read()
    return data


class _Harness:
    """Fixtures shared by every contract: caches on the store under test and a fake clock."""

    store: ClassVar[str]
    """The name of the store under test; subclasses set it."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        """A fake clock; caches given it see time move only on ``clock.advance``."""
        return FakeClock()

    @pytest.fixture
    def make_cache(self, tmp_path: Path) -> Iterator[CacheFactory]:
        """Open caches on the store under test in ``tmp_path / subdir``; all are closed afterwards."""
        store = getattr(self, "store", None)
        if not isinstance(store, str):
            raise TypeError(f"{type(self).__name__} must name the store under test, e.g. store = 'sqlite'")
        opened: list[cachekit.Cache] = []

        def make(subdir: str = "cache", **settings: Any) -> cachekit.Cache:
            cache = cachekit.Cache(tmp_path / subdir, store=store, **settings)
            opened.append(cache)
            return cache

        yield make
        for cache in reversed(opened):
            cache.close()

    @pytest.fixture
    def cache(self, make_cache: CacheFactory, clock: FakeClock) -> cachekit.Cache:
        """A new cache with default settings, driven by the fake clock."""
        return make_cache(clock=clock)
