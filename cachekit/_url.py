"""Config strings: ``scheme:///absolute/path?setting=value&...``.

Grammar:

* ``scheme:///absolute/path`` and ``scheme:relative/path`` name a store
  and a directory;
* a string without a scheme is a path for the default store;
* a query string holds settings, percent-encoded like any URL query.

Only the syntax is checked here; which settings exist depends on the store
and is checked when the configuration is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from ._errors import ConfigError

__all__ = ["ParsedURL", "looks_like_config_string", "parse"]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)", re.DOTALL)
_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ParsedURL:
    """What a config string says, before validation."""

    store: str | None
    """The scheme, or ``None`` for a bare path."""
    path: str
    settings: dict[str, str] = field(default_factory=dict)


def looks_like_config_string(text: str) -> bool:
    """Whether ``text`` starts with ``scheme://``, which no sensible path does."""
    match = _SCHEME.fullmatch(text)
    return match is not None and match.group(2).startswith("//")


def parse(text: str) -> ParsedURL:
    """Split a config string into store, path and raw settings."""
    if not isinstance(text, str):
        raise TypeError(f"a config string must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ConfigError("the config string is empty; give a directory such as '/var/cache/app'")
    body, _, query = text.partition("?")
    store = None
    path = body
    match = _SCHEME.fullmatch(body)
    if match is not None:
        store, path = match.group(1).lower(), match.group(2)
        if path.startswith("//"):
            rest = path[2:]
            if not rest:
                raise ConfigError(f"config string {text!r} names no directory; write '{store}:///path/to/cache'")
            if not rest.startswith("/"):
                host = rest.split("/", 1)[0]
                raise ConfigError(
                    f"config string {text!r} has a host part ({host!r}) but caches are local: "
                    f"write '{store}:///{rest}' for an absolute path or '{store}:{rest}' for a relative one"
                )
            path = "/" + rest.lstrip("/")
    path = unquote(path)
    if not path:
        raise ConfigError(f"config string {text!r} names no directory; write 'scheme:///path/to/cache'")
    return ParsedURL(store, path, _parse_query(query, text) if query or text.endswith("?") else {})


def _parse_query(query: str, text: str) -> dict[str, str]:
    settings: dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            raise ConfigError(f"config string {text!r} has an empty parameter (a stray '&' or '?')")
        name, equals, value = part.partition("=")
        name = unquote(name)
        if not _PARAMETER_NAME.fullmatch(name):
            raise ConfigError(f"config string {text!r} has a malformed parameter name {name!r}")
        if not equals or not value:
            raise ConfigError(f"parameter {name!r} in config string {text!r} has no value; write {name}=VALUE")
        if name in settings:
            raise ConfigError(f"parameter {name!r} is given twice in config string {text!r}")
        settings[name] = unquote(value)
    return settings
