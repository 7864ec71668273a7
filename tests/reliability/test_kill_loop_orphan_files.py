"""Scenario 1, strict form: after writers are killed with ``kill -9``, no value file is left that no entry references.

A value file is written before the transaction that stores its entry, and the
file an entry replaces (or a removal drops) is removed after the transaction
commits (``cachekit/_transaction.py``, ``cachekit/_core.py`` ``set``); a writer
killed between the two leaves an unreferenced file.  ``check(fix=True)`` alone
could not tell such a file from one whose entry is about to commit until it is
a minute old.  Crash recovery closes the gap (``cachekit/_journal.py``): each
process journals the value files it has in flight, in a file it holds locked,
and the next opener replays the journals of dead processes, removing every
file named there that its key's entry does not reference.  Reopening the cache
after each round must therefore find every file under values/ referenced.
"""

from __future__ import annotations

import random
from pathlib import Path

import _workers
import pytest
from conftest import scaled

import cachekit

#: The long mode (CACHEKIT_RELIABILITY=long) runs for minutes: it needs more than pytest-timeout's 120 s.
pytestmark = pytest.mark.timeout(scaled(120, 1800))

WRITERS = 3
KEYS = 400


@pytest.mark.slow
def test_kill_9_leaves_no_unreferenced_value_file(store: str, tmp_path: Path) -> None:
    """Round after round of writers killed at random moments: reopening the cache (no repair)
    finds every file under values/ referenced by an entry, and leaves no journal behind."""
    directory = tmp_path / "cache"
    logs = tmp_path / "logs"
    logs.mkdir()
    rng = random.Random(11)
    for number in range(scaled(20, 100)):
        problems = _workers.run_kill_round(directory, store, number, WRITERS, KEYS, logs, rng)
        assert not problems, f"round {number}:\n" + "\n".join(problems)
        with cachekit.Cache(directory) as cache:
            orphans = sorted(_workers.unreferenced_value_files(cache))
        assert not orphans, f"round {number}: {len(orphans)} value files left unreferenced by the kills: {orphans}"
        left = sorted(path.name for path in (directory / "pending").glob("*"))
        assert not left, f"round {number}: journals of killed writers were not replayed: {left}"
