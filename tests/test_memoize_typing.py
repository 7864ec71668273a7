"""Type checkers see through ``memoize`` of ``Cache``, ``FanoutCache`` and ``Index``.

The wrapped function keeps its signature for mypy, on plain functions and on
methods (bound without ``self``), with ``__cache_key__`` taking the call's
arguments.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROGRAM = """
import cachekit

cache = cachekit.Cache()
fanout = cachekit.FanoutCache(shards=2)
index = cachekit.Index()

class Catalog:
    @cache.memoize()
    def price(self, item: int) -> float:
        return item * 1.5

@fanout.memoize(typed=True)
def lookup(user: int, *, verbose: bool = False) -> str:
    return str(user)

@index.memoize()
def double(number: int) -> int:
    return number * 2

reveal_type(Catalog().price(1))
reveal_type(Catalog().price.__cache_key__(Catalog(), 1))
reveal_type(lookup(1, verbose=True))
reveal_type(lookup.__cache_key__(1))
reveal_type(double(2))
Catalog().price("one")
lookup("one")
double("two")
"""


def test_memoize_keeps_the_signature_for_type_checkers(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    program = tmp_path / "typed_memoize.py"
    program.write_text(textwrap.dedent(PROGRAM))
    completed = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", os.devnull, "--no-error-summary", str(program)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line.split(": ", 1)[1] for line in completed.stdout.splitlines()]
    revealed = [line.split('"')[1].replace("builtins.", "") for line in lines if line.startswith("note: Revealed type")]
    assert revealed == ["float", "tuple[Any, ...]", "str", "tuple[Any, ...]", "int"], completed.stdout
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 3, completed.stdout
    assert all("[arg-type]" in error for error in errors), completed.stdout
