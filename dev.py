#!/usr/bin/env python3
"""Set up the project's virtual environment and run the demo, the tests or the benchmark.

    python3 dev.py demo     # cachekit in action on its default store
    python3 dev.py test     # lint, type-check and the whole test suite with coverage
    python3 dev.py bench    # the latency benchmark (extra arguments are passed on)
    python3 dev.py wheel    # build the wheel and run the tests against it, away from the source tree

Needs only Python 3.10+ (with its standard ``venv`` module) and access to
the package index.  The environment lives in ``.venv`` and is refreshed
whenever ``pyproject.toml`` changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".cachekit-installed"
PACKAGES = ["cachekit", "cachekit_sqlite", "cachekit_lmdb", "cachekit_django"]
COVERAGE_MINIMUM = 95


def run(*command: str | os.PathLike[str], cwd: Path = ROOT, **environment: str) -> None:
    """Run a command (from the project root by default); stop with its exit code if it fails."""
    printable = " ".join(str(part) for part in command)
    print(f"$ {printable}", flush=True)
    result = subprocess.run([str(part) for part in command], cwd=cwd, env={**os.environ, **environment}, check=False)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_environment() -> None:
    """Create ``.venv`` and install the project with its test and run-time extras, once per pyproject.toml version."""
    if sys.version_info < (3, 10):  # noqa: UP036 - dev.py runs under whatever python3 the user has
        sys.exit(f"cachekit needs Python 3.10 or newer; this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"creating the virtual environment in {VENV}", flush=True)
        try:
            venv.create(VENV, with_pip=True)
        except Exception as error:  # any failure here gets the same advice
            sys.exit(f"could not create {VENV} ({error}); on Debian/Ubuntu install the python3-venv package")
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[test,all,bench]")
    STAMP.write_text(wanted)


def demo(arguments: list[str]) -> None:
    run(PYTHON, ROOT / "examples" / "demo.py", *arguments)


def test(arguments: list[str]) -> None:
    run(BIN / "ruff", "check", *PACKAGES, "tests", "benchmarks", "examples", "dev.py")
    run(BIN / "ruff", "format", "--check", *PACKAGES, "tests", "benchmarks", "examples", "dev.py")
    run(BIN / "mypy")
    run(
        PYTHON,
        "-m",
        "pytest",
        "--cov",
        "--cov-report=term",
        f"--cov-fail-under={COVERAGE_MINIMUM}",
        *arguments,
        CACHEKIT_STRICT_PLUGINS="1",
    )
    # pytest-cov's --cov-fail-under printed its verdict but exited 0 in the whole suite's run
    # (seen 2026-11-26, 94.82% < 95%), so the minimum is also checked here, on the data it saved.
    print("total coverage, per cent:", flush=True)
    run(PYTHON, "-m", "coverage", "report", f"--fail-under={COVERAGE_MINIMUM}", "--format=total")


def bench(arguments: list[str]) -> None:
    run(PYTHON, "-m", "benchmarks", *arguments)


#: Tests that need the source tree itself (docs, benchmarks, the project to build), and the
#: reliability suite, which tests behaviour rather than packaging and already ran once.
TREE_TESTS = (
    "test_benchmarks_smoke.py",
    "test_benchmarks_all.py",
    "test_example_plugin.py",
    "test_packaging.py",
    "reliability",
)
WHEEL_PYTEST_INI = """[pytest]
filterwarnings = error
timeout = 120
markers =
    slow: tests that take a few seconds
    reliability: the reliability suite
"""


def wheel(arguments: list[str]) -> None:
    """Build the wheel, install it into a fresh environment, and run the tests there.

    The tests run from a copy outside the project, so they import the
    installed wheel: a module, entry point or data file missing from the
    wheel fails here even when the editable install hides it.
    """
    with tempfile.TemporaryDirectory(prefix="cachekit-wheel-") as scratch:
        work = Path(scratch)
        run(PYTHON, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", work / "dist", ".")
        (built,) = (work / "dist").glob("cachekit-*.whl")
        venv.create(work / "venv", with_pip=True)
        python = work / "venv" / BIN.name / "python"
        run(python, "-m", "pip", "install", "--quiet", f"{built}[test,all]")
        shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__", *TREE_TESTS))
        (work / "pytest.ini").write_text(WHEEL_PYTEST_INI)
        check = (
            "import cachekit, cachekit_sqlite, cachekit_lmdb, cachekit_django, sys; "
            "assert 'site-packages' in cachekit.__file__, cachekit.__file__"
        )
        run(python, "-c", check, cwd=work)
        run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *arguments, cwd=work, CACHEKIT_STRICT_PLUGINS="1")
        # The Django backend supports both LTS lines: the tests above ran on the newest, now Django 4.2.
        run(python, "-m", "pip", "install", "--quiet", "django>=4.2,<5")
        django_tests = ["tests/test_django_backend.py", "tests/test_django_contract.py"]
        run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *django_tests, cwd=work)
        # Without the [lmdb] extra, everything else must keep working.
        run(python, "-m", "pip", "uninstall", "--quiet", "--yes", "lmdb")
        selection = ["tests/test_lmdb_missing.py", "tests/test_conformance.py"]
        selection += ["-k", "test_lmdb_missing or TestSqliteStore"]
        run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection, cwd=work, CACHEKIT_EXPECT_NO_LMDB="1")


COMMANDS = {"demo": demo, "test": test, "bench": bench, "wheel": wheel}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 dev.py {{{'|'.join(COMMANDS)}}} [arguments...]")
    ensure_environment()
    COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
