"""The LMDB store's defence against damaged pages: the walk of ``data.mdb`` and the seal that decides when to walk.

LMDB calls ``abort()`` on a damaged branch or leaf page, so ``cachekit_lmdb._verify``
walks the file with plain reads first, and ``cachekit_lmdb._guard`` decides when a
walk is needed: the last process to close the environment writes a seal (the
identity and times of ``data.mdb`` and the boot id) into ``lmdb-open.lock``, and
the first to open it walks the file when the seal does not vouch for it.

Whether an open walked is read from ``Guard.verified``; child processes report it
as JSON on their standard output.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cachekit

lmdb = pytest.importorskip("lmdb", reason="the LMDB store needs the lmdb package: pip install 'cachekit[lmdb]'")

import _processes  # noqa: E402 - a sibling helper module

from cachekit_lmdb import LMDBStore  # noqa: E402
from cachekit_lmdb._environment import SharedEnvironment  # noqa: E402
from cachekit_lmdb._guard import GUARD_FILE, UNCHECKED, Guard  # noqa: E402
from cachekit_lmdb._verify import Damaged, Foreign, verify  # noqa: E402

#: Values of up to 40 KB stay inside LMDB (on its overflow pages) rather than in value files.
INLINE: dict[str, Any] = {"disk_min_file_size": "1MiB"}
#: Seconds a child process may take before the test gives up on it.
CHILD_WAIT = 30.0
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
OTHER_BOOT_ID = "00000000-0000-4000-8000-000000000000"

# LMDB's page header (mp_pgno, mp_pad, mp_flags, mp_lower, mp_upper) and page kinds (mdb.c).
PAGE_HEADER = struct.Struct("=QHHHH")
P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08
KINDS = {P_BRANCH: "branch", P_LEAF: "leaf", P_OVERFLOW: "overflow", P_META: "meta"}
#: Where a meta page keeps the main database's md_flags: page header, MDB_meta head, the free database's MDB_db, md_pad.
MAIN_DB_FLAGS = 16 + 24 + 48 + 4
#: Where a meta page keeps mm_txnid (after both MDB_db records and mm_last_pg).
META_TXNID = 16 + 24 + 2 * 48 + 8


# -- helpers -----------------------------------------------------------------------------------------------
def open_lmdb(directory: Path, **settings: Any) -> cachekit.Cache:
    return cachekit.Cache(directory, store="lmdb", **settings)


def shared_of(cache: cachekit.Cache) -> SharedEnvironment:
    store = cache.store
    assert isinstance(store, LMDBStore)
    return store._shared


def guard_of(cache: cachekit.Cache) -> Guard:
    return shared_of(cache).guard


def walked(directory: Path, **settings: Any) -> bool:
    """Open the cache (first in this process), close it again; whether the open walked ``data.mdb``."""
    cache = open_lmdb(directory, **settings)
    try:
        return guard_of(cache).verified
    finally:
        cache.close()


def lmdb_figures(directory: Path) -> dict[str, int]:
    """LMDB's own view of a closed environment: the main database's statistics and the last page in use."""
    env = lmdb.open(str(directory), readonly=True, lock=False)
    try:
        return {**env.stat(), "last_pgno": env.info()["last_pgno"]}
    finally:
        env.close()


def boot_id() -> str:
    try:
        return BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


def seal_of(directory: Path) -> str:
    """The seal ``data.mdb`` has now (written independently of cachekit_lmdb._guard)."""
    status = os.stat(directory / "data.mdb")
    return f"{status.st_ino} {status.st_size} {status.st_mtime_ns} {status.st_ctime_ns} {boot_id()}\n"


def recorded_seal(directory: Path) -> str:
    return (directory / GUARD_FILE).read_text(encoding="ascii")


def record_seal_with_other_boot_id(directory: Path) -> None:
    fields = recorded_seal(directory).rstrip("\n").split(" ")
    assert len(fields) == 5, fields
    fields[-1] = OTHER_BOOT_ID
    (directory / GUARD_FILE).write_text(" ".join(fields) + "\n", encoding="ascii")


def rewrite_identically(path: Path) -> None:
    """Write ``path``'s own bytes over it (same inode, size and content) until its times change."""
    before = os.stat(path)
    content = path.read_bytes()
    for _ in range(2000):
        with open(path, "r+b") as file:
            file.write(content)
        after = os.stat(path)
        if (after.st_mtime_ns, after.st_ctime_ns) != (before.st_mtime_ns, before.st_ctime_ns):
            assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
            assert path.read_bytes() == content
            return
        time.sleep(0.001)
    raise AssertionError(f"the times of {path} did not change when it was rewritten")


