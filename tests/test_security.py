"""Owner-only files, refusal of unsafe directories, signed pickles, and damaged or foreign files at the cache path."""

from __future__ import annotations

import os
import pickle
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import diskcache
import pytest

import cachekit
from cachekit import CorruptCache, DirectoryError, InsecureDirectory, StoreError

SECRET = "a-secret-key-of-32-characters!!!"


class Planted:
    """A pickle payload an attacker might plant: unpickling it creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.path),)


def planted_payload(path: Path) -> bytes:
    """Pickle bytes that create ``path`` when unpickled (checked to be live on a decoy path)."""
    payload = pickle.dumps(Planted(path))
    decoy = path.with_name(path.name + "-decoy")
    pickle.loads(pickle.dumps(Planted(decoy)))
    assert decoy.is_dir(), "the planted payload must really run code when unpickled"
    decoy.rmdir()
    return payload


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def value_files(directory: Path) -> list[Path]:
    return sorted(path for path in (directory / "values").rglob("*.val"))


def tamper(directory: Path, key: str, value: bytes) -> None:
    """Overwrite the stored payload of ``key`` with plain sqlite3, as an attacker with write access could."""
    connection = sqlite3.connect(directory / "cache.db")
    try:
        with connection:
            cursor = connection.execute("UPDATE entries SET value = ? WHERE key = ?", (value, b"s" + key.encode()))
            assert cursor.rowcount == 1
    finally:
        connection.close()


@pytest.fixture
def zero_umask() -> Iterator[None]:
    """Run a test with umask 0, so that only explicit modes protect new files."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def shared_directory(tmp_path: Path) -> Path:
    """An existing directory that group and others may write to."""
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(0o777)
    return directory


class TestOwnerOnly:
    def test_new_cache_is_owner_only_whatever_the_umask(self, tmp_path: Path, zero_umask: None) -> None:
        """With umask 0 the directory is 0o700 and the database, marker and value files 0o600."""
        directory = tmp_path / "c"
        with cachekit.Cache(directory, disk_min_file_size=1024) as cache:
            cache.set("small", "value")
            cache.set("large", b"x" * 4096)
            assert len(value_files(directory)) == 1
            assert mode(directory) == 0o700
            for name in ("cache.db", "cache.db-wal", "cache.db-shm", "cachekit.json"):
                assert mode(directory / name) == 0o600, name
            assert mode(directory / "values") == 0o700
            (value_file,) = value_files(directory)
            assert mode(value_file.parent) == 0o700
            assert mode(value_file) == 0o600

    def test_missing_parents_are_created_owner_only(self, tmp_path: Path, zero_umask: None) -> None:
        """Parent directories cachekit creates for a nested path are owner-only too, whatever the umask."""
        directory = tmp_path / "a" / "b" / "c"
        with cachekit.Cache(directory):
            pass
        assert mode(directory) == 0o700
        assert mode(tmp_path / "a" / "b") == 0o700
        assert mode(tmp_path / "a") == 0o700

    def test_existing_private_directory_keeps_its_mode(self, tmp_path: Path) -> None:
        """An existing safe directory (here 0o750) is used as it is."""
        directory = tmp_path / "c"
        directory.mkdir()
        directory.chmod(0o750)
        with cachekit.Cache(directory) as cache:
            cache.set("key", 1)
        assert mode(directory) == 0o750


