"""The journal of value files in flight (``cachekit/_journal.py``): what it records, when it empties,
and how the next opener replays the journal of a process that died mid-write."""

from __future__ import annotations

import fcntl
import io
import os
import stat
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cachekit
import cachekit.plugins
from cachekit._journal import Journal

LARGE = b"x" * 40_000
SMALL = b"y" * 100


@pytest.fixture(params=cachekit.plugins.names("store"))
def store(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def cache(tmp_path: Path, store: str) -> Iterator[cachekit.Cache]:
    with cachekit.Cache(tmp_path / "cache", store=store) as opened:
        yield opened


def journals(directory: str | Path) -> list[Path]:
    folder = Path(directory, "pending")
    return sorted(folder.glob("*.journal")) if folder.exists() else []


def value_files(directory: str | Path) -> set[str]:
    root = Path(directory)
    return {path.relative_to(root).as_posix() for path in (root / "values").rglob("*.val")}


def filename_of(cache: cachekit.Cache, key: str) -> str:
    entry = cache.store.get(cache._encode_key(key))
    assert entry is not None
    assert entry.filename is not None
    return entry.filename


def plant_value_file(directory: Path, token: str) -> str:
    """A file under values/ that no entry references, named as cachekit names value files."""
    name = f"values/{token[:2]}/{token[2:]}.val"
    path = directory / name
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_bytes(b"left behind")
    return name


def write_dead_journal(directory: Path, records: list[tuple[bytes | None, str]], tail: bytes = b"") -> Path:
    """A journal as a process killed mid-write leaves it: records, and no one holding its lock."""
    folder = directory / "pending"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / "999999-0123456789abcdef.journal"
    lines = "".join(f"{'-' if key is None else key.hex()} {name}\n" for key, name in records)
    path.write_bytes(lines.encode() + tail)
    return path


class TestRecording:
    def test_a_value_file_is_journaled_before_it_is_created(
        self, cache: cachekit.Cache, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When a value file is opened for writing, the journal on disk already names it with its key."""
        seen: list[tuple[str, str]] = []
        real_open = os.open

        def spying_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if str(path).endswith(".val") and flags & os.O_CREAT:
                [journal] = journals(cache.directory)
                seen.append((os.path.relpath(path, cache.directory), journal.read_text()))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", spying_open)
        assert cache.set("big", LARGE)
        monkeypatch.undo()
        [(name, journal_text)] = seen
        assert name == filename_of(cache, "big")
        assert journal_text == f"{cache._encode_key('big').hex()} {name}\n"

    def test_the_file_an_entry_replaces_is_journaled_before_the_commit(
        self, cache: cachekit.Cache, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Setting over a large value journals the old file, with its key, before the transaction commits."""
        cache.set("big", LARGE)
        old = filename_of(cache, "big")
        [journal] = journals(cache.directory)
        store = cache.store
        real_write = store.write
        at_commit: list[str] = []

        class Spy:
            def __init__(self, *args: Any) -> None:
                self.inner = real_write(*args)

            def __enter__(self) -> None:
                self.inner.__enter__()

            def __exit__(self, *exc: Any) -> None:
                at_commit.append(journal.read_text())
                self.inner.__exit__(*exc)

        monkeypatch.setattr(store, "write", Spy)
        cache.set("big", LARGE + b"2")
        monkeypatch.undo()
        assert f"{cache._encode_key('big').hex()} {old}\n" in at_commit[-1]
        assert not (Path(cache.directory) / old).exists()

    def test_the_journal_empties_when_nothing_is_in_flight(self, cache: cachekit.Cache) -> None:
        """After each write, replacement, removal, push and transaction, the journal is empty again."""
        cache.set("a", LARGE)
        [journal] = journals(cache.directory)
        assert journal.stat().st_size == 0
        cache.set("a", LARGE + b"2")
        assert cache.add("b", LARGE)
        assert not cache.add("b", LARGE)  # refused: its file goes
        assert journal.stat().st_size == 0
        with cache.transact():
            cache.set("c", LARGE)
            cache.set("c", LARGE + b"3")
            assert journal.stat().st_size > 0  # in flight until the transaction commits
        assert journal.stat().st_size == 0
        cache.push(LARGE, prefix="q")
        assert cache.pull(prefix="q")[1] == LARGE
        cache.set("d", LARGE, read=False)
        assert cache.pop("d") == LARGE
        del cache["a"]
        cache.clear()
        assert journal.stat().st_size == 0
        assert cache._journal.in_flight == frozenset()
        assert value_files(cache.directory) == set()

    def test_a_transaction_that_rolls_back_settles_its_files(self, cache: cachekit.Cache) -> None:
        cache.set("kept", LARGE)
        kept = filename_of(cache, "kept")

        def roll_back() -> None:
            with cache.transact():
                cache.set("new", LARGE)
                cache.delete("kept")
                raise RuntimeError("roll back")

        with pytest.raises(RuntimeError):
            roll_back()
        [journal] = journals(cache.directory)
        assert journal.stat().st_size == 0
        assert cache._journal.in_flight == frozenset()
        assert value_files(cache.directory) == {kept}
        assert cache["kept"] == LARGE

    def test_read_true_and_push_are_journaled(self, cache: cachekit.Cache, monkeypatch: pytest.MonkeyPatch) -> None:
        """A stream stored with read=True is journaled with its key; a push first without a key
        (the queue key is chosen inside the transaction), then with it before the commit."""
        records: list[list[tuple[bytes | None, str]]] = []
        real = Journal.record_many

        def spy(journal: Journal, entries: Any) -> None:
            entries = list(entries)
            records.append(entries)
            real(journal, entries)

        monkeypatch.setattr(Journal, "record_many", spy)
        cache.set("stream", io.BytesIO(LARGE), read=True)
        key = cache.push(LARGE, prefix="q")
        monkeypatch.undo()
        assert records[0] == [(cache._encode_key("stream"), filename_of(cache, "stream"))]
        pushed = filename_of(cache, key)
        assert records[1:] == [[(None, pushed)], [(cache._encode_key(key), pushed)]]

    def test_small_values_never_touch_the_journal(self, cache: cachekit.Cache, monkeypatch: pytest.MonkeyPatch) -> None:
        """Sets, reads, updates and removals of small values call nothing of the journal and create no file."""
        calls: list[str] = []
        for method in ("record", "record_many", "settle"):
            real = getattr(Journal, method)

            def counting(*args: Any, _real: Any = real, _name: str = method) -> Any:
                calls.append(_name)
                return _real(*args)

            monkeypatch.setattr(Journal, method, counting)
        for index in range(50):
            cache.set(f"k{index}", SMALL)
            cache.get(f"k{index}")
        cache.set("k0", SMALL + b"2")
        cache.add("new", SMALL)
        cache.incr("counter")
        cache.push(SMALL)
        cache.pull()
        cache.delete("k1")
        cache.pop("k2")
        with cache.transact():
            cache.set("t", SMALL)
        cache.clear()
        assert calls == []
        assert not Path(cache.directory, "pending").exists()


class TestRecovery:
    def test_a_dead_process_journal_is_replayed_at_open(self, tmp_path: Path, store: str) -> None:
        """Files the journal names are deleted unless their key's entry references them; the journal goes."""
        directory = tmp_path / "cache"
        with cachekit.Cache(directory, store=store) as cache:
            cache.set("kept", LARGE)
            cache.set("replaced", LARGE)
            kept = filename_of(cache, "kept")
            replaced_now = filename_of(cache, "replaced")
            kept_key, replaced_key, gone_key = (cache._encode_key(key) for key in ("kept", "replaced", "gone"))
        unwritten = plant_value_file(directory, "a" * 32)  # written, its entry never committed
        obsolete = plant_value_file(directory, "b" * 32)  # replaced, not yet removed
        keyless = plant_value_file(directory, "c" * 32)  # a push cut short before its key was chosen
        never_created = "values/dd/" + "d" * 30 + ".val"
        journal = write_dead_journal(
            directory,
            [
                (kept_key, kept),
                (gone_key, unwritten),
                (replaced_key, obsolete),
                (replaced_key, replaced_now),
                (None, keyless),
                (gone_key, never_created),
            ],
            tail=b"6b6579 values/ee/",  # a record cut by the kill
        )
        with cachekit.Cache(directory) as cache:
            assert not journal.exists()
            assert value_files(directory) == {kept, replaced_now}
            assert cache["kept"] == LARGE
            assert cache["replaced"] == LARGE
            with warnings.catch_warnings():
                assert cache.check() == []

    def test_a_journal_never_deletes_outside_the_value_files(self, tmp_path: Path, store: str) -> None:
        directory = tmp_path / "cache"
        cachekit.Cache(directory, store=store).close()
        victim = tmp_path / "victim"
        victim.write_text("precious")
        journal = write_dead_journal(directory, [(None, "../victim"), (None, str(victim)), (None, "cachekit.json")])
        cachekit.Cache(directory).close()
        assert victim.read_text() == "precious"
        assert (directory / "cachekit.json").exists()
        assert not journal.exists()

    def test_a_live_process_journal_is_left_alone(self, tmp_path: Path, store: str) -> None:
        """A journal whose lock another process holds is not replayed, at open or at check(fix=True)."""
        directory = tmp_path / "cache"
        cachekit.Cache(directory, store=store).close()
        orphan = plant_value_file(directory, "a" * 32)
        old = os.stat(directory / orphan).st_mtime - 3600
        os.utime(directory / orphan, (old, old))  # past check(fix=True)'s grace period
        journal = write_dead_journal(directory, [(b"sgone", orphan)])
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import fcntl, os, sys; d = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(d, fcntl.LOCK_EX); "
                "print('locked', flush=True); sys.stdin.read()",
                str(journal),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            with cachekit.Cache(directory) as cache:
                assert journal.exists()
                assert orphan in value_files(directory)
                assert cache.check(fix=True) == []  # in flight in a live process: not an orphan
                assert orphan in value_files(directory)
        finally:
            assert holder.stdin is not None
            assert holder.stdout is not None
            holder.stdin.close()
            holder.wait(30)
            holder.stdout.close()
        with cachekit.Cache(directory):  # the holder is gone: its journal is replayed
            assert not journal.exists()
            assert orphan not in value_files(directory)

    def test_check_replays_journals_of_processes_that_died_while_it_was_open(self, tmp_path: Path, store: str) -> None:
        directory = tmp_path / "cache"
        with cachekit.Cache(directory, store=store) as cache:
            orphan = plant_value_file(directory, "a" * 32)
            journal = write_dead_journal(directory, [(b"sgone", orphan)])
            assert cache.check() == []
            assert not journal.exists()
            assert orphan not in value_files(directory)


class TestProcesses:
    def test_journal_and_directory_modes(self, tmp_path: Path, store: str) -> None:
        previous = os.umask(0)
        try:
            with cachekit.Cache(tmp_path / "cache", store=store) as cache:
                cache.set("big", LARGE)
                [journal] = journals(cache.directory)
                assert stat.S_IMODE(journal.parent.stat().st_mode) == 0o700
                assert stat.S_IMODE(journal.stat().st_mode) == 0o600
                assert journal.name.startswith(f"{os.getpid()}-")
        finally:
            os.umask(previous)
        assert journals(tmp_path / "cache") == []  # close removes an empty journal

    def test_the_journal_is_held_locked(self, cache: cachekit.Cache) -> None:
        cache.set("big", LARGE)
        [journal] = journals(cache.directory)
        descriptor = os.open(journal, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(descriptor)

    @pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads, on 3.12+
    def test_a_forked_child_keeps_a_journal_of_its_own(self, cache: cachekit.Cache) -> None:
        """A child forked after the parent journaled writes its own journal; the parent's stays locked."""
        cache.set("parent", LARGE)
        [parent_journal] = journals(cache.directory)
        reading, writing = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            status = 1
            try:
                os.close(reading)
                cache.set("child", LARGE)
                path = cache._journal.path
                os.write(writing, f"{path}\n".encode())
                cache.close()
                status = 0
            finally:
                os._exit(status)
        os.close(writing)
        with os.fdopen(reading) as pipe:
            child_journal = pipe.read().strip()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert child_journal != str(parent_journal)
        assert Path(child_journal).name.startswith(f"{pid}-")
        assert journals(cache.directory) == [parent_journal]  # the child removed its own at close
        descriptor = os.open(parent_journal, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):  # the child's exit did not release the parent's lock
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(descriptor)
        assert cache["child"] == LARGE
        cache.set("parent", LARGE + b"2")
        assert parent_journal.stat().st_size == 0


class TestJournalFaults:
    def test_a_journal_that_cannot_be_written_fails_no_write(
        self, cache: cachekit.Cache, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """ENOSPC on the journal (a full disk) is logged once; sets, replacements and removals of large
        values still succeed, and once the journal can be written again its records start on a line."""
        cache.set("a", LARGE)
        real_write = os.write

        def full(descriptor: int, data: Any) -> int:
            if descriptor == cache._journal._descriptor:
                real_write(descriptor, bytes(data)[:5])  # a torn record, as a full disk may leave
                raise OSError(28, "No space left on device")
            return real_write(descriptor, data)

        monkeypatch.setattr(os, "write", full)
        assert cache.set("a", LARGE + b"2")
        assert cache.set("b", LARGE)
        assert cache.delete("b")
        monkeypatch.undo()
        assert sum("could not journal" in record.message for record in caplog.records) == 1
        assert cache["a"] == LARGE + b"2"
        assert value_files(cache.directory) == {filename_of(cache, "a")}
        [journal] = journals(cache.directory)
        assert journal.stat().st_size == 0
        with cache.transact():
            cache.set("c", LARGE)
            assert journal.read_text() == f"{cache._encode_key('c').hex()} {filename_of(cache, 'c')}\n"

    def test_a_pending_folder_that_cannot_be_created_fails_no_write(self, tmp_path: Path, store: str) -> None:
        directory = tmp_path / "cache"
        with cachekit.Cache(directory, store=store) as cache:
            (directory / "pending").write_text("not a folder")
            assert cache.set("a", LARGE)
            assert cache["a"] == LARGE
            assert cache.delete("a")
        with cachekit.Cache(directory, store=store) as cache:  # and opening does not trip over it
            assert cache.check() == []
