"""Throughput of FanoutCache and Deque: cachekit's, on every store, beside python-diskcache's.

One process; each system gets a fresh directory.  FanoutCache: ``set`` of
``--keys`` keys, then ``get`` of each (8 shards, 100-byte values).  Deque:
``append`` of ``--items`` values, then ``popleft`` of each.  Every result is
checked.  The figures are operations per second over the whole loop, and
the median of per-call times.  Run with ``python -m benchmarks collections``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._cli import write_json
from .latency import machine, store_names

__all__ = ["main"]

DEFAULT_KEYS = 20_000
QUICK_KEYS = 500
VALUE = b"v" * 100


def _time_calls(calls: Sequence[Callable[[], Any]], check: Callable[[int, Any], bool]) -> dict[str, float]:
    samples = []
    started = time.perf_counter()
    for number, call in enumerate(calls):
        before = time.perf_counter_ns()
        result = call()
        samples.append(time.perf_counter_ns() - before)
        if not check(number, result):
            raise AssertionError(f"call {number} returned {result!r}")
    elapsed = time.perf_counter() - started
    return {"ops_per_second": len(calls) / elapsed, "median_us": statistics.median(samples) / 1000}


def _fanout_systems() -> dict[str, Callable[[str], Any]]:
    systems: dict[str, Callable[[str], Any]] = {}
    import cachekit

    for store in store_names():
        systems[f"cachekit FanoutCache ({store})"] = lambda directory, store=store: cachekit.FanoutCache(
            directory, shards=8, store=store
        )
    try:
        import diskcache  # type: ignore[import-untyped]
    except ImportError:
        return systems
    systems["diskcache FanoutCache"] = lambda directory: diskcache.FanoutCache(directory, shards=8)
    return systems


def _deque_systems() -> dict[str, Callable[[str], Any]]:
    systems: dict[str, Callable[[str], Any]] = {}
    import cachekit

    for store in store_names():
        systems[f"cachekit Deque ({store})"] = lambda directory, store=store: cachekit.Deque.fromcache(
            cachekit.Cache(directory, store=store)
        )
    try:
        import diskcache
    except ImportError:
        return systems
    systems["diskcache Deque"] = lambda directory: diskcache.Deque(directory=directory)
    return systems


def run(keys: int, base: str) -> list[dict[str, Any]]:
    """Every system's figures, as rows."""
    rows: list[dict[str, Any]] = []
    names = [f"key-{number}" for number in range(keys)]
    for name, open_fanout in _fanout_systems().items():
        directory = tempfile.mkdtemp(dir=base)
        fanout = open_fanout(directory)
        sets = [lambda key=key, fanout=fanout: fanout.set(key, VALUE) for key in names]
        gets = [lambda key=key, fanout=fanout: fanout.get(key) for key in names]
        writes = _time_calls(sets, lambda _, ok: ok is True)
        reads = _time_calls(gets, lambda _, value: value == VALUE)
        fanout.close()
        rows.append({"system": name, "operation": "set", **writes})
        rows.append({"system": name, "operation": "get", **reads})
    for name, open_deque in _deque_systems().items():
        directory = tempfile.mkdtemp(dir=base)
        deque = open_deque(directory)
        appends = _time_calls(
            [lambda number=number, deque=deque: deque.append(number) for number in range(keys)], lambda *_: True
        )
        pops = _time_calls([deque.popleft] * keys, lambda number, value: value == number)
        deque.cache.close()
        rows.append({"system": name, "operation": "append", **appends})
        rows.append({"system": name, "operation": "popleft", **pops})
    return rows


def print_rows(rows: Sequence[dict[str, Any]]) -> None:
    width = max(len(row["system"]) for row in rows)
    print(f"| {'system':<{width}} | operation | ops/s     | median us |")
    print(f"|{'-' * (width + 2)}|-----------|----------:|----------:|")
    for row in rows:
        print(
            f"| {row['system']:<{width}} | {row['operation']:<9} | {row['ops_per_second']:>9,.0f} "
            f"| {row['median_us']:>9.2f} |"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks collections",
        description="Throughput of FanoutCache (set, get) and Deque (append, popleft), cachekit beside diskcache.",
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_KEYS} operations of each kind (a smoke test)")
    parser.add_argument("--keys", type=int, help=f"operations of each kind (default {DEFAULT_KEYS:,})")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    args = parser.parse_args(argv)
    keys = args.keys or (QUICK_KEYS if args.quick else DEFAULT_KEYS)
    base = tempfile.mkdtemp(prefix="cachekit-collections-")
    try:
        info = machine(base)
        print(f"# FanoutCache and Deque throughput, {keys:,} operations of each kind, one process\n")
        rows = run(keys, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print_rows(rows)
    if args.json:
        write_json(args.json, {"machine": info, "keys": keys, "results": rows})
    sys.stdout.flush()
    return 0
