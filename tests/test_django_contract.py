"""Django's own cache-backend tests pass against ``cachekit_django.CachekitCache`` on each store.

``tests/django_contract/run.py`` downloads the source distribution of the
installed Django version (its test suite is only published there), and runs
Django's ``BaseCacheTests`` and its cache middleware, ``cache_page`` and
``django.utils.cache`` tests with Django's own runner, on the store given.
The first run downloads; later runs reuse ``.venv/django-src/``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent / "django_contract" / "run.py"
BACKEND = "cachekit_django.CachekitCache"
TIMEOUT = 600
#: Each store runs 111 tests on Django 5.2 and 101 on Django 4.2 (of which 8 check the harness).
MINIMUM_TESTS = 90
STORE_NAMES = {"sqlite": "SQLite", "lmdb": "LMDB"}
#: The test classes that run for each store: Django's, with "Cachekit<store>" before their names.
CLASSES = (
    "CacheTests",
    "CacheUtils",
    "PrefixedCacheUtils",
    "CacheHEADTest",
    "CacheI18nTest",
    "PrefixedCacheI18nTest",
    "CacheMiddlewareTest",
    "TestWithTemplateResponse",
)


def _django_missing() -> bool:
    try:
        return importlib.util.find_spec("django") is None
    except ValueError:  # imported without a spec
        return False


def _tail(output: str, lines: int = 80) -> str:
    return "\n".join(output.splitlines()[-lines:])


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 60)
@pytest.mark.skipif(_django_missing(), reason="Django is not installed (the [django] extra)")
@pytest.mark.parametrize("store", ["sqlite", "lmdb"])
def test_django_cache_tests_pass(store: str) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("CACHEKIT_CONTRACT_")}
    command = [sys.executable, str(RUN), "--store", store, "--backend", BACKEND]
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT, env=environment, check=False
        )
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout or ""
        output = output if isinstance(output, str) else output.decode(errors="replace")
        pytest.fail(f"Django's cache tests on {store} took over {TIMEOUT} s:\n{_tail(output)}")
    output = completed.stdout + completed.stderr
    report = f"run.py exited {completed.returncode}; the end of its output:\n{_tail(output)}"
    summaries = re.findall(r"^django-contract summary: (.*)$", completed.stdout, flags=re.MULTILINE)
    assert summaries, report
    counts = dict(re.findall(r"(\w+)=(\S+)", summaries[-1]))
    assert (counts["stores"], counts["backend"]) == (store, BACKEND), report
    assert (counts["failures"], counts["errors"]) == ("0", "0"), report
    # Django's cache tests skip only where a backend lacks a feature (culling).
    assert (counts["skipped"], counts["unexpected_successes"]) == ("0", "0"), report
    assert completed.returncode == 0, report
    assert int(counts["ran"]) >= MINIMUM_TESTS, report
    for name in CLASSES:
        test_id = re.compile(rf"\(cache\.cachekit_contract\.tests\.Cachekit{STORE_NAMES[store]}{name}[.)]")
        assert test_id.search(output), f"no test of {name} ran on {store}\n{report}"
