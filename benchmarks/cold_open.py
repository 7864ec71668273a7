"""Cold open: a fresh Python process imports a library, opens an existing cache and reads one key.

For each system, a cache holding one key is created first (through
``_systems.py``, as the other benchmarks open it).  Then, ``--runs`` times,
a **fresh Python process** (``sys.executable``) runs a small script written
to an empty temporary directory, with that directory as its working
directory (so ``sys.path[0]`` holds nothing else); the script measures with
``time.perf_counter()``:

- (a) **import**: the time to import the library (for Django, also
  ``settings.configure()`` and ``django.setup()``);
- (b) **open + first get**: the time to open the cache and read the key
  (checked after the clock stops); the issue's target is under 5 ms for
  every cachekit store;

and the parent measures (c) **process**: the whole process's wall time,
from ``subprocess`` start to exit (interpreter start-up, ``site``, the
script, closing the cache, interpreter shutdown).  The runs are
interleaved: each round runs every system once, in a new random order.

Bytecode: this benchmark compiles the measured packages with ``compileall``
first, removes ``PYTHONDONTWRITEBYTECODE`` from the children's environment
(with it, a module without a ``.pyc`` would be compiled from source on
every import, which would falsify (a)), and runs each system's script once,
untimed, which writes any ``.pyc`` still missing and warms the OS page
cache, then counts the imported modules that still have no ``.pyc``.  So
the figures are those of a new process on a machine where the library was
used before ("warm" files), not of the first run after a reboot.

Servers (Redis, Memcached) are left out: a client's "open" is a connection
to a server that is already running, another quantity; so is Django's
``LocMemCache``, the memory of one process, which a new process finds
empty.  Run with ``python -m benchmarks cold-open``.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import _systems
from ._cli import run_command
from .latency import _positive, finish, machine, percentile, print_machine, print_systems_and_notes

__all__ = ["ColdSystem", "cold_systems", "main", "run", "summarize_ms"]

DEFAULT_RUNS = 20
QUICK_RUNS = 3
KEY = "key-000000"
VALUE = b"cold-open-value:" + bytes(range(84))  # 100 bytes
PROBE_TIMEOUT_SECONDS = 120.0
#: Packages compiled with compileall before the runs, when installed (each system's own too).
COMPILED = ("cachekit", "cachekit_sqlite", "cachekit_lmdb", "cachekit_django", "diskcache", "msgpack", "pluggy")
#: The baseline: a process that imports nothing and opens nothing.
BASELINE = "python (empty script)"
#: Systems left out, and why.
_SERVER_LEFT_OUT = "a server: its client's open is a connection to a server already running, not a cold open of a cache"
LEFT_OUT = {
    **dict.fromkeys(_systems.SERVER_SYSTEMS, _SERVER_LEFT_OUT),
    _systems.DJANGO_LOCMEM: "the memory of one process: a new process finds it empty, there is nothing to open",
}
#: What the script prints, after the figures, when every check passed.
_OK = "ok"

_SCRIPT = """\
import time
_clock = time.perf_counter
_t0 = _clock()
{import_code}
_t1 = _clock()
{open_code}
_t2 = _clock()
{get_code}
_t3 = _clock()
_ok = value == {value!r}
{close_code}
{report_code}
print(repr(_t1 - _t0), repr(_t2 - _t1), repr(_t3 - _t2), "{ok}" if _ok else "wrong value: " + repr(value)[:80])
"""
#: Added to the untimed first run: the imported modules whose bytecode file is missing.
_MISSING_BYTECODE = """\
import os as _os, sys as _sys
_missing = sorted(
    _name for _name, _module in list(_sys.modules.items())
    if getattr(getattr(_module, "__spec__", None), "cached", None)
    and getattr(_module.__spec__, "origin", "").endswith(".py")
    and not _os.path.exists(_module.__spec__.cached)
)
print("missing-bytecode", len(_missing), " ".join(_missing[:20]))
"""


@dataclass(frozen=True)
class ColdSystem:
    """What a child process runs for one system: its import, its open, its first get (setting ``value``), its close.

    ``spec`` is the ``_systems.Spec`` that creates the cache (None for the
    baseline); ``packages`` are compiled with compileall before the runs.
    """

    name: str
    description: str
    import_code: str
    open_code: str
    get_code: str
    close_code: str
    spec: _systems.Spec | None = None
    packages: tuple[str, ...] = ()

    def script(self, directory: str, *, check_bytecode: bool = False) -> str:
        def fill(code: str) -> str:
            return code.format(directory=directory, key=KEY)

        return _SCRIPT.format(
            import_code=fill(self.import_code),
            open_code=fill(self.open_code),
            get_code=fill(self.get_code),
            close_code=fill(self.close_code),
            report_code=_MISSING_BYTECODE if check_bytecode else "",
            value=VALUE if self.spec is not None else None,
            ok=_OK,
        )


def _cachekit(spec: _systems.Spec, store: str, fanout: bool) -> ColdSystem:
    call = (
        f"cachekit.FanoutCache({{directory!r}}, {_systems.FANOUT_SHARDS}, store={store!r})"
        if fanout
        else f"cachekit.Cache({{directory!r}}, store={store!r})"
    )
    return ColdSystem(
        spec.name,
        f"import cachekit; {call.format(directory='DIR')}; get",
        "import cachekit",
        f"cache = {call}",
        "value = cache.get({key!r})",
        "cache.close()",
        spec,
        ("cachekit", f"cachekit_{store}"),
    )


def _diskcache(spec: _systems.Spec, fanout: bool) -> ColdSystem:
    call = (
        f"diskcache.FanoutCache({{directory!r}}, shards={_systems.FANOUT_SHARDS})"
        if fanout
        else "diskcache.Cache({directory!r})"
    )
    return ColdSystem(
        spec.name,
        f"import diskcache; {call.format(directory='DIR')}; get",
        "import diskcache",
        f"cache = {call}",
        "value = cache.get({key!r})",
        "cache.close()",
        spec,
        ("diskcache",),
    )


def _other(spec: _systems.Spec) -> ColdSystem | None:
    """The probe of a system that is not a cachekit or python-diskcache cache, mirroring how ``_systems`` opens it."""
    name = spec.name
    if name == _systems.DJANGO_FILEBASED:
        settings = {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": _DIRECTORY_MARK,
            "TIMEOUT": None,
            "OPTIONS": {"MAX_ENTRIES": _systems.DJANGO_MAX_ENTRIES},
        }
        entry = _template(repr({"default": settings}))
        return ColdSystem(
            name,
            "import django; settings.configure(); django.setup() (in the import); FileBasedCache(DIR); get",
            "import django\nfrom django.conf import settings\nsettings.configure()\ndjango.setup()\n"
            "from django.core.cache import CacheHandler",
            f"cache = CacheHandler({entry}).create_connection('default')",
            "value = cache.get({key!r})",
            "cache.close()",
            spec,
            ("django",),
        )
    if name == _systems.SQLITEDICT:
        return ColdSystem(
            name,
            "from sqlitedict import SqliteDict; SqliteDict(FILE, tablename='kv', autocommit=True); get",
            "from sqlitedict import SqliteDict",
            "cache = SqliteDict({directory!r} + '/sqlitedict.sqlite', tablename='kv', autocommit=True)",
            "value = cache.get({key!r})",
            "cache.close()",
            spec,
            ("sqlitedict",),
        )
    if name == _systems.DBM:
        return ColdSystem(
            name,
            f"import dbm; dbm.open(FILE, 'c') ({_systems.dbm_backend()}); get",
            "import dbm",
            "cache = dbm.open({directory!r} + '/dbm', 'c')",
            "value = cache.get({key!r})",
            "cache.close()",
            spec,
        )
    if name == _systems.SQLITE_FLOOR:
        return ColdSystem(
            name,
            "import sqlite3; connect, the floor's PRAGMAs and CREATE TABLE IF NOT EXISTS; one SELECT",
            "import sqlite3",
            "cache = sqlite3.connect({directory!r} + '/floor.db', isolation_level=None)\n"
            "cache.execute('PRAGMA journal_mode = WAL')\n"
            "cache.execute('PRAGMA synchronous = NORMAL')\n"
            "cache.execute('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB)')",
            "_row = cache.execute('SELECT value FROM kv WHERE key = ?', ({key!r},)).fetchone()\n"
            "value = None if _row is None else _row[0]",
            "cache.close()",
            spec,
        )
    if name == _systems.LMDB_FLOOR:
        return ColdSystem(
            name,
            "import lmdb; lmdb.open(DIR, sync=False, metasync=False, max_dbs=1); open_db; one read transaction",
            "import lmdb",
            f"cache = lmdb.open({{directory!r}}, map_size={_systems.LMDB_MAP_SIZE}, sync=False, metasync=False, "
            "max_dbs=1)\n_db = cache.open_db(b'kv')",
            "with cache.begin(db=_db) as _txn:\n    value = _txn.get({key!r}.encode())",
            "cache.close()",
            spec,
            ("lmdb",),
        )
    return None


_DIRECTORY_MARK = "@directory@"


def _template(code: str) -> str:
    """``code`` as a template for ``ColdSystem.script``: braces escaped, ``'@directory@'`` the directory's repr."""
    return code.replace("{", "{{").replace("}", "}}").replace(repr(_DIRECTORY_MARK), "{directory!r}")