class TestInsecureDirectory:
    @pytest.mark.parametrize("permissions", [0o770, 0o707, 0o777, 0o1777])
    def test_writable_by_others_is_refused_with_an_explanation(self, tmp_path: Path, permissions: int) -> None:
        """A directory group or others can write is refused, explaining the risk and the fixes."""
        directory = tmp_path / "shared"
        directory.mkdir()
        directory.chmod(permissions)
        with pytest.raises(InsecureDirectory) as raised:
            cachekit.Cache(directory)
        message = str(raised.value)
        assert f"refusing to open the cache directory {directory}" in message
        assert f"writable by group or others (mode {stat.S_IMODE(permissions):o})" in message
        assert "plant a pickled value" in message
        assert "chmod 700" in message
        assert "allow_insecure_directory=True" in message
        assert list(directory.iterdir()) == []
        assert isinstance(raised.value, DirectoryError)
        assert isinstance(raised.value, OSError)

    def test_opt_out_opens_and_natives_are_readable(self, shared_directory: Path) -> None:
        """With allow_insecure_directory=True the cache opens and bytes, str, int and float values read back."""
        with cachekit.Cache(shared_directory, allow_insecure_directory=True) as cache:
            for key, value in [("bytes", b"\x00raw"), ("str", "text"), ("int", -(2**70)), ("float", 2.5)]:
                assert cache.set(key, value)
                assert cache[key] == value

    @pytest.mark.parametrize(
        "read",
        [
            pytest.param(lambda cache, key: cache.get(key), id="get"),
            pytest.param(lambda cache, key: cache[key], id="getitem"),
            pytest.param(lambda cache, key: cache.get(key, expire_time=True), id="get-expire_time"),
            pytest.param(lambda cache, key: cache.get(key, tag=True), id="get-tag"),
            pytest.param(lambda cache, key: cache.pop(key), id="pop"),
        ],
    )
    @pytest.mark.parametrize("size", [10, 4096], ids=["inline", "value-file"])
    def test_opt_out_without_key_refuses_to_unpickle(
        self, shared_directory: Path, read: Callable[[cachekit.Cache, str], object], size: int
    ) -> None:
        """Without a secret_key, every read of a pickled value in an insecure directory raises InsecureDirectory."""
        shared_directory.chmod(0o700)  # written while the directory was safe ...
        with cachekit.Cache(shared_directory, disk_min_file_size=1024) as cache:
            cache.set("pickled", ["x" * size])
        shared_directory.chmod(0o777)  # ... then others gained write access
        with cachekit.Cache(shared_directory, allow_insecure_directory=True, disk_min_file_size=1024) as cache:
            with pytest.raises(InsecureDirectory, match="refusing to unpickle"):
                read(cache, "pickled")
            assert "pickled" in cache

    def test_opt_out_without_key_refuses_to_store_pickles(self, shared_directory: Path) -> None:
        """Without a secret_key, storing a value that would need unpickling is refused up front."""
        with cachekit.Cache(shared_directory, allow_insecure_directory=True) as cache:
            with pytest.raises(InsecureDirectory, match="refusing to store a pickled value"):
                cache.set("pickled", ["x"])
            assert "pickled" not in cache
            assert cache.set("text", "fine")

    def test_opt_out_with_key_round_trips_pickles(self, shared_directory: Path) -> None:
        """With a secret_key, pickled values in an insecure directory round-trip, also after reopening."""
        with cachekit.Cache(shared_directory, allow_insecure_directory=True, secret_key=SECRET) as cache:
            assert cache.set("pickled", {"a": (1, 2)})
            assert cache["pickled"] == {"a": (1, 2)}
        with cachekit.Cache(shared_directory, allow_insecure_directory=True, secret_key=SECRET) as cache:
            assert cache["pickled"] == {"a": (1, 2)}

    def test_opt_out_in_a_config_string(self, shared_directory: Path) -> None:
        """allow_insecure_directory is accepted as a config-string boolean."""
        with cachekit.open(f"sqlite://{shared_directory}?allow_insecure_directory=yes") as cache:
            cache.set("key", "value")
            assert cache["key"] == "value"

    def test_directory_owned_by_another_user_is_refused(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A directory whose owner is not the effective user is refused, naming the owner."""
        directory = tmp_path / "c"
        with cachekit.Cache(directory) as cache:
            cache.set("key", 1)
        owner = os.stat(directory).st_uid
        monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
        with pytest.raises(InsecureDirectory, match=rf"is owned by another user \(uid {owner}\)") as raised:
            cachekit.Cache(directory)
        assert "plant a pickled value" in str(raised.value)
        with cachekit.Cache(directory, allow_insecure_directory=True) as cache:
            assert cache["key"] == 1


class TestSignedPickles:
    def test_tampered_value_is_a_miss_and_never_unpickled(self, tmp_path: Path) -> None:
        """A pickled value replaced in the database without a valid signature reads as a miss and never runs."""
        directory = tmp_path / "c"
        marker = tmp_path / "planted-code-ran"
        payload = planted_payload(marker)
        with cachekit.Cache(directory, secret_key=SECRET) as cache:
            cache.set("unsigned", ["original"])
            cache.set("forged", ["original"])
        tamper(directory, "unsigned", payload)
        tamper(directory, "forged", b"\x00" * 32 + payload)
        with cachekit.Cache(directory, secret_key=SECRET) as cache:
            assert cache.get("unsigned", "default") == "default"
            assert cache.get("forged", "default") == "default"
            with pytest.raises(KeyError):
                cache["forged"]
            assert cache.counters()["corrupt_values"] > 0
        assert not marker.exists()

    def test_tampered_value_file_is_a_miss_and_never_unpickled(self, tmp_path: Path) -> None:
        """A large pickled value whose file is overwritten with a same-sized planted pickle is a miss."""
        directory = tmp_path / "c"
        marker = tmp_path / "planted-code-ran"
        payload = b"\x00" * 32 + planted_payload(marker)
        with cachekit.Cache(directory, secret_key=SECRET, disk_min_file_size=1024) as cache:
            cache.set("large", ["x" * 4096])
            (value_file,) = value_files(directory)
            size = value_file.stat().st_size
            assert size > len(payload)
            value_file.write_bytes(payload.ljust(size, b"."))
            assert cache.get("large", "default") == "default"
        assert not marker.exists()

    def test_signed_values_survive_reopening_with_the_key(self, tmp_path: Path) -> None:
        """Values signed with a key read back when the cache is reopened with the same key."""
        directory = tmp_path / "c"
        with cachekit.Cache(directory, secret_key=SECRET) as cache:
            cache.set("key", {"nested": [1, 2]})
        with cachekit.Cache(directory, secret_key=SECRET) as cache:
            assert cache["key"] == {"nested": [1, 2]}

    def test_signed_values_are_a_miss_with_another_key(self, tmp_path: Path) -> None:
        """Values signed with one key do not verify under another key."""
        directory = tmp_path / "c"
        with cachekit.Cache(directory, secret_key=SECRET) as cache:
            cache.set("key", {"nested": [1, 2]})
        with cachekit.Cache(directory, secret_key="another-secret-key-0123456789") as cache:
            assert cache.get("key", "default") == "default"


class TestBadPaths:
    def test_cache_path_is_a_file(self, tmp_path: Path) -> None:
        """A regular file at the cache path raises DirectoryError naming the path."""
        path = tmp_path / "file"
        path.write_text("not a directory")
        with pytest.raises(DirectoryError, match=f"the cache path {path} is a file, not a directory"):
            cachekit.Cache(path)
        assert path.read_text() == "not a directory"

    def test_parent_is_a_file(self, tmp_path: Path) -> None:
        """A missing directory under a file raises DirectoryError naming the path."""
        parent = tmp_path / "file"
        parent.write_text("")
        path = parent / "sub" / "cache"
        with pytest.raises(DirectoryError, match=f"cannot create the cache directory {path}: a parent is a file"):
            cachekit.Cache(path)

    def test_database_is_a_directory(self, tmp_path: Path) -> None:
        """A directory where cache.db belongs raises CorruptCache naming it, and nothing else is written."""
        directory = tmp_path / "c"
        (directory / "cache.db").mkdir(parents=True)
        with pytest.raises(CorruptCache, match=f"{directory / 'cache.db'} is a directory"):
            cachekit.Cache(directory)
        assert sorted(path.name for path in directory.iterdir()) == ["cache.db"]

    def test_random_bytes_in_the_database(self, tmp_path: Path) -> None:
        """Random bytes in cache.db raise CorruptCache within a second and leave the file alone."""
        directory = tmp_path / "c"
        directory.mkdir(mode=0o700)
        garbage = os.urandom(8192)
        (directory / "cache.db").write_bytes(garbage)
        started = time.monotonic()
        with pytest.raises(CorruptCache, match="is damaged or is not a cachekit database") as raised:
            cachekit.Cache(directory)
        assert time.monotonic() - started < 1.0
        assert str(directory / "cache.db") in str(raised.value)
        assert (directory / "cache.db").read_bytes() == garbage
        assert not (directory / "cachekit.json").exists()

    def test_python_diskcache_database(self, tmp_path: Path) -> None:
        """A python-diskcache database at the path raises CorruptCache saying it belongs to another program."""
        directory = tmp_path / "c"
        with diskcache.Cache(str(directory)) as other:
            other.set("theirs", 1)
        with pytest.raises(CorruptCache, match="is an SQLite database of another program") as raised:
            cachekit.Cache(directory)
        assert str(directory / "cache.db") in str(raised.value)
        assert not (directory / "cachekit.json").exists()
        with diskcache.Cache(str(directory)) as other:
            assert other.get("theirs") == 1

    def test_damaged_marker_file(self, tmp_path: Path) -> None:
        """A marker file cachekit did not write raises CorruptCache naming it."""
        directory = tmp_path / "c"
        with cachekit.Cache(directory):
            pass
        (directory / "cachekit.json").write_text("[1, 2, 3]")
        with pytest.raises(CorruptCache, match=r"cachekit\.json is damaged or was not written by cachekit"):
            cachekit.Cache(directory)


class TestValueFiles:
    def test_symlinked_value_file_is_not_followed(self, tmp_path: Path) -> None:
        """A value file replaced by a symlink (even to identical bytes) reads as a miss, and check() reports it."""
        directory = tmp_path / "c"
        with cachekit.Cache(directory, disk_min_file_size=1024) as cache:
            cache.set("large", b"x" * 4096)
            (value_file,) = value_files(directory)
            elsewhere = tmp_path / "elsewhere"
            elsewhere.write_bytes(value_file.read_bytes())
            value_file.unlink()
            value_file.symlink_to(elsewhere)
            assert cache.get("large", "default") == "default"
            with pytest.raises(KeyError):
                cache.read("large")
            problems = [str(warning.message) for warning in cache.check()]
            assert problems == [f"value file {value_file} is not a regular file"]
        assert elsewhere.read_bytes() == b"x" * 4096

    def test_tampered_value_file_name_is_refused(self, tmp_path: Path) -> None:
        """A file name in the database that cachekit would never write is refused, not opened."""
        directory = tmp_path / "c"
        secret = tmp_path / "secret.txt"
        secret.write_bytes(b"y" * 4096)
        with cachekit.Cache(directory, disk_min_file_size=1024) as cache:
            cache.set("large", b"x" * 4096)
        connection = sqlite3.connect(directory / "cache.db")
        with connection:
            connection.execute("UPDATE entries SET filename = ? WHERE key = ?", ("../secret.txt", b"slarge"))
        connection.close()
        with cachekit.Cache(directory) as cache:
            with pytest.raises(StoreError, match=r"refusing value file name '\.\./secret\.txt'"):
                cache.get("large")
            problems = [str(warning.message) for warning in cache.check()]
            assert any("refusing value file name '../secret.txt'" in problem for problem in problems)


class TestEntriesInsideTheDirectory:
    @pytest.mark.parametrize("name", ["cache.db", "values"])
    def test_an_entry_others_can_write_is_refused(self, tmp_path: Path, name: str) -> None:
        """A private directory whose database or value folder others may write to is refused, naming it."""
        directory = tmp_path / "cache"
        with cachekit.Cache(directory, disk_min_file_size=1) as cache:
            cache.set("key", b"value")
        (directory / name).chmod(0o777 if name == "values" else 0o666)
        with pytest.raises(InsecureDirectory, match=f"{directory / name} is writable by group or others"):
            cachekit.Cache(directory)

    def test_an_entry_owned_by_another_user_is_refused(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file in the directory that another user owns is refused, naming the file and the owner."""
        directory = tmp_path / "cache"
        cachekit.Cache(directory).close()
        real_scandir = os.scandir
        own_uid = os.geteuid()

        class Foreign:
            def __init__(self, entry: os.DirEntry[str]) -> None:
                self.path = entry.path
                self._entry = entry

            def stat(self, follow_symlinks: bool = True) -> os.stat_result:
                status = self._entry.stat(follow_symlinks=follow_symlinks)
                if self.path.endswith("cache.db"):
                    values = list(status)
                    values[4] = own_uid + 1  # st_uid
                    return os.stat_result(values)
                return status

        monkeypatch.setattr(os, "scandir", lambda path: [Foreign(entry) for entry in real_scandir(path)])
        with pytest.raises(InsecureDirectory, match=r"cache\.db is owned by another user"):
            cachekit.Cache(directory)
