"""Django cache backends under the mixed workload: cachekit's backend against Django's own and python-diskcache's.

Each system is a Django ``CACHES`` entry: ``cachekit_django.CachekitCache`` on
every installed cachekit store, Django's ``FileBasedCache`` and
``LocMemCache``, python-diskcache's ``DjangoCache``, and, when the server and
its client package are installed, Django's ``RedisCache`` and
``PyMemcacheCache`` against a ``redis-server`` and a ``memcached`` that this
benchmark starts on a free loopback port and stops at the end.  The workload
is the mixed one (``mixed.py``, whose helpers it uses): a pre-populated key
space, N spawned worker processes started together, each running the same
seeded 90 % get / 9 % set / 1 % delete sequence, every call timed on its own
and every result checked.  Each worker configures Django
(``settings.configure(CACHES=...)``, ``django.setup()``) and calls the cache
through Django's API, ``caches["default"]``.  See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._cli import run_command
from ._servers import (
    LOOPBACK,
    QUICK_SERVER_START_SECONDS,
    SERVER_START_SECONDS,
    SERVERS,
    Server,
    ServerError,
    start_server,
)
from ._systems import (
    CACHEKIT_PREFIX,
    DISKCACHE,
    BenchmarkError,
    Spec,
    System,
    diskcache_available,
    lmdb_available,
    store_names,
)
from .latency import (
    LATENCY_COLUMNS,
    _version,
    finish,
    format_ratio,
    format_size,
    format_us,
    latency_cells,
    machine,
    print_machine,
    system_list,
)
from .mixed import (
    DEFAULT_KEYS,
    DEFAULT_OPS,
    DEFAULT_VALUE_SIZE,
    MIX,
    OPERATIONS,
    QUICK_KEYS,
    QUICK_PROCESSES,
    Job,
    Outcome,
    _counts,
    _one,
    _positive,
    _process_counts,
    _value_size,
    check,
    populate,
    populate_items,
    print_summary,
    print_throughputs,
    processes_text,
    ratios,
    result_rows,
    run_workers,
    throughput_row,
)

__all__ = ["main", "run"]

FILEBASED = "filebased"
LOCMEM = "locmem"
REDIS = "redis"
MEMCACHED = "memcached"
#: What each cachekit store's median get is compared with, in the report's order.
REFERENCES = (DISKCACHE, MEMCACHED)
DEFAULT_PROCESSES = (1, 4)
QUICK_OPS = 1_000
#: Django's default expiry for every system: long enough that nothing expires during a run.
TIMEOUT_SECONDS = 3600
#: MAX_ENTRIES is this many times the key count, so that Django's culling never runs.
MAX_ENTRIES_FACTOR = 2
POPULATE_BATCH = 1_000
CACHE_ALIAS = "default"


# -- the systems -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """A system of this benchmark: a Django cache backend, and what it needs to run."""

    name: str
    backend: str  # the dotted path of BACKEND
    description: str
    server: str | None = None  # REDIS or MEMCACHED: the server it talks to
    per_process: bool = False  # LocMemCache: every process has its own cache, filled by each worker
    max_entries: bool = False  # counts its entries against MAX_ENTRIES, which is raised above the key count


def backends() -> list[Backend]:
    """Every system, in the report's order: the cachekit stores first, then the references, then the others."""
    stores = [
        Backend(
            CACHEKIT_PREFIX + store,
            "cachekit_django.CachekitCache",
            f"cachekit's Django backend on the {store} store",
            max_entries=True,
        )
        for store in store_names()
    ]
    return [
        *stores,
        Backend(DISKCACHE, "diskcache.DjangoCache", "python-diskcache's DjangoCache (default 8 shards)"),
        Backend(
            MEMCACHED,
            "django.core.cache.backends.memcached.PyMemcacheCache",
            "Django's PyMemcacheCache on a memcached started on loopback",
            server=MEMCACHED,
        ),
        Backend(
            REDIS,
            "django.core.cache.backends.redis.RedisCache",
            "Django's RedisCache on a redis-server started on loopback, without persistence",
            server=REDIS,
        ),
        Backend(
            FILEBASED,
            "django.core.cache.backends.filebased.FileBasedCache",
            "Django's FileBasedCache",
            max_entries=True,
        ),
        Backend(
            LOCMEM,
            "django.core.cache.backends.locmem.LocMemCache",
            "Django's LocMemCache: memory of each process, not shared",
            per_process=True,
            max_entries=True,
        ),
    ]


