"""Scenario 8: a pickle planted in the store's database is never executed, on every store.

The payload is harmless: its ``__reduce__`` creates a marker directory, so code
execution is visible (and the payload is checked to be live first).  It is
written straight into the database through the engine (``sqlite3`` or
``lmdb``), as another user with write access to the directory could, in the
value of an existing entry.  Then (docs/security.md):

a. by default, cachekit refuses to open a directory others own or may write;
b. with ``allow_insecure_directory=True`` and a ``secret_key``, the signature
   check fails: every read is a miss counted in ``corrupt_values``;
c. with ``allow_insecure_directory=True`` and no key, reading a pickled value
   raises ``InsecureDirectory`` ("refusing to unpickle");
d. in a private directory with a ``secret_key``, tampering reads as a miss too.

In no case does the marker appear.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _faults import plant, planted_payload, value_files

import cachekit

SECRET = "a-secret-key-of-32-characters!!!"
MAC = 32  # bytes of HMAC-SHA256 before a signed payload

#: Every read path that decodes a value, with the result each gives for an unreadable (missing) value.
READS: dict[str, Callable[[cachekit.Cache], Any]] = {
    "get": lambda cache: cache.get("victim", "missing"),
    "get-expire_time-tag": lambda cache: cache.get("victim", "missing", expire_time=True, tag=True),
    "getitem": lambda cache: cache["victim"],
    "read": lambda cache: cache.read("victim"),
    "pop": lambda cache: cache.pop("victim", "missing"),
    "incr": lambda cache: cache.incr("victim"),
    "pull": lambda cache: cache.pull("queue", "missing"),
    "peek": lambda cache: cache.peek("queue", "missing"),
    "peekitem": lambda cache: cache.peekitem(),
    "memoize": lambda cache: cache.memoize(name="victim-function")(lambda: "recomputed")(),
}
MISSING_RESULTS: dict[str, object] = {
    "get": "missing",
    "get-expire_time-tag": ("missing", None, None),
    "pop": "missing",
    "pull": "missing",
    "peek": "missing",
    "memoize": "recomputed",
}


def _victims(cache: cachekit.Cache) -> dict[str, bytes]:
    """Store the entries the attacker will overwrite; return their encoded keys."""
    cache.set("victim", ["original"])
    queue_key = cache.push(["queued"], prefix="queue")
    function_key = ("victim-function", None)
    cache.set(function_key, ["memoized"])
    return {
        "victim": cache._encode_key("victim"),
        "queue": cache._encode_key(queue_key),
        "function": cache._encode_key(function_key),
    }


def _prepare(tmp_path: Path, store: str, signed: bool) -> tuple[Path, Path]:
    """A cache whose entries all hold a planted pickle (with a forged signature when ``signed``)."""
    directory = tmp_path / "cache"
    marker = tmp_path / "planted-code-ran"
    payload = planted_payload(marker)
    if signed:
        payload = b"\x00" * MAC + payload
    settings: dict[str, Any] = {"secret_key": SECRET} if signed else {}
    with cachekit.Cache(directory, store=store, **settings) as cache:
        victims = _victims(cache)
    for encoded in victims.values():
        plant(directory, store, encoded, payload)
    return directory, marker


def _attempt(cache: cachekit.Cache, read: str) -> tuple[str, object]:
    try:
        return "ok", READS[read](cache)
    except (KeyError, cachekit.CachekitError) as error:
        return type(error).__name__, str(error)


@pytest.fixture(params=["world-writable", "foreign-owner"])
def insecure(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make a directory insecure: writable by everyone, or (really under root, else faked) another user's."""

    def make(directory: Path) -> None:
        if request.param == "world-writable":
            directory.chmod(0o777)
        elif os.geteuid() == 0:
            os.chown(directory, 65534, 65534)
        else:
            owner = directory.stat().st_uid
            monkeypatch.setattr(os, "geteuid", lambda: owner + 1)

    return make


def test_an_insecure_directory_is_refused_before_anything_is_read(
    store: str, tmp_path: Path, insecure: Callable[[Path], None]
) -> None:
    """(a) A planted directory that others own or may write is refused by default: nothing is unpickled."""
    directory, marker = _prepare(tmp_path, store, signed=False)
    insecure(directory)
    with pytest.raises(cachekit.InsecureDirectory, match="plant a pickled value"):
        cachekit.Cache(directory, store=store)
    assert not marker.exists()