def baseline() -> ColdSystem:
    return ColdSystem(
        BASELINE, "a script that imports nothing and opens nothing", "pass", "pass", "value = None", "pass"
    )


def cold_systems(wanted: Sequence[str] | None, notes: list[str]) -> list[ColdSystem]:
    """The baseline, then each system of ``_systems`` that ``wanted`` picks (all if None) and that can run here.

    Systems left out (servers, LocMemCache, those without a probe here)
    and missing packages get a note in ``notes``.
    """
    specs, missing = _systems.available_specs(wanted)
    notes.extend(missing)
    systems = [baseline()]
    for spec in specs:
        if spec.name in LEFT_OUT:
            notes.append(f"{spec.name} left out: {LEFT_OUT[spec.name]}")
            continue
        found: ColdSystem | None
        for prefix, fanout in ((_systems.CACHEKIT_PREFIX, False), (_systems.FANOUT_PREFIX, True)):
            if spec.name.startswith(prefix):
                found = _cachekit(spec, spec.name[len(prefix) :], fanout)
                break
        else:
            if spec.name in (_systems.DISKCACHE, _systems.DISKCACHE_FANOUT):
                found = _diskcache(spec, spec.name == _systems.DISKCACHE_FANOUT)
            else:
                found = _other(spec)
        if found is None:
            notes.append(f"{spec.name} left out: this benchmark has no cold-open script for it")
            continue
        systems.append(found)
    return systems