SYSTEMS_HELP = (
    "comma-separated: cachekit:STORE or STORE, cachekit (every store), diskcache, memcached, redis, filebased, "
    "locmem, local (every system that needs no server), servers (redis and memcached)"
)


def select(wanted: Sequence[str] | None, notes: list[str]) -> list[Backend]:
    """The systems to run, in the report's order: all of them, or those ``wanted`` names pick.

    Raises ``ValueError`` for an unknown name.  A system whose client
    package is missing is left out with a note; a missing server binary is
    found when the servers start (``start_servers``).
    """
    every = backends()
    by_name = {backend.name: backend for backend in every}
    if wanted is None:
        chosen = set(by_name)
    else:
        chosen = set()
        for token in wanted:
            if token == "cachekit":
                chosen.update(name for name in by_name if name.startswith(CACHEKIT_PREFIX))
            elif CACHEKIT_PREFIX + token in by_name:
                chosen.add(CACHEKIT_PREFIX + token)
            elif token == "local":
                chosen.update(backend.name for backend in every if backend.server is None)
            elif token == "servers":
                chosen.update(backend.name for backend in every if backend.server is not None)
            elif token in by_name:
                chosen.add(token)
            else:
                raise ValueError(
                    f"unknown system {token!r}; choose from {', '.join(by_name)} "
                    "(or a store name alone, 'cachekit' for every store, 'local', 'servers')"
                )
    missing = {
        CACHEKIT_PREFIX + "lmdb": (lmdb_available, "the lmdb package is not installed (pip install lmdb)"),
        DISKCACHE: (diskcache_available, "python-diskcache is not installed (pip install diskcache)"),
        REDIS: (lambda: _importable("redis"), "the redis package is not installed (pip install redis hiredis)"),
        MEMCACHED: (lambda: _importable("pymemcache"), "pymemcache is not installed (pip install pymemcache)"),
    }
    selected = []
    for backend in every:
        if backend.name not in chosen:
            continue
        available, why = missing.get(backend.name, (lambda: True, ""))
        if not available():
            notes.append(f"{backend.name} skipped: {why}")
            continue
        selected.append(backend)
    return selected


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def cache_entry(backend: Backend, directory: str, ports: dict[str, int], key_count: int) -> dict[str, Any]:
    """The Django ``CACHES`` entry of ``backend``, with its data in ``directory`` (or on its server's port)."""
    entry: dict[str, Any] = {"BACKEND": backend.backend, "TIMEOUT": TIMEOUT_SECONDS}
    if backend.name.startswith(CACHEKIT_PREFIX):
        entry["LOCATION"] = f"{backend.name[len(CACHEKIT_PREFIX) :]}://{directory}"  # an absolute directory
    elif backend.server == REDIS:
        entry["LOCATION"] = f"redis://{LOOPBACK}:{ports[REDIS]}"
    elif backend.server == MEMCACHED:
        entry["LOCATION"] = f"{LOOPBACK}:{ports[MEMCACHED]}"
    elif backend.per_process:
        entry["LOCATION"] = "cachekit-benchmark"
    else:
        entry["LOCATION"] = directory
    if backend.max_entries:
        entry["OPTIONS"] = {"MAX_ENTRIES": MAX_ENTRIES_FACTOR * key_count}
    return entry


def configure_django(entry: dict[str, Any] | None) -> None:
    """Configure Django in this process, with ``entry`` as the default cache (Django's defaults without one)."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(**({"CACHES": {CACHE_ALIAS: entry}} if entry is not None else {}))
        django.setup()


class DjangoSystem(System):
    """A Django cache; ``get``, ``set`` and ``delete`` are its bound methods, called with the default timeout."""

    def __init__(self, name: str, cache: Any) -> None:
        self.name = name
        self._cache = cache
        self.get = cache.get
        self.set = cache.set
        self.delete = cache.delete

    def populate_items(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Store every pair with ``set_many``, in batches (one round trip per batch for the servers)."""
        batch: dict[str, bytes] = {}
        for key, value in items:
            batch[key] = value
            if len(batch) >= POPULATE_BATCH:
                self._set_many(batch)
                batch = {}
        if batch:
            self._set_many(batch)

    def _set_many(self, batch: dict[str, bytes]) -> None:
        failed = self._cache.set_many(batch)
        if failed:
            raise BenchmarkError(f"{self.name}: set_many failed for {len(failed)} key(s), such as {failed[0]!r}")

    def close(self) -> None:
        self._cache.close()


