"""Without the ``lmdb`` package (the ``[lmdb]`` extra), cachekit works and ``lmdb://`` says what to install.

Where ``lmdb`` is installed, the script runs in a subprocess that makes
``import lmdb`` fail.  ``python3 dev.py wheel`` also runs this file in an
environment where ``lmdb`` was uninstalled, with ``CACHEKIT_EXPECT_NO_LMDB=1``,
so the real absence is tested too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = """
import json, os, sys
if HIDE:
    sys.modules["lmdb"] = None  # makes `import lmdb` raise ImportError
import cachekit, cachekit.plugins

base = sys.argv[1]
report = {"stores": cachekit.plugins.names("store")}
try:
    cachekit.open("lmdb://" + os.path.join(base, "lmdb"))
except cachekit.CachekitError as error:
    report["error"] = [type(error).__name__, str(error)]
report["lmdb_directory_created"] = os.path.exists(os.path.join(base, "lmdb"))
with cachekit.open(os.path.join(base, "default")) as cache:
    cache.set("key", [1, 2, 3])
    report["default_store"] = cache.store_name
    report["value"] = cache.get("key")
with cachekit.Cache(os.path.join(base, "sqlite"), store="sqlite") as cache:
    report["sqlite"] = cache.add("other", "value") and cache["other"]
report["lmdb_imported"] = "cachekit_lmdb._store" in sys.modules and sys.modules["cachekit_lmdb._store"] is not None
print(json.dumps(report))
"""


def _lmdb_installed() -> bool:
    try:
        return importlib.util.find_spec("lmdb") is not None
    except ValueError:  # lmdb already imported without a spec
        return True


def test_everything_but_lmdb_works_without_the_lmdb_package(tmp_path: Path) -> None:
    """Listing stores, the default store and the SQLite store work; opening lmdb:// names the extra to install."""
    installed = _lmdb_installed()
    if os.environ.get("CACHEKIT_EXPECT_NO_LMDB"):
        assert not installed, "this run is meant to have lmdb uninstalled"
    script = f"HIDE = {installed!r}\n" + textwrap.dedent(SCRIPT)
    environment = {key: value for key, value in os.environ.items() if key != "CACHEKIT_DEFAULT_STORE"}
    completed = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["stores"] == ["lmdb", "sqlite"]
    kind, message = report["error"]
    assert kind == "PluginError"
    assert 'pip install "cachekit[lmdb]"' in message
    assert "'lmdb'" in message
    assert report["lmdb_directory_created"] is False
    assert (report["default_store"], report["value"]) == ("sqlite", [1, 2, 3])
    assert report["sqlite"] == "value"
    assert report["lmdb_imported"] is False


@pytest.mark.skipif(not _lmdb_installed(), reason="needs lmdb installed, to compare with")
def test_with_lmdb_installed_the_same_url_opens(tmp_path: Path) -> None:
    """The control: with lmdb importable, the URL of the test above opens an LMDB cache."""
    import cachekit

    with cachekit.open(f"lmdb://{tmp_path}/lmdb") as cache:
        cache.set("key", "value")
        assert (cache.store_name, cache["key"]) == ("lmdb", "value")
