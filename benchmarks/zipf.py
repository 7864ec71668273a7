"""Hit ratio under a Zipf workload: each eviction policy of each cachekit store beside exact simulations.

One trace of gets over ``--keys`` keys whose popularity follows a Zipf
distribution (key ``i`` is drawn with weight ``1 / (i + 1) ** exponent``,
so ``key-000000`` is the most popular), generated from a seed with
``random`` (cumulative weights and ``bisect``).  The cache is used as a
read-through cache: a get that misses is followed by a ``set`` of that key,
with a value of ``--value-size`` bytes.  ``size_limit`` is a fraction
(``--fraction``, 10 % by default) of the volume of all keys, so the cache
must evict.

Every cachekit store runs the trace under every eviction policy that evicts
(``least-recently-stored``, ``least-recently-used``,
``least-frequently-used``), and python-diskcache under the same three;
each starts from an empty cache.  Beside them, the same trace runs through
exact simulations of LRU, LFU and FIFO (least recently stored) with the same
byte budget, counted as cachekit counts ``volume()``: the bytes of the
encoded key (cachekit encodes a ``str`` key as one type byte plus its UTF-8)
plus the bytes of the value.  The report gives each system's hit ratio
(hits / gets over the whole trace), the exact hit ratio of its own policy
and of LRU, the entries it held at the end, and its throughput.  See
``docs/benchmarks.md`` for why a system's ratio can differ from the exact
one.  Run with ``python -m benchmarks zipf``.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import heapq
import itertools
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._cli import run_command
from ._systems import BenchmarkError, diskcache_available, store_names
from .latency import _positive, _sizes, finish, machine, print_machine, print_systems_and_notes

__all__ = [
    "POLICIES",
    "SimResult",
    "ZipfSystem",
    "main",
    "run",
    "simulate",
    "simulate_fifo",
    "simulate_lfu",
    "simulate_lru",
    "zipf_cumulative",
    "zipf_systems",
    "zipf_trace",
]

#: The eviction policies that evict, in python-diskcache's names (``none`` never evicts: nothing to measure).
POLICIES = ("least-recently-stored", "least-recently-used", "least-frequently-used")
#: The exact simulation of each policy, by name, and the short name of its model.
MODELS = {"least-recently-stored": "FIFO", "least-recently-used": "LRU", "least-frequently-used": "LFU"}
DEFAULT_KEYS = 10_000
QUICK_KEYS = 2_000
DEFAULT_GETS = 100_000
QUICK_GETS = 8_000
DEFAULT_VALUE_SIZE = 1024
DEFAULT_EXPONENT = 1.0
DEFAULT_FRACTION = 0.10
CACHEKIT_PREFIX = "cachekit:"
DISKCACHE = "diskcache"


# -- the trace -------------------------------------------------------------------------------------


def zipf_cumulative(count: int, exponent: float) -> list[float]:
    """Cumulative Zipf weights of ``count`` ranks: rank ``i`` has weight ``1 / (i + 1) ** exponent``."""
    if count <= 0:
        raise ValueError("the key count must be positive")
    return list(itertools.accumulate(1.0 / (rank + 1) ** exponent for rank in range(count)))


def zipf_trace(count: int, length: int, exponent: float = DEFAULT_EXPONENT, seed: int = 0) -> list[int]:
    """``length`` key indexes in ``range(count)`` drawn from a Zipf distribution; the same for the same seed.

    Index 0 is the most popular.  Each draw is a uniform number times the
    total weight, located among the cumulative weights with ``bisect``.
    """
    cumulative = zipf_cumulative(count, exponent)
    total = cumulative[-1]
    uniform = random.Random(f"zipf:{seed}").random
    last = count - 1
    locate = bisect.bisect_right
    return [min(locate(cumulative, uniform() * total), last) for _ in range(length)]


def key_name(index: int) -> str:
    return f"key-{index:06d}"


def value_for(key: str, size: int) -> bytes:
    """The value of ``key``: its bytes, then filler, ``size`` bytes in all, so a hit can be checked."""
    head = key.encode()
    return (head + b"." * max(0, size - len(head)))[:size]


def cachekit_entry_size(key: str, value_size: int) -> int:
    """The bytes cachekit's ``volume()`` counts for a ``str`` key and a ``bytes`` value: type byte + UTF-8 + value."""
    return 1 + len(key.encode("utf-8")) + value_size


