"""Per-operation latency, one process: every cachekit store and FanoutCache beside every comparison system.

The systems (``_systems.py``): cachekit's ``Cache`` and ``FanoutCache`` on
every installed store, python-diskcache's ``Cache`` and ``FanoutCache``,
Redis over TCP and over a unix socket and Memcached (servers this benchmark
starts on loopback and stops), Django's ``FileBasedCache`` and
``LocMemCache``, sqlitedict, the stdlib ``dbm``, and two floors, the least
a cache can do on each storage engine: ``sqlite3-floor`` is a bare sqlite3
table, ``lmdb-floor`` a bare LMDB database.  A system whose package or
server is missing is skipped with a note.  For each workload (value size x
key count) every system is opened in its own directory and pre-populated
with the same keys; then get-hit, get-miss, set (overwrite) and delete are
timed one call at a time with ``time.perf_counter_ns()``, and every result
is checked.  The timed calls of each operation are split into rounds, and
every round runs each system once, in a new random order, so that a noisy
machine slows every system alike.  Each cachekit store is reported over
diskcache and over each floor, each cachekit FanoutCache over
diskcache's.  See ``benchmarks/README.md`` for how to run it and read the
results.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from . import _servers
from ._cli import run_command
from ._systems import (
    CACHEKIT_PREFIX,
    DISKCACHE,
    DISKCACHE_FANOUT,
    FANOUT_PREFIX,
    FLOORS,
    GROUPS,
    BenchmarkError,
    CacheSystem,
    LmdbFloor,
    Spec,
    SqliteFloor,
    System,
    diskcache_available,
    lmdb_available,
    policy_specs,
    run_with_servers,
    select_specs,
    store_names,
)

__all__ = [  # and, for the other benchmarks, the names they import from here (some now live in _systems)
    "DISKCACHE",
    "BenchmarkError",
    "CacheSystem",
    "LmdbFloor",
    "Spec",
    "SqliteFloor",
    "System",
    "diskcache_available",
    "lmdb_available",
    "main",
    "run",
    "select_specs",
    "store_names",
]

OPERATIONS = ("get-hit", "get-miss", "set", "delete")
DEFAULT_OPS = 5000
QUICK_OPS = 200
DEFAULT_SIZES = (100, 1024)
DEFAULT_KEYS = (1_000, 100_000)
QUICK_KEYS = (1_000,)
DEFAULT_ROUNDS = 10
WARMUP_OPS = 100
#: What each cachekit store is divided by in the ratios, in the order of the report's columns.
REFERENCES = (DISKCACHE, *FLOORS)
#: What each cachekit FanoutCache is divided by.
FANOUT_REFERENCES = (DISKCACHE_FANOUT,)


# -- statistics ------------------------------------------------------------------------


def percentile(ordered: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of sorted samples: the smallest sample with ``fraction`` at or below it."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize(samples_ns: Sequence[int]) -> dict[str, float]:
    """Median, p90, p99, max (and min, mean) of samples in nanoseconds, in microseconds."""
    ordered = sorted(samples_ns)
    return {
        "samples": len(ordered),
        "median_us": statistics.median(ordered) / 1000,
        "p90_us": percentile(ordered, 0.90) / 1000,
        "p99_us": percentile(ordered, 0.99) / 1000,
        "max_us": ordered[-1] / 1000,
        "min_us": ordered[0] / 1000,
        "mean_us": statistics.fmean(ordered) / 1000,
    }


def timer_overhead_ns(calls: int = 2000) -> int:
    """Median cost of two back-to-back ``perf_counter_ns()`` calls, included in every sample."""
    clock = time.perf_counter_ns
    costs = []
    for _ in range(calls):
        start = clock()
        costs.append(clock() - start)
    return int(statistics.median(costs))


# -- timing ----------------------------------------------------------------------------


def _time_reads(function: Callable[[str], Any], keys: Sequence[str]) -> tuple[list[int], list[Any]]:
    clock = time.perf_counter_ns
    samples = [0] * len(keys)
    results: list[Any] = [None] * len(keys)
    for index, key in enumerate(keys):
        start = clock()
        result = function(key)
        samples[index] = clock() - start
        results[index] = result
    return samples, results


def _time_writes(
    function: Callable[[str, bytes], Any], keys: Sequence[str], value: bytes
) -> tuple[list[int], list[Any]]:
    clock = time.perf_counter_ns
    samples = [0] * len(keys)
    results: list[Any] = [None] * len(keys)
    for index, key in enumerate(keys):
        start = clock()
        result = function(key, value)
        samples[index] = clock() - start
        results[index] = result
    return samples, results


def time_block(system: System, operation: str, keys: Sequence[str], value: bytes, expected: bytes) -> list[int]:
    """Time ``operation`` once per key with the garbage collector off; check every result."""
    gc.collect()
    gc.disable()
    try:
        if operation == "set":
            samples, results = _time_writes(system.set, keys, value)
        else:
            function = system.delete if operation == "delete" else system.get
            samples, results = _time_reads(function, keys)
    finally:
        gc.enable()
    for key, result in zip(keys, results, strict=True):
        if operation == "get-hit":
            wrong = result != expected
        elif operation == "get-miss":
            wrong = result is not None
        else:
            wrong = result is not True
        if wrong:
            shown = f"{len(result)} bytes" if isinstance(result, bytes) else repr(result)[:60]
            raise BenchmarkError(f"{system.name}: {operation} of {key!r} returned {shown}")
    return samples


# -- workloads ----------------------------------------------------------------------------


def chunk_lengths(ops: int, rounds: int, count: int) -> list[int]:
    """Split ``ops`` timed calls into rounds of at most ``count`` calls (a delete round needs distinct keys)."""
    rounds = max(rounds, math.ceil(ops / count), 1)
    rounds = min(rounds, ops)
    return [ops // rounds + (1 if index < ops % rounds else 0) for index in range(rounds)]


@dataclass
class Plan:
    """The keys of one workload: what is populated, and what each round of each operation touches."""

    keys: list[str]
    value: bytes
    new_value: bytes
    rounds: dict[str, list[list[str]]]
    warmup: dict[str, list[str]]


def make_plan(size: int, count: int, ops: int, rounds: int, rng: random.Random) -> Plan:
    keys = [f"key-{index:06d}" for index in range(count)]
    rng.shuffle(keys)  # populated in random order, like a cache filled by real traffic
    lengths = chunk_lengths(ops, rounds, count)

    def present(length: int) -> list[str]:
        return rng.sample(keys, length)

    def absent(length: int) -> list[str]:
        # Between existing keys in sort order, so a miss descends to a random leaf of the index.
        return [f"key-{index:06d}-absent" for index in rng.choices(range(count), k=length)]

    warmup_length = min(WARMUP_OPS, count, ops)
    return Plan(
        keys=keys,
        value=rng.randbytes(size),
        new_value=rng.randbytes(size),
        rounds={
            "get-hit": [present(length) for length in lengths],
            "get-miss": [absent(length) for length in lengths],
            "set": [present(length) for length in lengths],
            "delete": [present(length) for length in lengths],
        },
        warmup={
            "get-hit": present(warmup_length),
            "get-miss": absent(warmup_length),
            "set": present(warmup_length),
            "delete": present(warmup_length),
        },
    )


class Workload:
    """One (value size, key count) run over every system, with a record of what failed."""

    def __init__(self, specs: Sequence[Spec], size: int, count: int, ops: int, rounds: int, seed: int) -> None:
        self.size = size
        self.count = count
        self.rng = random.Random(f"{seed}:{size}:{count}")
        self.plan = make_plan(size, count, ops, rounds, self.rng)
        #: Systems left out of this workload because of its key count, and why.
        self.skipped = {spec.name: why for spec in specs if (why := spec.too_many_keys(count))}
        self.specs = [spec for spec in specs if spec.name not in self.skipped]
        self.samples: dict[tuple[str, str], list[int]] = {}
        self.populate_seconds: dict[str, float] = {}
        self.errors: dict[str, str] = {}

    def _fail(self, name: str, systems: list[System], system: System | None) -> None:
        self.errors[name] = traceback.format_exc(limit=6).rstrip()
        print(f"\n!! {name} failed; it is left out of this workload:\n{self.errors[name]}\n", file=sys.stderr)
        if system is not None:
            systems.remove(system)
            with contextlib.suppress(Exception):  # its failure is already reported
                system.close()

    def run(self, base: str) -> None:
        plan = self.plan
        systems: list[System] = []
        for spec in self.specs:
            directory = os.path.join(base, spec.name.replace(":", "-"))
            try:
                start = time.perf_counter()
                system = spec.open(directory)
            except Exception:
                self._fail(spec.name, systems, None)
                continue
            systems.append(system)
            try:
                system.populate(plan.keys, plan.value)
                self.populate_seconds[spec.name] = time.perf_counter() - start
            except Exception:
                self._fail(spec.name, systems, system)
        # Every object alive now (modules, clients, populated data) goes to the permanent generation, so the
        # gc.collect() before each timed block scans only what came since: tens of microseconds instead of
        # tens of milliseconds with Django, redis-py and the rest imported.
        gc.collect()
        gc.freeze()
        try:
            for operation in OPERATIONS:
                self._run_operation(operation, systems)
        finally:
            gc.unfreeze()
            for system in systems:
                try:
                    system.close()
                except Exception:
                    self.errors.setdefault(system.name, traceback.format_exc(limit=6).rstrip())

    def _run_operation(self, operation: str, systems: list[System]) -> None:
        plan = self.plan
        # get-hit runs before any set, so it must find the populated value.
        value, expected = plan.new_value, plan.value
        for system in list(systems):  # untimed: statement caches, page cache, the WAL after populate
            try:
                self._once(system, operation, plan.warmup[operation], value, expected)
            except Exception:
                self._fail(system.name, systems, system)
        for keys in plan.rounds[operation]:
            order = list(systems)
            self.rng.shuffle(order)
            for system in order:
                try:
                    samples = self._once(system, operation, keys, value, expected)
                except Exception:
                    self._fail(system.name, systems, system)
                    continue
                self.samples.setdefault((system.name, operation), []).extend(samples)

    def _once(self, system: System, operation: str, keys: list[str], value: bytes, expected: bytes) -> list[int]:
        samples = time_block(system, operation, keys, value, expected)
        if operation == "delete":
            system.populate(keys, value)  # untimed: keep the key count constant
        return samples

    def results(self) -> list[dict[str, Any]]:
        rows = []
        for operation in OPERATIONS:
            for spec in self.specs:
                samples = self.samples.get((spec.name, operation))
                if not samples or spec.name in self.errors:
                    continue
                rows.append(
                    {
                        "system": spec.name,
                        "value_size": self.size,
                        "key_count": self.count,
                        "operation": operation,
                        **summarize(samples),
                    }
                )
        return rows


def ratios(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each cachekit store over diskcache and each floor, each cachekit FanoutCache over diskcache's, per operation.

    A row's ``system`` is the cachekit system, ``store`` its store (and
    policy), ``versus`` the reference.
    """
    by_key = {(row["system"], row["value_size"], row["key_count"], row["operation"]): row for row in rows}
    out = []
    references: tuple[str, ...]
    for (system, size, count, operation), row in by_key.items():
        if system.startswith(CACHEKIT_PREFIX):
            prefix, references = CACHEKIT_PREFIX, REFERENCES
        elif system.startswith(FANOUT_PREFIX):
            prefix, references = FANOUT_PREFIX, FANOUT_REFERENCES
        else:
            continue
        for reference in references:
            other = by_key.get((reference, size, count, operation))
            if other is None:
                continue
            out.append(
                {
                    "system": system,
                    "store": system[len(prefix) :],
                    "versus": reference,
                    "value_size": size,
                    "key_count": count,
                    "operation": operation,
                    **{
                        statistic: row[f"{statistic}_us"] / other[f"{statistic}_us"]
                        for statistic in ("median", "p90", "p99", "max")
                    },
                }
            )
    return out