class PopulatingSystem(DjangoSystem):
    """A Django cache opened in the benchmark's own process to populate it, and let go of when closed.

    Django calls a cache's ``close()`` after every request, and backends that
    keep a connection open across requests (cachekit's among them) keep it
    open then; dropping the last reference and collecting releases it, so
    that this process holds no file of a cache while the workers run.
    """

    def close(self) -> None:
        super().close()
        del self._cache, self.get, self.set, self.delete
        gc.collect()


def populating_spec(backend: Backend, entry: dict[str, Any]) -> Spec:
    """A ``Spec`` that opens ``backend`` in this process to populate it: emptied first (a server keeps its data)."""

    def open_(directory: str) -> System:
        from django.core.cache import CacheHandler

        cache = CacheHandler({CACHE_ALIAS: entry}).create_connection(CACHE_ALIAS)  # not kept by the handler
        cache.clear()
        if backend.name == FILEBASED:
            # FileBasedCache lists its whole directory before every set (its culling check): populating
            # N keys would list N times.  Skipped here only; the timed sets of the workers pay for it.
            cache._cull = lambda: None
        return PopulatingSystem(backend.name, cache)

    return Spec(backend.name, open_)


@dataclass(frozen=True)
class DjangoJob(Job):
    """A worker's job: ``mixed.Job``, plus the Django ``CACHES`` entry to open, and whether to fill it itself."""

    entry: dict[str, Any]
    fill: bool  # LocMemCache: the cache is this process's memory, so the worker populates it (untimed)

    def open(self) -> System:
        configure_django(self.entry)
        from django.core.cache import caches

        system = DjangoSystem(self.system, caches[CACHE_ALIAS])
        if self.fill:
            system.populate_items(populate_items(self.key_count, self.value_size, self.seed))
        return system

    def check_result(self, operation: str, key: str, result: Any) -> bool | None:
        """As ``mixed.check``, except that Django's ``set`` returns None (python-diskcache's returns True)."""
        if operation == "set" and result is None:
            return None
        return check(self, operation, key, result)


# -- the servers -------------------------------------------------------------------------------


def start_servers(
    selected: list[Backend], directory: str, budget: float, notes: list[str], stack: contextlib.ExitStack
) -> dict[str, Server]:
    """Start the server of every selected system that needs one; a system whose server fails is dropped, noted.

    The servers are ``_servers.start_server``'s (a free loopback port, waited
    for until they answer); each one is stopped when ``stack`` closes.
    """
    servers: dict[str, Server] = {}
    for backend in list(selected):
        if backend.server is None:
            continue
        try:
            server = start_server(backend.server, directory, budget)
        except (ServerError, OSError) as error:  # OSError: the binary cannot be run
            notes.append(f"{backend.name} skipped: {error}")
            selected.remove(backend)
            continue
        stack.callback(server.stop)
        servers[backend.server] = server
        notes.append(
            f"{backend.name}: {SERVERS[backend.server][0]} {server.version or '(version unknown)'} started by "
            f"the benchmark on {LOOPBACK}:{server.port}, stopped at the end"
            + (", without persistence (--save '' --appendonly no)" if backend.server == REDIS else "")
        )
    return servers


# -- one system at one process count ---------------------------------------------------------------