# -- exact simulations ------------------------------------------------------------------------------


@dataclass
class SimResult:
    """What a simulation (or a real cache) did with a trace."""

    policy: str
    hits: int
    misses: int
    evictions: int
    entries_at_end: int
    volume_at_end: int

    @property
    def hit_ratio(self) -> float:
        gets = self.hits + self.misses
        return self.hits / gets if gets else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "model": MODELS.get(self.policy, self.policy),
            "hit_ratio": self.hit_ratio,
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "entries_at_end": self.entries_at_end,
            "volume_at_end": self.volume_at_end,
        }


def _simulate_ordered(trace: Sequence[int], sizes: Sequence[int], budget: int, *, recency: bool) -> SimResult:
    """LRU (``recency``: a hit moves the key to the end) or FIFO: an ``OrderedDict``, oldest first."""
    resident: OrderedDict[int, int] = OrderedDict()
    volume = hits = misses = evictions = 0
    for key in trace:
        if key in resident:
            hits += 1
            if recency:
                resident.move_to_end(key)
            continue
        misses += 1
        size = sizes[key]
        if size > budget:  # cachekit refuses a value larger than size_limit: nothing is stored
            continue
        resident[key] = size
        volume += size
        while volume > budget:  # the new key is the newest: it is never the one to go
            _, freed = resident.popitem(last=False)
            volume -= freed
            evictions += 1
    return SimResult(
        "least-recently-used" if recency else "least-recently-stored", hits, misses, evictions, len(resident), volume
    )


def simulate_lru(trace: Sequence[int], sizes: Sequence[int], budget: int) -> SimResult:
    """Exact LRU: after a miss the key is stored, then the least recently used keys go until the volume fits."""
    return _simulate_ordered(trace, sizes, budget, recency=True)


def simulate_fifo(trace: Sequence[int], sizes: Sequence[int], budget: int) -> SimResult:
    """Exact FIFO (least recently stored): hits change nothing; the keys stored longest ago go first."""
    return _simulate_ordered(trace, sizes, budget, recency=False)


def simulate_lfu(trace: Sequence[int], sizes: Sequence[int], budget: int) -> SimResult:
    """Exact in-cache LFU as cachekit ranks it: the fewest hits since the key was stored go first, ties oldest first.

    A key starts at 0 hits each time it is stored; the key just stored takes
    part in the eviction (with 0 hits, it goes first once every other key has
    been hit).  A heap of ``(hits, insertion number, key)`` with stale
    entries skipped.
    """
    counts: dict[int, tuple[int, int]] = {}  # key -> (hits, insertion number)
    heap: list[tuple[int, int, int]] = []
    sequence = itertools.count()
    volume = hits = misses = evictions = 0
    for key in trace:
        found = counts.get(key)
        if found is not None:
            hits += 1
            ranked = (found[0] + 1, found[1])
            counts[key] = ranked
            heapq.heappush(heap, (*ranked, key))
            continue
        misses += 1
        size = sizes[key]
        if size > budget:
            continue
        ranked = (0, next(sequence))
        counts[key] = ranked
        heapq.heappush(heap, (*ranked, key))
        volume += size
        while volume > budget:
            count, number, victim = heapq.heappop(heap)
            if counts.get(victim) != (count, number):
                continue  # stale: the key was hit since, or evicted
            del counts[victim]
            volume -= sizes[victim]
            evictions += 1
        if len(heap) > 4 * len(counts) + 1024:  # drop the stale entries now and then
            heap = [(count, number, k) for k, (count, number) in counts.items()]
            heapq.heapify(heap)
    return SimResult("least-frequently-used", hits, misses, evictions, len(counts), volume)


SIMULATORS: dict[str, Callable[[Sequence[int], Sequence[int], int], SimResult]] = {
    "least-recently-used": simulate_lru,
    "least-frequently-used": simulate_lfu,
    "least-recently-stored": simulate_fifo,
}