# -- reporting ----------------------------------------------------------------------------


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _filesystem(path: str) -> str | None:
    """The type of the filesystem holding ``path`` (Linux only), e.g. ``ext4`` or ``tmpfs``."""
    path = os.path.realpath(path)
    best, kind = "", None
    try:
        with open("/proc/mounts", encoding="utf-8") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) < 3:
                    continue
                mount = fields[1].replace("\\040", " ")
                inside = path == mount or path.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, kind = mount, fields[2]
    except OSError:
        return None
    return kind


def _lmdb_library() -> str | None:
    """The version of the LMDB C library the ``lmdb`` package is built with, or None without the package."""
    try:
        import lmdb
    except ImportError:
        return None
    return ".".join(str(part) for part in lmdb.version())


def machine(data_dir: str) -> dict[str, Any]:
    """The machine, the software and the data directory of a run, as printed at the top of a report."""
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    import cachekit.plugins

    return {
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "lmdb_library": _lmdb_library(),
        "packages": {name: _version(name) for name in ("cachekit", "diskcache", "lmdb", "msgpack", "pluggy")},
        "stores": {
            info.name: {"target": info.target, "distribution": info.distribution, "version": info.version}
            for info in cachekit.plugins.installed()
            if info.kind == "store"
        },
        "data_dir": data_dir,
        "filesystem": _filesystem(data_dir),
        "load_average": load,
        "timer_resolution_ns": time.get_clock_info("perf_counter").resolution * 1e9,
        "timer_overhead_ns": timer_overhead_ns(),
    }


