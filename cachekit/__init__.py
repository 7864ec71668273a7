"""cachekit: a disk-backed cache with the python-diskcache API and pluggable storage engines.

>>> import cachekit, tempfile
>>> cache = cachekit.Cache(tempfile.mkdtemp())
>>> cache.set("answer", 42)
True
>>> cache["answer"]
42
>>> cache.close()
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from ._deque import Deque
    from ._fanout import FanoutCache
    from ._index import Index
    from ._locks import BoundedSemaphore, Lock, RLock
    from ._recipes import Averager, barrier, memoize_stampede, throttle

__version__ = "0.1.0"

#: The collections and recipes load on first use: most programs need neither,
#: and importing cachekit should stay cheap.
_LAZY = {
    "Deque": "._deque",
    "FanoutCache": "._fanout",
    "Index": "._index",
    "Lock": "._locks",
    "RLock": "._locks",
    "BoundedSemaphore": "._locks",
    "Averager": "._recipes",
    "barrier": "._recipes",
    "memoize_stampede": "._recipes",
    "throttle": "._recipes",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ENOVAL",
    "UNKNOWN",
    "Averager",
    "BoundedSemaphore",
    "Cache",
    "CachekitError",
    "ConfigError",
    "CorruptCache",
    "Deque",
    "DirectoryError",
    "EvictionPolicy",
    "FanoutCache",
    "Index",
    "InsecureDirectory",
    "Lock",
    "PluginError",
    "RLock",
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
    "barrier",
    "full_name",
    "memoize_stampede",
    "open",
    "throttle",
]