# -- running -----------------------------------------------------------------------------------------


def compile_packages(systems: Sequence[ColdSystem]) -> list[str]:
    """Compile the measured packages' bytecode with compileall (it writes it whatever PYTHONDONTWRITEBYTECODE says)."""
    names = list(COMPILED)
    for system in systems:
        names.extend(name for name in system.packages if name not in names)
    compiled = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                compileall.compile_dir(location, quiet=1)
        elif spec.origin and spec.origin.endswith(".py"):
            compileall.compile_file(spec.origin, quiet=1)
        else:
            continue
        compiled.append(name)
    return compiled


def child_environment() -> dict[str, str]:
    """This process's environment without ``PYTHONDONTWRITEBYTECODE``."""
    environment = dict(os.environ)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    return environment


def probe(script_path: str, environment: dict[str, str]) -> tuple[float, float, float, float, list[str]]:
    """Run a script in a fresh process; return (import s, open s, first get s, process s, its other output lines)."""
    directory = os.path.dirname(script_path)
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, os.path.basename(script_path)],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_SECONDS,
        check=False,
    )
    wall = time.perf_counter() - started
    lines = completed.stdout.splitlines()
    if completed.returncode or not lines:
        raise _systems.BenchmarkError(
            f"the script exited with status {completed.returncode}:\n{(completed.stderr or completed.stdout)[-2000:]}"
        )
    first, rest = lines[-1], lines[:-1]
    parts = first.split(" ", 3)
    if len(parts) != 4 or parts[3] != _OK:
        raise _systems.BenchmarkError(f"the script reported: {first[:200]}")
    return float(parts[0]), float(parts[1]), float(parts[2]), wall, rest