def format_us(value: float) -> str:
    if value < 10:
        return f"{value:.2f}"
    if value < 1000:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def format_size(size: int) -> str:
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} B"


def print_machine(info: dict[str, Any]) -> None:
    """The lines of a report's header that describe the machine and the software (see ``machine``)."""
    packages = ", ".join(f"{name} {version}" for name, version in info["packages"].items())
    print(f"- machine: {info['platform']}; {info['cpu_model'] or 'unknown CPU'}")
    print(f"- CPUs: {info['cpu_count']} ({info['cpus_usable']} usable by this process)")
    load = info["load_average"]
    if load is not None:
        print(f"- load average at start: {' '.join(f'{figure:.2f}' for figure in load)}")
    lmdb_library = f"; LMDB {info['lmdb_library']}" if info["lmdb_library"] else ""
    print(f"- Python: {info['python']}; SQLite {info['sqlite']}{lmdb_library}")
    print(f"- packages: {packages}")
    stores = ", ".join(
        f"{name} ({where['target']}, {where['distribution'] or 'registered at run time'}"
        + (f" {where['version']})" if where["version"] else ")")
        for name, where in info["stores"].items()
    )
    print(f"- cachekit stores: {stores}")
    print(f"- data directory: {info['data_dir']} (filesystem: {info['filesystem'] or 'unknown'})")