def simulate(policy: str, trace: Sequence[int], sizes: Sequence[int], budget: int) -> SimResult:
    """The exact simulation of ``policy`` (one of ``POLICIES``) on ``trace``, entry sizes by key index."""
    return SIMULATORS[policy](trace, sizes, budget)


# -- the systems --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipfSystem:
    """A cache that runs the trace: ``open(directory, size_limit, policy)`` returns an object with the
    python-diskcache API (``get``, ``set``, ``__len__``, ``close``); ``policies`` are those it runs under."""

    name: str
    open: Callable[[str, int, str], Any]
    description: str
    policies: tuple[str, ...] = POLICIES


def _cachekit_opener(store: str) -> Callable[[str, int, str], Any]:
    def open_(directory: str, size_limit: int, policy: str) -> Any:
        import cachekit

        return cachekit.Cache(directory, store=store, size_limit=size_limit, eviction_policy=policy)

    return open_


def _diskcache_open(directory: str, size_limit: int, policy: str) -> Any:
    import diskcache  # type: ignore[import-untyped]

    return diskcache.Cache(directory, size_limit=size_limit, eviction_policy=policy)


def zipf_systems(notes: list[str] | None = None) -> list[ZipfSystem]:
    """Every installed cachekit store, then python-diskcache (with a note in ``notes`` when it is missing)."""
    systems = [
        ZipfSystem(
            CACHEKIT_PREFIX + store,
            _cachekit_opener(store),
            f"cachekit.Cache(directory, store={store!r}, size_limit=..., eviction_policy=...), cull_limit 10",
        )
        for store in store_names()
    ]
    if diskcache_available():
        systems.append(
            ZipfSystem(
                DISKCACHE,
                _diskcache_open,
                "python-diskcache's diskcache.Cache(directory, size_limit=..., eviction_policy=...), cull_limit 10; "
                "its volume() is the SQLite file's size (pages), not keys + values",
            )
        )
    elif notes is not None:
        notes.append("python-diskcache is not installed (pip install diskcache): diskcache skipped")
    return systems


def select_systems(systems: Sequence[ZipfSystem], wanted: Sequence[str] | None) -> list[ZipfSystem]:
    """The systems named in ``wanted`` (``cachekit:STORE``, a store name alone, ``cachekit``, ``diskcache``)."""
    if not wanted:
        return list(systems)
    chosen: list[ZipfSystem] = []
    for token in wanted:
        found = [
            system
            for system in systems
            if token in (system.name, system.name.removeprefix(CACHEKIT_PREFIX))
            or (token == "cachekit" and system.name.startswith(CACHEKIT_PREFIX))
        ]
        if not found:
            raise ValueError(f"unknown system {token!r}; choose from {', '.join(s.name for s in systems)}, cachekit")
        chosen.extend(system for system in found if system not in chosen)
    return chosen


def run_trace(
    system: ZipfSystem, policy: str, directory: str, trace: Sequence[int], config: dict[str, Any]
) -> dict[str, Any]:
    """Run ``trace`` through a fresh cache as a read-through cache; check every hit; return the figures."""
    value_size = config["value_size"]
    keys = [key_name(index) for index in range(config["key_count"])]
    values = [value_for(key, value_size) for key in keys]
    cache = system.open(directory, config["size_limit"], policy)
    try:
        get, set_ = cache.get, cache.set
        hits = misses = 0
        wrong: list[str] = []
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            for index in trace:
                key = keys[index]
                found = get(key)
                if found is None:
                    misses += 1
                    if set_(key, values[index]) is not True:
                        wrong.append(f"set of {key!r} was refused")
                        break
                else:
                    hits += 1
                    if found != values[index]:
                        wrong.append(f"get of {key!r} returned a value that is not its own")
                        break
            seconds = time.perf_counter() - started
        finally:
            gc.enable()
        if wrong:
            raise BenchmarkError(f"{system.name} ({policy}): {wrong[0]}")
        entries = len(cache)
        volume = cache.volume()
        evictions = cache.counters().get("evictions") if hasattr(cache, "counters") else None
    finally:
        cache.close()
    operations = hits + 2 * misses  # each miss is a get and a set
    return {
        "system": system.name,
        "policy": policy,
        "hit_ratio": hits / len(trace),
        "hits": hits,
        "misses": misses,
        "sets": misses,
        "seconds": seconds,
        "ops_per_second": operations / seconds,
        "gets_per_second": len(trace) / seconds,
        "entries_at_end": entries,
        "volume_at_end": volume,
        "evictions": evictions,
    }


