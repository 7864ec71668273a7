"""Scenario 1: writers killed with ``kill -9`` at random moments, round after round, lose nothing acknowledged.

Each round starts three writer processes on the same directory (see
:func:`_workers.kill_loop_writer`): they ``set`` keys of their own (a fifth of
the values large enough for a value file), rewrite them at random, ``incr``
counters, and read now and then.  A writer acknowledges a write only after the
call returned, in its own append-only log.  The parent ``SIGKILL``-s each
writer at a random moment, then opens the cache afresh and checks it against
the logs.  A reader process keeps the cache open through all the rounds, as a
long-lived application would (on LMDB, that keeps the table of readers, and
the slots of killed writers, alive between rounds).

A writer killed between writing a value file and committing its entry, or
between committing and removing the file its entry replaced, leaves that file
unreferenced for a moment only: every process journals the value files it has
in flight (``cachekit/_journal.py``), and opening the cache afresh replays the
journals of the killed writers and removes those files.  So no round may leave
an orphan value file (``ORPHANS_PER_KILL`` is 0); were one left, ``check()``
must still report it and ``check(fix=True)`` remove it once it is a minute old.
``test_kill_loop_orphan_files.py`` checks the same without the rest of the model.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import random
import time
from pathlib import Path
from typing import Any

import _workers
import pytest
from conftest import scaled

import cachekit
from cachekit.plugins import Order

#: The long mode (CACHEKIT_RELIABILITY=long) runs for minutes: it needs more than pytest-timeout's 120 s.
pytestmark = pytest.mark.timeout(scaled(120, 1800))

WRITERS = 3
#: Keys per writer: values are rewritten (and value files replaced) as well as created.
KEYS = 400
#: Files a killed writer may leave unreferenced once the cache is reopened: none, since the reopening
#: replays the journal of value files in flight of each killed writer.
ORPHANS_PER_KILL = 0


@dataclasses.dataclass
class Figures:
    rounds: int = 0
    lost: int = 0
    orphans: int = 0
    rounds_with_orphans: int = 0
    most_orphans: int = 0
    value_files: int = 0
    map_size: int = 0


def verify(directory: Path, settings: dict[str, Any], model: _workers.Model, figures: Figures) -> list[str]:
    """Open the cache afresh and hold it to the logs; then remove any orphan value file the kills left
    (aged past check(fix=True)'s grace period), so that each round's are counted on their own."""
    problems: list[str] = []
    cache = cachekit.Cache(directory, **settings)  # no repair; no store named: the one that created it
    try:
        orphans_reported: set[str] = set()
        for warning in cache.check():
            message = str(warning.message)
            if message.startswith("orphan value file "):
                orphans_reported.add(os.path.relpath(message.removeprefix("orphan value file "), directory))
            else:
                problems.append(f"check() reports {message}")
        found, lost = model.compare(cache)
        problems += found
        figures.lost += lost
        for writer in range(WRITERS):
            pair = [cache.get(key) for key in _workers.pair_keys(writer)]
            labels = {None if value is None else _workers.label_of(value) for value in pair}
            if len(labels) != 1:
                problems.append(f"writer {writer}'s transaction was cut in half: {sorted(map(str, labels))}")
        problems += [f"stale LMDB reader {line}" for line in _workers.stale_readers(cache)]
        orphans = _workers.unreferenced_value_files(cache)
        if orphans != orphans_reported:
            problems.append(f"unreferenced value files {sorted(orphans)}, check() reported {sorted(orphans_reported)}")
        if len(orphans) > ORPHANS_PER_KILL * WRITERS:
            problems.append(f"{len(orphans)} value files left unreferenced by {WRITERS} killed writers")
        figures.orphans += len(orphans)
        figures.rounds_with_orphans += bool(orphans)
        figures.most_orphans = max(figures.most_orphans, len(orphans))
        if orphans:
            an_hour_ago = time.time() - 3600
            for name in orphans:
                os.utime(directory / name, (an_hour_ago, an_hour_ago))
            cache.check(fix=True)
            problems += [f"check(fix=True) left {name}" for name in _workers.unreferenced_value_files(cache)]
            problems += [f"check() after the repair reports {warning.message}" for warning in cache.check()]
        if cache.store_name == "lmdb":
            figures.map_size = int(cache.store._shared.open_handles().env.info()["map_size"])  # type: ignore[attr-defined]
        with cache.store.read():
            figures.value_files = sum(1 for entry in cache.store.scan(Order.INSERTION) if entry.filename)
    finally:
        cache.close()
    return problems


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_write(store: str, tmp_path: Path) -> None:
    """Round after round of writers killed at random moments: the cache opens without repair,
    check() finds nothing wrong (no value file of a write cut short is left either), every acknowledged
    value reads back, counters hold every acknowledged increment and no more than were made, and
    LMDB keeps no reader slot of a dead process."""
    rounds = scaled(50, 500)
    directory = tmp_path / "cache"
    logs = tmp_path / "logs"
    logs.mkdir()
    rng = random.Random(7)
    model = _workers.Model()
    figures = Figures()
    started = time.monotonic()
    keys = [f"k{writer}-{index}" for writer in range(WRITERS) for index in range(KEYS)]
    keys += [key for writer in range(WRITERS) for key in _workers.pair_keys(writer)]
    # LMDB: start from a small map, so that early rounds kill writers while they grow it.
    settings: dict[str, Any] = {"lmdb_map_size": "64KiB"} if store == "lmdb" else {}
    context = multiprocessing.get_context("spawn")
    stop, outcome = tmp_path / "stop", tmp_path / "watcher.json"
    with _workers.cleaned_up([]) as watcher:
        watcher.append(
            context.Process(
                target=_workers.watch,
                args=(str(directory), store, settings, keys, rounds * 10.0, str(stop), str(outcome)),
            )
        )
        watcher[0].start()
        for number in range(rounds):
            problems = _workers.run_kill_round(directory, store, number, WRITERS, KEYS, logs, rng, settings)
            for writer in range(WRITERS):
                model.absorb(_workers.read_log(logs / f"{number}-{writer}"))
            problems += model.errors
            problems += verify(directory, settings, model, figures)
            figures.rounds += 1
            assert not problems, f"round {number}:\n" + "\n".join(problems[:20])
        stop.touch()
        assert not _workers.finish(watcher, _workers.WAIT)
    watched = json.loads(outcome.read_text())
    assert watched["problems"] == []
    assert watched["found"] > 0
    print(
        f"\n{store}: {figures.rounds} rounds, {model.acknowledged} writes and {model.increments} increments "
        f"acknowledged, {figures.lost} lost; {figures.orphans} orphan value files in "
        f"{figures.rounds_with_orphans} rounds (at most {figures.most_orphans} in one), removed by check(fix=True); "
        f"{watched['reads']} reads by the watcher; {figures.value_files} entries in value files at the end; "
        f"{'map ' + str(figures.map_size // 1024) + ' KiB; ' if store == 'lmdb' else ''}"
        f"{time.monotonic() - started:.1f} s"
    )
    assert model.acknowledged > rounds * WRITERS
    assert figures.value_files > 0, "no value went to a value file: the scenario missed that path"
