"""``python -m benchmarks all --quick``, and the Zipf benchmark's trace and exact simulations (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if not (ROOT / "benchmarks" / "__main__.py").exists():  # e.g. the tests of the built wheel, away from the tree
    pytest.skip("the benchmarks live in the source tree", allow_module_level=True)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import zipf  # noqa: E402 - after the source-tree check

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TOP_LEVEL = {
    "generated_at",
    "machine",
    "disk",
    "config",
    "latency",
    "mixed",
    "zipf",
    "cold_open",
    "targets",
    "plots",
    "exit_codes",
    "errors",
    "notes",
    "elapsed_seconds",
}
VERDICTS = {"met", "missed", "not measured"}


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


# -- the whole quick run -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("benchmarks-all")
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "all", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    return completed, out


@pytest.mark.slow
@pytest.mark.timeout(300)  # about 30 s on a quiet 2-CPU machine; the margin is for a busy one
def test_quick_run_writes_every_file(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    completed, out = quick_run
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(results) >= TOP_LEVEL
    assert results["exit_codes"] == {"latency": 0, "mixed": 0, "zipf": 0, "cold-open": 0}
    assert results["config"]["quick"] is True
    machine = results["machine"]
    assert _positive(machine["cpu_count"])
    assert {"cachekit", "diskcache"} <= set(machine["packages"])
    assert "sqlite" in machine["stores"]

    markdown = (out / "results.md").read_text(encoding="utf-8")
    assert "## Summary" in markdown
    assert "Targets" in markdown
    assert ">>>" not in markdown  # docs/**/*.md are collected as doctests

    assert results["plots"], results["notes"]
    for name in results["plots"]:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
        assert f"]({name})" in markdown


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_run_figures_are_positive(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    completed, out = quick_run
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))

    latency = results["latency"]["results"]
    assert {("cachekit:sqlite", "get-hit"), ("cachekit:sqlite", "set")} <= {
        (row["system"], row["operation"]) for row in latency
    }
    for row in latency:
        for statistic in ("median_us", "p90_us", "p99_us", "max_us"):
            assert _positive(row[statistic]), (statistic, row)

    throughput = results["mixed"]["throughput"]
    assert {row["processes"] for row in throughput} == {1, 2, 4, 8}
    assert all(_positive(row["ops_per_second"]) for row in throughput)

    zipf_report = results["zipf"]
    assert {row["policy"] for row in zipf_report["simulations"]} == set(zipf.POLICIES)
    systems = {(row["system"], row["policy"]) for row in zipf_report["results"]}
    assert {("cachekit:sqlite", policy) for policy in zipf.POLICIES} <= systems
    for row in zipf_report["results"]:
        assert 0 < row["hit_ratio"] <= 1, row
        assert 0 < row["exact_hit_ratio"] <= 1, row
        assert _positive(row["ops_per_second"]), row
        assert row["hits"] + row["misses"] == zipf_report["config"]["gets"]

    cold = {row["system"]: row for row in results["cold_open"]["results"]}
    assert "cachekit:sqlite" in cold
    for name, row in cold.items():
        assert row["runs"] > 0
        assert _positive(row["process"]["median_ms"]), name
        if name.startswith("cachekit:"):
            for phase in ("import", "open_get"):
                for statistic in ("median_ms", "p90_ms", "min_ms"):
                    assert _positive(row[phase][statistic]), (name, phase, statistic)

    assert results["targets"]
    for target in results["targets"]:
        assert target["verdict"] in VERDICTS, target
        if target["verdict"] != "not measured":
            assert _positive(target["ratio"]), target


# -- the Zipf trace -------------------------------------------------------------------------------------


def test_zipf_trace_is_deterministic_for_a_seed() -> None:
    first = zipf.zipf_trace(100, 5_000, 1.0, seed=3)
    assert first == zipf.zipf_trace(100, 5_000, 1.0, seed=3)
    assert first != zipf.zipf_trace(100, 5_000, 1.0, seed=4)
    assert len(first) == 5_000
    assert all(0 <= index < 100 for index in first)


def test_zipf_trace_is_skewed_towards_key_0() -> None:
    counts = Counter(zipf.zipf_trace(100, 20_000, 1.0, seed=0))
    (most, _), *_ = counts.most_common(1)
    assert most == 0
    assert counts[0] > counts[1] > counts[9] > counts[99]
    harmonic = sum(1 / rank for rank in range(1, 101))
    assert abs(counts[0] / 20_000 - 1 / harmonic) < 0.02  # P(key 0) = 1 / H(100), about 0.19
    assert zipf.zipf_trace(100, 1_000, 0.0, seed=0) != [0] * 1_000  # exponent 0: uniform


def test_zipf_cumulative_weights() -> None:
    assert zipf.zipf_cumulative(3, 1.0) == pytest.approx([1.0, 1.5, 1.5 + 1 / 3])
    with pytest.raises(ValueError, match="positive"):
        zipf.zipf_cumulative(0, 1.0)


# -- the exact simulations ----------------------------------------------------------------------------

# Three keys of one byte each, room for two:   0 miss, 1 miss, 0 hit, 2 miss, 1 ?, 0 ?
TRACE = [0, 1, 0, 2, 1, 0]
UNIT_SIZES = [1, 1, 1]


def test_exact_lru_by_hand() -> None:
    # 2 evicts 1 (0 was used after it); 1 then misses and evicts 0; 0 misses and evicts 2.
    result = zipf.simulate_lru(TRACE, UNIT_SIZES, budget=2)
    assert (result.hits, result.misses, result.evictions) == (1, 5, 3)
    assert (result.entries_at_end, result.volume_at_end) == (2, 2)
    assert result.hit_ratio == pytest.approx(1 / 6)


def test_exact_fifo_by_hand() -> None:
    # Hits change nothing: 2 evicts 0 (stored first), 1 hits, 0 misses and evicts 1.
    result = zipf.simulate_fifo(TRACE, UNIT_SIZES, budget=2)
    assert (result.hits, result.misses, result.evictions) == (2, 4, 2)


def test_exact_lfu_by_hand() -> None:
    # 0 has one hit; 2 evicts 1 (no hits, stored before 2); 1 comes back and evicts 2 (no hits, stored first).
    result = zipf.simulate_lfu(TRACE, UNIT_SIZES, budget=2)
    assert (result.hits, result.misses, result.evictions) == (2, 4, 2)
    assert result.entries_at_end == 2


def test_exact_lfu_evicts_the_new_key_when_every_other_was_hit() -> None:
    # As cachekit does: the key just stored has no hits, so it is the first to go.
    result = zipf.simulate_lfu([0, 1, 0, 1, 2, 0, 1, 2], UNIT_SIZES, budget=2)
    assert (result.hits, result.misses, result.evictions) == (4, 4, 2)


def test_exact_simulations_count_bytes() -> None:
    # 3 + 2 fits a budget of 5; the third key (2 bytes) makes 7, and the oldest (3 bytes) goes.
    result = zipf.simulate_lru([0, 1, 2], [3, 2, 2], budget=5)
    assert (result.evictions, result.entries_at_end, result.volume_at_end) == (1, 2, 4)
    # A key larger than the budget is never stored (cachekit refuses it).
    result = zipf.simulate_lru([0, 0], [6], budget=5)
    assert (result.hits, result.misses, result.entries_at_end) == (0, 2, 0)


def test_volume_model_is_cachekits(tmp_path: Path) -> None:
    import cachekit

    key = zipf.key_name(7)
    with cachekit.Cache(str(tmp_path)) as cache:
        cache.set(key, zipf.value_for(key, 100))
        assert cache.volume() == zipf.cachekit_entry_size(key, 100) == 1 + len(key) + 100


@pytest.mark.parametrize("policy", ["least-recently-stored", "least-frequently-used"])
def test_cachekit_matches_the_exact_simulation(tmp_path: Path, policy: str) -> None:
    """FIFO and LFU orders do not depend on the clock: cachekit's hit ratio is exactly the simulation's."""
    config = {"key_count": 200, "value_size": 100}
    trace = zipf.zipf_trace(config["key_count"], 2_000, 1.0, seed=1)
    sizes = [zipf.cachekit_entry_size(zipf.key_name(i), config["value_size"]) for i in range(config["key_count"])]
    config["size_limit"] = sum(sizes) // 10
    (system,) = zipf.select_systems(zipf.zipf_systems(), ["sqlite"])
    row = zipf.run_trace(system, policy, str(tmp_path / "cache"), trace, config)
    exact = zipf.simulate(policy, trace, sizes, config["size_limit"])
    assert (row["hits"], row["misses"]) == (exact.hits, exact.misses)
    assert row["entries_at_end"] == exact.entries_at_end
