"""The worked plugin example in ``docs/examples`` installs and works like any third-party plugin."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLE = DOCS / "examples" / "cachekit-largest-first"

# Runs in a fresh interpreter that sees the example only through its installed
# metadata, so the entry point, not an import from the source tree, must find it.
# Ten small, five medium and four large values are interleaved; together they
# exceed size_limit, and the large ones alone cannot fit beside the small ones.
WORKLOAD = textwrap.dedent(
    """
    import json
    import tempfile

    import cachekit
    import cachekit.plugins

    SIZES = {"small": 100, "medium": 400, "large": 2500}


    def fill(store, policy):
        with cachekit.Cache(tempfile.mkdtemp(), store=store, size_limit=3000, eviction_policy=policy) as cache:
            written = []
            for number in range(10):
                plan = [("small", number)]
                if number % 2 == 0:
                    plan.append(("medium", number // 2))
                if number % 3 == 0:
                    plan.append(("large", number // 3))
                for kind, index in plan:
                    key = f"{kind}-{index}"
                    assert cache.set(key, b"x" * SIZES[kind]), key
                    written.append(key)
            survivors = sorted(cache)
            return {
                "written": written,
                "survivors": survivors,
                "evictions": cache.counters()["evictions"],
                "volume": cache.volume(),
            }


    report = {
        "plugins": [
            {"kind": info.kind, "name": info.name, "distribution": info.distribution}
            for info in cachekit.plugins.installed()
        ],
        "stores": {
            store: {policy: fill(store, policy) for policy in ("largest-first", "least-recently-stored")}
            for store in cachekit.plugins.names("store")
        },
    }
    print(json.dumps(report))
    """
)


def _install_example(tmp_path: Path) -> Path:
    """Build the example with the current interpreter's hatchling and install it into a target directory."""
    if importlib.util.find_spec("hatchling") is None:
        pytest.fail(
            f"hatchling is not importable from {sys.executable}; this test builds the example plugin "
            "offline with --no-build-isolation, so install the build backend first: pip install hatchling",
            pytrace=False,
        )
    # Build from a copy so that nothing the build leaves behind lands in docs/.
    source = tmp_path / "source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist"))
    site = tmp_path / "site"
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-index",
        "--no-deps",
        "--no-build-isolation",
        "--disable-pip-version-check",
        "--no-cache-dir",
        "--target",
        str(site),
        str(source),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=240)
    if result.returncode != 0:
        pytest.fail(
            f"installing the example plugin failed:\n$ {' '.join(command)}\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return site


def _run_workload(site: Path, cwd: Path) -> dict[str, object]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), environment.get("PYTHONPATH")]))
    environment["CACHEKIT_STRICT_PLUGINS"] = "1"  # a plugin that fails to load fails the run
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", WORKLOAD],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=environment,
        timeout=120,
    )
    assert result.returncode == 0, f"the workload failed:\n{result.stdout}\n{result.stderr}"
    report: dict[str, object] = json.loads(result.stdout)
    return report


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp_path = tmp_path_factory.mktemp("example-plugin")
    site = _install_example(tmp_path)
    return _run_workload(site, tmp_path)


@pytest.mark.slow
class TestLargestFirstExample:
    """The example distribution from docs/plugins.md, installed like a third-party package."""

    def test_installed_lists_the_policy_with_its_distribution(self, report: dict[str, object]) -> None:
        """cachekit.plugins.installed() names the policy and the distribution that provides it."""
        plugins = report["plugins"]
        assert isinstance(plugins, list)
        assert {"kind": "eviction_policy", "name": "largest-first", "distribution": "cachekit-largest-first"} in plugins

    def test_largest_entries_are_evicted_first_on_every_store(self, report: dict[str, object]) -> None:
        """With largest-first every large entry is evicted and every small one survives, on every store."""
        stores = report["stores"]
        assert isinstance(stores, dict)
        assert "sqlite" in stores
        for store, runs in stores.items():
            run = runs["largest-first"]
            survivors = set(run["survivors"])
            written = run["written"]
            assert run["evictions"] > 0, store
            assert run["volume"] <= 3000, store
            assert {key for key in written if key.startswith("small-")} <= survivors, (store, survivors)
            assert not {key for key in survivors if key.startswith("large-")}, (store, survivors)
            # Among equal sizes the entry inserted first goes first, so the newest mediums remain.
            mediums = [key for key in written if key.startswith("medium-")]
            surviving_mediums = [key for key in mediums if key in survivors]
            assert surviving_mediums == mediums[len(mediums) - len(surviving_mediums) :], (store, survivors)

    def test_the_default_policy_behaves_differently(self, report: dict[str, object]) -> None:
        """The same workload under least-recently-stored evicts small entries, so the plugin made the difference."""
        stores = report["stores"]
        assert isinstance(stores, dict)
        for store, runs in stores.items():
            run = runs["least-recently-stored"]
            small = {key for key in run["written"] if key.startswith("small-")}
            assert not small <= set(run["survivors"]), (store, run["survivors"])


class TestWalkthrough:
    """docs/plugins.md shows the example's files as they are."""

    @pytest.mark.parametrize("name", ["pyproject.toml", "cachekit_largest_first/__init__.py"])
    def test_plugin_guide_quotes_the_example_verbatim(self, name: str) -> None:
        """Each file of the example appears unchanged in the plugin guide, so the walk-through cannot drift."""
        guide = (DOCS / "plugins.md").read_text(encoding="utf-8")
        assert (EXAMPLE / name).read_text(encoding="utf-8") in guide, f"docs/plugins.md no longer quotes {name}"
