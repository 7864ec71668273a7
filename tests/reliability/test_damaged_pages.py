"""Scenario 6, damaged pages: every page of the database in turn zeroed, or filled with garbage.

The cache is opened and used after each damage, and must give a value, a miss
or a cachekit exception (``CorruptCache``): never a wrong value, a raw engine
error, a hang or a crash.

SQLite reports a damaged page itself (``SQLITE_CORRUPT``, raised as
``CorruptCache``).  LMDB keeps no page checksums and calls ``abort()`` on a
damaged branch or leaf page, so the LMDB store walks ``data.mdb`` before
LMDB reads it whenever the file may have changed outside cachekit
(cachekit_lmdb._guard, ._verify): here every damage is done with all caches
closed, so every open must catch it, and the sweep (all pages, one process)
must never be cut short by a crash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _faults import DATABASE, build_corpus, run_child


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
    """With any one page damaged, every operation gives a value, a miss or CorruptCache, and nothing crashes."""
    directory = tmp_path / "cache"
    build_corpus(directory, store)
    pages = (directory / DATABASE[store]).stat().st_size // 4096
    assert pages > 2, "the corpus should span several pages"
    reports = run_child("damaged_pages", str(directory), DATABASE[store], fill_with, deadline=300)
    assert len(reports) == pages, "the sweep must damage every page"
    refused = []
    for page, report in reports.items():
        _check_report(page, report)
        if report["open"][0] == "CorruptCache":
            refused.append(int(page))
    print(f"{store}, pages filled with {fill_with}: {len(refused)} of {pages} refused at open: {refused}")
    if store == "lmdb":
        # Damage to any page whose header LMDB interprets must be refused at open; free pages,
        # and the later pages of a large value, hold no structure.
        from cachekit_lmdb._verify import verify

        structure = verify(str(directory / DATABASE[store])).structure
        assert len(structure) > 2
        assert set(structure) <= set(refused), sorted(set(structure) - set(refused))
