"""``cachekit._entry_points``: the fast entry-point scan agrees with ``importlib.metadata``."""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cachekit import _entry_points
from cachekit._entry_points import FoundEntryPoint, entry_points


def _reference(group: str) -> list[tuple[str, str, str | None]]:
    return sorted(
        (point.name, point.value, point.dist.name if point.dist is not None else None)
        for point in importlib.metadata.entry_points(group=group)
    )


def _scanned(group: str) -> list[tuple[str, str, str | None]]:
    return sorted((point.name, point.value, point.distribution) for point in entry_points(group))


def _distribution(
    directory: Path, name: str, version: str, entry_points_text: str | None, suffix: str = ".dist-info"
) -> Path:
    folder = directory / f"{name.replace('-', '_')}-{version}{suffix}"
    folder.mkdir(parents=True)
    header = "METADATA" if suffix == ".dist-info" else "PKG-INFO"
    (folder / header).write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nA description.\n")
    if entry_points_text is not None:
        (folder / "entry_points.txt").write_text(entry_points_text)
    return folder


class TestAgreesWithImportlibMetadata:
    @pytest.mark.parametrize("group", ["cachekit", "console_scripts", "pytest11", "no-such-group"])
    def test_the_installed_groups_match(self, group: str) -> None:
        """For the groups installed here, the scan finds exactly what importlib.metadata finds."""
        assert _scanned(group) == _reference(group)

    def test_cachekit_finds_its_own_stores_with_distribution_and_version(self) -> None:
        """The ``cachekit`` group holds the built-in stores, from the ``cachekit`` distribution."""
        found = {point.name: point for point in entry_points("cachekit")}
        assert found["sqlite"].value == "cachekit_sqlite._plugin"
        assert found["sqlite"].distribution == "cachekit"
        assert found["sqlite"].version == importlib.metadata.version("cachekit")

    def test_a_made_up_site_directory(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Sections, comments, blank lines, egg-info and first-on-path-wins all follow importlib.metadata."""
        first, second = tmp_path / "first", tmp_path / "second"
        _distribution(
            first,
            "demo-plugin",
            "1.0",
            "# a comment\n[other]\nx = no.such:thing\n\n[demo.group]\n  # an indented comment\n"
            "alpha = demo_alpha:Plugin\nbeta=demo_beta\n",
        )
        _distribution(second, "demo-plugin", "0.9", "[demo.group]\nshadowed = demo_old\n")  # shadowed by first
        _distribution(second, "other_thing", "2.0", "[demo.group]\ngamma = demo_gamma:make [extra]\n", ".egg-info")
        _distribution(second, "no-entry-points", "1.0", None)
        (second / "stray.egg-info").write_text("Name: stray\n")  # a PKG-INFO file, not a directory
        monkeypatch.setattr(sys, "path", [str(first), str(second), str(tmp_path / "missing")])
        assert _scanned("demo.group") == _reference("demo.group")
        found = {point.name: point for point in entry_points("demo.group")}
        assert set(found) == {"alpha", "beta", "gamma"}
        assert found["alpha"] == FoundEntryPoint("alpha", "demo_alpha:Plugin", "demo-plugin", "1.0")
        assert found["gamma"].distribution == "other_thing"


class TestFallback:
    def test_a_zip_file_on_sys_path_uses_importlib_metadata(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Distributions inside a zip file are found, through importlib.metadata."""
        archive = tmp_path / "plugins.zip"
        with zipfile.ZipFile(archive, "w") as bundle:
            bundle.writestr("zipped-1.0.dist-info/METADATA", "Name: zipped\nVersion: 1.0\n\n")
            bundle.writestr("zipped-1.0.dist-info/entry_points.txt", "[zip.group]\ninside = zipped_module\n")
        monkeypatch.setattr(sys, "path", [str(archive)])
        assert [(point.name, point.value, point.distribution) for point in entry_points("zip.group")] == [
            ("inside", "zipped_module", "zipped")
        ]

    def test_an_import_hook_with_distributions_uses_importlib_metadata(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A meta-path finder that provides distributions of its own is honoured."""
        calls: list[str] = []

        class Finder:
            @staticmethod
            def find_spec(*args: Any) -> None:
                return None

            @staticmethod
            def find_distributions(*args: Any) -> list[Any]:
                calls.append("asked")
                return []

        monkeypatch.setattr(sys, "meta_path", [Finder, *sys.meta_path])
        assert _scanned("cachekit") == _reference("cachekit")
        assert calls  # importlib.metadata asked the hook

    def test_only_the_standard_path_finder_means_a_plain_scan(self) -> None:
        """With the standard import machinery, no fallback is needed."""
        assert importlib.machinery.PathFinder in sys.meta_path
        assert _entry_points._plain_path_directories() is not None


class TestLoad:
    def test_load_imports_module_and_attribute(self) -> None:
        """``module:attribute`` loads the attribute; a bare module loads the module; extras are ignored."""
        assert FoundEntryPoint("x", "os.path:join", None, None).load() is os.path.join
        assert FoundEntryPoint("x", "json", None, None).load() is json
        assert FoundEntryPoint("x", "os:path.join [fast]", None, None).load() is os.path.join


def test_opening_a_cache_does_not_import_importlib_metadata(tmp_path: Path) -> None:
    """The first open in a fresh process finds the stores without importing importlib.metadata."""
    code = (
        "import sys, cachekit; "
        f"cache = cachekit.Cache({str(tmp_path / 'cache')!r}); cache.set('k', 1); assert cache.get('k') == 1; "
        "print('importlib.metadata' in sys.modules)"
    )
    environment = {name: value for name, value in os.environ.items() if not name.startswith("COV_")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, env=environment
    )
    assert result.stdout.strip() == "False"