def summarize_ms(samples: Sequence[float]) -> dict[str, float]:
    """Median, p90 (nearest rank) and min of samples in seconds, in milliseconds."""
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p90_ms": percentile(ordered, 0.90) * 1000,
        "min_ms": ordered[0] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


#: What each run records, in this order: the import, the open, the first get, open + get, the whole process.
SAMPLED = ("import", "open", "get", "open_get", "process")
#: The phases of the report's table, and their headers.
PHASES = (("import", "import"), ("open_get", "open + first get"), ("process", "process"))


def _format_ms(value: float) -> str:
    if value < 10:
        return f"{value:.2f}"
    if value < 1000:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def print_header(info: dict[str, Any], config: dict[str, Any], notes: Sequence[str]) -> None:
    print("# cachekit cold-open benchmark")
    print()
    print_machine(info)
    print(
        f"- runs: {config['runs']} fresh `{os.path.basename(sys.executable)}` processes per system, interleaved "
        "(each round runs every system once, in a new random order), each a script in an empty temporary "
        "directory that is also its working directory; one untimed run per system first"
    )
    print(
        "- measured: (a) import, (b) open + first get, by the script with time.perf_counter(); "
        "(c) the whole process, by the parent; milliseconds"
    )
    print(f"- bytecode: {config['bytecode']}")
    print_systems_and_notes(config, notes)


def print_results(rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    headers = ["system"]
    for phase, title in PHASES:
        headers.extend([f"{title} median", "p90", "min"])
        if phase == "open_get":
            headers.append("of which get, median")
    table = []
    for row in rows:
        line = [row["system"]]
        for phase, _ in PHASES:
            line += [_format_ms(row[phase][statistic]) for statistic in ("median_ms", "p90_ms", "min_ms")]
            if phase == "open_get":
                line.append(_format_ms(row["get"]["median_ms"]))
        table.append(line)
    widths = [max(len(header), *(len(line[index]) for line in table)) for index, header in enumerate(headers)]
    print("| " + " | ".join(f"{header:<{width}}" for header, width in zip(headers, widths, strict=True)) + " |")
    print(
        "|"
        + "|".join(
            "-" * (width + 2 if index == 0 else width + 1) + ("" if index == 0 else ":")
            for index, width in enumerate(widths)
        )
        + "|"
    )
    for line in table:
        cells = [f"{line[0]:<{widths[0]}}"] + [
            f"{cell:>{width}}" for cell, width in zip(line[1:], widths[1:], strict=True)
        ]
        print("| " + " | ".join(cells) + " |")
    print()
    print(
        "Milliseconds. import: the library's import (and set-up, for Django); open + first get: opening the "
        "existing cache and reading its one key (the get alone in its own column); process: the whole child "
        "process, start to exit, as the parent "
        f"sees it. `{BASELINE}` is the interpreter alone."
    )
    print()


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="python -m benchmarks cold-open",
        description="Start a fresh Python process per run that imports the library, opens an existing cache and "
        "reads one key: the import time, the open + first get time and the process's wall time, for every "
        "cachekit store and the other systems that keep their data in files.",
    )
    result.add_argument("--quick", action="store_true", help=f"smoke test: {QUICK_RUNS} runs per system")
    result.add_argument("--runs", type=_positive, help=f"processes per system (default {DEFAULT_RUNS})")
    result.add_argument(
        "--systems",
        type=lambda text: [token.strip() for token in text.split(",") if token.strip()],
        help="system names or groups, as for the other benchmarks (default: every system that keeps its data "
        "in files; servers are left out)",
    )
    result.add_argument("--seed", type=int, default=0, help="seed of the order of the runs (default 0)")
    result.add_argument("--dir", help="where to create the caches (default: the system temporary directory)")
    result.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    return result


def _precreate(system: ColdSystem, directory: str) -> None:
    if system.spec is None:
        return
    opened = system.spec.open(directory)
    try:
        opened.populate([KEY], VALUE)
    finally:
        opened.close()


