"""Memoization: the key of a call, and the ``memoize`` decorator."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

if TYPE_CHECKING:
    from ._core import CacheCore

__all__ = [
    "ENOVAL",
    "UNKNOWN",
    "Constant",
    "Memoized",
    "args_to_key",
    "check_ignore",
    "full_name",
    "ignored_arguments",
    "memoize",
]

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
S = TypeVar("S")
T = TypeVar("T")


class Constant(tuple):  # type: ignore[type-arg]
    """A named sentinel that keeps its name in ``repr`` and unpickles as itself."""

    def __new__(cls, name: str) -> Constant:
        return tuple.__new__(cls, (name,))

    def __repr__(self) -> str:
        return str(self[0])

    def __reduce__(self) -> str:
        # Unpickle as the module-level singleton, so ``is ENOVAL`` still holds.
        return str(self[0])


ENOVAL = Constant("ENOVAL")
"""Marks "no value" where ``None`` is a legitimate value."""
UNKNOWN = Constant("UNKNOWN")
"""Marks an unknown value (python-diskcache compatibility)."""


def full_name(function: Callable[..., Any]) -> str:
    """``module.qualname`` of a function, the default memoize key prefix."""
    return f"{function.__module__}.{function.__qualname__}"


def args_to_key(
    base: tuple[Any, ...],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    typed: bool,
    ignore: Iterable[int | str],
) -> tuple[Any, ...]:
    """The cache key of a call, as python-diskcache builds it.

    ``ignore`` holds positions and keyword names to leave out.
    """
    ignored = set(ignore)
    args = tuple(arg for index, arg in enumerate(args) if index not in ignored)
    key = base + args + (None,)
    sorted_items: list[tuple[str, Any]] = []
    if kwargs:
        sorted_items = sorted((name, value) for name, value in kwargs.items() if name not in ignored)
        for item in sorted_items:
            key += item
    if typed:
        key += tuple(type(arg) for arg in args)
        key += tuple(type(value) for _, value in sorted_items)
    return key


def check_ignore(ignore: Iterable[int | str]) -> frozenset[int | str]:
    """Read ``memoize``'s ``ignore`` once, refusing what cannot name an argument."""
    if isinstance(ignore, str | bytes):
        raise TypeError(f"ignore must be a collection of positions and names, not the single value {ignore!r}")
    given = frozenset(ignore)
    for item in given:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise TypeError(f"ignore holds argument positions (int) and names (str), got {item!r}")
        if isinstance(item, int) and item < 0:
            raise ValueError(f"ignore positions count from 0, got {item}")
    return given


def ignored_arguments(function: Callable[..., Any], given: frozenset[int | str]) -> frozenset[int | str]:
    """The positions and names ``memoize`` leaves out of the keys of ``function``'s calls.

    ``given`` (from :func:`check_ignore`) may name an argument by position
    or by name; either way the argument is left out however it is passed: a
    parameter that can be passed both ways is ignored under its position
    and its name.  Entries that cannot match an argument of ``function``
    are refused, since they would silently ignore nothing.
    """
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # no signature to read (some builtins): take ignore as given
        return given
    positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keywords = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_varargs = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    takes_varkw = any(p.kind is p.VAR_KEYWORD for p in parameters)
    expanded: set[int | str] = set(given)
    for item in given:
        if isinstance(item, int):
            if item < len(positional):
                if positional[item] in keywords:
                    expanded.add(positional[item])
            elif not takes_varargs:
                raise ValueError(
                    f"ignore holds position {item}, but {full_name(function)} takes "
                    f"{len(positional)} positional argument(s)"
                )
        elif item in positional:
            expanded.add(positional.index(item))
        elif item not in keywords and not takes_varkw:
            raise ValueError(f"ignore names {item!r}, which is not a parameter of {full_name(function)}")
    return frozenset(expanded)


class Memoized(Protocol[P, R_co]):
    """A memoized function: its own signature plus ``__cache_key__``.

    As a method it binds like a function (``obj.method(x)``), and type
    checkers see the signature without ``self``; ``__cache_key__`` still
    takes every argument of the call, ``self`` included, as at run time.
    """

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def __cache_key__(self, *args: P.args, **kwargs: P.kwargs) -> tuple[Any, ...]: ...

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Memoized[P, R_co]: ...

    @overload
    def __get__(
        self: Memoized[Concatenate[S, Q], T], instance: S, owner: type[Any] | None = None
    ) -> _BoundMemoized[Q, T, Concatenate[S, Q]]: ...


class _BoundMemoized(Protocol[Q, R_co, P]):
    """A :class:`Memoized` method bound to an instance."""

    def __call__(self, *args: Q.args, **kwargs: Q.kwargs) -> R_co: ...

    def __cache_key__(self, *args: P.args, **kwargs: P.kwargs) -> tuple[Any, ...]: ...


def memoize(
    cache: CacheCore,
    name: str | None,
    typed: bool,
    expire: float | None,
    tag: str | None,
    ignore: Iterable[int | str],
) -> Callable[[Callable[P, R]], Memoized[P, R]]:
    """Build the decorator behind :meth:`cachekit.Cache.memoize`."""
    if callable(name):
        raise TypeError("name cannot be callable: write @cache.memoize() with parentheses")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {name!r}")
    if not isinstance(typed, bool):
        raise TypeError(f"typed must be True or False, got {typed!r}")
    if expire is not None:
        from ._core import validate_expire

        validate_expire(expire, 0.0)  # the same rules as set(), checked when decorating
    given = check_ignore(ignore)

    def decorator(function: Callable[P, R]) -> Memoized[P, R]:
        base = (full_name(function),) if name is None else (name,)
        ignored = ignored_arguments(function, given)

        def cache_key(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
            return args_to_key(base, args, kwargs, typed, ignored)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = cache_key(*args, **kwargs)
            result = cache.get(key, default=ENOVAL, retry=True)
            if result is ENOVAL:
                result = function(*args, **kwargs)
                if expire is None or expire > 0:
                    cache.set(key, result, expire, tag=tag, retry=True)
            return result

        wrapper.__cache_key__ = cache_key  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator
