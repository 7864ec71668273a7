"""Mixed workload under concurrency: N processes share one cache, 90 % get, 9 % set, 1 % delete.

After python-diskcache's published "cache benchmark".  The systems are those
of ``_systems.py`` that several processes can share (by default all that are
available: cachekit's Cache and FanoutCache on every store, python-diskcache's
Cache and FanoutCache, Redis over TCP and a unix socket and Memcached on
servers started once for the run, Django's FileBasedCache and the floors);
LocMemCache, sqlitedict and dbm are left out with the reason.  For each system and
each process count, a fresh cache directory is pre-populated with the same
keys; then N worker processes (start method *spawn*) each open the cache by
its directory and system name, wait for a common start signal, and run the
same seeded sequence of operations: a key drawn uniformly from the key space,
the operation drawn 90/9/1.  Every call is timed on its own with
``time.perf_counter_ns()`` and every result is checked (a value is derived
from its key, so a read can be verified).  The report gives the latency of
each operation (median, p90, p99, max) over every worker, the throughput
(all operations over the slowest worker's wall time) and each cachekit
store's ratios to python-diskcache (each cachekit FanoutCache's to
python-diskcache's FanoutCache).  See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import multiprocessing
import os
import queue
import random
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _servers
from ._cli import run_command
from ._systems import (
    CACHEKIT_PREFIX,
    DISKCACHE,
    DISKCACHE_FANOUT,
    FANOUT_PREFIX,
    BenchmarkError,
    Spec,
    System,
    open_system,
    run_with_servers,
    select_specs,
)
from .latency import (
    COMPARED_PACKAGES,
    LATENCY_COLUMNS,
    SYSTEMS_HELP,
    _counts,
    _positive,
    _sizes,
    _version,
    finish,
    format_ratio,
    format_size,
    latency_cells,
    machine,
    print_machine,
    print_systems_and_notes,
    summarize,
    system_list,
)

__all__ = ["main", "open_system", "run"]

OPERATIONS = ("get", "set", "delete")
GET, SET, DELETE = range(len(OPERATIONS))
#: The share of each operation, in the order of OPERATIONS.
MIX = (0.90, 0.09, 0.01)
DEFAULT_PROCESSES = (1, 2, 4, 8)
QUICK_PROCESSES = (1, 2)
DEFAULT_OPS = 20_000
QUICK_OPS = 2_000
DEFAULT_KEYS = 10_000
QUICK_KEYS = 1_000
DEFAULT_VALUE_SIZE = 100
MIN_VALUE_SIZE = 16  # a value starts with its key (key-000000), so that a read can be checked
#: Each cachekit system's prefix, and the system it is divided by in the ratios.
REFERENCES = ((CACHEKIT_PREFIX, DISKCACHE), (FANOUT_PREFIX, DISKCACHE_FANOUT))
WARMUP_OPS = 100
POLL_SECONDS = 0.5
START_TIMEOUT_SECONDS = 600.0
JOIN_SECONDS = 10.0


# -- keys, values and the operations of a worker ---------------------------------------------------


def processes_text(count: int) -> str:
    return f"{count} process" if count == 1 else f"{count} processes"


def key_name(index: int) -> str:
    return f"key-{index:06d}"


@functools.lru_cache(maxsize=4)
def filler(size: int) -> bytes:
    """``size`` random bytes, the same in every process."""
    return random.Random(f"filler:{size}").randbytes(size)


def value_for(key: str, size: int) -> bytes:
    """The value stored under ``key``: the key's bytes, then filler, ``size`` bytes in all; any read can be checked.

    Cheap to build (a fraction of a microsecond), since a worker builds one
    for every set and every get it checks.
    """
    return (key.encode() + filler(size))[:size]


def operation_plan(seed: int, processes: int, worker: int, ops: int, key_count: int) -> list[tuple[int, int]]:
    """``ops`` pairs ``(index into OPERATIONS, key index)`` for one worker.

    The sequence depends on the seed, the process count and the worker's
    number only: every system sees the same operations.
    """
    rng = random.Random(f"{seed}:{processes}:{worker}")
    get_below, set_below = MIX[GET], MIX[GET] + MIX[SET]
    plan = []
    for _ in range(ops):
        draw = rng.random()
        operation = GET if draw < get_below else SET if draw < set_below else DELETE
        plan.append((operation, rng.randrange(key_count)))
    return plan


@dataclass(frozen=True)
class Job:
    """What a worker process needs to know; picklable, so it crosses to a spawned process."""

    system: str
    directory: str
    processes: int
    ops: int
    key_count: int
    value_size: int
    seed: int

    def open(self) -> System:
        """Open the system in a worker process; a subclass (another benchmark's job) may open another kind."""
        return open_system(self.system, self.directory)

    def check_result(self, operation: str, key: str, result: Any) -> bool | None:
        """``check`` this job's result; a subclass may accept other return values."""
        return check(self, operation, key, result)


# -- the worker process -------------------------------------------------------------------------


def check(job: Job, operation: str, key: str, result: Any) -> bool | None:
    """Whether a get found its key (None for a set or a delete); raises ``BenchmarkError`` for a wrong result."""
    if operation == "get":
        if result is None:
            return False
        if result == value_for(key, job.value_size):
            return True
    elif result is True or (operation == "delete" and result is False):  # a set returns True, a delete a bool
        return None
    shown = f"{len(result)} bytes that are not its value" if isinstance(result, bytes) else repr(result)[:60]
    raise BenchmarkError(f"{job.system}: {operation} of {key!r} returned {shown}")


def timed_run(system: System, job: Job, plan: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """Run ``plan`` once, timing every call; the garbage collector is off while it runs."""
    clock = time.perf_counter_ns
    size = job.value_size
    keys = [key_name(index) for index in range(job.key_count)]
    calls: tuple[Callable[..., Any], ...] = (system.get, system.set, system.delete)
    samples: tuple[list[int], ...] = tuple([] for _ in OPERATIONS)
    hits = misses = declined = 0
    declines = system.declines_sets  # a FanoutCache's set may give up (False) on a shard locked past its timeout
    gc.collect()
    gc.disable()
    try:
        started = clock()
        for operation, key_index in plan:
            key = keys[key_index]
            call = calls[operation]
            if operation == SET:
                value = value_for(key, size)
                start = clock()
                result = call(key, value)
                elapsed = clock() - start
            else:
                start = clock()
                result = call(key)
                elapsed = clock() - start
            samples[operation].append(elapsed)
            if declines and operation == SET and result is False:
                declined += 1
                continue
            found = job.check_result(OPERATIONS[operation], key, result)
            if found is True:
                hits += 1
            elif found is False:
                misses += 1
        wall_ns = clock() - started
    finally:
        gc.enable()
    return {
        "samples": dict(zip(OPERATIONS, samples, strict=True)),
        "wall_ns": wall_ns,
        "get_hits": hits,
        "get_misses": misses,
        "sets_declined": declined,
    }


def worker(job: Job, number: int, messages: Any, start: Any) -> None:
    """One worker process: open the cache, warm up, say it is ready, wait for the start, run, report.

    Every message is ``(kind, worker number, payload)``: ``ready``, then
    ``done`` with the figures, or ``error`` with a traceback at any point.
    """
    try:
        plan = operation_plan(job.seed, job.processes, number, job.ops, job.key_count)
        system = job.open()
        try:
            for _, key_index in plan[:WARMUP_OPS]:  # untimed: imports, statement caches, page cache
                key = key_name(key_index)
                job.check_result("get", key, system.get(key))
            messages.put(("ready", number, None))
            if not start.wait(START_TIMEOUT_SECONDS):
                raise BenchmarkError(f"worker {number} was not told to start within {START_TIMEOUT_SECONDS:.0f} s")
            result = timed_run(system, job, plan)
        finally:
            system.close()
        messages.put(("done", number, result))
    except Exception:
        messages.put(("error", number, traceback.format_exc(limit=8).rstrip()))


# -- one system at one process count ---------------------------------------------------------------


@dataclass
class Outcome:
    """The figures of one system at one process count, merged over its workers."""

    system: str
    processes: int
    populate_seconds: float
    samples: dict[str, list[int]] = field(default_factory=dict)
    wall_ns: list[int] = field(default_factory=list)
    get_hits: int = 0
    get_misses: int = 0
    sets_declined: int = 0

    def add(self, result: dict[str, Any]) -> None:
        for operation in OPERATIONS:
            self.samples.setdefault(operation, []).extend(result["samples"][operation])
        self.wall_ns.append(result["wall_ns"])
        self.get_hits += result["get_hits"]
        self.get_misses += result["get_misses"]
        self.sets_declined += result.get("sets_declined", 0)

    @property
    def operations(self) -> int:
        return sum(len(samples) for samples in self.samples.values())

    @property
    def slowest_seconds(self) -> float:
        return max(self.wall_ns) / 1e9

    @property
    def throughput(self) -> float:
        return self.operations / self.slowest_seconds


def populate_items(key_count: int, value_size: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """Every key with its value, in a seeded random order, like a cache filled by real traffic."""
    keys = [key_name(index) for index in range(key_count)]
    random.Random(seed).shuffle(keys)
    return ((key, value_for(key, value_size)) for key in keys)


def populate(spec: Spec, directory: str, key_count: int, value_size: int, seed: int) -> float:
    """Open ``spec`` on ``directory``, store every key in one transaction (in a seeded random order), close it."""
    items = populate_items(key_count, value_size, seed)
    start = time.perf_counter()
    system = spec.open(directory)
    try:
        system.populate_items(items)
    finally:
        system.close()
    return time.perf_counter() - start


def gather(messages: Any, workers: Sequence[Any], kind: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(worker number, payload)`` for each worker's ``kind`` message; raise if one fails or dies.

    A worker that exits sends its last message before it exits, so a dead
    worker whose message is still missing after one more poll has crashed.
    """
    pending = set(range(len(workers)))
    dead_before = False
    while pending:
        try:
            got, number, payload = messages.get(timeout=POLL_SECONDS)
        except queue.Empty:
            dead = sorted(number for number in pending if workers[number].exitcode is not None)
            if dead and dead_before:
                codes = ", ".join(f"worker {number}: exit code {workers[number].exitcode}" for number in dead)
                raise BenchmarkError(f"worker(s) exited without reporting ({codes})") from None
            dead_before = bool(dead)
            continue
        dead_before = False
        if got == "error":
            raise BenchmarkError(f"worker {number} of {len(workers)} failed:\n{payload}")
        if got != kind or number not in pending:
            raise BenchmarkError(f"unexpected message {got!r} from worker {number} while waiting for {kind!r}")
        pending.discard(number)
        yield number, payload


def run_workers(job: Job, outcome: Outcome) -> None:
    """Start ``job.processes`` spawned workers on the populated cache, start them together, merge their figures."""
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    start = context.Event()
    workers = [
        context.Process(target=worker, args=(job, number, messages, start), name=f"mixed-{number}", daemon=True)
        for number in range(job.processes)
    ]
    finished = False
    try:
        for process in workers:
            process.start()
        for _ in gather(messages, workers, "ready"):
            pass
        start.set()
        for _, result in gather(messages, workers, "done"):
            outcome.add(result)
        finished = True
    finally:
        for process in workers:
            if process.pid is None:  # never started
                continue
            process.join(JOIN_SECONDS if finished else 0)
            if process.is_alive():
                process.terminate()
                process.join()
        messages.close()


def measure(spec: Spec, processes: int, config: dict[str, Any], base: str) -> Outcome:
    """One system at one process count, in a fresh directory under ``base`` that is removed afterwards."""
    directory = os.path.join(base, f"{spec.name.replace(':', '-')}-{processes}p")
    try:
        seconds = populate(spec, directory, config["key_count"], config["value_size"], config["seed"])
        outcome = Outcome(spec.name, processes, seconds)
        job = Job(
            system=spec.name,
            directory=directory,
            processes=processes,
            ops=config["ops_per_process"],
            key_count=config["key_count"],
            value_size=config["value_size"],
            seed=config["seed"],
        )
        run_workers(job, outcome)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return outcome


# -- figures ------------------------------------------------------------------------------------


def result_rows(outcome: Outcome) -> list[dict[str, Any]]:
    """One row per operation that was called at least once: its latency statistics over every worker."""
    return [
        {"system": outcome.system, "processes": outcome.processes, "operation": operation, **summarize(samples)}
        for operation, samples in outcome.samples.items()
        if samples
    ]


def throughput_row(outcome: Outcome) -> dict[str, Any]:
    return {
        "system": outcome.system,
        "processes": outcome.processes,
        "operations": outcome.operations,
        "ops_per_second": outcome.throughput,
        "slowest_worker_seconds": outcome.slowest_seconds,
        "worker_seconds": [wall / 1e9 for wall in outcome.wall_ns],
        "get_hits": outcome.get_hits,
        "get_misses": outcome.get_misses,
        "sets_declined": outcome.sets_declined,
        "populate_seconds": outcome.populate_seconds,
    }


def ratios(
    rows: Sequence[dict[str, Any]],
    throughputs: Sequence[dict[str, Any]],
    versus: str = DISKCACHE,
    prefix: str = CACHEKIT_PREFIX,
) -> list[dict[str, Any]]:
    """Each cachekit system named ``prefix``STORE over ``versus`` (by default each ``cachekit:STORE`` over
    diskcache) at the same process count: throughput, and each operation's median and p99."""
    latency = {(row["system"], row["processes"], row["operation"]): row for row in rows}
    speed = {(row["system"], row["processes"]): row for row in throughputs}
    out = []
    for (system, processes), row in speed.items():
        other = speed.get((versus, processes))
        if not system.startswith(prefix) or other is None:
            continue
        ratio: dict[str, Any] = {
            "system": system,
            "store": system[len(prefix) :],
            "versus": versus,
            "processes": processes,
            "throughput": row["ops_per_second"] / other["ops_per_second"],
        }
        for operation in OPERATIONS:
            mine, theirs = latency.get((system, processes, operation)), latency.get((versus, processes, operation))
            if mine is not None and theirs is not None:
                for statistic in ("median", "p99"):
                    ratio[f"{operation}_{statistic}"] = mine[f"{statistic}_us"] / theirs[f"{statistic}_us"]
        out.append(ratio)
    return out


# -- reporting ----------------------------------------------------------------------------------


def print_header(info: dict[str, Any], config: dict[str, Any], notes: Sequence[str]) -> None:
    print("# cachekit mixed-workload benchmark")
    print()
    print_machine(info)
    print(
        f"- workload: {config['key_count']:,} keys with {format_size(config['value_size'])} values, pre-populated; "
        f"each process runs {config['ops_per_process']:,} operations: 90 % get, 9 % set, 1 % delete, "
        f"keys uniform at random (seed {config['seed']})"
    )
    print(
        f"- processes: {', '.join(str(count) for count in config['processes'])} (start method spawn); "
        f"timer overhead {info['timer_overhead_ns']} ns per sample (included)"
    )
    print_systems_and_notes(config, notes)


def print_throughputs(throughputs: Sequence[dict[str, Any]]) -> None:
    """The throughput table: operations per second, the slowest worker's wall time and the get hit rate."""
    if not throughputs:
        return
    width = max(len(name) for name in ["system", *(row["system"] for row in throughputs)])
    print(f"| {'system':<{width}} | throughput ops/s | slowest worker s | get hits |")
    print(f"|{'-' * (width + 2)}|-----------------:|-----------------:|---------:|")
    for row in throughputs:
        gets = row["get_hits"] + row["get_misses"]
        hits = f"{100 * row['get_hits'] / gets:.1f} %" if gets else "-"
        print(
            f"| {row['system']:<{width}} | {row['ops_per_second']:>16,.0f} "
            f"| {row['slowest_worker_seconds']:>16.3f} | {hits:>8} |"
        )
    print()
    declined = [row for row in throughputs if row.get("sets_declined")]
    for row in declined:
        print(
            f"- {row['system']}: {row['sets_declined']:,} set(s) declined: a shard stayed locked past the "
            "FanoutCache's timeout, so set returned False without storing (its documented behaviour)"
        )
    if declined:
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
    if rows:
        width = max(len(name) for name in ["system", *(row["system"] for row in rows)])
        calls = max(len("calls"), *(len(f"{row['samples']:,}") for row in rows))
        headers = " | ".join(header for _, header in LATENCY_COLUMNS)
        rules = "|".join("-" * (len(header) + 1) + ":" for _, header in LATENCY_COLUMNS)
        print(f"| {'system':<{width}} | operation | {'calls':>{calls}} | {headers} |")
        print(f"|{'-' * (width + 2)}|-----------|{'-' * (calls + 1)}:|{rules}|")
        for row in sorted(rows, key=lambda row: OPERATIONS.index(row["operation"])):
            cells = latency_cells(row)
            print(f"| {row['system']:<{width}} | {row['operation']:<9} | {row['samples']:>{calls},} | {cells} |")
        print()
    print_throughputs(throughputs)
    for ratio in ratio_rows:
        versus = ratio["versus"]
        set_p99 = f", set p99 {format_ratio(ratio['set_p99'])} {versus}'s" if "set_p99" in ratio else ""
        print(f"- {ratio['system']}: throughput {format_ratio(ratio['throughput'])} {versus}'s{set_p99}")
    if ratio_rows:
        print("  (a throughput above 1.00x and a latency below 1.00x mean the store is faster)")
        print()
    for error in errors:
        print(f"- **{error['system']} FAILED** with {processes_text(processes)}: {error['error'].splitlines()[-1]}")
    if errors:
        print()


def print_summary(throughputs: Sequence[dict[str, Any]], counts: Sequence[int]) -> None:
    if len(counts) < 2 or not throughputs:
        return
    print("## Summary: throughput, operations per second")
    print()
    systems: list[str] = []
    for row in throughputs:
        if row["system"] not in systems:
            systems.append(row["system"])
    columns = [processes_text(count) for count in counts]
    width = max(len(name) for name in [*systems, "system"])
    print(f"| {'system':<{width}} | " + " | ".join(columns) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * (len(column) + 1) + ":" for column in columns) + "|")
    by_key = {(row["system"], row["processes"]): row for row in throughputs}
    for system in systems:
        cells = []
        for count, column in zip(counts, columns, strict=True):
            found = by_key.get((system, count))
            figure = f"{found['ops_per_second']:,.0f}" if found else "-"
            cells.append(f"{figure:>{len(column)}}")
        print(f"| {system:<{width}} | " + " | ".join(cells) + " |")
    print()


# -- command line -------------------------------------------------------------------------------


def _one(values: list[int], text: str) -> int:
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"one number, not a list: {text!r}")
    return values[0]


def _value_size(text: str) -> int:
    size = _one(_sizes(text), text)
    if size < MIN_VALUE_SIZE:
        raise argparse.ArgumentTypeError(f"at least {MIN_VALUE_SIZE} bytes, to hold the key it is checked against")
    return size


def _process_counts(text: str) -> list[int]:
    return sorted({_positive(item.strip()) for item in text.split(",")})


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="python -m benchmarks mixed",
        description="N processes share one cache and run 90 % get, 9 % set, 1 % delete on uniformly random "
        "keys; reports the latency of each operation and the total throughput, for cachekit's Cache and "
        "FanoutCache on every installed store beside every comparison system several processes can share "
        "(python-diskcache's Cache and FanoutCache, Redis, Memcached, Django's FileBasedCache, the floors).",
    )
    result.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK_OPS:,} operations per process, {QUICK_KEYS:,} keys, "
        f"{' and '.join(str(count) for count in QUICK_PROCESSES)} processes, "
        f"{_servers.QUICK_SERVER_START_SECONDS:g} s for a server to start",
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
        "--value-size",
        type=_value_size,
        help=f"value size in bytes, at least {MIN_VALUE_SIZE}; 1k = 1024 (default {DEFAULT_VALUE_SIZE})",
    )
    result.add_argument(
        "--systems",
        type=system_list,
        help=f"{SYSTEMS_HELP} (default: all that are available; django-locmem, sqlitedict and dbm are always "
        "left out: several processes cannot share them)",
    )
    result.add_argument("--seed", type=int, default=0, help="seed of the operation sequences (default 0)")
    result.add_argument("--dir", help="where to create the caches (default: the system temporary directory)")
    result.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    return result


