"""The Django app of ``cachekit_django``: adding it to INSTALLED_APPS turns on its system checks."""

from __future__ import annotations

from django.apps import AppConfig


class CachekitDjangoConfig(AppConfig):
    name = "cachekit_django"
    verbose_name = "cachekit"

    def ready(self) -> None:
        from . import _checks  # noqa: F401 - registers the checks
