"""How ``memoize`` and ``memoize_stampede`` build keys: ``ignore`` by position and by name alike.

Key building does not depend on the store, so these run on the default one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cachekit
from cachekit._memoize import ignored_arguments


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[cachekit.Cache]:
    with cachekit.Cache(tmp_path / "cache") as opened:
        yield opened


def _decorators(cache: cachekit.Cache) -> dict[str, Callable[..., Any]]:
    return {
        "memoize": cache.memoize,
        "memoize_stampede": lambda **options: cachekit.memoize_stampede(cache, 60, **options),
    }


@pytest.fixture(params=["memoize", "memoize_stampede"])
def decorate(request: pytest.FixtureRequest, cache: cachekit.Cache) -> Callable[..., Any]:
    return _decorators(cache)[request.param]


class TestIgnore:
    def test_a_name_ignores_the_argument_passed_by_position(self, decorate: Callable[..., Any]) -> None:
        """``ignore={"verbose"}`` leaves ``verbose`` out of the key when it is passed by position too."""
        calls: list[tuple[int, bool]] = []

        @decorate(ignore={"verbose"})
        def compute(number: int, verbose: bool = False) -> int:
            calls.append((number, verbose))
            return number * 2

        assert compute(3, True) == 6
        assert compute(3, False) == 6
        assert compute(3, verbose=True) == 6
        assert compute(3) == 6
        assert calls == [(3, True)]

    def test_a_position_ignores_the_argument_passed_by_keyword(self, decorate: Callable[..., Any]) -> None:
        """``ignore={1}`` leaves the second parameter out of the key when it is passed by keyword too."""
        calls: list[tuple[int, str]] = []

        @decorate(ignore={1})
        def compute(number: int, label: str = "") -> int:
            calls.append((number, label))
            return number + 1

        assert compute(1, label="a") == 2
        assert compute(1, "b") == 2
        assert compute(1, label="c") == 2
        assert compute(2, label="a") == 3
        assert calls == [(1, "a"), (2, "a")]

    def test_keys_keep_python_diskcache_shape(self, cache: cachekit.Cache) -> None:
        """Ignoring changes only what is left out: the key is still name, positions, ``None``, sorted keywords."""

        @cache.memoize(name="f", ignore={"b"})
        def f(a: int, b: int = 0, *, c: int = 0) -> int:
            return a

        assert f.__cache_key__(1, 2, c=3) == ("f", 1, None, "c", 3)
        assert f.__cache_key__(1, b=2, c=3) == ("f", 1, None, "c", 3)
        assert f.__cache_key__(1) == ("f", 1, None)

    def test_methods_count_self_as_position_zero(self, cache: cachekit.Cache) -> None:
        """On a method, names map to positions after ``self``; ``ignore={0}`` ignores the instance."""

        class Greeter:
            def __init__(self, greeting: str) -> None:
                self.greeting = greeting

            @cache.memoize(name="greet", ignore={0, "punctuation"})
            def greet(self, name: str, punctuation: str = "!") -> str:
                return f"{self.greeting}, {name}{punctuation}"

        first, second = Greeter("Hello"), Greeter("Goodbye")
        assert first.greet("Ada", "?") == "Hello, Ada?"
        assert second.greet("Ada", punctuation=".") == "Hello, Ada?"  # shared: self and punctuation ignored
        assert Greeter.greet.__cache_key__(first, "Ada", "?") == ("greet", "Ada", None)

    def test_keyword_only_and_var_keyword_parameters(self, cache: cachekit.Cache) -> None:
        """A keyword-only name, or any name when the function takes ``**kwargs``, is ignored as a keyword."""

        @cache.memoize(name="g", ignore={"trace", "extra"})
        def g(a: int, *, trace: bool = False, **options: Any) -> int:
            return a

        assert g.__cache_key__(1, trace=True, extra=2, kept=3) == ("g", 1, None, "kept", 3)

    def test_positions_beyond_the_parameters_need_var_positional(self, cache: cachekit.Cache) -> None:
        """With ``*args``, a position past the named parameters ignores that extra argument."""

        @cache.memoize(name="h", ignore={2})
        def h(a: int, *rest: int) -> int:
            return a

        assert h.__cache_key__(1, 2, 3, 4) == ("h", 1, 2, 4, None)

    @pytest.mark.parametrize(
        ("ignore", "error", "message"),
        [
            ({"nope"}, ValueError, "ignore names 'nope', which is not a parameter of"),
            ({5}, ValueError, "ignore holds position 5, but"),
            ({-1}, ValueError, "ignore positions count from 0, got -1"),
            ({True}, TypeError, "ignore holds argument positions (int) and names (str), got True"),
            ({1.0}, TypeError, "got 1.0"),
            ("verbose", TypeError, "not the single value 'verbose'"),
        ],
    )
    def test_entries_that_match_nothing_are_refused_when_decorating(
        self, decorate: Callable[..., Any], ignore: Any, error: type[Exception], message: str
    ) -> None:
        """An ``ignore`` entry that cannot match an argument is an error at decoration, not a silent no-op."""

        def compute(number: int, verbose: bool = False) -> int:
            return number

        with pytest.raises(error) as raised:
            decorate(ignore=ignore)(compute)  # types are checked by decorate(), matching by (compute)
        assert message in str(raised.value)

    def test_an_iterator_is_read_once_for_every_decorated_function(self, cache: cachekit.Cache) -> None:
        """``ignore`` may be a one-shot iterator; every function decorated with the decorator gets all of it."""
        decorator = cache.memoize(ignore=iter(["verbose"]))

        @decorator
        def first(number: int, verbose: bool = False) -> int:
            return number

        @decorator
        def second(number: int, verbose: bool = False) -> int:
            return number

        assert first.__cache_key__(1, True) == first.__cache_key__(1)
        assert second.__cache_key__(1, True) == second.__cache_key__(1)

    def test_callables_without_a_signature_take_ignore_as_given(self) -> None:
        """When no signature can be read, positions and names are used literally, as python-diskcache does."""
        assert ignored_arguments(print, frozenset({0, "sep"})) == frozenset({0, "sep"})
        assert ignored_arguments(cachekit.full_name, frozenset({"function"})) == frozenset({0, "function"})
