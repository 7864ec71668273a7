"""Smoke tests of the benchmarks: they run and report figures (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ("get-hit", "get-miss", "set", "delete")
MIXED_OPERATIONS = ("get", "set", "delete")
STATISTICS = ("median_us", "p90_us", "p99_us", "max_us")


def run_benchmark(*arguments: str, prelude: str | None = None) -> subprocess.CompletedProcess[str]:
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
    )


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
    assert "| cachekit:sqlite | get-hit" in completed.stdout


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
