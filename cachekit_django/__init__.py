"""A Django cache backend on cachekit, for every cachekit store.

::

    CACHES = {
        "default": {
            "BACKEND": "cachekit_django.CachekitCache",
            "LOCATION": "lmdb:///var/cache/site",   # or a directory (the default store)
            "TIMEOUT": 300,
            "OPTIONS": {"size_limit": "1GiB", "eviction_policy": "least-recently-used"},
        }
    }

Add ``"cachekit_django"`` to ``INSTALLED_APPS`` for its system checks.  Needs
Django (the ``[django]`` extra: ``pip install "cachekit[django]"``).
"""

from __future__ import annotations

from ._backend import CachekitCache

__all__ = ["CachekitCache"]