def run(
    args: argparse.Namespace, specs: Sequence[Spec], notes: list[str], argv: Sequence[str]
) -> tuple[dict[str, Any], bool]:
    """Start the servers ``specs`` need (once for the run), run the benchmark, print its report, stop the servers.

    Returns ``(report, every system worked)``.
    """
    key_count = args.keys or (QUICK_KEYS if args.quick else DEFAULT_KEYS)
    kept = []
    for spec in specs:
        why = spec.too_many_keys(key_count)
        if why:
            notes.append(why)
        else:
            kept.append(spec)
    return run_with_servers(
        kept,
        notes,
        quick=args.quick,
        directory=args.dir,
        prefix="cachekit-mixed-",
        body=lambda runnable, base, servers: _run(args, runnable, notes, argv, base, servers),
    )


def _run(
    args: argparse.Namespace,
    specs: Sequence[Spec],
    notes: list[str],
    argv: Sequence[str],
    base: str,
    servers: dict[str, Any],
) -> tuple[dict[str, Any], bool]:
    counts = args.processes or list(QUICK_PROCESSES if args.quick else DEFAULT_PROCESSES)
    config = {
        "processes": counts,
        "ops_per_process": args.ops or (QUICK_OPS if args.quick else DEFAULT_OPS),
        "key_count": args.keys or (QUICK_KEYS if args.quick else DEFAULT_KEYS),
        "value_size": args.value_size or DEFAULT_VALUE_SIZE,
        "mix": dict(zip(OPERATIONS, MIX, strict=True)),
        "systems": [spec.name for spec in specs],
        "descriptions": {spec.name: spec.description for spec in specs},
        "seed": args.seed,
        "quick": args.quick,
        "start_method": "spawn",
        "command": ["python", "-m", "benchmarks", "mixed", *argv],
    }
    info = machine(base)
    info["packages"].update({name: _version(name) for name in COMPARED_PACKAGES})
    info["servers"] = servers
    crowded = [count for count in counts if info["cpus_usable"] and count > info["cpus_usable"]]
    if crowded:
        notes.append(
            f"{', '.join(str(count) for count in crowded)} processes on {info['cpus_usable']} usable CPUs: "
            "the workers share the CPUs, so their latencies include waiting for one"
        )
    if servers:
        notes.append("the servers run on this machine and share its CPUs with the workers")
    print_header(info, config, notes)
    sys.stdout.flush()
    rows: list[dict[str, Any]] = []
    throughputs: list[dict[str, Any]] = []
    ratio_rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    order = random.Random(args.seed)
    rank = {spec.name: index for index, spec in enumerate(specs)}  # report in the order asked for
    started = time.perf_counter()
    for processes in counts:
        here: dict[str, list[dict[str, Any]]] = {"rows": [], "throughputs": [], "errors": []}
        shuffled = list(specs)
        order.shuffle(shuffled)  # a new order per process count: a slow spell of the machine hits no one system
        for spec in shuffled:
            try:
                outcome = measure(spec, processes, config, base)
            except Exception:
                error = traceback.format_exc(limit=6).rstrip()
                print(f"\n!! {spec.name} failed with {processes_text(processes)}:\n{error}\n", file=sys.stderr)
                here["errors"].append({"system": spec.name, "processes": processes, "error": error})
                continue
            here["rows"].extend(result_rows(outcome))
            here["throughputs"].append(throughput_row(outcome))
        here["rows"].sort(key=lambda row: rank[row["system"]])
        here["throughputs"].sort(key=lambda row: rank[row["system"]])
        here_ratios = [
            ratio
            for prefix, versus in REFERENCES
            for ratio in ratios(here["rows"], here["throughputs"], versus, prefix)
        ]
        print_processes(processes, here["rows"], here["throughputs"], here_ratios, here["errors"])
        sys.stdout.flush()
        rows.extend(here["rows"])
        throughputs.extend(here["throughputs"])
        ratio_rows.extend(here_ratios)
        errors.extend(here["errors"])
    print_summary(throughputs, counts)
    return finish(info, config, notes, started, errors, results=rows, throughput=throughputs, ratios=ratio_rows)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(
        parser(), argv, lambda args, notes: select_specs(args.systems, notes, multiprocess=True), run, servers=True
    )
