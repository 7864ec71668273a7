"""The systems the benchmarks compare: cachekit and everything it is measured against.

Every system is opened on a directory and gives three callables that a
benchmark times, ``get(key)``, ``set(key, value)`` and ``delete(key)``, on
``str`` keys and ``bytes`` values, with one meaning everywhere: ``get``
returns the stored bytes or None, ``set`` returns True once the value is
stored, ``delete`` returns whether the key was there.  Where a system's own
call returns something else (Redis's ``DEL`` a count, a mapping's
``__setitem__`` None), the callable is a thin wrapper (one Python call, a
few tens of nanoseconds).  Names, in the reports' order::

    cachekit:STORE          cachekit.Cache, every installed store (sqlite, lmdb)
    cachekit-fanout:STORE   cachekit.FanoutCache, 8 shards, every installed store
    diskcache               diskcache.Cache                      (python-diskcache)
    diskcache-fanout        diskcache.FanoutCache, 8 shards      (python-diskcache)
    redis-tcp, redis-unix   redis-py (with hiredis when installed) on a redis-server started on loopback
    memcached               pymemcache on a memcached started on loopback
    django-filebased        Django's FileBasedCache
    django-locmem           Django's LocMemCache (memory of one process)
    sqlitedict              sqlitedict.SqliteDict(autocommit=True)
    dbm                     the stdlib dbm's default backend (dbm.gnu, dbm.ndbm or dbm.dumb), bytes values
    sqlite3-floor           a bare sqlite3 table
    lmdb-floor              a bare LMDB database

The API, for every benchmark module:

- ``available_specs(names=None, multiprocess=False) -> (specs, notes)``: the
  ``Spec`` of each system that ``names`` pick (system names or groups, see
  ``GROUPS``; None for all) and can run here, and a note for each one left
  out (a missing package or server binary; with ``multiprocess``, a system
  that several processes cannot share).  Raises ``ValueError`` for an
  unknown name.
- ``servers_for(specs, notes, budget=...)``: a context manager that starts
  the servers those specs need (``_servers.running``) and yields a
  ``Started`` whose ``specs`` are the ones that can run (a spec whose
  server failed to start is dropped, with a note) and whose ``servers`` are
  the ``_servers.Server`` objects; the servers stop on the way out.  Their
  addresses are exported in environment variables, so worker processes
  started inside it (any start method) can open the server systems too.
- ``Spec.open(directory) -> System``; ``System.populate(keys, value)`` and
  ``populate_items(pairs)`` (one write transaction, or one batch per round
  trip), ``System.close()``.  A directory is one cache: opening a new
  (absent) directory gives an empty cache, opening it again (in another
  process too) gives the same one.  For the server systems the directory
  only carries that meaning: a new directory empties the server's database
  (Redis: ``redis-tcp`` uses database 0, ``redis-unix`` database 1, so both
  can be open at once; memcached: ``flush_all``), so open one directory per
  server system at a time.
- ``Spec.multiprocess``: whether several processes may share one cache
  (False for ``django-locmem``, ``sqlitedict`` and ``dbm``, with the reason
  in ``Spec.single_process``); ``Spec.max_keys``: above this key count a
  timed run would take minutes (``django-filebased``, ``dbm`` on
  ``dbm.dumb``); ``Spec.too_many_keys(count)`` says why, or None.
- ``open_system(name, directory)``: open one system by name (in a worker).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import _servers

T = TypeVar("T")

__all__ = [
    "GROUPS",
    "BenchmarkError",
    "CacheSystem",
    "Spec",
    "Started",
    "System",
    "available_specs",
    "open_system",
    "select_specs",
    "servers_for",
    "store_names",
    "system_names",
]

CACHEKIT_PREFIX = "cachekit:"
FANOUT_PREFIX = "cachekit-fanout:"
DISKCACHE = "diskcache"
DISKCACHE_FANOUT = "diskcache-fanout"
REDIS_TCP = "redis-tcp"
REDIS_UNIX = "redis-unix"
MEMCACHED = "memcached"
DJANGO_FILEBASED = "django-filebased"
DJANGO_LOCMEM = "django-locmem"
SQLITEDICT = "sqlitedict"
DBM = "dbm"
SQLITE_FLOOR = "sqlite3-floor"
LMDB_FLOOR = "lmdb-floor"
FLOORS = (SQLITE_FLOOR, LMDB_FLOOR)
SERVER_SYSTEMS = (REDIS_TCP, REDIS_UNIX, MEMCACHED)
DJANGO_SYSTEMS = (DJANGO_FILEBASED, DJANGO_LOCMEM)
#: The other systems, in the reports' order (after cachekit's).
OTHERS = (DISKCACHE, DISKCACHE_FANOUT, *SERVER_SYSTEMS, *DJANGO_SYSTEMS, SQLITEDICT, DBM, *FLOORS)
#: The --systems groups besides a system's name, a store name alone (``sqlite``) and ``all``.
GROUPS = {
    "cachekit": "every cachekit store (cachekit:STORE)",
    "cachekit-fanout": "cachekit's FanoutCache on every store",
    "fanout": "cachekit-fanout:STORE and diskcache-fanout",
    "servers": "redis-tcp, redis-unix, memcached",
    "redis": "redis-tcp, redis-unix",
    "django": "django-filebased, django-locmem",
    "floor": "sqlite3-floor, lmdb-floor",
    "sqlite3": "sqlite3-floor",
    "local": "every system that needs no server",
    "all": "every system",
}
FANOUT_SHARDS = 8
LMDB_MAP_SIZE = 1 << 30
POPULATE_BATCH = 1_000
#: Django's MAX_ENTRIES for its caches: effectively unlimited, so that Django never culls during a run.
DJANGO_MAX_ENTRIES = 10**9
#: dbm.dumb rewrites its whole index on every delete, FileBasedCache lists its directory on every set.
SLOW_MAX_KEYS = 10_000
#: Where servers_for publishes the servers' addresses, for this process and the worker processes it starts.
ENV_REDIS_PORT = "CACHEKIT_BENCHMARK_REDIS_PORT"
ENV_REDIS_SOCKET = "CACHEKIT_BENCHMARK_REDIS_SOCKET"
ENV_MEMCACHED_PORT = "CACHEKIT_BENCHMARK_MEMCACHED_PORT"
_MARKER = ".server-cache"


class BenchmarkError(Exception):
    """A system under test misbehaved (wrong result, failed call), or cannot be opened."""


# -- the systems --------------------------------------------------------------------------------


class System:
    """One system under test, open on its directory.

    ``get``, ``set`` and ``delete`` are the callables that are timed: bound
    methods of the system itself wherever possible, so the benchmark adds
    nothing but the call.  ``declines_sets`` is True for a system whose
    ``set`` may return False by design, without storing (a FanoutCache whose
    shard stayed locked past its timeout); elsewhere False from ``set`` is
    an error.
    """

    name: str
    get: Callable[[str], Any]
    set: Callable[[str, bytes], Any]
    delete: Callable[[str], Any]
    declines_sets = False

    def populate(self, keys: Iterable[str], value: bytes) -> None:
        """Store ``value`` under every key, in one write transaction."""
        self.populate_items((key, value) for key in keys)

    def populate_items(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Store every ``(key, value)`` pair, in one write transaction (or one batch per round trip)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class CacheSystem(System):
    """A cache with the python-diskcache API: cachekit's or python-diskcache's ``Cache`` or ``FanoutCache``."""

    def __init__(self, name: str, cache: Any, *, fanout: bool = False) -> None:
        self.name = name
        self._cache = cache
        self.get = cache.get
        self.set = cache.set
        self.delete = cache.delete
        self.declines_sets = fanout  # FanoutCache gives up on a shard locked past its timeout (10 ms)

    def populate_items(self, items: Iterable[tuple[str, bytes]]) -> None:
        cache = self._cache
        with cache.transact():  # a FanoutCache locks every shard
            for key, value in items:
                cache.set(key, value)

    def close(self) -> None:
        self._cache.close()


_FLOOR_GET = "SELECT value FROM kv WHERE key = ?"
_FLOOR_SET = "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)"
_FLOOR_DELETE = "DELETE FROM kv WHERE key = ?"


class SqliteFloor(System):
    """The least a cache on SQLite can do: one table, one statement per operation.

    WAL mode, ``synchronous=NORMAL``, autocommit connection; every write is
    its own ``BEGIN IMMEDIATE`` ... ``COMMIT`` as in a cache; a get is one
    ``SELECT``.
    """

    def __init__(self, directory: str) -> None:
        self.name = SQLITE_FLOOR
        os.makedirs(directory, exist_ok=True)
        connection = sqlite3.connect(os.path.join(directory, "floor.db"), isolation_level=None)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB)")
        self._connection = connection
        execute = connection.execute

        def get(key: str) -> bytes | None:
            row = execute(_FLOOR_GET, (key,)).fetchone()
            return None if row is None else row[0]

        def set_(key: str, value: bytes) -> bool:
            execute("BEGIN IMMEDIATE")
            try:
                execute(_FLOOR_SET, (key, value))
            except BaseException:
                execute("ROLLBACK")
                raise
            execute("COMMIT")
            return True

        def delete(key: str) -> bool:
            execute("BEGIN IMMEDIATE")
            try:
                deleted = execute(_FLOOR_DELETE, (key,)).rowcount > 0
            except BaseException:
                execute("ROLLBACK")
                raise
            execute("COMMIT")
            return deleted

        self.get = get
        self.set = set_
        self.delete = delete

    def populate_items(self, items: Iterable[tuple[str, bytes]]) -> None:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(_FLOOR_SET, items)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def close(self) -> None:
        self._connection.close()


class LmdbFloor(System):
    """The least a cache on LMDB can do: one named database, one transaction per operation.

    ``sync=False, metasync=False``, the durability the cachekit LMDB store
    uses by default (a commit survives a crash of the process, not a power
    loss), and a 1 GiB map.  A get is one read transaction, a set or a
    delete one committed write transaction; keys are UTF-8.
    """

    def __init__(self, directory: str) -> None:
        import lmdb

        self.name = LMDB_FLOOR
        environment = lmdb.open(directory, map_size=LMDB_MAP_SIZE, sync=False, metasync=False, max_dbs=1)
        database = environment.open_db(b"kv")
        self._environment = environment
        self._database = database
        begin = environment.begin

        def get(key: str) -> bytes | None:
            with begin(db=database) as transaction:
                return transaction.get(key.encode())

        def set_(key: str, value: bytes) -> bool:
            with begin(db=database, write=True) as transaction:
                transaction.put(key.encode(), value)
            return True

        def delete(key: str) -> bool:
            with begin(db=database, write=True) as transaction:  # commits on the way out
                return transaction.delete(key.encode())

        self.get = get
        self.set = set_
        self.delete = delete

    def populate_items(self, items: Iterable[tuple[str, bytes]]) -> None:
        with self._environment.begin(db=self._database, write=True) as transaction:
            for key, value in items:
                transaction.put(key.encode(), value)

    def close(self) -> None:
        self._environment.close()


def _claim(directory: str) -> bool:
    """Whether ``directory`` is new, i.e. the server system opened on it must start empty; marks it as taken."""
    os.makedirs(directory, exist_ok=True)
    try:
        with open(os.path.join(directory, _MARKER), "x"):
            return True
    except FileExistsError:
        return False


def _address(variable: str, name: str) -> str:
    found = os.environ.get(variable)
    if not found:
        raise BenchmarkError(f"{name}: its server is not running (open it inside servers_for(...))")
    return found


def _batches(items: Iterable[tuple[str, bytes]]) -> Iterator[dict[str, bytes]]:
    batch: dict[str, bytes] = {}
    for key, value in items:
        batch[key] = value
        if len(batch) >= POPULATE_BATCH:
            yield batch
            batch = {}
    if batch:
        yield batch


class RedisSystem(System):
    """redis-py on the benchmark's redis-server: over TCP (database 0) or its unix socket (database 1)."""

    def __init__(self, name: str, directory: str) -> None:
        import redis

        if name == REDIS_UNIX:
            client = redis.Redis(unix_socket_path=_address(ENV_REDIS_SOCKET, name), db=1)
        else:
            client = redis.Redis(host=_servers.LOOPBACK, port=int(_address(ENV_REDIS_PORT, name)), db=0)
        if _claim(directory):
            client.flushdb()
        self.name = name
        self._client = client
        self.get = client.get  # bytes or None
        self.set = client.set  # True ("OK")
        redis_delete = client.delete  # the number of keys deleted

        def delete(key: str) -> bool:
            return redis_delete(key) == 1

        self.delete = delete

    def populate_items(self, items: Iterable[tuple[str, bytes]]) -> None:
        pipeline = self._client.pipeline(transaction=False)
        for batch in _batches(items):
            pipeline.mset(batch)
        pipeline.execute()

    def close(self) -> None:
        self._client.close()


