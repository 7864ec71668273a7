"""Scenario 6: corrupt and foreign files at the cache path, on every store.

Each damaged cache is opened and used in a child process with a deadline, so a
hang or a crash fails the test instead of taking pytest down.  What must come
out (docs/security.md, docs/stores.md "Damaged or foreign files"): a specific
cachekit exception naming the path, within a second; for a single bad value
file, a miss counted in ``counters()["corrupt_values"]``; never a wrong value, a
raw engine error, a hang or a crash; and ``check(fix=True)`` repairs what can be
repaired, after which the cache works.

Damage inside the database's pages (a zeroed or garbled page) is swept page by
page in ``test_damaged_pages.py``.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _faults import CORPUS, DATABASE, build_corpus, fill, key, run_child, value_of

import cachekit

#: Seconds a child may take to open and use a damaged cache before it counts as hung.
DEADLINE = 20.0
#: The page size of both engines' files here.
PAGE = 4096


def _database(directory: Path, store: str) -> Path:
    return directory / DATABASE[store]


def _large_value_file(directory: Path) -> Path:
    """The value file of ``key(0)`` (the corpus stores every third value in a file, ``key(0)`` first)."""
    with cachekit.Cache(directory) as cache:
        entry = cache.store.get(cache._encode_key(key(0)))
    assert entry is not None
    assert entry.filename is not None
    return directory / entry.filename


#: Files any opener may rewrite: shared memory, and the LMDB store's seal (cachekit_lmdb._guard).
_REWRITTEN_BY_ANY_OPENER = ("-shm", "lock.mdb", "lmdb-open.lock")


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.is_symlink() and not path.name.endswith(_REWRITTEN_BY_ANY_OPENER)
    }


def _assert_sane(report: dict[str, Any]) -> None:
    """Whatever happened, nothing leaked raw, and nothing read back wrong."""
    raw = {
        name: value
        for name, value in report.items()
        if isinstance(value, list) and value and str(value[0]).startswith("RAW:")
    }
    assert raw == {}, f"raw (non-cachekit) exceptions escaped: {raw}"
    assert report.get("wrong", []) == [], "a damaged cache returned a wrong value"


# -- the database file ------------------------------------------------------------------------------------
def _random_bytes(directory: Path, store: str) -> None:
    _database(directory, store).write_bytes(random.Random(1).randbytes(8192))


def _truncated_half(directory: Path, store: str) -> None:
    database = _database(directory, store)
    os.truncate(database, database.stat().st_size // 2 // PAGE * PAGE + 100)


def _truncated_one_page(directory: Path, store: str) -> None:
    os.truncate(_database(directory, store), PAGE)


def _zeroed_first_page(directory: Path, store: str) -> None:
    with open(_database(directory, store), "r+b") as file:
        file.write(bytes(PAGE))


def _directory_in_its_place(directory: Path, store: str) -> None:
    database = _database(directory, store)
    database.unlink()
    database.mkdir()


def _symlink_in_its_place(directory: Path, store: str) -> None:
    database = _database(directory, store)
    elsewhere = directory.parent / "elsewhere.db"
    database.rename(elsewhere)
    database.symlink_to(elsewhere)


def _foreign_database(directory: Path, store: str) -> None:
    database = _database(directory, store)
    database.unlink()
    if store == "sqlite":
        for leftover in ("cache.db-wal", "cache.db-shm"):
            (directory / leftover).unlink(missing_ok=True)
        connection = sqlite3.connect(database)
        with connection:
            connection.execute("CREATE TABLE accounts (name TEXT, balance INTEGER)")
            connection.execute("INSERT INTO accounts VALUES ('alice', 100)")
        connection.close()
    else:
        import lmdb

        (directory / "lock.mdb").unlink(missing_ok=True)
        environment = lmdb.open(str(directory), map_size=2**20)
        with environment.begin(write=True) as transaction:
            transaction.put(b"their-key", b"their value")
        environment.close()


def _lmdb_meta(which: str, region: tuple[int, int]) -> Callable[[Path, str], None]:
    """Garble ``region`` (byte offsets within the page) of LMDB's newer, older or both meta pages."""

    def damage(directory: Path, store: str) -> None:
        database = _database(directory, store)
        data = bytearray(database.read_bytes())
        transaction_ids = [struct.unpack_from("<Q", data, page * PAGE + 144)[0] for page in (0, 1)]
        newer = 0 if transaction_ids[0] > transaction_ids[1] else 1
        pages = {"newer": [newer], "older": [1 - newer], "both": [0, 1]}[which]
        generator = random.Random(3)
        for page in pages:
            start, end = page * PAGE + region[0], page * PAGE + region[1]
            data[start:end] = generator.randbytes(end - start)
        database.write_bytes(data)

    return damage


