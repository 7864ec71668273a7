"""The recipes (python-diskcache's ``diskcache.recipes``): what does not depend on a store.

Their behaviour on each store, in one process and across processes, is in the
conformance suite: ``cachekit.testing.RecipesContract``, run by
``test_conformance.py``.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cachekit


def test_recipes_are_exported_with_diskcache_names() -> None:
    """``cachekit`` exports the recipes under python-diskcache's names and signatures."""
    import diskcache

    for name in ("Averager", "Lock", "RLock", "BoundedSemaphore", "throttle", "barrier", "memoize_stampede"):
        assert name in cachekit.__all__
        ours = inspect.signature(getattr(cachekit, name))
        theirs = inspect.signature(getattr(diskcache, name))
        assert list(ours.parameters) == list(theirs.parameters), name
        assert [parameter.default for parameter in ours.parameters.values()] == [
            parameter.default for parameter in theirs.parameters.values()
        ], name


def test_type_checkers_see_the_decorated_signatures(tmp_path: Path) -> None:
    """mypy sees through ``memoize_stampede``, ``throttle`` and ``barrier``: the wrapped signatures,
    on functions and methods alike, and ``__cache_key__``."""
    pytest.importorskip("mypy")
    program = tmp_path / "typed_use.py"
    program.write_text(
        textwrap.dedent(
            """
            import cachekit

            cache = cachekit.Cache()

            class Catalog:
                @cachekit.memoize_stampede(cache, 60)
                def price(self, item: int) -> float:
                    return item * 1.5

                @cachekit.barrier(cache, cachekit.Lock)
                def restock(self, item: int) -> None: ...

            @cachekit.memoize_stampede(cache, 60, ignore=("verbose",))
            def lookup(user: int, *, verbose: bool = False) -> str:
                return str(user)

            @cachekit.throttle(cache, 1, 1)
            def ping(host: str) -> bool:
                return True

            reveal_type(Catalog().price(1))
            reveal_type(lookup(1, verbose=True))
            reveal_type(lookup.__cache_key__(1))
            reveal_type(Catalog().price.__cache_key__(Catalog(), 1))
            reveal_type(ping("localhost"))
            reveal_type(cachekit.Averager(cache, "mean").get())
            Catalog().price("one")
            Catalog().restock("one")
            lookup("one")
            ping(1)
            """
        )
    )
    completed = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", os.devnull, "--no-error-summary", str(program)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line.split(": ", 1)[1] for line in completed.stdout.splitlines()]
    # Older mypy versions spell types "builtins.float" and "Union[float, None]".
    revealed = [
        line.split('"')[1].replace("builtins.", "").replace("Union[float, None]", "float | None")
        for line in lines
        if line.startswith("note: Revealed type")
    ]
    assert revealed == ["float", "str", "tuple[Any, ...]", "tuple[Any, ...]", "bool", "float | None"], completed.stdout
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 4, completed.stdout
    assert all("[arg-type]" in error for error in errors), completed.stdout
