"""The exception hierarchy: everything cachekit raises on purpose derives from
:class:`CachekitError`, so one ``except`` clause can catch it all."""

from __future__ import annotations

__all__ = [
    "CachekitError",
    "ConfigError",
    "CorruptCache",
    "DirectoryError",
    "InsecureDirectory",
    "PluginError",
    "SerializationError",
    "StorageFull",
    "StoreError",
    "Timeout",
    "UnknownPluginError",
    "UnsupportedOperation",
]


class CachekitError(Exception):
    """Base class of every exception cachekit raises deliberately."""


class ConfigError(CachekitError, ValueError):
    """A setting, option or config string is invalid; the message names it and the fix."""


class UnknownPluginError(ConfigError, LookupError):
    """No installed plugin provides the store, serializer or policy that was asked for."""


class PluginError(CachekitError):
    """A plugin failed to load, or two plugins claim one name with different targets."""


class UnsupportedOperation(CachekitError):
    """The store lacks a capability that the requested operation needs."""


class Timeout(CachekitError):
    """A lock or a write transaction could not be had within the cache's ``timeout``."""


class StoreError(CachekitError):
    """The storage engine failed; the engine's own exception is chained as ``__cause__``."""


class StorageFull(StoreError):
    """The disk, the file system quota or the engine's map is full; nothing was written."""


class CorruptCache(StoreError):
    """The files at the cache path are damaged or belong to something else."""


class DirectoryError(CachekitError, OSError):
    """The cache directory cannot be used: it is a file, cannot be created, or is unreadable."""


class InsecureDirectory(DirectoryError):
    """The cache directory is owned by another user or writable by others.

    Another user could plant a pickled value there that runs code when read.
    Pass ``allow_insecure_directory=True`` (and set a ``secret_key`` to keep
    pickled values readable) only if you understand the risk.
    """


class SerializationError(CachekitError, TypeError):
    """A value or key could not be encoded or decoded by the serializer.

    Also a ``TypeError``, as pickle's own complaint about an unpicklable
    value usually is, so code written for python-diskcache keeps catching it.
    """


# Tracebacks and reprs name the public module users import them from.
for _exception in (
    CachekitError,
    ConfigError,
    UnknownPluginError,
    PluginError,
    UnsupportedOperation,
    Timeout,
    StoreError,
    StorageFull,
    CorruptCache,
    DirectoryError,
    InsecureDirectory,
    SerializationError,
):
    _exception.__module__ = "cachekit"
del _exception
