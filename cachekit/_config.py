"""Building a validated configuration from keyword arguments or a config string.

``cachekit.open(url, **overrides)`` and ``Cache(directory, store=..., **settings)``
both end here, so they accept and reject exactly the same things.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import _directory
from ._errors import CachekitError, ConfigError, UnsupportedOperation
from ._interfaces import Setting, Store
from ._registry import registry
from ._settings import CORE_SETTINGS, OPTIONS, parse_setting
from ._url import looks_like_config_string

__all__ = ["DEFAULT_STORE", "Config", "build"]

DEFAULT_STORE = "sqlite"
_ENVIRONMENT_STORE = "CACHEKIT_DEFAULT_STORE"


@dataclass
class Config:
    """A cache's resolved configuration, before its store has been opened."""

    directory: str
    store_name: str
    store_class: type[Store]
    explicit: dict[str, Any]
    """Persisted settings given by the caller (core and store ones), validated."""
    timeout: float
    secret_key: bytes | None
    allow_insecure_directory: bool
    insecure: bool
    """Whether the directory is owned by someone else or writable by others."""
    new_directory: bool

    @property
    def store_options(self) -> dict[str, Any]:
        """The store's own settings: given ones over the store's defaults."""
        schema = self.store_class.settings
        return {name: self.explicit.get(name, setting.default) for name, setting in schema.items()}


def default_store() -> str:
    """The store a bare path opens: ``$CACHEKIT_DEFAULT_STORE`` or ``sqlite``."""
    return os.environ.get(_ENVIRONMENT_STORE, "").strip() or DEFAULT_STORE


def build(
    directory: str | os.PathLike[str] | None,
    store: str | None,
    timeout: Any,
    settings: Mapping[str, Any],
) -> Config:
    """Validate everything and prepare the directory; nothing is opened yet."""
    settings = dict(settings)
    options = {name: settings.pop(name) for name in list(settings) if name in OPTIONS}
    timeout = parse_setting(OPTIONS, "timeout", timeout)
    secret_key = parse_setting(OPTIONS, "secret_key", options.get("secret_key"))
    allow_insecure = parse_setting(OPTIONS, "allow_insecure_directory", options.get("allow_insecure_directory", False))
    if store is not None and not isinstance(store, str):
        raise TypeError(f"store must be a store name such as 'sqlite', got {store!r}")

    # Validate what needs no store before touching the file system.
    store_settings = {name: value for name, value in settings.items() if name not in CORE_SETTINGS}
    explicit = {
        name: parse_setting(CORE_SETTINGS, name, value) for name, value in settings.items() if name in CORE_SETTINGS
    }
    if explicit.get("serializer") is not None:
        registry.resolve("serializer", explicit["serializer"])
    if explicit.get("eviction_policy") is not None:
        registry.resolve("eviction_policy", explicit["eviction_policy"])

    if directory is None:
        import tempfile

        directory = tempfile.mkdtemp(prefix="cachekit-")
    elif isinstance(directory, str) and looks_like_config_string(directory):
        raise ConfigError(f"{directory!r} is a config string, not a directory: use cachekit.open({directory!r})")
    elif not isinstance(directory, str | os.PathLike):
        raise TypeError(f"directory must be a path, got {type(directory).__name__}")

    if store is None:
        # A bare path reopens whatever store created the directory.
        existing = _existing_marker(directory)
        store_name = existing["store"] if existing is not None else default_store()
    else:
        store_name = store
    store_class: type[Store] = registry.resolve("store", store_name)
    _check_store_settings(store_name, store_class.settings, store_settings)
    for name, value in store_settings.items():
        explicit[name] = parse_setting(store_class.settings, name, value)
    if not store_class.capabilities.transactions:
        raise UnsupportedOperation(
            f"the {store_name!r} store does not support multi-operation transactions, which cachekit.Cache needs"
        )

    path, insecure = _directory.prepare(directory, allow_insecure)
    marker = _directory.read_marker(path)
    if marker is not None and marker["store"] != store_name:
        raise ConfigError(
            f"the cache in {path} was created with the {marker['store']!r} store, not {store_name!r}; "
            f"open it with store={marker['store']!r} or use another directory"
        )
    return Config(
        directory=path,
        store_name=store_name,
        store_class=store_class,
        explicit=explicit,
        timeout=timeout,
        secret_key=secret_key,
        allow_insecure_directory=allow_insecure,
        insecure=insecure,
        new_directory=marker is None,
    )


_DISKCACHE_SETTINGS = {
    "sqlite_synchronous": "use durability='normal' (survives crashes of any process) or 'full' (power loss too)",
    "sqlite_journal_mode": "the SQLite store always runs in WAL mode",
    "sqlite_auto_vacuum": "the SQLite store manages its file itself",
}


def _existing_marker(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The marker of an existing cache directory, or ``None`` (errors are left to ``prepare``)."""
    try:
        return _directory.read_marker(os.path.abspath(os.fspath(directory)))
    except CachekitError:
        return None


def _check_store_settings(store_name: str, schema: Mapping[str, Setting], given: Mapping[str, Any]) -> None:
    unknown = [name for name in given if name not in schema]
    if "disk" in unknown:
        raise ConfigError(
            "cachekit has no Disk classes: values are encoded by a serializer; "
            "pass serializer='pickle', 'msgpack', 'json' or 'raw' instead of disk=..."
        )
    for name in unknown:
        if name in _DISKCACHE_SETTINGS:
            raise ConfigError(
                f"python-diskcache's setting {name!r} does not exist in cachekit: {_DISKCACHE_SETTINGS[name]}"
            )
    if unknown:
        valid = sorted({*CORE_SETTINGS, *OPTIONS, *schema})
        raise ConfigError(
            f"unknown setting {unknown[0]!r} for the {store_name!r} store; valid settings: {', '.join(valid)}"
        )


def merge(config: Config, persisted: Mapping[str, Any]) -> dict[str, Any]:
    """Settings in force: defaults, overridden by persisted ones, overridden by given ones.

    A store's own (engine tuning) settings apply to one open and are not persisted.
    """
    merged: dict[str, Any] = {name: setting.default for name, setting in CORE_SETTINGS.items()}
    for name, value in persisted.items():
        if name in merged:
            merged[name] = value
    merged.update(config.store_options)
    merged.update(config.explicit)
    return merged