#: LMDB's meta page: the magic number at bytes 16-20; the map size, the databases' roots, the last page
#: and the transaction id at bytes 24-152.
MAGIC, BODY = (16, 20), (24, 152)

REFUSED_AT_OPEN: dict[str, tuple[Callable[[Path, str], None], str, tuple[str, ...]]] = {
    # case: (damage, what the message says, stores)
    "random-bytes": (_random_bytes, "damaged or is not a cachekit", ("sqlite", "lmdb")),
    "truncated-to-half": (_truncated_half, "damaged|truncated|malformed", ("sqlite", "lmdb")),
    "truncated-to-one-page": (_truncated_one_page, "damaged|truncated|malformed", ("sqlite", "lmdb")),
    "zeroed-first-page": (_zeroed_first_page, "damaged", ("sqlite", "lmdb")),
    "a-directory-in-its-place": (_directory_in_its_place, "is a directory", ("sqlite", "lmdb")),
    "a-symlink-in-its-place": (_symlink_in_its_place, "not a regular file", ("sqlite", "lmdb")),
    "another-programs-database": (_foreign_database, "of another program", ("sqlite", "lmdb")),
    "lmdb-meta-magic-newer": (_lmdb_meta("newer", MAGIC), "damaged", ("lmdb",)),
    "lmdb-meta-magic-older": (_lmdb_meta("older", MAGIC), "damaged", ("lmdb",)),
    "lmdb-meta-magic-both": (_lmdb_meta("both", MAGIC), "damaged", ("lmdb",)),
    "lmdb-meta-body-newer": (_lmdb_meta("newer", BODY), "damaged|truncated", ("lmdb",)),
    "lmdb-meta-body-older": (_lmdb_meta("older", BODY), "damaged|truncated", ("lmdb",)),
    "lmdb-meta-body-both": (_lmdb_meta("both", BODY), "damaged|truncated", ("lmdb",)),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", REFUSED_AT_OPEN)
def test_a_damaged_or_foreign_database_is_refused_at_open(store: str, tmp_path: Path, case: str) -> None:
    """The open raises CorruptCache naming the database, within a second, and changes no file."""
    damage, words, stores = REFUSED_AT_OPEN[case]
    if store not in stores:
        pytest.skip(f"{case} is about the {' and '.join(stores)} store")
    directory = tmp_path / "cache"
    build_corpus(directory, store)
    damage(directory, store)
    before = _files(directory)
    report = run_child("use_damaged", str(directory), deadline=DEADLINE)
    _assert_sane(report)
    kind, message = report["open"]
    assert kind == "CorruptCache", f"{case}: the open gave {kind}: {message}"
    assert str(_database(directory, store)) in message
    assert any(word in message for word in words.split("|")), message
    assert report["open_seconds"] < 1.0
    assert _files(directory) == before, "refusing the cache changed its files"


def test_the_cache_path_is_a_regular_file(store: str, tmp_path: Path) -> None:
    """A regular file at the cache path raises DirectoryError naming it, and is left alone."""
    path = tmp_path / "cache"
    path.write_bytes(b"someone's notes")
    started = time.monotonic()
    with pytest.raises(cachekit.DirectoryError, match=f"the cache path {path} is a file, not a directory"):
        cachekit.Cache(path, store=store)
    assert time.monotonic() - started < 1.0
    assert path.read_bytes() == b"someone's notes"


@pytest.mark.parametrize("content", ["garbage", "fifo", "directory"])
def test_a_damaged_marker_file_is_refused(store: str, tmp_path: Path, content: str) -> None:
    """cachekit.json replaced by garbage, a FIFO (which must not block the open) or a directory: CorruptCache."""
    directory = tmp_path / "cache"
    build_corpus(directory, store)
    marker = directory / "cachekit.json"
    marker.unlink()
    if content == "garbage":
        marker.write_bytes(b"\x00\xff not json")
    elif content == "fifo":
        os.mkfifo(marker, 0o600)
    else:
        marker.mkdir(mode=0o700)
    report = run_child("use_damaged", str(directory), deadline=DEADLINE)
    kind, message = report["open"]
    assert kind == "CorruptCache", message
    assert str(marker) in message
    assert report["open_seconds"] < 1.0


# -- a database copied without its write-ahead log (or LMDB's data file alone) --------------------------------
@pytest.mark.slow
def test_a_database_copied_while_in_use(store: str, tmp_path: Path) -> None:
    """A copy of the database file taken while the cache is open (SQLite: without the WAL that holds the latest
    commits; LMDB: data.mdb without lock.mdb) opens as a consistent older state: entries read back right or
    not at all; the value files of the lost entries are reported as orphans, and check(fix=True) removes them
    (once older than a minute), after which check() is clean and the cache works."""
    original = tmp_path / "original"
    half = CORPUS // 2
    with cachekit.Cache(original, store=store, disk_min_file_size=30_000) as cache:
        fill(cache, half, large_every=3)
    cache = cachekit.Cache(original, store=store)
    for index in range(half, CORPUS):  # committed, but in SQLite's WAL only
        cache.set(key(index), value_of(index, large=index % 3 == 0))
    copy = tmp_path / "copy"
    copy.mkdir(mode=0o700)
    shutil.copy2(original / "cachekit.json", copy / "cachekit.json")
    shutil.copytree(original / "values", copy / "values")
    shutil.copy2(_database(original, store), _database(copy, store))
    cache.close()
    assert not (copy / "cache.db-wal").exists()
    long_ago = time.time() - 3600
    for path in (copy / "values").rglob("*.val"):
        os.utime(path, (long_ago, long_ago))
    report = run_child("use_damaged", str(copy), deadline=DEADLINE)
    _assert_sane(report)
    assert report["open"][0] == "ok", report["open"]
    assert report["get"][0] == "ok"
    assert report["get"][1] + report["misses"] == CORPUS
    assert report["get"][1] >= half, "entries committed before the copy's last checkpoint were lost"
    orphans = report["check"][1]
    assert all(problem.startswith("orphan value file") for problem in orphans), orphans
    assert report["check_fix"][0] == "ok"
    assert report["check_after"] == ["ok", []]
    assert report["set"] == ["ok", True]
    assert report["get_new"] == ["ok", "b'new'"]


# -- one bad value file --------------------------------------------------------------------------------------------
def _value_file_symlink(path: Path) -> None:
    elsewhere = path.parent.parent.parent.parent / "elsewhere.val"
    elsewhere.write_bytes(path.read_bytes())  # the right bytes: following the link would "work"
    path.unlink()
    path.symlink_to(elsewhere)


def _value_file_truncated(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _value_file_foreign(path: Path) -> None:
    path.write_bytes(random.Random(5).randbytes(path.stat().st_size))


def _value_file_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path, 0o600)


def _value_file_directory(path: Path) -> None:
    path.unlink()
    path.mkdir(mode=0o700)


VALUE_FILE_DAMAGE: dict[str, Callable[[Path], None]] = {
    "a-symlink": _value_file_symlink,
    "truncated": _value_file_truncated,
    "a-fifo": _value_file_fifo,
    "a-directory": _value_file_directory,
}


@pytest.mark.slow
@pytest.mark.parametrize("case", VALUE_FILE_DAMAGE)
def test_a_bad_value_file_is_a_counted_miss_and_check_fix_removes_it(store: str, tmp_path: Path, case: str) -> None:
    """A value file replaced by a symlink (not followed), truncated, a FIFO (which must not block) or a
    directory: that entry reads as a miss counted in corrupt_values, every other entry reads back, check()
    reports the file, check(fix=True) removes the entry, and then check() is clean and writes work."""
    directory = tmp_path / "cache"
    build_corpus(directory, store)
    damaged = _large_value_file(directory)
    VALUE_FILE_DAMAGE[case](damaged)
    report = run_child("use_damaged", str(directory), deadline=DEADLINE)
    _assert_sane(report)
    assert report["open"][0] == "ok"
    assert report["get"] == ["ok", CORPUS - 1]
    assert report["misses"] == 1
    assert report["counters"][0] == "ok"
    assert report["counters"][1] >= 1
    assert report["check"][0] == "ok"
    assert [problem for problem in report["check"][1] if str(damaged) in problem], report["check"]
    assert report["check_after"] == ["ok", []]
    assert report["iterate"] == ["ok", CORPUS]
    assert report["set"] == ["ok", True]


@pytest.mark.slow
def test_a_value_file_with_foreign_content_is_a_counted_miss(store: str, tmp_path: Path) -> None:
    """A value file of the right size but someone else's bytes, under a pickled value: a counted miss."""
    directory = tmp_path / "cache"
    with cachekit.Cache(directory, store=store, disk_min_file_size=1024) as cache:
        cache.set("pickled", {"rows": list(range(2000))})
        cache.set("other", "fine")
        (name,) = [entry.filename for entry in cache.store.scan(cachekit.plugins.Order.INSERTION) if entry.filename]
    assert name is not None
    _value_file_foreign(directory / name)
    with cachekit.Cache(directory) as cache:
        assert cache.get("pickled", "missing") == "missing"
        assert cache.counters()["corrupt_values"] == 1
        assert cache.get("other") == "fine"
