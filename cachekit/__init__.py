"""cachekit: a disk-backed cache with the python-diskcache API and pluggable storage engines.

>>> import cachekit, tempfile
>>> cache = cachekit.Cache(tempfile.mkdtemp())
>>> cache.set("answer", 42)
True
>>> cache["answer"]
42
>>> cache.close()
"""

from ._cache import Cache
from ._errors import (
    CachekitError,
    ConfigError,
    CorruptCache,
    DirectoryError,
    InsecureDirectory,
    PluginError,
    SerializationError,
    StorageFull,
    StoreError,
    Timeout,
    UnknownPluginError,
    UnsupportedOperation,
)
from ._interfaces import EvictionPolicy, Serializer, Store
from ._memoize import ENOVAL, UNKNOWN, args_to_key, full_name
from ._open import open

__version__ = "0.1.0"

__all__ = [
    "ENOVAL",
    "UNKNOWN",
    "Cache",
    "CachekitError",
    "ConfigError",
    "CorruptCache",
    "DirectoryError",
    "EvictionPolicy",
    "InsecureDirectory",
    "PluginError",
    "SerializationError",
    "Serializer",
    "StorageFull",
    "Store",
    "StoreError",
    "Timeout",
    "UnknownPluginError",
    "UnsupportedOperation",
    "__version__",
    "args_to_key",
    "full_name",
    "open",
]