def measure(backend: Backend, processes: int, config: dict[str, Any], base: str, ports: dict[str, int]) -> Outcome:
    """One system at one process count, in a fresh directory under ``base`` (or a server emptied first)."""
    directory = os.path.join(base, f"{backend.name.replace(':', '-')}-{processes}p")
    entry = cache_entry(backend, directory, ports, config["key_count"])
    try:
        seconds = None
        if not backend.per_process:
            seconds = populate(
                populating_spec(backend, entry), directory, config["key_count"], config["value_size"], config["seed"]
            )
        outcome = Outcome(backend.name, processes, seconds)  # seconds is None for locmem: each worker fills its own
        job = DjangoJob(
            system=backend.name,
            directory=directory,
            processes=processes,
            ops=config["ops_per_process"],
            key_count=config["key_count"],
            value_size=config["value_size"],
            seed=config["seed"],
            entry=entry,
            fill=backend.per_process,
        )
        run_workers(job, outcome)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return outcome


# -- reporting ----------------------------------------------------------------------------------


def print_header(
    info: dict[str, Any], config: dict[str, Any], selected: Sequence[Backend], notes: Sequence[str]
) -> None:
    print("# cachekit Django-backend benchmark")
    print()
    print_machine(info)
    print(
        f"- workload: {config['key_count']:,} keys with {format_size(config['value_size'])} values, pre-populated; "
        f"each process runs {config['ops_per_process']:,} operations: 90 % get, 9 % set, 1 % delete, "
        f"keys uniform at random (seed {config['seed']}), through Django's cache API (caches['default'])"
    )
    print(
        f"- processes: {', '.join(str(count) for count in config['processes'])} (start method spawn); "
        f"timer overhead {info['timer_overhead_ns']} ns per sample (included)"
    )
    print(f"- every system: a Django CACHES entry with TIMEOUT {TIMEOUT_SECONDS} (nothing expires during a run)")
    for backend in selected:
        print(f"  - {backend.name}: {backend.description} ({backend.backend})")
    for note in notes:
        print(f"- note: {note}")
    print()


def print_operation(operation: str, rows: Sequence[dict[str, Any]]) -> None:
    """One operation's latency table: a row per system, the calls over every worker, median to max."""
    mine = [row for row in rows if row["operation"] == operation]
    if not mine:
        return
    width = max(len(name) for name in ["system", *(row["system"] for row in mine)])
    calls = max(len("calls"), *(len(f"{row['samples']:,}") for row in mine))
    headers = " | ".join(header for _, header in LATENCY_COLUMNS)
    rules = "|".join("-" * (len(header) + 1) + ":" for _, header in LATENCY_COLUMNS)
    print(f"### {operation}")
    print()
    print(f"| {'system':<{width}} | {'calls':>{calls}} | {headers} |")
    print(f"|{'-' * (width + 2)}|{'-' * (calls + 1)}:|{rules}|")
    for row in mine:
        print(f"| {row['system']:<{width}} | {row['samples']:>{calls},} | {latency_cells(row)} |")
    print()


def print_comparisons(rows: Sequence[dict[str, Any]], ratio_rows: Sequence[dict[str, Any]]) -> None:
    """A line per cachekit store: its median get, over each reference's that ran at this process count."""
    medians = {row["system"]: row["median_us"] for row in rows if row["operation"] == "get"}
    stores = [system for system in medians if system.startswith(CACHEKIT_PREFIX)]
    lines = []
    for system in stores:
        store = system[len(CACHEKIT_PREFIX) :]
        parts = [
            f"{format_ratio(ratio['get_median'])} {ratio['versus']}'s ({format_us(medians[ratio['versus']])} us)"
            for reference in REFERENCES
            for ratio in ratio_rows
            if ratio["store"] == store and ratio["versus"] == reference and "get_median" in ratio
        ]
        if parts:
            lines.append(f"- {system}: median get {format_us(medians[system])} us, " + ", ".join(parts))
    if lines:
        print("\n".join(lines))
        print("  (below 1.00x, the cachekit store's median get is faster)")
        print()


def print_processes(
    processes: int,
    rows: Sequence[dict[str, Any]],
    throughputs: Sequence[dict[str, Any]],
    ratio_rows: Sequence[dict[str, Any]],
    errors: Sequence[dict[str, Any]],
) -> None:
    print(f"## {processes_text(processes)}")
    print()
    for operation in OPERATIONS:
        print_operation(operation, rows)
    if throughputs:
        print("### throughput")
        print()
        print_throughputs(throughputs)
    print_comparisons(rows, ratio_rows)
    for error in errors:
        print(f"- **{error['system']} FAILED** with {processes_text(processes)}: {error['error'].splitlines()[-1]}")
    if errors:
        print()