def print_header(info: dict[str, Any], config: dict[str, Any], notes: Sequence[str]) -> None:
    print("# cachekit latency benchmark")
    print()
    print_machine(info)
    rounds = {count: len(chunk_lengths(config["ops"], config["rounds"], count)) for count in config["key_counts"]}
    exceptions = ", ".join(f"{n} with {count:,} keys" for count, n in rounds.items() if n != config["rounds"])
    print(
        f"- timed calls: {config['ops']:,} per operation, system and workload, in {config['rounds']} "
        f"interleaved rounds{f' ({exceptions})' if exceptions else ''}; "
        f"timer overhead {info['timer_overhead_ns']} ns per sample (included)"
    )
    print_systems_and_notes(config, notes)


def print_systems(config: dict[str, Any]) -> None:
    """A line per system of ``config["systems"]``, with its description from ``config["descriptions"]``."""
    descriptions = config.get("descriptions", {})
    print("- systems:")
    for name in config["systems"]:
        print(f"  - {name}: {descriptions.get(name) or '-'}")


def print_systems_and_notes(config: dict[str, Any], notes: Sequence[str]) -> None:
    """The end of a report's header: the systems, then the notes, then a blank line."""
    print_systems(config)
    for note in notes:
        print(f"- note: {note}")
    print()


