#!/usr/bin/env python3
"""Run Django's own cache-backend tests against ``cachekit_django.CachekitCache``.

    .venv/bin/python tests/django_contract/run.py                  # both stores
    .venv/bin/python tests/django_contract/run.py --store lmdb     # one store
    .venv/bin/python tests/django_contract/run.py -k test_touch    # other options go to runtests.py

Django does not install its test suite; it publishes it in its source
distribution.  This script:

1. reads the installed Django's version;
2. downloads Django's source distribution of exactly that version with pip
   (``--no-binary :all:``) into the cache folder (``--cache``, by default
   ``.venv/django-src/`` of this repository) and extracts it there, once;
3. copies the test package ``cachekit_contract/`` beside this script into the
   ``cache`` test app of that suite (the app whose ``tests.py`` holds
   ``BaseCacheTests`` and the middleware tests, and whose models those tests
   need: Django's runner installs the app that a label starts with);
4. runs Django's runner, ``runtests.py``, on that package with the installed
   Django and this interpreter's packages, telling the package through
   environment variables which stores and which backend to test;
5. prints a summary line with the counts and exits with the runner's status.

``--backend django.core.cache.backends.filebased.FileBasedCache`` runs the same
tests against one of Django's own backends: a check of the harness itself.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
APP = HERE / "cachekit_contract"
#: Where the package goes inside Django's ``tests/`` folder, and the label that runs it.
APP_DESTINATION = Path("cache") / "cachekit_contract"
LABEL = "cache.cachekit_contract.tests"
STORES = ("sqlite", "lmdb")
DEFAULT_BACKEND = "cachekit_django.CachekitCache"
SUMMARY_PREFIX = "django-contract summary:"


def parse_arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description="Run Django's generic cache-backend tests against cachekit's Django backend.",
        epilog="Options not listed here (-k PATTERN, --failfast, ...) are passed on to Django's runtests.py.",
    )
    parser.add_argument("--store", choices=(*STORES, "all"), default="all", help="the cachekit store to test (all)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=ROOT / ".venv" / "django-src",
        help="folder for Django's source distribution, downloaded and extracted once (.venv/django-src)",
    )
    parser.add_argument(
        "--backend",
        default=os.environ.get("CACHEKIT_CONTRACT_BACKEND", DEFAULT_BACKEND),
        help=f"the cache backend under test ($CACHEKIT_CONTRACT_BACKEND, else {DEFAULT_BACKEND})",
    )
    return parser.parse_known_args(argv)


def django_version() -> str:
    try:
        import django
    except ImportError:
        sys.exit("Django is not installed in this environment: pip install 'django>=4.2'")
    return str(django.__version__)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` so that concurrent runs download and extract it once."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def find_archive(folder: Path, version: str) -> Path | None:
    # Older source distributions are named Django-X.Y.tar.gz, newer ones django-X.Y.tar.gz.
    wanted = f"django-{version}.tar.gz"
    for candidate in folder.glob("*.tar.gz"):
        if candidate.name.lower() == wanted:
            return candidate
    return None


def download(folder: Path, version: str) -> Path:
    """Django's source distribution of ``version`` in ``folder``, downloaded by pip unless it is already there."""
    archive = find_archive(folder, version)
    if archive is not None:
        return archive
    command = [sys.executable, "-m", "pip", "download", f"django=={version}", "--no-deps", "--no-binary", ":all:"]
    command += ["-d", str(folder)]
    print("$ " + " ".join(command), flush=True)
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    archive = find_archive(folder, version)
    if completed.returncode != 0 or archive is None:
        sys.stderr.write(completed.stdout + completed.stderr)
        sys.exit(f"could not download the source distribution of Django {version} (pip exited {completed.returncode})")
    return archive


def extract(archive: Path, destination: Path) -> None:
    """Extract ``archive``, whose members sit in one top-level folder, as ``destination``; all or nothing."""
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".extracting-") as scratch:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(scratch, filter="data")
            else:  # Python before 3.10.12 / 3.11.4: check the paths ourselves
                base = Path(scratch).resolve()
                for member in tar.getmembers():
                    target = (base / member.name).resolve()
                    if base not in target.parents or not (member.isfile() or member.isdir()):
                        sys.exit(f"refusing to extract {member.name!r} from {archive}")
                tar.extractall(scratch)  # every member was checked above
        (top,) = Path(scratch).iterdir()
        top.rename(destination)


