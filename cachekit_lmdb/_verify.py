"""Checking the structure of an LMDB data file with plain reads, before LMDB maps it.

LMDB keeps no checksums and trusts every page it reads: a zeroed or garbled
branch, leaf or overflow page trips one of its internal assertions, and LMDB
then calls ``abort()``, which ends the process (nothing in Python can catch
it).  :func:`verify` walks the database the way LMDB would, from the newest
meta page down every B+tree (the main database and LMDB's free-page
database), reading the file with ``pread`` rather than a memory map, and
checks each page before relying on it: its number, its kind, its bounds, its
nodes, the order of its keys, the pages it points to, and that no page is
used twice.  The totals recorded in the meta page (depth, page and entry
counts) must match what the walk found.

It knows LMDB 0.9's on-disk format (``mdb.c``: ``MDB_page``, ``MDB_node``,
``MDB_meta``, ``MDB_db``) on 64-bit platforms, with the page size recorded
in the file.  It checks structure, not values: a flipped bit inside a value
is caught by cachekit's record checks when read, not here.
"""

from __future__ import annotations

import os
import struct
import sys
from dataclasses import dataclass, field

__all__ = ["Damaged", "Foreign", "Report", "verify"]

_PAGE = struct.Struct("=QHHHH")  # mp_pgno, mp_pad, mp_flags, mp_lower, mp_upper
_OVERFLOW_PAGES = struct.Struct("=I")  # mp_pages, where mp_lower and mp_upper are on other pages
_META = struct.Struct("=IIQQ")  # mm_magic, mm_version, mm_address, mm_mapsize
_DB = struct.Struct("=IHHQQQQQ")  # md_pad, md_flags, md_depth, branch, leaf, overflow pages, entries, root
_TAIL = struct.Struct("=QQ")  # mm_last_pg, mm_txnid
_NODE = struct.Struct("=HHHH")  # mn_lo, mn_hi, mn_flags, mn_ksize
_WORD = struct.Struct("=Q")
_HEADER = _PAGE.size  # PAGEHDRSZ
_META_OFFSET = _HEADER
_DBS_OFFSET = _META_OFFSET + _META.size
_TAIL_OFFSET = _DBS_OFFSET + 2 * _DB.size

MAGIC = 0xBEEFC0DE
VERSION = 1
P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08
#: Flags LMDB may leave on a page it wrote, besides its kind.
_STATE_FLAGS = 0x10 | 0x4000 | 0x8000  # P_DIRTY, P_LOOSE, P_KEEP
F_BIGDATA = 0x01
MDB_INTEGERKEY = 0x08
P_INVALID = 2**64 - 1
#: LMDB's cursor stack holds at most this many levels (CURSOR_STACK).
MAX_DEPTH = 32
FREE_DB, MAIN_DB = 0, 1

SUPPORTED = struct.calcsize("P") == 8
"""Whether this platform's LMDB files have the layout this module reads (64-bit)."""


class Damaged(Exception):
    """The file is not a sound LMDB database; the message says where."""


class Foreign(Damaged):
    """The file uses LMDB features cachekit never does (named or duplicate-key databases):
    another program's database, or damage that looks like one."""


@dataclass
class Report:
    """What a successful walk found."""

    pages: int = 0
    """Pages in the file that LMDB uses (``last_pgno + 1``)."""
    tree_pages: int = 0
    """Branch, leaf and overflow pages of the two databases."""
    free_pages: int = 0
    """Pages listed in LMDB's free-page database."""
    entries: int = 0
    """Records in the main database."""
    unaccounted: list[int] = field(default_factory=list)
    """Pages neither in a tree, nor free, nor a meta page (LMDB never reads them)."""
    structure: list[int] = field(default_factory=list)
    """The pages whose headers LMDB interprets: meta, branch and leaf pages, and the first
    page of each large value (damage to any of them would stop LMDB)."""


@dataclass
class _Tree:
    """What the walk of one B+tree found so far."""

    db: int
    root: int
    name: str
    branches: int = 0
    leaves: int = 0
    overflows: int = 0
    entries: int = 0
    previous: bytes | int | None = None
    values: list[bytes] = field(default_factory=list)
    """The free-page database's values: lists of free pages."""


