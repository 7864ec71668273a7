"""Smoke test of the latency benchmark: it runs and reports figures (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ("get-hit", "get-miss", "set", "delete")


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