#: The latency columns of a report's tables: a statistic of ``summarize`` and its header.
LATENCY_COLUMNS = (("median_us", "median us"), ("p90_us", "p90 us"), ("p99_us", "p99 us"), ("max_us", "max us"))


def latency_cells(row: dict[str, Any]) -> str:
    """The median, p90, p99 and max of ``row`` as Markdown cells under the headers of ``LATENCY_COLUMNS``."""
    return " | ".join(f"{format_us(row[name]):>{len(header)}}" for name, header in LATENCY_COLUMNS)


def print_workload(workload: Workload, rows: Sequence[dict[str, Any]], ratio_rows: Sequence[dict[str, Any]]) -> None:
    print(f"## {format_size(workload.size)} values, {workload.count:,} keys")
    print()
    populated = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in workload.populate_seconds.items())
    print(f"Populate (one transaction each): {populated}")
    print()
    width = max([len("system")] + [len(row["system"]) for row in rows])
    print(f"| {'system':<{width}} | operation | median us | p90 us | p99 us | max us |")
    print(f"|{'-' * (width + 2)}|-----------|----------:|-------:|-------:|-------:|")
    for row in rows:
        print(f"| {row['system']:<{width}} | {row['operation']:<9} | {latency_cells(row)} |")
    print()
    print_ratios(ratio_rows)
    for name, error in workload.errors.items():
        print(f"- **{name} FAILED** in this workload: {error.splitlines()[-1]}")
    for why in workload.skipped.values():
        print(f"- {why}")
    if workload.errors or workload.skipped:
        print()


def format_ratio(value: float) -> str:
    return f"{value:.2f}x" if value < 100 else f"{value:,.0f}x"