class MemcachedSystem(System):
    """pymemcache's base ``Client`` on the benchmark's memcached; every call waits for the reply (no noreply)."""

    def __init__(self, directory: str) -> None:
        from pymemcache.client.base import Client  # type: ignore[import-untyped]

        port = int(_address(ENV_MEMCACHED_PORT, MEMCACHED))
        client = Client((_servers.LOOPBACK, port), default_noreply=False, no_delay=True, connect_timeout=10, timeout=10)
        if _claim(directory):
            client.flush_all(noreply=False)
        self.name = MEMCACHED
        self._client = client
        self.get = client.get  # bytes (stored as they are, flags 0) or None
        self.set = client.set  # True once STORED
        self.delete = client.delete  # True if DELETED, False if NOT_FOUND

    def populate_items(self, items: Iterable[tuple[str, bytes]]) -> None:
        for batch in _batches(items):
            failed = self._client.set_many(batch, noreply=False)
            if failed:
                raise BenchmarkError(f"{self.name}: set_many failed for {len(failed)} key(s), such as {failed[0]!r}")

    def close(self) -> None:
        self._client.close()


def _django_cache(backend: str, location: str) -> Any:
    """A Django cache, configured with no expiry and no culling; Django is configured minimally if it is not yet."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure()
        django.setup()
    from django.core.cache import CacheHandler

    entry = {"BACKEND": backend, "LOCATION": location, "TIMEOUT": None, "OPTIONS": {"MAX_ENTRIES": DJANGO_MAX_ENTRIES}}
    return CacheHandler({"default": entry}).create_connection("default")  # not kept by the handler


class DjangoSystem(System):
    """Django's ``FileBasedCache`` (on the directory) or ``LocMemCache`` (named after it), through Django's API."""

    def __init__(self, name: str, directory: str) -> None:
        if name == DJANGO_FILEBASED:
            cache = _django_cache("django.core.cache.backends.filebased.FileBasedCache", directory)
        else:
            cache = _django_cache("django.core.cache.backends.locmem.LocMemCache", directory)
        self.name = name
        self._cache = cache
        self.get = cache.get
        cache_set = cache.set  # returns None

        def set_(key: str, value: bytes) -> bool:
            cache_set(key, value)
            return True

        self.set = set_
        self.delete = cache.delete  # a bool

    def populate_items(self, items: Iterable[tuple[str, bytes]]) -> None:
        cache = self._cache
        if self.name == DJANGO_FILEBASED:
            # FileBasedCache lists its whole directory before every set (its culling check): populating
            # N keys would list it N times.  Skipped while populating only; the timed sets pay for it.
            cache._cull = lambda: None
        try:
            for key, value in items:
                cache.set(key, value)
        finally:
            vars(cache).pop("_cull", None)

    def close(self) -> None:
        self._cache.close()


class SqliteDictSystem(System):
    """``SqliteDict(FILE, tablename="kv", autocommit=True)``, otherwise its defaults (pickled values)."""

    def __init__(self, directory: str) -> None:
        from sqlitedict import SqliteDict  # type: ignore[import-untyped]

        os.makedirs(directory, exist_ok=True)
        self._path = os.path.join(directory, "sqlitedict.sqlite")
        mapping = SqliteDict(self._path, tablename="kv", autocommit=True)
        self.name = SQLITEDICT
        self._mapping = mapping
        self.get = mapping.get
        self.set, self.delete = _mapping_writes(mapping)

    def populate_items(self, items: Iterable[tuple[str, bytes]]) -> None:
        """One transaction on a connection of its own, with sqlitedict's encoding (untimed).

        ``SqliteDict.update`` hands each row to its thread separately: 100,000
        rows took about 25 s, against about 1 s this way.
        """
        mapping = self._mapping
        rows = ((mapping.encode_key(key), mapping.encode(value)) for key, value in items)
        connection = sqlite3.connect(self._path, isolation_level=None, timeout=60)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany('INSERT OR REPLACE INTO "kv" (key, value) VALUES (?, ?)', rows)
            connection.execute("COMMIT")
        finally:
            connection.close()

    def close(self) -> None:
        self._mapping.close()


def _mapping_writes(mapping: Any) -> tuple[Callable[[str, bytes], bool], Callable[[str], bool]]:
    """``set`` and ``delete`` for a mapping: ``mapping[key] = value`` and ``del mapping[key]``, returning bools."""
    setitem, delitem = mapping.__setitem__, mapping.__delitem__

    def set_(key: str, value: bytes) -> bool:
        setitem(key, value)
        return True

    def delete(key: str) -> bool:
        try:
            delitem(key)
        except KeyError:
            return False
        return True

    return set_, delete


def dbm_backend() -> str:
    """The module ``dbm.open`` creates new databases with here: the first importable of ``dbm``'s backends."""
    import dbm

    for name in getattr(dbm, "_names", ("dbm.gnu", "dbm.ndbm", "dbm.dumb")):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        return str(name)
    return "dbm.dumb"