def page_kind(data: bytes, page: int, psize: int) -> str:
    flags = PAGE_HEADER.unpack_from(data, page * psize)[2]
    return KINDS[flags & (P_BRANCH | P_LEAF | P_OVERFLOW | P_META)]


def leaf_keys(data: bytes, page: int, psize: int) -> list[bytes]:
    """The keys of leaf page ``page`` (MDB_node: mn_lo, mn_hi, mn_flags, mn_ksize, then the key)."""
    base = page * psize
    lower = PAGE_HEADER.unpack_from(data, base)[3]
    keys = []
    for index in range((lower - PAGE_HEADER.size) // 2):
        (offset,) = struct.unpack_from("=H", data, base + PAGE_HEADER.size + 2 * index)
        (key_size,) = struct.unpack_from("=H", data, base + offset + 6)
        keys.append(data[base + offset + 8 : base + offset + 8 + key_size])
    return keys


def write_page(path: Path, page: int, psize: int, content: bytes) -> None:
    assert len(content) == psize
    descriptor = os.open(path, os.O_WRONLY)
    try:
        assert os.pwrite(descriptor, content, page * psize) == psize
    finally:
        os.close(descriptor)


def damage(page: int, psize: int, fill_with: str) -> bytes:
    return bytes(psize) if fill_with == "zeros" else random.Random(1000 + page).randbytes(psize)


def churn(cache: cachekit.Cache, seed: int, operations: int = 5000) -> dict[str, bytes]:
    """Random sets and deletes, one value in ten of 3 to 40 KB; return what the cache should hold."""
    rng = random.Random(seed)
    expected: dict[str, bytes] = {}
    for _ in range(operations):
        key = f"key-{rng.randrange(operations // 2)}"
        if rng.random() < 0.2:
            cache.delete(key)
            expected.pop(key, None)
        else:
            size = rng.randrange(3_000, 40_001) if rng.random() < 0.1 else rng.randrange(1, 300)
            value = rng.randbytes(size)
            assert cache.set(key, value)
            expected[key] = value
    return expected


def run_python(code: str, *arguments: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; return the JSON object its last line of output holds."""
    finished = subprocess.run(
        [sys.executable, "-c", code, *arguments], capture_output=True, text=True, timeout=CHILD_WAIT, check=False
    )
    assert finished.returncode == 0, f"the child failed ({finished.returncode}): {finished.stderr}"
    result: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    return result


#: Open the cache, report whether the open walked data.mdb and the value of "key", close.
CHILD_OPEN = """
import json, sys
import cachekit
cache = cachekit.Cache(sys.argv[1], store="lmdb")
try:
    print(json.dumps({"verified": cache.store._shared.guard.verified, "value": cache.get("key")}))
finally:
    cache.close()
"""

#: Open the cache and write until data.mdb no longer matches the seal in lmdb-open.lock (its times
#: change at the clock's tick); print how many entries were written, then wait, or (with "exit")
#: end the interpreter without closing the cache.
CHILD_WRITE = """
import json, os, sys, time
import cachekit
directory, then = sys.argv[1], sys.argv[2]
cache = cachekit.Cache(directory, store="lmdb")
data = os.path.join(directory, "data.mdb")
written = 0
while written < 5000:
    cache.set(f"written-{written}", written)
    written += 1
    status = os.stat(data)
    now = f"{status.st_ino} {status.st_size} {status.st_mtime_ns} {status.st_ctime_ns} "
    with open(os.path.join(directory, "lmdb-open.lock"), encoding="ascii") as seal:
        if not seal.read().startswith(now):
            break
    time.sleep(0.001)
print(json.dumps({"written": written}), flush=True)
if then == "wait":
    time.sleep(60)  # until the test kills it
"""

#: Try to take lmdb-open.lock shared and exclusively, without waiting; report which worked.
CHILD_PROBE = """
import fcntl, json, os, sys
outcome = {}
for name, operation in (("exclusive", fcntl.LOCK_EX), ("shared", fcntl.LOCK_SH)):
    descriptor = os.open(sys.argv[1], os.O_RDWR)
    try:
        fcntl.flock(descriptor, operation | fcntl.LOCK_NB)
        outcome[name] = True
    except BlockingIOError:
        outcome[name] = False
    finally:
        os.close(descriptor)
print(json.dumps(outcome))
"""

#: Open the cache, zero page int(argv[2]) of data.mdb underneath it, run check(); report what it raised.
#: The process ends without closing the cache (LMDB must not read the damaged page).
CHILD_CHECK = """
import json, os, sys
import cachekit
directory, page, psize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cache = cachekit.Cache(directory, store="lmdb")
verified = cache.store._shared.guard.verified
descriptor = os.open(os.path.join(directory, "data.mdb"), os.O_WRONLY)
os.pwrite(descriptor, bytes(psize), page * psize)
os.close(descriptor)
try:
    cache.check()
    raised = [None, None, None]
except BaseException as error:
    raised = [type(error).__module__, type(error).__name__, str(error)]
if sys.argv[4:] == ["close"]:
    cache.close()
print(json.dumps({"verified": verified, "raised": raised}), flush=True)
os._exit(0)
"""


def read_json_line(process: subprocess.Popen[str]) -> dict[str, Any]:
    """The first line ``process`` writes, as JSON; kills it and fails if none comes in time."""
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], CHILD_WAIT)
    line = process.stdout.readline() if readable else ""
    if not line:
        process.kill()
        _, errors = process.communicate()
        raise AssertionError(f"the child wrote nothing: {errors}")
    result: dict[str, Any] = json.loads(line)
    return result


class Corpus:
    """A closed cache after random sets and deletes: a tree two levels deep, with overflow pages."""

    def __init__(self, directory: Path) -> None:
        with open_lmdb(directory, **INLINE) as cache:
            self.expected = churn(cache, seed=2, operations=3000)
        self.directory = directory
        self.data = (directory / "data.mdb").read_bytes()
        self.report = verify(str(directory / "data.mdb"))
        self.figures = lmdb_figures(directory)
        self.psize = self.figures["psize"]
        self.by_kind: dict[str, list[int]] = {}
        for page in self.report.structure:
            self.by_kind.setdefault(page_kind(self.data, page, self.psize), []).append(page)
        assert set(self.by_kind) == {"meta", "branch", "leaf", "overflow"}, self.by_kind.keys()

    def copy(self, destination: Path) -> Path:
        shutil.copytree(self.directory, destination)
        return destination

    def newest_meta(self) -> int:
        txnids = [struct.unpack_from("=Q", self.data, page * self.psize + META_TXNID)[0] for page in (0, 1)]
        return 0 if txnids[0] > txnids[1] else 1

    def leaf_holding(self, wanted: Callable[[list[bytes]], bool]) -> int:
        for page in self.by_kind["leaf"]:
            if wanted(leaf_keys(self.data, page, self.psize)):
                return page
        raise AssertionError("no leaf page of the corpus fits")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("corpus") / "cache")


# -- 1. healthy databases ------------------------------------------------------------------------------------
def _empty(directory: Path) -> None:
    open_lmdb(directory).close()


def _few(directory: Path) -> None:
    with open_lmdb(directory) as cache:
        for index in range(5):
            cache.set(f"key-{index}", f"value-{index}")


def _churned(directory: Path) -> None:
    with open_lmdb(directory, **INLINE) as cache:
        churn(cache, seed=1)


def _cleared(directory: Path) -> None:
    with open_lmdb(directory, **INLINE) as cache:
        churn(cache, seed=3, operations=2000)
        cache.clear()
        assert len(cache) == 0


def _grown(directory: Path) -> None:
    with open_lmdb(directory, lmdb_map_size="64KiB", map_size_limit="64MiB", **INLINE) as cache:
        churn(cache, seed=4, operations=1000)
        assert shared_of(cache).map_size() > 64 * 1024, "the map should have grown"


def _large_free_list(directory: Path) -> None:
    with open_lmdb(directory, **INLINE) as cache:
        with cache.transact():
            for index in range(6000):
                cache.set(index, b"x" * 3000)
        with cache.transact():
            for index in range(6000):
                cache.delete(index)
        cache.set("after", 1)


SHAPES: dict[str, Callable[[Path], None]] = {
    "new and empty": _empty,
    "a few entries": _few,
    "5,000 sets and deletes with overflow values": _churned,
    "cleared": _cleared,
    "grown from a 64 KiB map": _grown,
    "a free list on overflow pages": _large_free_list,
}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_healthy_database_verifies_clean_with_lmdbs_own_figures(tmp_path: Path, shape: str) -> None:
    """The walk agrees with LMDB on entries and pages in use, and accounts for every page exactly once."""
    directory = tmp_path / "cache"
    SHAPES[shape](directory)
    report = verify(str(directory / "data.mdb"))
    figures = lmdb_figures(directory)
    assert report.entries == figures["entries"]
    assert report.unaccounted == []
    assert report.pages == figures["last_pgno"] + 1
    assert report.pages == 2 + report.tree_pages + report.free_pages
    main_tree = figures["branch_pages"] + figures["leaf_pages"] + figures["overflow_pages"]
    assert report.tree_pages >= main_tree
    data = (directory / "data.mdb").read_bytes()
    psize = figures["psize"]
    kinds = [page_kind(data, page, psize) for page in report.structure]
    assert report.structure[:2] == [0, 1]
    assert kinds[:2] == ["meta", "meta"]
    assert len(set(report.structure)) == len(report.structure)
    for page in report.structure:
        assert PAGE_HEADER.unpack_from(data, page * psize)[0] == page
    assert kinds.count("branch") >= figures["branch_pages"]
    assert kinds.count("leaf") >= figures["leaf_pages"]
    if shape == "a free list on overflow pages":
        assert report.free_pages > psize // 8, "one transaction's free list should outgrow a page"
    if shape.startswith("5,000"):
        assert figures["depth"] >= 2
        assert figures["overflow_pages"] > 0
        assert "overflow" in kinds


# Where fields sit: the MDB_db records of a meta page, and an MDB_node's fields.
DB_RECORD = struct.Struct("=IHHQQQQQ")  # md_pad, md_flags, md_depth, branch, leaf, overflow pages, entries, root
FREE_DB_RECORD, MAIN_DB_RECORD = 16 + 24, 16 + 24 + 48


def _node_offset(data: bytearray, base: int, index: int) -> int:
    (offset,) = struct.unpack_from("=H", data, base + PAGE_HEADER.size + 2 * index)
    return base + int(offset)


def _edit_main_record(corpus: Corpus, data: bytearray, field: int, value: int) -> None:
    base = corpus.newest_meta() * corpus.psize + MAIN_DB_RECORD
    fields = list(DB_RECORD.unpack_from(data, base))
    fields[field] = value
    DB_RECORD.pack_into(data, base, *fields)


def _mutate(corpus: Corpus, case: str) -> bytearray:
    """A copy of the corpus's data.mdb with one precise fault."""
    data = bytearray(corpus.data)
    psize = corpus.psize
    leaf = corpus.by_kind["leaf"][0] * psize
    branch = corpus.by_kind["branch"][0] * psize
    if case == "bounds":
        struct.pack_into("=HH", data, leaf + 12, psize, 32)  # lower above upper
    elif case == "node offset":
        struct.pack_into("=H", data, leaf + PAGE_HEADER.size, 2)  # inside the header
    elif case == "key size":
        struct.pack_into("=H", data, _node_offset(data, leaf, 0) + 6, 0xFFFF)
    elif case == "value size":
        node = _node_offset(data, leaf, 0)
        struct.pack_into("=HHH", data, node, 0xFFFF, 0, 0)  # inline value of 64 KiB, no F_BIGDATA
    elif case == "child out of range":
        struct.pack_into("=HHH", data, _node_offset(data, branch, 1), 0xFFFF, 0xFFFF, 0)
    elif case == "page used twice":
        child = bytes(data[_node_offset(data, branch, 0) : _node_offset(data, branch, 0) + 6])
        data[_node_offset(data, branch, 1) : _node_offset(data, branch, 1) + 6] = child
    elif case == "keys out of order":
        first, second = PAGE_HEADER.size, PAGE_HEADER.size + 2
        data[leaf + first : leaf + first + 2], data[leaf + second : leaf + second + 2] = (
            data[leaf + second : leaf + second + 2],
            data[leaf + first : leaf + first + 2],
        )
    elif case == "depth":
        _edit_main_record(corpus, data, 2, 40)
    elif case == "entries":
        _edit_main_record(corpus, data, 6, corpus.report.entries + 1)
    elif case == "empty database with pages":
        _edit_main_record(corpus, data, 7, 2**64 - 1)
    elif case == "overflow out of range":
        for page in corpus.by_kind["leaf"]:
            base = page * psize
            for index in range((PAGE_HEADER.unpack_from(data, base)[3] - PAGE_HEADER.size) // 2):
                node = _node_offset(data, base, index)
                flags, key_size = struct.unpack_from("=HH", data, node + 4)
                if flags & 0x01:  # F_BIGDATA: the node holds the first overflow page's number
                    struct.pack_into("=Q", data, node + 8 + key_size, 2**40)
                    return data
        raise AssertionError("the corpus has no large value")
    elif case == "free list count":
        free_root = DB_RECORD.unpack_from(data, corpus.newest_meta() * psize + FREE_DB_RECORD)[7]
        base = free_root * psize
        node = _node_offset(data, base, 0)
        key_size = struct.unpack_from("=H", data, node + 6)[0]
        count_at = node + 8 + key_size
        struct.pack_into("=Q", data, count_at, struct.unpack_from("=Q", data, count_at)[0] + 1)
    else:
        raise AssertionError(case)
    return data


MUTATIONS = {
    "bounds": "impossible bounds",
    "node offset": "outside the page's node area",
    "key size": "runs past the end of the page",
    "value size": "runs past the end of the page",
    "child out of range": "outside the pages in use",
    "page used twice": "is used twice",
    "keys out of order": "out of order",
    "depth": "impossible depth",
    "entries": "records",
    "empty database with pages": "an empty database records pages",
    "overflow out of range": "outside the pages in use",
    "free list count": "free-page list says it holds",
}


@pytest.mark.parametrize("case", MUTATIONS)
def test_each_kind_of_fault_is_named(corpus: Corpus, tmp_path: Path, case: str) -> None:
    """One precise fault at a time: the walk raises Damaged (not Foreign) and says what it found."""
    path = tmp_path / "data.mdb"
    path.write_bytes(_mutate(corpus, case))
    with pytest.raises(Damaged, match=MUTATIONS[case]) as raised:
        verify(str(path))
    assert not isinstance(raised.value, Foreign)


# -- 2. damage, at the unit level ----------------------------------------------------------------------------
@pytest.mark.parametrize("fill_with", ["zeros", "random bytes"])
def test_damage_to_any_structure_page_is_found(corpus: Corpus, tmp_path: Path, fill_with: str) -> None:
    """Each page LMDB interprets (meta, branch, leaf, first overflow page), damaged in turn, fails the walk."""
    path = tmp_path / "data.mdb"
    path.write_bytes(corpus.data)
    psize = corpus.psize
    for page in corpus.report.structure:
        write_page(path, page, psize, damage(page, psize, fill_with))
        with pytest.raises(Damaged) as caught:
            verify(str(path))
        if page > 1:
            assert f"page {page} " in str(caught.value), (page, str(caught.value))
        write_page(path, page, psize, corpus.data[page * psize : (page + 1) * psize])
    assert path.read_bytes() == corpus.data
    assert verify(str(path)) == corpus.report


@pytest.mark.parametrize("keep", ["no byte", "half a meta page", "one meta page", "the meta pages", "all but a page"])
def test_a_truncated_file_is_damaged(corpus: Corpus, tmp_path: Path, keep: str) -> None:
    psize = corpus.psize
    length = {
        "no byte": 0,
        "half a meta page": psize // 2,
        "one meta page": psize,
        "the meta pages": 2 * psize,
        "all but a page": (corpus.report.pages - 1) * psize,
    }[keep]
    path = tmp_path / "data.mdb"
    path.write_bytes(corpus.data[:length])
    with pytest.raises(Damaged):
        verify(str(path))


@pytest.mark.parametrize("bit", [0, 7, 20, 63])
@pytest.mark.parametrize("kind", ["meta", "branch", "leaf", "overflow"])
def test_a_flipped_bit_in_a_page_number_is_found(corpus: Corpus, tmp_path: Path, kind: str, bit: int) -> None:
    page = corpus.by_kind[kind][-1]
    damaged = bytearray(corpus.data)
    offset = page * corpus.psize
    (number,) = struct.unpack_from("=Q", damaged, offset)
    struct.pack_into("=Q", damaged, offset, number ^ (1 << bit))
    path = tmp_path / "data.mdb"
    path.write_bytes(damaged)
    with pytest.raises(Damaged) as caught:
        verify(str(path))
    assert not isinstance(caught.value, Foreign)
    assert f"page {page}" in str(caught.value)


# -- 3. databases of other programs --------------------------------------------------------------------------
def _named(directory: Path, dupsort: bool) -> None:
    env = lmdb.open(str(directory), max_dbs=2)
    try:
        users = env.open_db(b"users", dupsort=dupsort)
        with env.begin(write=True) as txn:
            txn.put(b"plain", b"main database")
            for index in range(3):
                txn.put(b"ann", f"record {index}".encode(), db=users)
    finally:
        env.close()


@pytest.mark.parametrize("dupsort", [False, True], ids=["named", "named-dupsort"])
def test_a_database_with_a_named_sub_database_is_foreign(tmp_path: Path, dupsort: bool) -> None:
    directory = tmp_path / "other"
    _named(directory, dupsort)
    with pytest.raises(Foreign, match="named or duplicate-key database"):
        verify(str(directory / "data.mdb"))
    original = (directory / "data.mdb").read_bytes()
    for _ in range(2):
        with pytest.raises(cachekit.CorruptCache, match=r"data\.mdb is an LMDB database of another program"):
            open_lmdb(directory)
    assert (directory / "data.mdb").read_bytes() == original, "cachekit must not write another program's database"
    assert not (directory / "cachekit.json").exists()


def test_a_main_database_with_flags_is_foreign(tmp_path: Path) -> None:
    directory = tmp_path / "other"
    env = lmdb.open(str(directory))
    with env.begin(write=True) as txn:
        txn.put(b"key", b"value")
    env.close()
    path = directory / "data.mdb"
    data = bytearray(path.read_bytes())
    psize = struct.unpack_from("=I", data, 16 + 24)[0]  # mm_psize
    for meta in (0, 1):
        struct.pack_into("=H", data, meta * psize + MAIN_DB_FLAGS, 0x04)  # MDB_DUPSORT
    path.write_bytes(data)
    with pytest.raises(Foreign, match="main database has flags 0x4"):
        verify(str(path))


def test_a_plain_database_of_another_program_walks_clean(tmp_path: Path) -> None:
    """Only what cachekit cannot read is Foreign: another program's plain keys verify (the store refuses them)."""
    directory = tmp_path / "other"
    env = lmdb.open(str(directory))
    with env.begin(write=True) as txn:
        for index in range(500):
            txn.put(f"user-{index:04}".encode(), b"x" * 100)
    env.close()
    report = verify(str(directory / "data.mdb"))
    assert report.entries == 500
    assert report.unaccounted == []
    with pytest.raises(cachekit.CorruptCache, match="another program"):
        open_lmdb(directory)


# -- 4. the guard: when the first opener walks ----------------------------------------------------------------
def test_a_clean_close_writes_the_seal_and_the_next_open_does_not_walk(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    with open_lmdb(directory) as cache:
        cache.set("key", "value")
    assert recorded_seal(directory) == seal_of(directory)
    cache = open_lmdb(directory)
    try:
        assert guard_of(cache).verified is False
        assert cache.get("key") == "value"
    finally:
        cache.close()
    assert recorded_seal(directory) == seal_of(directory)


def test_a_file_rewritten_outside_cachekit_is_walked_once(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    with open_lmdb(directory) as cache:
        cache.set("key", "value")
    rewrite_identically(directory / "data.mdb")
    assert recorded_seal(directory) != seal_of(directory)
    cache = open_lmdb(directory)
    try:
        assert guard_of(cache).verified is True
        assert recorded_seal(directory) == seal_of(directory), "the first opener records the file it walked"
        assert cache.get("key") == "value"
    finally:
        cache.close()
    assert walked(directory) is False


def test_a_second_cache_object_in_the_process_does_not_open_again(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    first = open_lmdb(directory)
    try:
        first.set("key", "value")
        (directory / GUARD_FILE).write_text("stale\n", encoding="ascii")
        second = open_lmdb(directory)
        try:
            assert shared_of(second) is shared_of(first)
            assert second.get("key") == "value"
            assert recorded_seal(directory) == "stale\n", "no first-opener check ran"
        finally:
            second.close()
        assert recorded_seal(directory) == "stale\n", "the environment stays open while the first cache uses it"
        first.close()
        assert recorded_seal(directory) == seal_of(directory)
        assert walked(directory) is False
    finally:
        first.close()


def test_a_second_process_opening_meanwhile_does_not_walk(tmp_path: Path) -> None:
    """Only the first opener walks: a process opening while another has the environment open trusts it."""
    directory = tmp_path / "cache"
    cache = open_lmdb(directory)
    try:
        cache.set("key", "value")
        (directory / GUARD_FILE).write_text("stale\n", encoding="ascii")  # a first opener would walk
        assert run_python(CHILD_OPEN, str(directory)) == {"verified": False, "value": "value"}
        assert recorded_seal(directory) == "stale\n", "the child was not the last to close"
        cache.close()
        assert recorded_seal(directory) == seal_of(directory)
        assert run_python(CHILD_OPEN, str(directory)) == {"verified": False, "value": "value"}
    finally:
        cache.close()


def test_an_opener_while_another_holds_the_environment_does_not_walk_nor_seal(tmp_path: Path) -> None:
    """A shared hold on lmdb-open.lock (another process with the environment open) makes the opener trust
    the file and leaves the sealing to that other process."""
    directory = tmp_path / "cache"
    with open_lmdb(directory) as cache:
        cache.set("key", "value")
    rewrite_identically(directory / "data.mdb")
    stale = recorded_seal(directory)
    descriptor = os.open(directory / GUARD_FILE, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        assert walked(directory) is False
        assert recorded_seal(directory) == stale
    finally:
        os.close(descriptor)
    assert walked(directory) is True
    assert walked(directory) is False


def test_a_process_killed_with_the_environment_open_leaves_a_stale_seal(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    with open_lmdb(directory) as cache:
        cache.set("key", "value")
    with subprocess.Popen(
        [sys.executable, "-c", CHILD_WRITE, str(directory), "wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            written = read_json_line(child)["written"]
        finally:
            child.send_signal(signal.SIGKILL)
            child.communicate()
        assert child.returncode == -signal.SIGKILL
    assert recorded_seal(directory) != seal_of(directory)
    cache = open_lmdb(directory)
    try:
        assert guard_of(cache).verified is True
        assert cache.get("key") == "value"
        assert [cache.get(f"written-{index}") for index in range(written)] == list(range(written))
    finally:
        cache.close()
    assert walked(directory) is False


def test_interpreter_exit_seals_an_environment_left_open(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    with open_lmdb(directory) as cache:
        cache.set("key", "value")
    written = run_python(CHILD_WRITE, str(directory), "exit")["written"]
    assert recorded_seal(directory) == seal_of(directory)
    cache = open_lmdb(directory)
    try:
        assert guard_of(cache).verified is False
        assert [cache.get(f"written-{index}") for index in range(written)] == list(range(written))
    finally:
        cache.close()


def test_a_restart_is_walked_whatever_the_durability(tmp_path: Path) -> None:
    """After a restart (another boot id), commits LMDB did not flush may be lost or half-written, and
    the seal cannot tell which durability every writer used: the first open walks, then seals anew."""
    directory = tmp_path / "cache"
    with open_lmdb(directory) as cache:
        cache.set("key", "value")
    for durability in ("normal", "full"):
        record_seal_with_other_boot_id(directory)
        assert walked(directory, durability=durability) is True
        assert recorded_seal(directory) == seal_of(directory)
        assert recorded_seal(directory).rstrip("\n").split(" ")[-1] == boot_id()
        assert walked(directory, durability=durability) is False


def test_lmdb_verify_false_never_walks_and_vouches_for_nothing(tmp_path: Path) -> None:
    """With lmdb_verify=false the first open trusts the file as LMDB does, but leaves the seal
    "unchecked" (also when it closes last), so the next open with the walk on still walks."""
    directory = tmp_path / "cache"
    with open_lmdb(directory) as cache:
        cache.set("key", "value")
    rewrite_identically(directory / "data.mdb")
    assert walked(directory, lmdb_verify=False) is False
    assert recorded_seal(directory) == UNCHECKED
    (directory / GUARD_FILE).write_text("stale\n", encoding="ascii")
    assert walked(directory, lmdb_verify=False) is False
    assert recorded_seal(directory) == UNCHECKED
    assert walked(directory) is True
    assert recorded_seal(directory) == seal_of(directory)
    assert walked(directory) is False
    record_seal_with_other_boot_id(directory)
    assert walked(directory, lmdb_verify=False) is False
    assert walked(directory) is True


def test_damage_found_while_open_is_never_sealed(corpus: Corpus, tmp_path: Path) -> None:
    """A process whose check() found damage closes the cache properly; the seal stays "unchecked",
    so the next first open walks and refuses the file instead of handing it to LMDB."""
    directory = corpus.copy(tmp_path / "cache")
    page = corpus.leaf_holding(lambda keys: all(key.startswith(b"K") for key in keys))
    outcome = run_python(CHILD_CHECK, str(directory), str(page), str(corpus.psize), "close")
    assert outcome["raised"][:2] == ["cachekit", "CorruptCache"], outcome
    assert recorded_seal(directory) == UNCHECKED
    for _ in range(2):
        with pytest.raises(cachekit.CorruptCache, match=f"page {page} says it is page 0"):
            open_lmdb(directory)


def test_lmdb_verify_false_leaves_a_foreign_database_to_the_format_check(tmp_path: Path) -> None:
    """Without the walk, the named sub-database is seen only as a key of another program by the store."""
    directory = tmp_path / "other"
    _named(directory, dupsort=False)
    with pytest.raises(cachekit.CorruptCache) as caught:
        open_lmdb(directory, lmdb_verify=False)
    assert "b'users'" in str(caught.value)
    assert "named or duplicate-key" not in str(caught.value)


@pytest.mark.parametrize("fill_with", ["zeros", "random bytes"])
@pytest.mark.parametrize("kind", ["meta", "branch", "leaf", "overflow"])
def test_a_damaged_page_is_refused_at_open_and_the_restored_file_opens(
    corpus: Corpus, tmp_path: Path, kind: str, fill_with: str
) -> None:
    directory = corpus.copy(tmp_path / "cache")
    path = directory / "data.mdb"
    psize = corpus.psize
    page = corpus.newest_meta() if kind == "meta" else corpus.by_kind[kind][len(corpus.by_kind[kind]) // 2]
    assert walked(directory) is True  # a copy: another inode
    write_page(path, page, psize, damage(page, psize, fill_with))
    with pytest.raises(cachekit.CorruptCache) as first:
        open_lmdb(directory)
    assert str(path) in str(first.value)
    with pytest.raises(cachekit.CorruptCache) as second:
        open_lmdb(directory)
    assert str(second.value) == str(first.value)
    path.write_bytes(corpus.data)
    cache = open_lmdb(directory)
    try:
        assert guard_of(cache).verified is True
        assert len(cache) == len(corpus.expected)
        for key, value in corpus.expected.items():
            assert cache.get(key) == value, key
    finally:
        cache.close()


def test_an_open_waits_for_a_first_opener_within_its_timeout(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    with open_lmdb(directory) as cache:
        cache.set("key", "value")
    descriptor = os.open(directory / GUARD_FILE, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        for _ in range(2):
            with pytest.raises(cachekit.Timeout, match=GUARD_FILE):
                open_lmdb(directory, timeout=0.2)
    finally:
        os.close(descriptor)
    cache = open_lmdb(directory, timeout=0.2)
    try:
        assert cache.get("key") == "value"
    finally:
        cache.close()


def _check_with_damage_underneath(corpus: Corpus, directory: Path, page: int) -> dict[str, Any]:
    return run_python(CHILD_CHECK, str(directory), str(page), str(corpus.psize))


def test_check_finds_a_leaf_damaged_while_the_cache_is_open(corpus: Corpus, tmp_path: Path) -> None:
    """check() walks data.mdb under the writer lock and raises CorruptCache; the process survives."""
    directory = corpus.copy(tmp_path / "cache")
    page = corpus.leaf_holding(lambda keys: all(key.startswith(b"K") for key in keys))
    outcome = _check_with_damage_underneath(corpus, directory, page)
    module, name, message = outcome["raised"]
    assert (module, name) == ("cachekit", "CorruptCache"), outcome
    assert f"{directory / 'data.mdb'} is damaged: page {page} says it is page 0" in message


def test_check_finds_damage_to_the_leaf_of_the_metadata(corpus: Corpus, tmp_path: Path) -> None:
    """The leaf holding the store's own records (read by every write transaction) damaged under an
    open cache: check() walks before beginning its transaction, so it raises CorruptCache."""
    directory = corpus.copy(tmp_path / "cache")
    page = corpus.leaf_holding(lambda keys: b"Mlayout" in keys)
    outcome = _check_with_damage_underneath(corpus, directory, page)
    assert outcome["raised"][:2] == ["cachekit", "CorruptCache"], outcome


def _fork() -> int:
    return _processes.fork()


def _reap(pid: int) -> int:
    return _processes.reap(pid, CHILD_WAIT)


def test_a_forked_child_leaves_the_parents_hold_alone(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    cache = open_lmdb(directory)
    try:
        cache.set("parent", "before the fork")
        pid = _fork()
        if pid == 0:  # pragma: no cover - the child, which must never return into pytest
            code = 1
            try:
                own = open_lmdb(directory)
                own.set("child", "from the child")
                code = 0 if own.get("parent") == "before the fork" else 2
                own.close()
            finally:
                os._exit(code)
        assert _reap(pid) == 0
        probe = run_python(CHILD_PROBE, str(directory / GUARD_FILE))
        assert probe == {"exclusive": False, "shared": True}, "the parent's shared hold must survive the child"
        assert cache.get("child") == "from the child"
        assert cache.set("parent", "after the fork")
        assert cache.get("parent") == "after the fork"
        cache.close()
        assert run_python(CHILD_PROBE, str(directory / GUARD_FILE)) == {"exclusive": True, "shared": True}
        assert recorded_seal(directory) == seal_of(directory)
    finally:
        cache.close()


@pytest.mark.parametrize("planted", ["directory", "fifo"])
def test_something_else_in_place_of_the_open_lock_is_refused(tmp_path: Path, planted: str) -> None:
    """A directory or a FIFO where lmdb-open.lock belongs: a cachekit exception naming it, and the
    cache's data left alone."""
    directory = tmp_path / "cache"
    with open_lmdb(directory) as cache:
        cache.set("key", "value")
    lock = directory / GUARD_FILE
    lock.unlink()
    if planted == "directory":
        lock.mkdir()
    else:
        os.mkfifo(lock, 0o600)
    before = (directory / "data.mdb").read_bytes()
    with pytest.raises((cachekit.CorruptCache, cachekit.StoreError), match=GUARD_FILE):
        open_lmdb(directory)
    assert (directory / "data.mdb").read_bytes() == before
    if planted == "directory":
        lock.rmdir()
    else:
        lock.unlink()
    with open_lmdb(directory) as cache:
        assert cache.get("key") == "value"