def print_ratios(ratio_rows: Sequence[dict[str, Any]]) -> None:
    """One row per cachekit system and operation, one column per reference: the median ratio, then the p99 one."""
    references = [name for name in (*REFERENCES, *FANOUT_REFERENCES) if any(r["versus"] == name for r in ratio_rows)]
    if not references:
        return
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for ratio in ratio_rows:
        text = f"{format_ratio(ratio['median'])} ({format_ratio(ratio['p99'])})"
        cells.setdefault((ratio["system"], ratio["operation"]), {})[ratio["versus"]] = text
    width = max(len(name) for name in ["system", *(system for system, _ in cells)])
    widths = [max(len(name), *(len(row.get(name, "-")) for row in cells.values())) for name in references]
    print("Each cachekit system over each reference: median ratio (p99 ratio); below 1.00x cachekit is faster.")
    print()
    print(
        f"| {'system':<{width}} | operation | "
        + " | ".join(f"{name:>{w}}" for name, w in zip(references, widths, strict=True))
        + " |"
    )
    print(f"|{'-' * (width + 2)}|-----------|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    for (system, operation), row in cells.items():
        figures = " | ".join(f"{row.get(name, '-'):>{w}}" for name, w in zip(references, widths, strict=True))
        print(f"| {system:<{width}} | {operation:<9} | {figures} |")
    print()


def print_finish(info: dict[str, Any], elapsed: float, failures: int) -> None:
    """The last lines of a report; also records ``load_average_at_end`` in ``info``."""
    try:
        info["load_average_at_end"] = list(os.getloadavg())
    except OSError:
        info["load_average_at_end"] = None
    end_load = info["load_average_at_end"]
    load_text = f"; load average at end: {' '.join(f'{figure:.2f}' for figure in end_load)}" if end_load else ""
    print(f"Finished in {elapsed:.1f} s{load_text}.")
    if failures:
        print(f"{failures} system run(s) FAILED; see above.")


def finish(
    info: dict[str, Any],
    config: dict[str, Any],
    notes: Sequence[str],
    started: float,
    errors: list[dict[str, Any]],
    **results: Any,
) -> tuple[dict[str, Any], bool]:
    """Print a run's last lines; return its JSON report (the machine, the configuration, the notes,
    ``results``, the errors and the seconds taken) and whether no system failed."""
    elapsed = time.perf_counter() - started
    print_finish(info, elapsed, len(errors))
    report = {"machine": info, "config": config, "notes": list(notes), **results, "errors": errors}
    report["elapsed_seconds"] = elapsed
    return report, not errors


def print_summary(rows: Sequence[dict[str, Any]], workloads: Sequence[tuple[int, int]]) -> None:
    if len(workloads) < 2:
        return
    print("## Summary: median us per operation")
    print()
    columns = [f"{format_size(size)} x {count:,}" for size, count in workloads]
    systems: list[str] = []
    for row in rows:
        if row["system"] not in systems:
            systems.append(row["system"])
    width = max(len(name) for name in [*systems, "system"])
    print(f"| {'system':<{width}} | operation | " + " | ".join(columns) + " |")
    print(f"|{'-' * (width + 2)}|-----------|" + "|".join("-" * (len(column) + 1) + ":" for column in columns) + "|")
    by_key = {(row["system"], row["value_size"], row["key_count"], row["operation"]): row for row in rows}
    for operation in OPERATIONS:
        for system in systems:
            cells = []
            for (size, count), column in zip(workloads, columns, strict=True):
                found = by_key.get((system, size, count, operation))
                cells.append(f"{format_us(found['median_us']) if found else '-':>{len(column)}}")
            print(f"| {system:<{width}} | {operation:<9} | " + " | ".join(cells) + " |")
    print()


# -- command line ----------------------------------------------------------------------------


def _parse_list(text: str, unit: int, what: str) -> list[int]:
    values = []
    for item in text.split(","):
        token = item.strip().lower().replace("_", "")
        for suffix in ("kib", "kb", "k"):
            if token.endswith(suffix):
                multiplier, token = unit, token[: -len(suffix)]
                break
        else:
            multiplier = 1
        try:
            value = int(token) * multiplier
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {what}: {item!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{what} must be positive: {item!r}")
        values.append(value)
    return values


def _sizes(text: str) -> list[int]:
    return _parse_list(text, 1024, "value size")


def _counts(text: str) -> list[int]:
    return _parse_list(text, 1000, "key count")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def system_list(text: str) -> list[str]:
    """The names of a ``--systems`` option, for ``select_specs``."""
    return [token.strip() for token in text.split(",") if token.strip()]


SYSTEMS_HELP = (
    "comma-separated system names (cachekit:STORE or just STORE, cachekit-fanout:STORE, diskcache, "
    "diskcache-fanout, redis-tcp, redis-unix, memcached, django-filebased, django-locmem, sqlitedict, dbm, "
    "sqlite3-floor, lmdb-floor) or groups: " + "; ".join(f"{name} ({members})" for name, members in GROUPS.items())
)
#: The packages of the comparison systems, whose versions a report gives beside ``machine()``'s.
COMPARED_PACKAGES = ("django", "redis", "hiredis", "pymemcache", "sqlitedict")


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Per-operation latency (median, p90, p99, max) of get-hit, get-miss, set and delete, one "
        "process, for cachekit's Cache and FanoutCache on every installed store beside python-diskcache's Cache "
        "and FanoutCache, Redis (TCP and unix socket) and Memcached on servers the benchmark starts, Django's "
        "FileBasedCache and LocMemCache, sqlitedict, dbm, a bare sqlite3 table and a bare LMDB database.",
        epilog="'python -m benchmarks latency [options]' is the same; 'python -m benchmarks mixed --help' "
        "describes the multi-process mixed-workload benchmark, 'python -m benchmarks django --help' the same "
        "workload on Django cache backends.",
    )
    result.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK_OPS} calls, 1,000 keys only, {_servers.QUICK_SERVER_START_SECONDS:g} s for a "
        "server to start",
    )
    result.add_argument("--ops", type=_positive, help=f"timed calls per operation (default {DEFAULT_OPS:,})")
    result.add_argument(
        "--sizes", type=_sizes, help="value sizes in bytes, comma-separated; 1k = 1024 (default 100,1k)"
    )
    result.add_argument("--keys", type=_counts, help="key counts, comma-separated; 1k = 1000 (default 1k,100k)")
    result.add_argument("--systems", type=system_list, help=f"{SYSTEMS_HELP} (default: all that are available)")
    result.add_argument("--rounds", type=_positive, default=DEFAULT_ROUNDS, help="interleaved rounds (default 10)")
    result.add_argument("--seed", type=int, default=0, help="seed of the key samples (default 0)")
    result.add_argument("--dir", help="where to create the caches (default: the system temporary directory)")
    result.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    result.add_argument(
        "--policies",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=[],
        help="also run every cachekit store under these eviction policies, comma-separated "
        "(e.g. least-recently-used); each shows as cachekit:STORE/POLICY",
    )
    return result