class DbmSystem(System):
    """``dbm.open(FILE, "c")``: the stdlib dbm's default backend, ``bytes`` values, no sync per write."""

    def __init__(self, directory: str) -> None:
        import dbm

        os.makedirs(directory, exist_ok=True)
        database = dbm.open(os.path.join(directory, "dbm"), "c")  # noqa: SIM115 (closed by close())
        self.name = DBM
        self._database = database
        self.get = database.get
        self.set, self.delete = _mapping_writes(database)

    def populate_items(self, items: Iterable[tuple[str, bytes]]) -> None:
        database = self._database
        for key, value in items:
            database[key] = value
        if hasattr(database, "sync"):
            database.sync()

    def close(self) -> None:
        self._database.close()


# -- specs and selection --------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """A system that can be benchmarked: its name, how to open it on a directory, and what it needs.

    ``server`` is the server it talks to (``_servers.REDIS`` or
    ``_servers.MEMCACHED``, started by ``servers_for``); ``multiprocess``
    whether several processes can share one cache (``single_process`` says
    why not); ``max_keys`` the largest key count it is run with.
    """

    name: str
    open: Callable[[str], System]
    description: str = ""
    server: str | None = None
    multiprocess: bool = True
    single_process: str = ""
    max_keys: int | None = None

    def too_many_keys(self, count: int) -> str | None:
        """Why this system is not run with ``count`` keys (a run would take minutes), or None."""
        if self.max_keys is None or count <= self.max_keys:
            return None
        return f"{self.name} skipped with {count:,} keys (it runs with at most {self.max_keys:,}): {self.description}"


def store_names() -> list[str]:
    """Every installed cachekit store, as the plugin registry lists them."""
    import cachekit.plugins

    return sorted(cachekit.plugins.names("store"))


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def diskcache_available() -> bool:
    return _importable("diskcache")


def lmdb_available() -> bool:
    return _importable("lmdb")


def system_names() -> list[str]:
    """Every system's name, in the reports' order."""
    stores = store_names()
    return [*(CACHEKIT_PREFIX + store for store in stores), *(FANOUT_PREFIX + store for store in stores), *OTHERS]


def _group(token: str, every: Sequence[str], stores: Sequence[str]) -> list[str] | None:
    if token in every:
        return [token]
    if token in stores:
        return [CACHEKIT_PREFIX + token]
    members = {
        "cachekit": [name for name in every if name.startswith(CACHEKIT_PREFIX)],
        "cachekit-fanout": [name for name in every if name.startswith(FANOUT_PREFIX)],
        "fanout": [name for name in every if name.startswith(FANOUT_PREFIX)] + [DISKCACHE_FANOUT],
        "servers": list(SERVER_SYSTEMS),
        "redis": [REDIS_TCP, REDIS_UNIX],
        "django": list(DJANGO_SYSTEMS),
        "floor": list(FLOORS),
        "sqlite3": [SQLITE_FLOOR],
        "local": [name for name in every if name not in SERVER_SYSTEMS],
        "all": list(every),
    }
    return members.get(token)


def expand(names: Sequence[str] | None) -> list[str]:
    """The system names that ``names`` (systems, store names, groups) pick, in the order given; all if None."""
    every = system_names()
    if names is None:
        return every
    stores = store_names()
    chosen: list[str] = []
    for token in names:
        found = _group(token, every, stores)
        if found is None:
            raise ValueError(
                f"unknown system {token!r}; choose from {', '.join(every)}, a store name alone, or a group: "
                + ", ".join(GROUPS)
            )
        chosen.extend(name for name in found if name not in chosen)
    return chosen


def _make_spec(name: str) -> tuple[Spec | None, str]:
    """The spec of ``name``, or None and why it cannot run here (a missing package or binary)."""
    for prefix, fanout in ((CACHEKIT_PREFIX, False), (FANOUT_PREFIX, True)):
        if name.startswith(prefix):
            store = name[len(prefix) :]
            if store == "lmdb" and not lmdb_available():
                return None, "the lmdb package is not installed (pip install lmdb)"
            return _cachekit_spec(store, fanout=fanout), ""
    if name in (DISKCACHE, DISKCACHE_FANOUT):
        if not diskcache_available():
            return None, "python-diskcache is not installed (pip install diskcache)"
        return _diskcache_spec(fanout=name == DISKCACHE_FANOUT), ""
    if name in SERVER_SYSTEMS:
        return _server_spec(name)
    if name in DJANGO_SYSTEMS:
        if not _importable("django"):
            return None, 'Django is not installed (pip install "cachekit[django]")'
        return _django_spec(name), ""
    if name == SQLITEDICT:
        if not _importable("sqlitedict"):
            return None, "sqlitedict is not installed (pip install sqlitedict)"
        return Spec(
            SQLITEDICT,
            SqliteDictSystem,
            "sqlitedict.SqliteDict(FILE, tablename='kv', autocommit=True), otherwise its defaults: pickled values, "
            "rollback journal, every write committed on its background thread",
            multiprocess=False,
            single_process="sqlitedict is not safe for concurrent writers in several processes",
        ), ""
    if name == DBM:
        backend = dbm_backend()
        dumb = backend == "dbm.dumb"
        return Spec(
            DBM,
            DbmSystem,
            f"dbm.open(FILE, 'c') with bytes values; the default backend here is {backend}"
            + (
                " (dbm.gnu and dbm.ndbm are not available), which rewrites its whole index on every delete"
                if dumb
                else ""
            ),
            multiprocess=False,
            single_process=f"{backend} is not safe for concurrent writers in several processes",
            max_keys=SLOW_MAX_KEYS if dumb else None,
        ), ""
    if name == SQLITE_FLOOR:
        return Spec(SQLITE_FLOOR, SqliteFloor, "a bare sqlite3 table (WAL, synchronous=NORMAL)"), ""
    if name == LMDB_FLOOR:
        if not lmdb_available():
            return None, "the lmdb package is not installed (pip install lmdb)"
        return Spec(LMDB_FLOOR, LmdbFloor, "a bare LMDB database (sync=False, metasync=False)"), ""
    raise ValueError(f"unknown system {name!r}")


def _cachekit_spec(store: str, fanout: bool = False, policy: str | None = None) -> Spec:
    """A cachekit store, as a ``Cache`` or a ``FanoutCache``; with ``policy``, named ``...:STORE/POLICY``."""
    name = (FANOUT_PREFIX if fanout else CACHEKIT_PREFIX) + store + (f"/{policy}" if policy else "")
    settings: dict[str, Any] = {"eviction_policy": policy} if policy else {}

    def open_(directory: str) -> System:
        import cachekit

        if fanout:
            return CacheSystem(
                name, cachekit.FanoutCache(directory, FANOUT_SHARDS, store=store, **settings), fanout=True
            )
        return CacheSystem(name, cachekit.Cache(directory, store=store, **settings))

    what = (
        f"cachekit.FanoutCache(directory, shards={FANOUT_SHARDS}, store={store!r})"
        if fanout
        else f"cachekit.Cache(directory, store={store!r})"
    )
    return Spec(name, open_, f"{what}, default settings" + (f", eviction_policy={policy!r}" if policy else ""))


def _diskcache_spec(fanout: bool) -> Spec:
    name = DISKCACHE_FANOUT if fanout else DISKCACHE

    def open_(directory: str) -> System:
        import diskcache  # type: ignore[import-untyped]

        if fanout:
            return CacheSystem(name, diskcache.FanoutCache(directory, shards=FANOUT_SHARDS), fanout=True)
        return CacheSystem(name, diskcache.Cache(directory))

    what = f"diskcache.FanoutCache(directory, shards={FANOUT_SHARDS})" if fanout else "diskcache.Cache(directory)"
    return Spec(name, open_, f"python-diskcache's {what}, default settings")


def _server_spec(name: str) -> tuple[Spec | None, str]:
    server = _servers.MEMCACHED if name == MEMCACHED else _servers.REDIS
    client = "pymemcache" if name == MEMCACHED else "redis"
    if not _importable(client):
        return None, f"{client} is not installed (pip install {'pymemcache' if name == MEMCACHED else 'redis hiredis'})"
    program = _servers.SERVERS[server][0]
    if _servers.binary(server) is None:
        return None, f"{program} is not installed (e.g. apt-get install {program})"
    if name == REDIS_UNIX and not hasattr(socket, "AF_UNIX"):
        return None, "unix sockets are not available on this platform"
    if name == MEMCACHED:
        description = (
            "pymemcache's base Client (replies awaited, TCP_NODELAY; pylibmc is not used) on a memcached "
            f"started on {_servers.LOOPBACK}"
        )
        return Spec(name, MemcachedSystem, description, server=server), ""
    from redis.utils import HIREDIS_AVAILABLE

    parser = "hiredis" if HIREDIS_AVAILABLE else "its pure-Python parser (hiredis is not installed)"
    where = "a unix socket (database 1)" if name == REDIS_UNIX else f"TCP on {_servers.LOOPBACK} (database 0)"
    description = f"redis-py with {parser} on a redis-server started without persistence, over {where}"
    return Spec(name, lambda directory: RedisSystem(name, directory), description, server=server), ""


def _django_spec(name: str) -> Spec:
    if name == DJANGO_FILEBASED:
        return Spec(
            name,
            lambda directory: DjangoSystem(name, directory),
            "Django's FileBasedCache on the directory (TIMEOUT None, MAX_ENTRIES unlimited), which lists the "
            "whole directory on every set",
            max_keys=SLOW_MAX_KEYS,
        )
    return Spec(
        name,
        lambda directory: DjangoSystem(name, directory),
        "Django's LocMemCache (TIMEOUT None, MAX_ENTRIES unlimited): a dictionary in this process",
        multiprocess=False,
        single_process="LocMemCache is the memory of one process, not a cache processes can share",
    )


def available_specs(names: Sequence[str] | None = None, *, multiprocess: bool = False) -> tuple[list[Spec], list[str]]:
    """The specs of the systems ``names`` pick (all if None) that can run here, and a note for each one left out.

    A system is left out when a package or a server binary it needs is
    missing, and, with ``multiprocess``, when several processes cannot
    share it.  Whether a server actually starts is only known in
    ``servers_for``.  Raises ``ValueError`` for an unknown name.
    """
    specs: list[Spec] = []
    missing: dict[str, list[str]] = {}
    notes: list[str] = []
    for name in expand(names):
        spec, why = _make_spec(name)
        if spec is None:
            missing.setdefault(why, []).append(name)
        elif multiprocess and not spec.multiprocess:
            notes.append(f"{name} left out: {spec.single_process}")
        else:
            specs.append(spec)
    notes[:0] = [f"{why}: {', '.join(skipped)} skipped" for why, skipped in missing.items()]
    return specs, notes


def select_specs(wanted: Sequence[str] | None, notes: list[str], *, multiprocess: bool = False) -> list[Spec]:
    """``available_specs``, with the notes appended to ``notes`` (the older interface)."""
    specs, more = available_specs(wanted, multiprocess=multiprocess)
    notes.extend(more)
    return specs


def policy_specs(specs: Sequence[Spec], policies: Sequence[str]) -> list[Spec]:
    """Each cachekit ``Cache`` among ``specs`` again under each eviction policy (``cachekit:STORE/POLICY``)."""
    stores = [spec.name[len(CACHEKIT_PREFIX) :] for spec in specs if spec.name.startswith(CACHEKIT_PREFIX)]
    return [_cachekit_spec(store, policy=policy) for policy in policies for store in stores]


def open_system(name: str, directory: str) -> System:
    """Open the system called ``name`` on ``directory``, e.g. in a worker process (inside ``servers_for``)."""
    if "/" in name and name.startswith(CACHEKIT_PREFIX):  # cachekit:STORE/POLICY
        store, policy = name[len(CACHEKIT_PREFIX) :].split("/", 1)
        return _cachekit_spec(store, policy=policy).open(directory)
    specs, notes = available_specs([name])
    if len(specs) != 1:
        raise BenchmarkError(f"cannot open {name!r}: {'; '.join(notes) or 'unknown system'}")
    return specs[0].open(directory)


# -- servers ------------------------------------------------------------------------------------


@dataclass
class Started:
    """What ``servers_for`` yields: the specs that can run, and the servers started for them."""

    specs: list[Spec]
    servers: dict[str, _servers.Server] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        """The servers, for a report's JSON: binary, version, port and unix socket of each."""
        return {
            server.name: {
                "binary": server.binary,
                "version": server.version,
                "port": server.port,
                "unix_socket": server.unix_socket,
            }
            for server in self.servers.values()
        }


