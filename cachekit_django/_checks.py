"""System checks for caches on ``cachekit_django.CachekitCache``.

- ``cachekit_django.W001``: the cache directory lies inside ``MEDIA_ROOT`` or
  ``STATIC_ROOT``, where the web server may serve (or users may upload) files.
- ``cachekit_django.W002``: ``allow_insecure_directory`` is on: the directory
  safety checks that keep other users from planting pickles are disabled.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

__all__ = ["check_caches"]

BACKEND = "cachekit_django.CachekitCache"


def _parse(location: str) -> tuple[str, dict[str, str]] | None:
    """The directory and the settings a LOCATION (a path or a config string) names, or None."""
    from cachekit._url import parse

    try:
        parsed = parse(location)
    except Exception:  # a bad LOCATION is reported when the cache is created, with the reason
        return None
    return os.path.abspath(os.path.expanduser(parsed.path)), parsed.settings


def _inside(path: str, root: Any) -> bool:
    if not root:
        return False
    path = os.path.realpath(path)
    root = os.path.realpath(os.fspath(root))
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@register(Tags.caches)
def check_caches(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn about cachekit caches that are exposed or have their safety checks turned off."""
    messages: list[CheckMessage] = []
    for alias, config in getattr(settings, "CACHES", {}).items():
        if config.get("BACKEND") != BACKEND:
            continue
        parsed = _parse(str(config.get("LOCATION", "")))
        directory, url_settings = parsed if parsed is not None else (None, {})
        if directory is not None:
            for name in ("MEDIA_ROOT", "STATIC_ROOT"):
                if _inside(directory, getattr(settings, name, None)):
                    messages.append(
                        Warning(
                            f"the cache {alias!r} is stored in {directory}, inside {name}",
                            hint=f"move LOCATION out of {name}: files there may be served or uploaded by users",
                            obj=f"CACHES[{alias!r}]",
                            id="cachekit_django.W001",
                        )
                    )
        options = {**url_settings, **(config.get("OPTIONS") or {})}
        if str(options.get("allow_insecure_directory", "")).lower() in ("true", "1", "yes", "on"):
            messages.append(
                Warning(
                    f"the cache {alias!r} turns off cachekit's directory safety checks (allow_insecure_directory)",
                    hint="keep the cache directory private to this user (chmod 700) and remove the option, "
                    "or make sure a secret_key is set so that values are verified before they are unpickled",
                    obj=f"CACHES[{alias!r}]",
                    id="cachekit_django.W002",
                )
            )
    return messages