def run(
    args: argparse.Namespace, specs: Sequence[Spec], notes: list[str], argv: Sequence[str]
) -> tuple[dict[str, Any], bool]:
    """Start the servers ``specs`` need, run the benchmark, print its report, stop the servers.

    Returns ``(report, every system worked)``.
    """
    return run_with_servers(
        specs,
        notes,
        quick=args.quick,
        directory=args.dir,
        prefix="cachekit-latency-",
        body=lambda runnable, base, servers: _run(args, runnable, notes, argv, base, servers),
    )


def _run(
    args: argparse.Namespace,
    specs: Sequence[Spec],
    notes: Sequence[str],
    argv: Sequence[str],
    base: str,
    servers: dict[str, Any],
) -> tuple[dict[str, Any], bool]:
    ops = args.ops or (QUICK_OPS if args.quick else DEFAULT_OPS)
    sizes = args.sizes or list(DEFAULT_SIZES)
    counts = args.keys or list(QUICK_KEYS if args.quick else DEFAULT_KEYS)
    config = {
        "ops": ops,
        "rounds": args.rounds,
        "sizes": sizes,
        "key_counts": counts,
        "systems": [spec.name for spec in specs],
        "descriptions": {spec.name: spec.description for spec in specs},
        "seed": args.seed,
        "quick": args.quick,
        "command": ["python", "-m", "benchmarks", *argv],
    }
    info = machine(base)
    info["packages"].update({name: _version(name) for name in COMPARED_PACKAGES})
    info["servers"] = servers
    print_header(info, config, notes)
    sys.stdout.flush()
    rows: list[dict[str, Any]] = []
    ratio_rows: list[dict[str, Any]] = []
    populate: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    workloads = [(size, count) for size in sizes for count in counts]
    started = time.perf_counter()
    for size, count in workloads:
        workload = Workload(specs, size, count, ops, args.rounds, args.seed)
        directory = tempfile.mkdtemp(prefix=f"{size}-{count}-", dir=base)
        try:
            workload.run(directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        workload_rows = workload.results()
        workload_ratios = ratios(workload_rows)
        rows.extend(workload_rows)
        ratio_rows.extend(workload_ratios)
        populate.extend(
            {"system": name, "value_size": size, "key_count": count, "seconds": seconds}
            for name, seconds in workload.populate_seconds.items()
        )
        errors.extend(
            {"system": name, "value_size": size, "key_count": count, "error": error}
            for name, error in workload.errors.items()
        )
        skipped.extend(
            {"system": name, "value_size": size, "key_count": count, "reason": why}
            for name, why in workload.skipped.items()
        )
        print_workload(workload, workload_rows, workload_ratios)
        sys.stdout.flush()
    print_summary(rows, workloads)
    return finish(
        info, config, notes, started, errors, results=rows, ratios=ratio_rows, populate=populate, skipped=skipped
    )


def _select(args: argparse.Namespace, notes: list[str]) -> list[Spec]:
    specs = select_specs(args.systems, notes)
    return specs + policy_specs(specs, args.policies)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(parser(), argv, _select, run, servers=True)