# -- reporting -------------------------------------------------------------------------------------


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def print_header(info: dict[str, Any], config: dict[str, Any], notes: Sequence[str]) -> None:
    print("# cachekit Zipf hit-ratio benchmark")
    print()
    print_machine(info)
    print(
        f"- trace: {config['gets']:,} gets over {config['key_count']:,} keys, Zipf exponent {config['exponent']:g} "
        f"(seed {config['seed']}); read-through: a miss is followed by a set; values of {config['value_size']:,} B"
    )
    print(
        f"- size_limit: {config['size_limit']:,} bytes = {100 * config['fraction']:g} % of the volume of all keys "
        f"({config['total_volume']:,} bytes, {config['entry_size']:,} bytes per entry as cachekit counts it: "
        f"type byte + UTF-8 key + value), about {config['size_limit'] // config['entry_size']:,} entries"
    )
    print_systems_and_notes(config, notes)


def print_simulations(simulations: Sequence[dict[str, Any]]) -> None:
    print("## Exact simulations")
    print()
    print("| model | policy                | hit ratio | entries at end | evictions |")
    print("|-------|-----------------------|----------:|---------------:|----------:|")
    for row in simulations:
        print(
            f"| {row['model']:<5} | {row['policy']:<21} | {_percent(row['hit_ratio']):>9} "
            f"| {row['entries_at_end']:>14,} | {row['evictions']:>9,} |"
        )
    print()


def print_results(rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    print("## Hit ratio per system and policy")
    print()
    width = max(len("system"), *(len(row["system"]) for row in rows))
    print(
        f"| {'system':<{width}} | policy                | hit ratio | exact, same policy | difference "
        "| exact LRU | entries at end |    ops/s |"
    )
    print(
        f"|{'-' * (width + 2)}|-----------------------|----------:|-------------------:|-----------:"
        "|----------:|---------------:|---------:|"
    )
    for row in rows:
        difference = 100 * (row["hit_ratio"] - row["exact_hit_ratio"])
        print(
            f"| {row['system']:<{width}} | {row['policy']:<21} | {_percent(row['hit_ratio']):>9} "
            f"| {_percent(row['exact_hit_ratio']):>18} | {difference:>+7.1f} pt "
            f"| {_percent(row['exact_lru_hit_ratio']):>9} | {row['entries_at_end']:>14,} "
            f"| {row['ops_per_second']:>8,.0f} |"
        )
    print()
    print(
        "hit ratio = hits / gets over the whole trace, from an empty cache; ops/s counts every get and every set "
        "(a miss is one of each) over the wall time of the trace."
    )
    print()


# -- command line -------------------------------------------------------------------------------------


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1]: {text!r}")
    return value


def _exponent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _names(text: str) -> list[str]:
    return [token.strip() for token in text.split(",") if token.strip()]


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="python -m benchmarks zipf",
        description="Hit ratio of a read-through cache under a Zipf trace, for every cachekit store and eviction "
        "policy and python-diskcache, beside exact LRU, LFU and FIFO simulations with the same byte budget; "
        "and the throughput of the trace.",
    )
    result.add_argument(
        "--quick", action="store_true", help=f"smoke test: {QUICK_GETS:,} gets over {QUICK_KEYS:,} keys"
    )
    result.add_argument("--keys", type=_positive, help=f"key count (default {DEFAULT_KEYS:,})")
    result.add_argument("--gets", type=_positive, help=f"length of the trace in gets (default {DEFAULT_GETS:,})")
    result.add_argument(
        "--exponent", type=_exponent, default=DEFAULT_EXPONENT, help=f"Zipf exponent (default {DEFAULT_EXPONENT:g})"
    )
    result.add_argument(
        "--value-size",
        type=lambda text: _sizes(text)[0],
        default=DEFAULT_VALUE_SIZE,
        help=f"value size in bytes; 1k = 1024 (default {DEFAULT_VALUE_SIZE})",
    )
    result.add_argument(
        "--fraction",
        type=_fraction,
        default=DEFAULT_FRACTION,
        help=f"size_limit as a fraction of the volume of all keys (default {DEFAULT_FRACTION:g})",
    )
    result.add_argument(
        "--systems", type=_names, help="cachekit:STORE or STORE, cachekit (every store), diskcache (default: all)"
    )
    result.add_argument(
        "--policies", type=_names, help=f"eviction policies, comma-separated (default: {','.join(POLICIES)})"
    )
    result.add_argument("--seed", type=int, default=0, help="seed of the trace (default 0)")
    result.add_argument("--dir", help="where to create the caches (default: the system temporary directory)")
    result.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    return result