def print_get_summary(rows: Sequence[dict[str, Any]], counts: Sequence[int]) -> None:
    if len(counts) < 2 or not rows:
        return
    print("## Summary: median get, us")
    print()
    gets = {(row["system"], row["processes"]): row for row in rows if row["operation"] == "get"}
    systems = list(dict.fromkeys(system for system, _ in gets))
    columns = [processes_text(count) for count in counts]
    width = max(len(name) for name in [*systems, "system"])
    print(f"| {'system':<{width}} | " + " | ".join(columns) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * (len(column) + 1) + ":" for column in columns) + "|")
    for system in systems:
        cells = []
        for count, column in zip(counts, columns, strict=True):
            found = gets.get((system, count))
            cells.append(f"{format_us(found['median_us']) if found else '-':>{len(column)}}")
        print(f"| {system:<{width}} | " + " | ".join(cells) + " |")
    print()


# -- command line -------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="python -m benchmarks django",
        description="Django cache backends under the mixed workload (N processes, 90 % get, 9 % set, 1 % delete): "
        "cachekit_django on every installed store, Django's FileBasedCache and LocMemCache, python-diskcache's "
        "DjangoCache, and Redis and Memcached on loopback servers the benchmark starts when they are installed.",
    )
    result.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK_OPS:,} operations per process, {QUICK_KEYS:,} keys, "
        f"{' and '.join(str(count) for count in QUICK_PROCESSES)} processes, "
        f"{QUICK_SERVER_START_SECONDS:g} s for a server to start",
    )
    result.add_argument(
        "--processes",
        type=_process_counts,
        help=f"process counts, comma-separated (default {','.join(str(count) for count in DEFAULT_PROCESSES)})",
    )
    result.add_argument("--ops", type=_positive, help=f"operations per process (default {DEFAULT_OPS:,})")
    result.add_argument(
        "--keys", type=lambda text: _one(_counts(text), text), help=f"key count; 10k = 10000 (default {DEFAULT_KEYS:,})"
    )
    result.add_argument(
        "--value-size", type=_value_size, help=f"value size in bytes; 1k = 1024 (default {DEFAULT_VALUE_SIZE})"
    )
    result.add_argument("--systems", type=system_list, help=f"{SYSTEMS_HELP} (default: all)")
    result.add_argument("--seed", type=int, default=0, help="seed of the operation sequences (default 0)")
    result.add_argument("--dir", help="where to create the caches (default: the system temporary directory)")
    result.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    return result


def run_processes(
    processes: int, selected: Sequence[Backend], config: dict[str, Any], base: str, ports: dict[str, int], order: Any
) -> dict[str, list[dict[str, Any]]]:
    """Every system at one process count, in ``order``'s new random order; print and return the figures."""
    here: dict[str, list[dict[str, Any]]] = {"results": [], "throughput": [], "ratios": [], "errors": []}
    shuffled = list(selected)
    order.shuffle(shuffled)  # a new order per process count: a slow spell of the machine hits no one system
    for backend in shuffled:
        try:
            outcome = measure(backend, processes, config, base, ports)
        except Exception:
            error = traceback.format_exc(limit=6).rstrip()
            print(f"\n!! {backend.name} failed with {processes_text(processes)}:\n{error}\n", file=sys.stderr)
            here["errors"].append({"system": backend.name, "processes": processes, "error": error})
            continue
        here["results"].extend(result_rows(outcome))
        here["throughput"].append(throughput_row(outcome))
    rank = {backend.name: index for index, backend in enumerate(selected)}  # report in a fixed order
    here["results"].sort(key=lambda row: (OPERATIONS.index(row["operation"]), rank[row["system"]]))
    here["throughput"].sort(key=lambda row: rank[row["system"]])
    for reference in REFERENCES:
        here["ratios"].extend(ratios(here["results"], here["throughput"], reference))
    print_processes(processes, here["results"], here["throughput"], here["ratios"], here["errors"])
    sys.stdout.flush()
    return here