class _Walker:
    def __init__(self, descriptor: int, path: str, psize: int, last: int) -> None:
        self.descriptor = descriptor
        self.path = path
        self.psize = psize
        self.last = last
        self.used = bytearray(last + 1)
        self.used[0] = self.used[1] = 1  # the meta pages
        self.structure = [0, 1]

    def read(self, pgno: int, count: int = 1) -> bytes:
        data = os.pread(self.descriptor, self.psize * count, self.psize * pgno)
        if len(data) != self.psize * count:
            raise Damaged(f"page {pgno} lies past the end of the file")
        return data

    def claim(self, pgno: int, count: int, what: str) -> None:
        if pgno < 2 or pgno + count - 1 > self.last:
            raise Damaged(f"{what} points to page {pgno}, outside the pages in use (2 to {self.last})")
        used = self.used
        for number in range(pgno, pgno + count):
            if used[number]:
                raise Damaged(f"page {number} is used twice ({what})")
            used[number] = 1

    def page(self, pgno: int, kind: int, what: str) -> tuple[bytes, int, int]:
        """Read a branch or leaf page; return it with its node count and lower bound of node data."""
        self.claim(pgno, 1, what)
        self.structure.append(pgno)
        data = self.read(pgno)
        number, _, flags, lower, upper = _PAGE.unpack_from(data)
        if number != pgno:
            raise Damaged(f"page {pgno} says it is page {number} ({what})")
        if flags & ~_STATE_FLAGS != kind:
            expected = "branch" if kind == P_BRANCH else "leaf"
            raise Damaged(f"page {pgno} should be a {expected} page, its flags are {flags:#x} ({what})")
        if lower < _HEADER or lower % 2 or lower > upper or upper > self.psize:
            raise Damaged(f"page {pgno} has impossible bounds (lower {lower}, upper {upper}) ({what})")
        return data, (lower - _HEADER) // 2, upper

    def node(self, data: bytes, pgno: int, index: int, upper: int) -> tuple[int, int, int, int]:
        """The node's offset, its data size (or child page), its flags and its key size."""
        (offset,) = struct.unpack_from("=H", data, _HEADER + 2 * index)
        if offset < upper or offset % 2 or offset + _NODE.size > self.psize:
            raise Damaged(f"node {index} of page {pgno} starts at {offset}, outside the page's node area")
        low, high, flags, key_size = _NODE.unpack_from(data, offset)
        if offset + _NODE.size + key_size > self.psize:
            raise Damaged(f"the key of node {index} of page {pgno} runs past the end of the page")
        return offset, low | high << 16, flags, key_size

    def overflow(self, pgno: int, size: int, what: str) -> tuple[bytes, int]:
        """Check the overflow pages of a value of ``size`` bytes; return their first page and
        their count (a value rewritten in place may keep more pages than it needs)."""
        if pgno < 2 or pgno > self.last:
            raise Damaged(f"{what} points to page {pgno}, outside the pages in use (2 to {self.last})")
        first = self.read(pgno)
        number, _, flags = _PAGE.unpack_from(first)[:3]
        (count,) = _OVERFLOW_PAGES.unpack_from(first, 12)
        needed = (_HEADER - 1 + size) // self.psize + 1
        if number != pgno or flags & ~_STATE_FLAGS != P_OVERFLOW or count < needed:
            raise Damaged(
                f"overflow page {pgno} is damaged (number {number}, flags {flags:#x}, {count} pages) ({what})"
            )
        self.claim(pgno, count, what)
        self.structure.append(pgno)
        return first, count

    def tree(self, db: int, root: int, depth: int) -> _Tree:
        """Walk one B+tree in key order, checking every page on the way."""
        tree = _Tree(db, root, "the free-page database" if db == FREE_DB else "the main database")
        if not 1 <= depth <= MAX_DEPTH:
            raise Damaged(f"{tree.name} has an impossible depth ({depth})")
        # (page, level, lower bound of its keys: the parent's separator)
        stack: list[tuple[int, int, bytes | int | None]] = [(root, 1, None)]
        while stack:
            pgno, level, bound = stack.pop()
            if level < depth:
                stack.extend(reversed(self.branch(tree, pgno, level, bound)))
            else:
                self.leaf(tree, pgno, bound)
        return tree

    def branch(
        self, tree: _Tree, pgno: int, level: int, bound: bytes | int | None
    ) -> list[tuple[int, int, bytes | int | None]]:
        data, count, upper = self.page(pgno, P_BRANCH, tree.name)
        if count < 1:
            raise Damaged(f"branch page {pgno} of {tree.name} is empty")
        tree.branches += 1
        children = []
        for index in range(count):
            offset, child, flags, key_size = self.node(data, pgno, index, upper)
            separator = bound
            if index:
                start = offset + _NODE.size
                separator = self.key(data[start : start + key_size], tree, pgno)
            children.append((child | flags << 32, level + 1, separator))
        return children

    def leaf(self, tree: _Tree, pgno: int, bound: bytes | int | None) -> None:
        data, count, upper = self.page(pgno, P_LEAF, tree.name)
        if count < 1 and pgno != tree.root:
            raise Damaged(f"leaf page {pgno} of {tree.name} is empty")
        tree.leaves += 1
        for index in range(count):
            offset, size, flags, key_size = self.node(data, pgno, index, upper)
            start = offset + _NODE.size
            key = self.key(data[start : start + key_size], tree, pgno)
            if tree.previous is not None and not tree.previous < key:  # type: ignore[operator]
                raise Damaged(f"the keys of {tree.name} are out of order at page {pgno}")
            if index == 0 and bound is not None and key < bound:  # type: ignore[operator]
                raise Damaged(f"page {pgno} of {tree.name} holds keys below its parent's separator")
            tree.previous = key
            start += key_size
            if flags & ~F_BIGDATA:
                raise Foreign(
                    f"node {index} of page {pgno} of {tree.name} holds a named or duplicate-key database "
                    f"(flags {flags:#x})"
                )
            if flags & F_BIGDATA:
                if start + 8 > self.psize:
                    raise Damaged(f"node {index} of page {pgno} of {tree.name} runs past the end of the page")
                (first,) = _WORD.unpack_from(data, start)
                page, pages = self.overflow(first, size, tree.name)
                tree.overflows += pages
                if tree.db == FREE_DB:
                    spanned = (_HEADER + size + self.psize - 1) // self.psize
                    value = page + (self.read(first + 1, spanned - 1) if spanned > 1 else b"")
                    tree.values.append(value[_HEADER : _HEADER + size])
            elif start + size > self.psize:
                raise Damaged(f"the value of node {index} of page {pgno} of {tree.name} runs past the end of the page")
            elif tree.db == FREE_DB:
                tree.values.append(data[start : start + size])
            tree.entries += 1

    @staticmethod
    def key(raw: bytes, tree: _Tree, pgno: int) -> bytes | int:
        if tree.db != FREE_DB:
            return raw
        if len(raw) != 8:  # the free-page database's keys are transaction ids
            raise Damaged(f"page {pgno} of {tree.name} holds a key of {len(raw)} bytes where 8 belong")
        return int.from_bytes(raw, sys.byteorder)


