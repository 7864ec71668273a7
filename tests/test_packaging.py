"""The built wheel: both packages, their typing markers, the entry point, the metadata."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """Build the project's wheel offline, with the build backend of the test environment."""
    output = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", output, ROOT],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (built,) = output.glob("cachekit-*.whl")
    return zipfile.ZipFile(built)


@pytest.mark.slow
class TestWheel:
    def test_ships_both_packages_with_typing_markers(self, wheel: zipfile.ZipFile) -> None:
        """The wheel holds cachekit and cachekit_sqlite, each with its py.typed marker, and no tests."""
        names = set(wheel.namelist())
        for package in ("cachekit", "cachekit_sqlite"):
            assert f"{package}/__init__.py" in names
            assert f"{package}/py.typed" in names
        assert "cachekit/testing/__init__.py" in names
        assert not any(name.startswith(("tests/", "benchmarks/", "docs/")) for name in names)

    def test_declares_the_sqlite_entry_point(self, wheel: zipfile.ZipFile) -> None:
        """The SQLite store is announced in the cachekit entry-point group, like any plugin."""
        (entry_points,) = [name for name in wheel.namelist() if name.endswith(".dist-info/entry_points.txt")]
        text = wheel.read(entry_points).decode()
        assert "[cachekit]" in text
        assert "sqlite = cachekit_sqlite._plugin" in text

    def test_metadata_names_dependencies_and_extras(self, wheel: zipfile.ZipFile) -> None:
        """Core dependencies are pluggy and msgpack; the test and all extras exist; Python 3.10+."""
        (metadata,) = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
        text = wheel.read(metadata).decode()
        assert "Requires-Python: >=3.10" in text
        assert "Requires-Dist: pluggy" in text
        assert "Requires-Dist: msgpack" in text
        assert "Provides-Extra: test" in text
        assert "Provides-Extra: all" in text
