"""Smoke tests of the benchmarks: they run and report figures (no timing assertions)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ("get-hit", "get-miss", "set", "delete")
MIXED_OPERATIONS = ("get", "set", "delete")
STATISTICS = ("median_us", "p90_us", "p99_us", "max_us")


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


HAVE_LMDB = installed("lmdb")
HAVE_DISKCACHE = installed("diskcache")
HAVE_DJANGO = installed("django")
HAVE_SQLITEDICT = installed("sqlitedict")
#: The systems that need no server and can run here, as ``--systems local`` picks them.
LOCAL_SYSTEMS = [  # the stores in alphabetical order, as the plugin registry sorts them
    *(["cachekit:lmdb"] if HAVE_LMDB else []),
    "cachekit:sqlite",
    *(["cachekit-fanout:lmdb"] if HAVE_LMDB else []),
    "cachekit-fanout:sqlite",
    *(["diskcache", "diskcache-fanout"] if HAVE_DISKCACHE else []),
    *(["django-filebased", "django-locmem"] if HAVE_DJANGO else []),
    *(["sqlitedict"] if HAVE_SQLITEDICT else []),
    "dbm",
    "sqlite3-floor",
    *(["lmdb-floor"] if HAVE_LMDB else []),
]
#: Which server systems can run here: the server binary on PATH and the Python client installed.
REDIS_MISSING = (
    "redis-server is not on PATH"
    if shutil.which("redis-server") is None
    else "the redis package (redis-py) is not installed"
    if not installed("redis")
    else ""
)
MEMCACHED_MISSING = (
    "memcached is not on PATH"
    if shutil.which("memcached") is None
    else "pymemcache is not installed"
    if not installed("pymemcache")
    else ""
)
needs_redis = pytest.mark.skipif(bool(REDIS_MISSING), reason=f"needs redis-server and redis-py: {REDIS_MISSING}")
needs_memcached = pytest.mark.skipif(
    bool(MEMCACHED_MISSING), reason=f"needs memcached and pymemcache: {MEMCACHED_MISSING}"
)


def run_benchmark(
    *arguments: str, prelude: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks ARGUMENTS``; with ``prelude``, that code runs first in the same interpreter."""
    command = [sys.executable, "-m", "benchmarks"]
    if prelude is not None:
        runner = "import runpy; runpy.run_module('benchmarks', run_name='__main__', alter_sys=True)"
        command = [sys.executable, "-c", f"{prelude}; {runner}"]
    return subprocess.run(
        [*command, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env=env,
    )


def assert_latency_rows(report: dict[str, Any], systems: list[str]) -> None:
    """Every system has samples of every operation in every workload, with ordered statistics."""
    assert report["errors"] == []
    rows = {(row["system"], row["value_size"], row["key_count"], row["operation"]): row for row in report["results"]}
    for size in report["config"]["sizes"]:
        for count in report["config"]["key_counts"]:
            for system in systems:
                for operation in OPERATIONS:
                    row = rows[(system, size, count, operation)]
                    assert row["samples"] > 0, (system, operation)
                    for statistic in STATISTICS:
                        assert row[statistic] > 0, (system, operation, statistic, row)
                    assert row["median_us"] <= row["p90_us"] <= row["p99_us"] <= row["max_us"]


def assert_mixed_rows(report: dict[str, Any], systems: list[str]) -> None:
    """Every system has samples of every operation at every process count, and a throughput."""
    assert report["errors"] == []
    counts = report["config"]["processes"]
    assert counts
    rows = {(row["system"], row["processes"], row["operation"]): row for row in report["results"]}
    throughputs = {(row["system"], row["processes"]): row for row in report["throughput"]}
    for system in systems:
        for processes in counts:
            for operation in MIXED_OPERATIONS:
                row = rows[(system, processes, operation)]
                assert row["samples"] > 0, (system, processes, operation)
                for statistic in STATISTICS:
                    assert row[statistic] > 0, (system, processes, operation, statistic, row)
                assert row["median_us"] <= row["p90_us"] <= row["p99_us"] <= row["max_us"]
            throughput = throughputs[(system, processes)]
            assert throughput["operations"] == processes * report["config"]["ops_per_process"]
            assert throughput["ops_per_second"] > 0
            assert len(throughput["worker_seconds"]) == processes


def test_quick_run_reports_every_operation_of_the_sqlite_store(tmp_path: Path) -> None:
    output = tmp_path / "latency.json"
    completed = run_benchmark("--quick", "--json", str(output))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["errors"] == []
    rows = {(row["system"], row["operation"]): row for row in report["results"] if row["key_count"] == 1000}
    for operation in OPERATIONS:
        row = rows[("cachekit:sqlite", operation)]
        assert row["samples"] > 0
        for statistic in ("median_us", "p90_us", "p99_us", "max_us"):
            assert row[statistic] > 0, (operation, statistic, row)
        assert row["median_us"] <= row["p90_us"] <= row["p99_us"] <= row["max_us"]
    assert re.search(r"^\| cachekit:sqlite +\| get-hit", completed.stdout, re.MULTILINE)


def test_runs_without_diskcache(tmp_path: Path) -> None:
    output = tmp_path / "latency.json"
    completed = run_benchmark(
        "--quick",
        "--ops",
        "20",
        "--sizes",
        "100",
        "--json",
        str(output),
        prelude="import sys; sys.modules['diskcache'] = None",  # makes `import diskcache` fail
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "diskcache is not installed" in completed.stdout
    report = json.loads(output.read_text(encoding="utf-8"))
    systems = {row["system"] for row in report["results"]}
    assert "diskcache" not in systems
    assert "cachekit:sqlite" in systems


def test_lmdb_floor_reports_every_operation(tmp_path: Path) -> None:
    pytest.importorskip("lmdb")
    output = tmp_path / "latency.json"
    completed = run_benchmark("--quick", "--systems", "sqlite,floor", "--json", str(output))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["errors"] == []
    assert report["config"]["systems"] == ["cachekit:sqlite", "sqlite3-floor", "lmdb-floor"]
    rows = {(row["system"], row["operation"]): row for row in report["results"] if row["key_count"] == 1000}
    for operation in OPERATIONS:
        row = rows[("lmdb-floor", operation)]
        assert row["samples"] > 0
        for statistic in STATISTICS:
            assert row[statistic] > 0, (operation, statistic, row)
    versus = {(ratio["versus"], ratio["operation"]) for ratio in report["ratios"] if ratio["store"] == "sqlite"}
    assert {("lmdb-floor", operation) for operation in OPERATIONS} <= versus
    assert "| lmdb-floor      | get-hit" in completed.stdout


def test_lmdb_floor_is_skipped_without_lmdb(tmp_path: Path) -> None:
    output = tmp_path / "latency.json"
    completed = run_benchmark(
        "latency",  # the explicit name of the default benchmark
        "--quick",
        "--ops",
        "20",
        "--sizes",
        "100",
        "--systems",
        "sqlite,floor",
        "--json",
        str(output),
        prelude="import sys; sys.modules['lmdb'] = None",  # makes `import lmdb` fail
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "lmdb package is not installed" in completed.stdout
    report = json.loads(output.read_text(encoding="utf-8"))
    assert {row["system"] for row in report["results"]} == {"cachekit:sqlite", "sqlite3-floor"}


def test_mixed_quick_run_reports_every_operation_and_a_throughput(tmp_path: Path) -> None:
    output = tmp_path / "mixed.json"
    completed = run_benchmark("mixed", "--quick", "--systems", "sqlite", "--json", str(output))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["errors"] == []
    counts = report["config"]["processes"]
    assert counts
    rows = {(row["system"], row["processes"], row["operation"]): row for row in report["results"]}
    throughputs = {(row["system"], row["processes"]): row for row in report["throughput"]}
    for processes in counts:
        for operation in MIXED_OPERATIONS:
            row = rows[("cachekit:sqlite", processes, operation)]
            assert row["samples"] > 0, (processes, operation)
            for statistic in STATISTICS:
                assert row[statistic] > 0, (processes, operation, statistic, row)
            assert row["median_us"] <= row["p90_us"] <= row["p99_us"] <= row["max_us"]
        throughput = throughputs[("cachekit:sqlite", processes)]
        assert throughput["ops_per_second"] > 0
        assert throughput["operations"] == processes * report["config"]["ops_per_process"]
        assert len(throughput["worker_seconds"]) == processes
    assert "| cachekit:sqlite | get" in completed.stdout


def test_policies_add_a_system_per_store_and_policy(tmp_path: Path) -> None:
    """``--policies`` runs each cachekit store again under each named eviction policy, side by side."""
    output = tmp_path / "latency.json"
    completed = run_benchmark(
        "--quick", "--systems", "sqlite", "--policies", "least-recently-used", "--json", str(output)
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(output.read_text(encoding="utf-8"))
    systems = {row["system"] for row in report["results"]}
    assert systems == {"cachekit:sqlite", "cachekit:sqlite/least-recently-used"}
    hits = [row for row in report["results"] if row["operation"] == "get-hit"]
    assert all(row["samples"] > 0 for row in hits)


def test_django_quick_run_reports_every_operation_of_the_local_backends(tmp_path: Path) -> None:
    """``django --quick --systems local``: every backend that needs no server, at each process count."""
    pytest.importorskip("django")
    output = tmp_path / "django.json"
    completed = run_benchmark("django", "--quick", "--systems", "local", "--json", str(output))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["errors"] == []
    systems = report["config"]["systems"]
    assert {"cachekit:sqlite", "filebased", "locmem"} <= set(systems)
    assert not {"redis", "memcached"} & set(systems)  # they need a server
    counts = report["config"]["processes"]
    assert counts
    rows = {(row["system"], row["processes"], row["operation"]): row for row in report["results"]}
    throughputs = {(row["system"], row["processes"]): row for row in report["throughput"]}
    for system in systems:
        for processes in counts:
            for operation in MIXED_OPERATIONS:
                row = rows[(system, processes, operation)]
                assert row["samples"] > 0, (system, processes, operation)
                for statistic in STATISTICS:
                    assert row[statistic] > 0, (system, processes, operation, statistic, row)
                assert row["median_us"] <= row["p90_us"] <= row["p99_us"] <= row["max_us"]
            throughput = throughputs[(system, processes)]
            assert throughput["operations"] == processes * report["config"]["ops_per_process"]
            assert throughput["ops_per_second"] > 0
    if "diskcache" in systems:  # python-diskcache's DjangoCache: each store's median get is compared with it
        versus = {(ratio["store"], ratio["processes"]) for ratio in report["ratios"] if ratio["versus"] == "diskcache"}
        assert {("sqlite", processes) for processes in counts} <= versus
        assert "- cachekit:sqlite: median get" in completed.stdout
    assert "### get" in completed.stdout
    assert "| cachekit:sqlite |" in completed.stdout
    assert "MAX_ENTRIES" in completed.stdout


def test_collections_quick_run_reports_fanout_and_deque(tmp_path: Path) -> None:
    """``collections --quick`` times FanoutCache and Deque for every store (no timing assertions)."""
    output = tmp_path / "collections.json"
    completed = run_benchmark("collections", "--quick", "--json", str(output))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    rows = json.loads(output.read_text(encoding="utf-8"))["results"]
    seen = {(row["system"], row["operation"]) for row in rows}
    for store in ("sqlite", "lmdb"):
        for operation in ("set", "get"):
            assert (f"cachekit FanoutCache ({store})", operation) in seen
        for operation in ("append", "popleft"):
            assert (f"cachekit Deque ({store})", operation) in seen
    assert all(row["ops_per_second"] > 0 for row in rows)


def test_quick_run_reports_every_system_that_needs_no_server(tmp_path: Path) -> None:
    """``--systems local``: every cachekit store and FanoutCache beside every comparison system without a server."""
    output = tmp_path / "latency.json"
    completed = run_benchmark("--quick", "--ops", "30", "--sizes", "100", "--systems", "local", "--json", str(output))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["config"]["systems"] == LOCAL_SYSTEMS
    assert_latency_rows(report, LOCAL_SYSTEMS)
    for system in LOCAL_SYSTEMS:
        assert report["config"]["descriptions"][system], system
        assert re.search(rf"^\| {re.escape(system)} +\| get-hit", completed.stdout, re.MULTILINE), system
    if HAVE_DISKCACHE:  # each cachekit FanoutCache is compared with python-diskcache's
        versus = {(ratio["system"], ratio["versus"]) for ratio in report["ratios"]}
        assert ("cachekit-fanout:sqlite", "diskcache-fanout") in versus
        assert ("cachekit:sqlite", "diskcache") in versus
    assert "dbm.open(FILE, 'c')" in completed.stdout  # dbm says which backend it is


def test_a_system_is_skipped_above_its_key_limit(tmp_path: Path) -> None:
    """dbm on dbm.dumb and Django's FileBasedCache take minutes with many keys: skipped there, with a note."""
    pytest.importorskip("django")
    output = tmp_path / "latency.json"
    completed = run_benchmark(
        "--ops",
        "10",
        "--sizes",
        "100",
        "--keys",
        "1k,11k",
        "--systems",
        "sqlite3,django-filebased",
        "--json",
        str(output),
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["errors"] == []
    ran = {(row["system"], row["key_count"]) for row in report["results"]}
    assert ("django-filebased", 1_000) in ran
    assert ("django-filebased", 11_000) not in ran
    assert ("sqlite3-floor", 11_000) in ran
    assert [(row["system"], row["key_count"]) for row in report["skipped"]] == [("django-filebased", 11_000)]
    assert "django-filebased skipped with 11,000 keys" in completed.stdout


@pytest.mark.parametrize(
    ("group", "systems"),
    [
        pytest.param("redis", ["redis-tcp", "redis-unix"], marks=needs_redis, id="redis"),
        pytest.param("memcached", ["memcached"], marks=needs_memcached, id="memcached"),
    ],
)
def test_server_systems_start_their_server_and_stop_it(tmp_path: Path, group: str, systems: list[str]) -> None:
    """The benchmark starts the server on a free loopback port (Redis on a unix socket too), then stops it."""
    output = tmp_path / "latency.json"
    completed = run_benchmark("--quick", "--ops", "30", "--sizes", "100", "--systems", group, "--json", str(output))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["config"]["systems"] == systems
    assert_latency_rows(report, systems)
    assert "started by the benchmark" in completed.stdout
    server = report["machine"]["servers"]["redis" if group == "redis" else "memcached"]
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", server["port"]), timeout=1):
        pass  # stopped at the end: nothing listens on its port any more
    if group == "redis":
        assert server["unix_socket"]
        assert not os.path.exists(server["unix_socket"])


def test_server_systems_are_skipped_with_a_note_when_missing(tmp_path: Path) -> None:
    """Without the server binaries (an empty PATH) or the client packages, the run notes it and goes on."""
    output = tmp_path / "latency.json"
    empty = tmp_path / "empty-path"
    empty.mkdir()
    completed = run_benchmark(
        *("--quick", "--ops", "10", "--sizes", "100", "--systems", "servers,sqlite", "--json", str(output)),
        prelude="import sys; sys.modules['redis'] = None",  # makes `import redis` fail
        env={**os.environ, "PATH": str(empty)},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "redis is not installed" in completed.stdout
    assert "redis-tcp, redis-unix skipped" in completed.stdout
    if installed("pymemcache"):
        assert "memcached is not installed" in completed.stdout
    assert "memcached skipped" in completed.stdout
    report = json.loads(output.read_text(encoding="utf-8"))
    assert {row["system"] for row in report["results"]} == {"cachekit:sqlite"}


def test_mixed_runs_fanout_and_filebased_and_leaves_out_single_process_systems(tmp_path: Path) -> None:
    """Several processes share each FanoutCache and FileBasedCache; LocMemCache, sqlitedict and dbm are left out."""
    output = tmp_path / "mixed.json"
    completed = run_benchmark("mixed", "--quick", "--systems", "fanout,django,sqlitedict,dbm", "--json", str(output))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(output.read_text(encoding="utf-8"))
    systems = [name for name in LOCAL_SYSTEMS if "fanout" in name or name == "django-filebased"]
    assert report["config"]["systems"] == systems
    assert_mixed_rows(report, systems)
    assert "dbm left out: " in completed.stdout
    if HAVE_DJANGO:
        assert "django-locmem left out: " in completed.stdout
    if HAVE_SQLITEDICT:
        assert "sqlitedict left out: " in completed.stdout
    if HAVE_DISKCACHE:
        versus = {(ratio["system"], ratio["versus"]) for ratio in report["ratios"]}
        assert ("cachekit-fanout:sqlite", "diskcache-fanout") in versus


@needs_redis
@needs_memcached
def test_mixed_runs_the_server_systems(tmp_path: Path) -> None:
    """The servers are started once for the run; every worker process reaches them."""
    output = tmp_path / "mixed.json"
    completed = run_benchmark("mixed", "--quick", "--systems", "servers", "--json", str(output))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(output.read_text(encoding="utf-8"))
    systems = ["redis-tcp", "redis-unix", "memcached"]
    assert report["config"]["systems"] == systems
    assert_mixed_rows(report, systems)
    assert set(report["machine"]["servers"]) == {"redis", "memcached"}


def test_every_local_system_keeps_the_api_other_benchmarks_rely_on(tmp_path: Path) -> None:
    """``_systems.available_specs`` and ``servers_for``: get, set and delete mean the same on every system."""
    script = textwrap.dedent(
        """
        import json, os, sys
        from benchmarks import _systems

        specs, notes = _systems.available_specs(["local"])
        with _systems.servers_for(specs, notes) as started:
            checked = []
            for spec in started.specs:
                directory = os.path.join(sys.argv[1], spec.name.replace(":", "-"))
                system = spec.open(directory)
                try:
                    system.populate(["a", "b"], b"old")
                    assert system.get("a") == b"old", spec.name
                    assert system.get("absent") is None, spec.name
                    assert system.set("a", b"new") is True, spec.name
                    assert system.get("a") == b"new", spec.name
                    assert system.delete("b") is True, spec.name
                    assert system.delete("b") is False, spec.name
                    assert system.get("b") is None, spec.name
                finally:
                    system.close()
                if spec.multiprocess:  # a second opening of the same directory is the same cache
                    again = spec.open(directory)
                    try:
                        assert again.get("a") == b"new", spec.name
                    finally:
                        again.close()
                checked.append(spec.name)
        try:
            _systems.available_specs(["no-such-system"])
        except ValueError:
            pass
        else:
            raise AssertionError("an unknown name must be refused")
        print(json.dumps(checked))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert json.loads(completed.stdout.splitlines()[-1]) == LOCAL_SYSTEMS