@contextlib.contextmanager
def servers_for(
    specs: Sequence[Spec], notes: list[str], *, budget: float = _servers.SERVER_START_SECONDS
) -> Iterator[Started]:
    """Start the servers ``specs`` need, yield a ``Started``, stop them (also on an exception or Ctrl-C).

    One redis-server serves both Redis systems (on a unix socket too when
    ``redis-unix`` is among the specs); one memcached serves ``memcached``.
    Their addresses are put in this process's environment while it runs,
    where ``Spec.open`` finds them, in this process and in the worker
    processes started inside it.  A spec whose server did not start is
    left out of ``Started.specs``, with a note.  Run it under
    ``_servers.stopped_by_sigterm()`` to stop the servers on SIGTERM too.
    """
    needed = [spec.server for spec in specs if spec.server is not None]
    if not needed:
        yield Started(list(specs))
        return
    unix = any(spec.name == REDIS_UNIX for spec in specs)
    variables = (ENV_REDIS_PORT, ENV_REDIS_SOCKET, ENV_MEMCACHED_PORT)
    saved = {variable: os.environ.get(variable) for variable in variables}
    with _servers.running(needed, notes, budget=budget, redis_unix_socket=unix) as servers:
        try:
            for variable in variables:
                os.environ.pop(variable, None)
            if _servers.REDIS in servers:
                os.environ[ENV_REDIS_PORT] = str(servers[_servers.REDIS].port)
                if servers[_servers.REDIS].unix_socket:
                    os.environ[ENV_REDIS_SOCKET] = str(servers[_servers.REDIS].unix_socket)
            if _servers.MEMCACHED in servers:
                os.environ[ENV_MEMCACHED_PORT] = str(servers[_servers.MEMCACHED].port)
            runnable = []
            for spec in specs:
                if spec.server is None or spec.server in servers:
                    runnable.append(spec)
                else:
                    notes.append(f"{spec.name} skipped: its server did not start")
            yield Started(runnable, servers)
        finally:
            for variable, value in saved.items():
                if value is None:
                    os.environ.pop(variable, None)
                else:
                    os.environ[variable] = value


def run_with_servers(
    specs: Sequence[Spec],
    notes: list[str],
    *,
    quick: bool,
    directory: str | None,
    prefix: str,
    body: Callable[[Sequence[Spec], str, dict[str, Any]], T],
) -> T:
    """Make a scratch directory (in ``directory``), start the servers ``specs`` need (with the quick
    or the full start budget), and return ``body(the specs that can run, the scratch directory,
    the servers' description)``; the servers are stopped and the directory removed afterwards."""
    budget = _servers.QUICK_SERVER_START_SECONDS if quick else _servers.SERVER_START_SECONDS
    base = tempfile.mkdtemp(prefix=prefix, dir=directory)
    try:
        with servers_for(specs, notes, budget=budget) as started:
            return body(started.specs, base, started.info())
    finally:
        shutil.rmtree(base, ignore_errors=True)