def prepare_suite(cache: Path, version: str) -> Path:
    """Django's ``tests/`` folder of ``version``, with our test package copied into its ``cache`` app."""
    cache = cache.resolve()
    with locked(cache):
        source = cache / f"django-{version}"
        if not (source / "tests" / "runtests.py").exists():
            if source.exists():
                shutil.rmtree(source)  # left half-made by an older run
            extract(download(cache, version), source)
        tests = source / "tests"
        if not (tests / "cache" / "tests.py").exists():
            sys.exit(f"{tests} has no cache/tests.py: this Django version's test suite is laid out differently")
        copy_app(APP, tests / APP_DESTINATION)
    return tests


def copy_app(source: Path, destination: Path) -> None:
    """Make ``destination`` hold the ``.py`` files of ``source``, rewriting only files that changed."""
    destination.mkdir(exist_ok=True)
    wanted = {path.name for path in source.glob("*.py")}
    for stale in destination.glob("*.py"):
        if stale.name not in wanted:
            stale.unlink()
    for name in sorted(wanted):
        target = destination / name
        if not target.exists() or not filecmp.cmp(source / name, target, shallow=False):
            shutil.copyfile(source / name, target)


def run_suite(tests: Path, stores: tuple[str, ...], backend: str, extra: list[str]) -> tuple[int, str]:
    """Run Django's runner on our package; echo its output as it comes, and return its status and output."""
    command = [sys.executable, "runtests.py", LABEL, "--settings=test_sqlite", "--parallel=1", "--noinput", "-v", "2"]
    command += extra
    environment = {
        **os.environ,
        "CACHEKIT_CONTRACT_STORES": ",".join(stores),
        "CACHEKIT_CONTRACT_BACKEND": backend,
        "PYTHONUNBUFFERED": "1",
    }
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    print(f"$ cd {tests} && {' '.join(command)}", flush=True)
    lines = []
    with subprocess.Popen(
        command, cwd=tests, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            lines.append(line)
    sys.stdout.flush()
    return process.returncode, "".join(lines)


COUNTS = ("failures", "errors", "skipped", "expected failures", "unexpected successes")


def summarize(output: str) -> dict[str, int]:
    """The counts in unittest's closing lines ("Ran N tests", "OK (skipped=S)", "FAILED (failures=F, ...)")."""
    counts = dict.fromkeys(("ran", *COUNTS), 0)
    ran = re.findall(r"^Ran (\d+) tests? in ", output, flags=re.MULTILINE)
    if ran:
        counts["ran"] = int(ran[-1])
    outcome = re.findall(r"^(?:OK|FAILED)(?: \((.*)\))?$", output, flags=re.MULTILINE)
    if outcome:
        for part in filter(None, outcome[-1].split(", ")):
            name, _, number = part.partition("=")
            if name in counts:
                counts[name] = int(number)
    return counts


def failing_tests(output: str) -> list[str]:
    """The headings of unittest's failure reports: "FAIL: test_x (module.Class.test_x)" and the like."""
    return re.findall(r"^((?:FAIL|ERROR|UNEXPECTED SUCCESS): .*)$", output, flags=re.MULTILINE)


def main(argv: list[str]) -> int:
    arguments, extra = parse_arguments(argv)
    version = django_version()
    stores = STORES if arguments.store == "all" else (arguments.store,)
    tests = prepare_suite(arguments.cache, version)
    status, output = run_suite(tests, stores, arguments.backend, extra)
    counts = summarize(output)
    failures = failing_tests(output)
    if failures:
        print("django-contract failing tests:")
        for heading in failures:
            print(f"  {heading}")
    fields = " ".join(f"{name.replace(' ', '_')}={number}" for name, number in counts.items())
    where = f"django={version} stores={','.join(stores)} backend={arguments.backend}"
    print(f"{SUMMARY_PREFIX} {fields} status={status} {where}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
