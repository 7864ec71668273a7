"""Scenario 6, damaged pages: every page of the database in turn zeroed, or filled with garbage.

The cache is opened and used after each damage, and must give a value, a miss
or a cachekit exception (``CorruptCache``): never a wrong value, a raw engine
error or a hang.

**The SQLite store** meets all of it, crash included: SQLite reports a damaged
page as ``SQLITE_CORRUPT``, which cachekit raises as ``CorruptCache``.

**The LMDB store cannot promise "no crash" here** (documented in
docs/stores.md, "Damaged files").  LMDB keeps no page checksums and trusts
every page it maps: a zeroed or garbled branch or leaf page trips one of its
internal assertions (``IS_LEAF(mp)``, ``mp->mp_pgno != pgno``), and LMDB then
calls ``abort()``; neither Python nor cachekit can intercept that.  So on LMDB
each page is damaged in a child process of its own, and the test asserts what
cachekit does promise: every child either finishes with values, misses or
cachekit exceptions, or is aborted by one of LMDB's assertions, and none ever
reads a wrong value first.  The count of aborting pages is printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _faults import DATABASE, ChildFailed, build_corpus, run_child


def _check_report(page: str, report: dict[str, Any]) -> None:
    raw = {
        name: value
        for name, value in report.items()
        if isinstance(value, list) and value and str(value[0]).startswith("RAW:")
    }
    assert raw == {}, f"page {page}: raw exceptions escaped: {raw}"
    assert report.get("wrong", []) == [], f"page {page}: wrong values read back"
    assert report["open"][0] in ("ok", "CorruptCache"), f"page {page}: {report['open']}"


@pytest.mark.slow
@pytest.mark.parametrize("fill_with", ["zeros", "garbage"])
def test_a_damaged_page_never_reads_wrong(store: str, tmp_path: Path, fill_with: str) -> None:
    """With any one page damaged, every operation gives a value, a miss or CorruptCache; on LMDB,
    an abort by LMDB's own assertions is the one other outcome, and never after a wrong value."""
    directory = tmp_path / "cache"
    build_corpus(directory, store)
    if store != "lmdb":
        reports = run_child("damaged_pages", str(directory), DATABASE[store], fill_with, deadline=120)
        assert reports, "the sweep damaged no page"
        for page, report in reports.items():
            _check_report(page, report)
        return
    pages = (directory / DATABASE[store]).stat().st_size // 4096
    assert pages > 2, "the corpus should span several pages"
    aborted = []
    for page in range(pages):
        try:
            report = run_child("damaged_page", str(directory), DATABASE[store], fill_with, str(page), deadline=30)
        except ChildFailed as failure:
            message = str(failure)
            assert "WRONG VALUE" not in message, f"page {page}: a wrong value was read before the crash\n{message}"
            assert "killed by SIGABRT" in message, f"page {page}: {message}"
            assert "Assertion" in message, f"page {page}: not one of LMDB's assertions\n{message}"
            aborted.append(page)
            continue
        _check_report(str(page), report)
    print(f"LMDB, pages filled with {fill_with}: {len(aborted)} of {pages} abort the process: {aborted}")