def _newest_meta(descriptor: int, path: str) -> tuple[int, int, bytes]:
    """The page size, the last page in use, and the newest meta page's bytes."""
    head = os.pread(descriptor, _TAIL_OFFSET + _TAIL.size, 0)
    if len(head) < _TAIL_OFFSET + _TAIL.size:
        raise Damaged("the file is shorter than a meta page")
    (psize,) = struct.unpack_from("=I", head, _DBS_OFFSET)  # mm_psize is the free database's md_pad
    if psize < 512 or psize > 2**16 or psize & (psize - 1):
        raise Damaged(f"the meta page records an impossible page size ({psize})")
    best: tuple[int, int, bytes] | None = None
    for number in (0, 1):
        meta = os.pread(descriptor, psize, psize * number)
        if len(meta) < psize:
            raise Damaged("the file is shorter than its two meta pages")
        pgno, _, flags, _, _ = _PAGE.unpack_from(meta)
        magic, version, _, _ = _META.unpack_from(meta, _META_OFFSET)
        if pgno != number or not flags & P_META or magic != MAGIC or version != VERSION:
            raise Damaged(f"meta page {number} is damaged")
        last, txnid = _TAIL.unpack_from(meta, _TAIL_OFFSET)
        if best is None or txnid > best[0]:
            best = (txnid, last, meta)
    assert best is not None
    return psize, best[1], best[2]


def verify(path: str) -> Report:
    """Walk the LMDB data file at ``path``; raise :class:`Damaged` at the first fault found.

    The caller makes sure no other process writes the file meanwhile.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        psize, last, meta = _newest_meta(descriptor, path)
        length = os.fstat(descriptor).st_size
        if (last + 1) * psize > length:
            raise Damaged(f"the file holds {length} bytes, but its pages in use end at byte {(last + 1) * psize}")
        walker = _Walker(descriptor, path, psize, last)
        report = Report(pages=last + 1)
        free_values: list[bytes] = []
        for db in (FREE_DB, MAIN_DB):
            _, flags, depth, branch, leaf, overflow, entries, root = _DB.unpack_from(meta, _DBS_OFFSET + db * _DB.size)
            if db == MAIN_DB and flags:
                raise Foreign(f"the main database has flags {flags:#x}, which cachekit never sets")
            if root == P_INVALID:
                if depth or branch or leaf or overflow or entries:
                    raise Damaged("an empty database records pages or entries")
                continue
            tree = walker.tree(db, root, depth)
            recorded = (branch, leaf, overflow, entries)
            found = (tree.branches, tree.leaves, tree.overflows, tree.entries)
            if found != recorded:
                raise Damaged(
                    f"{tree.name} records {recorded} branch, leaf, overflow pages and entries, but holds {found}"
                )
            report.tree_pages += branch + leaf + overflow
            if db == MAIN_DB:
                report.entries = entries
            else:
                free_values = tree.values
        for value in free_values:
            if len(value) < 8 or len(value) % 8:
                raise Damaged(f"a free-page list of {len(value)} bytes is damaged")
            numbers = struct.unpack(f"={len(value) // 8}Q", value)
            if numbers[0] != len(numbers) - 1:
                raise Damaged(f"a free-page list says it holds {numbers[0]} pages but holds {len(numbers) - 1}")
            for number in numbers[1:]:
                walker.claim(number, 1, "the free-page list")
            report.free_pages += len(numbers) - 1
        report.unaccounted = [number for number, used in enumerate(walker.used) if not used]
        report.structure = sorted(walker.structure)
        return report
    finally:
        os.close(descriptor)
