"""``cachekit.open``: a cache from a config string."""

from __future__ import annotations

from typing import Any

from . import _url
from ._cache import Cache
from ._errors import ConfigError

__all__ = ["open"]


def open(url: str, **overrides: Any) -> Cache:  # noqa: A001 - the public name is cachekit.open
    """Open the cache a config string describes.

    ``url`` is ``scheme:///absolute/path``, ``scheme:relative/path`` or a
    bare path (the default store), with settings as query parameters::

        cache = cachekit.open("sqlite:///var/cache/app?size_limit=4GiB&eviction_policy=least-recently-used")

    Keyword arguments add settings; naming one that the string already
    sets is an error rather than a silent override.
    """
    parsed = _url.parse(url)
    both = sorted(set(parsed.settings) & set(overrides))
    if both:
        raise ConfigError(
            f"setting {both[0]!r} is given both in the config string and as a keyword argument; give it once"
        )
    settings: dict[str, Any] = {**parsed.settings, **overrides}
    store = settings.pop("store", None)
    if store is not None and parsed.store is not None:
        raise ConfigError(f"the config string names the store {parsed.store!r}; do not pass store= as well")
    timeout = settings.pop("timeout", 60)
    return Cache(parsed.path, timeout, store=parsed.store or store, **settings)