def run(
    args: argparse.Namespace, systems: Sequence[ColdSystem], notes: list[str], argv: Sequence[str]
) -> tuple[dict[str, Any], bool]:
    """Run the benchmark, print its report, and return ``(report, every system worked)``."""
    runs = args.runs or (QUICK_RUNS if args.quick else DEFAULT_RUNS)
    base = tempfile.mkdtemp(prefix="cachekit-cold-open-", dir=args.dir)
    scripts_base = tempfile.mkdtemp(prefix="cachekit-cold-probe-")
    info = machine(base)
    started = time.perf_counter()
    compiled = compile_packages(systems)
    had_flag = "PYTHONDONTWRITEBYTECODE" in os.environ
    bytecode = (
        f"compiled with compileall first ({', '.join(compiled)}); "
        + (
            "PYTHONDONTWRITEBYTECODE is set in this environment and removed from the children's (with it, "
            "a module without a .pyc is compiled from source at every import, which would falsify the import times)"
            if had_flag
            else "PYTHONDONTWRITEBYTECODE is not set"
        )
        + "; the untimed first run of each system writes any .pyc still missing"
    )
    config = {
        "runs": runs,
        "key": KEY,
        "value_size": len(VALUE),
        "systems": [system.name for system in systems],
        "descriptions": {system.name: system.description for system in systems},
        "python": sys.executable,
        "bytecode": bytecode,
        "compiled_packages": compiled,
        "pythondontwritebytecode_removed": had_flag,
        "seed": args.seed,
        "quick": args.quick,
        "command": ["python", "-m", "benchmarks", "cold-open", *argv],
    }
    environment = child_environment()
    errors: list[dict[str, Any]] = []
    scripts: dict[str, str] = {}
    missing_bytecode: dict[str, list[str]] = {}
    samples: dict[str, list[tuple[float, float, float, float, float]]] = {}
    try:
        for system in systems:
            directory = os.path.join(base, re.sub(r"[^A-Za-z0-9_.-]+", "-", system.name))
            scripts_dir = tempfile.mkdtemp(dir=scripts_base)
            path = os.path.join(scripts_dir, "probe.py")
            try:
                _precreate(system, directory)
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(system.script(directory, check_bytecode=True))
                *_, lines = probe(path, environment)  # untimed: writes missing .pyc, warms the page cache
                for line in lines:
                    if line.startswith("missing-bytecode "):
                        count, *names = line.split(" ", 2)[1:]
                        if int(count):
                            missing_bytecode[system.name] = (names[0].split() if names else []) + [f"({count} in all)"]
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(system.script(directory))
            except Exception:
                error = traceback.format_exc(limit=4).rstrip()
                print(f"\n!! {system.name} failed:\n{error}\n", file=sys.stderr)
                errors.append({"system": system.name, "error": error})
                continue
            scripts[system.name] = path
        if missing_bytecode:
            for name, modules in missing_bytecode.items():
                notes.append(f"{name}: modules imported without a .pyc after the first run: {' '.join(modules)}")
        else:
            notes.append("bytecode check: after the untimed first run, every module the scripts import has its .pyc")
        print_header(info, config, notes)
        sys.stdout.flush()
        order = random.Random(args.seed)
        names = [system.name for system in systems if system.name in scripts]
        for _ in range(runs):
            order.shuffle(names)
            for name in list(names):
                try:
                    imported, opened, got, wall, _ = probe(scripts[name], environment)
                except Exception:
                    error = traceback.format_exc(limit=4).rstrip()
                    print(f"\n!! {name} failed:\n{error}\n", file=sys.stderr)
                    errors.append({"system": name, "error": error})
                    names.remove(name)
                    samples.pop(name, None)
                    continue
                samples.setdefault(name, []).append((imported, opened, got, opened + got, wall))
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(scripts_base, ignore_errors=True)
    rows = []
    for system in systems:
        if system.name not in samples:
            continue
        measured = samples[system.name]
        row: dict[str, Any] = {"system": system.name, "runs": len(measured)}
        for index, phase in enumerate(SAMPLED):
            row[phase] = summarize_ms([figures[index] for figures in measured])
        rows.append(row)
    print_results(rows)
    for error in errors:
        print(f"- **{error['system']} FAILED**: {error['error'].splitlines()[-1]}")
    if errors:
        print()
    return finish(info, config, notes, started, errors, results=rows, missing_bytecode=missing_bytecode)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(parser(), argv, lambda args, notes: cold_systems(args.systems, notes), run)