def run(
    args: argparse.Namespace, selected: list[Backend], notes: list[str], argv: Sequence[str]
) -> tuple[dict[str, Any], bool]:
    """Start the servers, run the benchmark, print its report, stop the servers; return ``(report, no failure)``."""
    counts = args.processes or list(QUICK_PROCESSES if args.quick else DEFAULT_PROCESSES)
    key_count = args.keys or (QUICK_KEYS if args.quick else DEFAULT_KEYS)
    base = os.path.abspath(tempfile.mkdtemp(prefix="cachekit-django-", dir=args.dir))
    figures: dict[str, list[dict[str, Any]]] = {"results": [], "throughput": [], "ratios": [], "errors": []}
    try:
        with contextlib.ExitStack() as servers_running:
            budget = QUICK_SERVER_START_SECONDS if args.quick else SERVER_START_SECONDS
            servers = start_servers(selected, base, budget, notes, servers_running)
            ports = {name: server.port for name, server in servers.items()}
            config = {
                "processes": counts,
                "ops_per_process": args.ops or (QUICK_OPS if args.quick else DEFAULT_OPS),
                "key_count": key_count,
                "value_size": args.value_size or DEFAULT_VALUE_SIZE,
                "mix": dict(zip(OPERATIONS, MIX, strict=True)),
                "systems": [backend.name for backend in selected],
                "caches": {backend.name: cache_entry(backend, "<directory>", ports, key_count) for backend in selected},
                "timeout_seconds": TIMEOUT_SECONDS,
                "max_entries": MAX_ENTRIES_FACTOR * key_count,
                "seed": args.seed,
                "quick": args.quick,
                "start_method": "spawn",
                "command": ["python", "-m", "benchmarks", "django", *argv],
            }
            info = machine(base)
            info["packages"].update({name: _version(name) for name in ("django", "redis", "hiredis", "pymemcache")})
            info["servers"] = {
                server.name: {"binary": server.binary, "version": server.version, "port": server.port}
                for server in servers.values()
            }
            explain(selected, config, info, notes)
            print_header(info, config, selected, notes)
            sys.stdout.flush()
            configure_django(None)  # this process populates the caches through Django too
            order = random.Random(args.seed)
            started = time.perf_counter()
            for processes in counts:
                for name, found in run_processes(processes, selected, config, base, ports, order).items():
                    figures[name].extend(found)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print_get_summary(figures["results"], counts)
    print_summary(figures["throughput"], counts)
    results = {name: found for name, found in figures.items() if name != "errors"}
    return finish(info, config, notes, started, figures["errors"], **results)


def explain(selected: Sequence[Backend], config: dict[str, Any], info: dict[str, Any], notes: list[str]) -> None:
    """The caveats of this run, as notes: raised MAX_ENTRIES, per-process LocMem, shared CPUs."""
    counting = [backend.name for backend in selected if backend.max_entries]
    if counting:
        notes.append(
            f"MAX_ENTRIES is {config['max_entries']:,} ({MAX_ENTRIES_FACTOR}x the key count) for "
            f"{', '.join(counting)}, so that Django's culling never runs"
        )
    if any(backend.per_process for backend in selected) and max(config["processes"]) > 1:
        notes.append(
            f"{LOCMEM} is memory of each process, not a shared cache: with several processes each worker "
            "has its own copy, which it fills before the start (untimed), and sees only its own sets and deletes"
        )
    if any(backend.server is not None for backend in selected):
        hiredis = info["packages"].get("hiredis", "not installed")
        notes.append(
            "the servers run on this machine and share its CPUs with the workers; "
            + (f"redis-py uses hiredis {hiredis}" if hiredis != "not installed" else "hiredis is not installed")
        )
    crowded = [count for count in config["processes"] if info["cpus_usable"] and count > info["cpus_usable"]]
    if crowded:
        notes.append(
            f"{', '.join(str(count) for count in crowded)} processes on {info['cpus_usable']} usable CPUs: "
            "the workers share the CPUs, so their latencies include waiting for one"
        )


def _django_missing() -> str | None:
    return None if _importable("django") else 'Django is not installed: pip install "cachekit[django]"'


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(
        parser(), argv, lambda args, notes: select(args.systems, notes), run, servers=True, missing=_django_missing
    )
