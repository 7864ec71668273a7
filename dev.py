#!/usr/bin/env python3
"""Set up the project's virtual environment and run the demo, the tests or the benchmark.

    python3 dev.py demo     # cachekit in action on its default store
    python3 dev.py test     # lint, type-check and the whole test suite with coverage
    python3 dev.py bench    # the latency benchmark (extra arguments are passed on)

Needs only Python 3.10+ (with its standard ``venv`` module) and access to
the package index.  The environment lives in ``.venv`` and is refreshed
whenever ``pyproject.toml`` changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".cachekit-installed"
PACKAGES = ["cachekit", "cachekit_sqlite"]
COVERAGE_MINIMUM = 95


def run(*command: str | os.PathLike[str], **environment: str) -> None:
    """Run a command from the project root; stop with its exit code if it fails."""
    printable = " ".join(str(part) for part in command)
    print(f"$ {printable}", flush=True)
    result = subprocess.run([str(part) for part in command], cwd=ROOT, env={**os.environ, **environment}, check=False)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_environment() -> None:
    """Create ``.venv`` and install the project with its test extra, once per pyproject.toml version."""
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
    run(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[test]")
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


def bench(arguments: list[str]) -> None:
    run(PYTHON, "-m", "benchmarks", *arguments)


COMMANDS = {"demo": demo, "test": test, "bench": bench}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 dev.py {{{'|'.join(COMMANDS)}}} [arguments...]")
    ensure_environment()
    COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