@pytest.mark.parametrize("read", READS)
def test_with_a_secret_key_a_planted_pickle_is_a_counted_miss(
    store: str, tmp_path: Path, insecure: Callable[[Path], None], read: str
) -> None:
    """(b) Opted out, with a secret_key: the forged signature fails, so the value reads as missing
    (KeyError where a missing key raises it) and is counted; the payload never runs."""
    directory, marker = _prepare(tmp_path, store, signed=True)
    insecure(directory)
    with cachekit.Cache(directory, store=store, allow_insecure_directory=True, secret_key=SECRET) as cache:
        kind, result = _attempt(cache, read)
        if read in MISSING_RESULTS:
            assert (kind, result) == ("ok", MISSING_RESULTS[read])
        else:
            assert kind == "KeyError", (kind, result)
        assert cache.counters()["corrupt_values"] >= 1
    assert not marker.exists()


@pytest.mark.parametrize("read", READS)
def test_without_a_secret_key_a_planted_pickle_is_refused(
    store: str, tmp_path: Path, insecure: Callable[[Path], None], read: str
) -> None:
    """(c) Opted out, without a secret_key: reading a pickled value raises InsecureDirectory (refusing to
    unpickle), and the payload never runs."""
    directory, marker = _prepare(tmp_path, store, signed=False)
    insecure(directory)
    with cachekit.Cache(directory, store=store, allow_insecure_directory=True) as cache:
        kind, message = _attempt(cache, read)
        assert kind == "InsecureDirectory", (kind, message)
        assert "refusing to unpickle" in str(message)
    assert not marker.exists()


@pytest.mark.parametrize("read", READS)
def test_in_a_private_directory_a_secret_key_detects_tampering(store: str, tmp_path: Path, read: str) -> None:
    """(d) In a private directory with a secret_key, a planted pickle is a counted miss as well."""
    directory, marker = _prepare(tmp_path, store, signed=True)
    with cachekit.Cache(directory, store=store, secret_key=SECRET) as cache:
        kind, result = _attempt(cache, read)
        if read in MISSING_RESULTS:
            assert (kind, result) == ("ok", MISSING_RESULTS[read])
        else:
            assert kind == "KeyError", (kind, result)
    assert not marker.exists()


@pytest.mark.parametrize("signed", [True, False], ids=["secret_key", "no-key"])
def test_a_planted_pickle_in_a_value_file_never_runs(
    store: str, tmp_path: Path, insecure: Callable[[Path], None], signed: bool
) -> None:
    """A value file overwritten (same size) with a planted pickle: a counted miss with a secret_key, an
    InsecureDirectory refusal without one; never executed."""
    directory = tmp_path / "cache"
    marker = tmp_path / "planted-code-ran"
    payload = planted_payload(marker)
    settings: dict[str, Any] = {"secret_key": SECRET} if signed else {}
    with cachekit.Cache(directory, store=store, disk_min_file_size=1024, **settings) as cache:
        cache.set("large", ["x" * 4096])
    (name,) = value_files(directory)
    path = directory / name
    forged = (b"\x00" * MAC if signed else b"") + payload
    path.write_bytes(forged.ljust(path.stat().st_size, b"."))
    insecure(directory)
    with cachekit.Cache(directory, store=store, allow_insecure_directory=True, **settings) as cache:
        if signed:
            assert cache.get("large", "missing") == "missing"
            assert cache.counters()["corrupt_values"] == 1
        else:
            with pytest.raises(cachekit.InsecureDirectory, match="refusing to unpickle"):
                cache.get("large")
    assert not marker.exists()


def test_a_planted_value_recorded_as_another_serializer_is_refused(store: str, tmp_path: Path) -> None:
    """A json cache in an insecure directory: a planted entry that claims the pickle serializer is still
    refused (the entry's recorded serializer is not trusted to be the cache's)."""
    directory = tmp_path / "cache"
    marker = tmp_path / "planted-code-ran"
    payload = planted_payload(marker)
    with cachekit.Cache(directory, store=store, serializer="json") as cache:
        cache.set("victim", ["original"])
        encoded = cache._encode_key("victim")
    plant(directory, store, encoded, payload, serializer="pickle")
    directory.chmod(0o777)
    with (
        cachekit.Cache(directory, store=store, allow_insecure_directory=True) as cache,
        pytest.raises(cachekit.InsecureDirectory, match="refusing to unpickle"),
    ):
        cache.get("victim")
    assert not marker.exists()