def run(
    args: argparse.Namespace, systems: Sequence[ZipfSystem], notes: list[str], argv: Sequence[str]
) -> tuple[dict[str, Any], bool]:
    """Run the benchmark, print its report, and return ``(report, every system worked)``."""
    key_count = args.keys or (QUICK_KEYS if args.quick else DEFAULT_KEYS)
    gets = args.gets or (QUICK_GETS if args.quick else DEFAULT_GETS)
    policies = list(args.policies or POLICIES)
    sizes = [cachekit_entry_size(key_name(index), args.value_size) for index in range(key_count)]
    total_volume = sum(sizes)
    size_limit = max(1, int(total_volume * args.fraction))
    config = {
        "key_count": key_count,
        "gets": gets,
        "exponent": args.exponent,
        "value_size": args.value_size,
        "entry_size": sizes[0],
        "total_volume": total_volume,
        "fraction": args.fraction,
        "size_limit": size_limit,
        "policies": policies,
        "systems": [system.name for system in systems],
        "descriptions": {system.name: system.description for system in systems},
        "seed": args.seed,
        "quick": args.quick,
        "volume_model": "key bytes (one type byte + UTF-8) + value bytes, as cachekit's volume()",
        "command": ["python", "-m", "benchmarks", "zipf", *argv],
    }
    base = tempfile.mkdtemp(prefix="cachekit-zipf-", dir=args.dir)
    info = machine(base)
    print_header(info, config, notes)
    sys.stdout.flush()
    started = time.perf_counter()
    trace = zipf_trace(key_count, gets, args.exponent, args.seed)
    exact = {policy: simulate(policy, trace, sizes, size_limit) for policy in SIMULATORS}
    simulations = [
        exact[policy].as_dict() for policy in ("least-recently-used", "least-frequently-used", "least-recently-stored")
    ]
    print_simulations(simulations)
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    try:
        for system in systems:
            for policy in policies:
                if policy not in system.policies:
                    continue
                directory = os.path.join(base, f"{system.name.replace(':', '-')}-{policy}")
                try:
                    row = run_trace(system, policy, directory, trace, config)
                except Exception:
                    error = traceback.format_exc(limit=6).rstrip()
                    print(f"\n!! {system.name} ({policy}) failed:\n{error}\n", file=sys.stderr)
                    errors.append({"system": system.name, "policy": policy, "error": error})
                    continue
                finally:
                    shutil.rmtree(directory, ignore_errors=True)
                row["exact_hit_ratio"] = exact[policy].hit_ratio
                row["exact_lru_hit_ratio"] = exact["least-recently-used"].hit_ratio
                row["exact_entries_at_end"] = exact[policy].entries_at_end
                rows.append(row)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print_results(rows)
    for error in errors:
        print(f"- **{error['system']} ({error['policy']}) FAILED**: {error['error'].splitlines()[-1]}")
    if errors:
        print()
    return finish(info, config, notes, started, errors, simulations=simulations, results=rows)


def _select(args: argparse.Namespace, notes: list[str]) -> list[ZipfSystem]:
    systems = select_systems(zipf_systems(notes), args.systems)
    unknown = [policy for policy in args.policies or () if policy not in SIMULATORS]
    if unknown:
        raise ValueError(f"no exact simulation of {', '.join(unknown)}; choose from {', '.join(POLICIES)}")
    return systems


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(parser(), argv, _select, run)
