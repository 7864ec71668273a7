"""Setting parsers and the table of the core's settings.

Every parser accepts either a Python value (from keyword arguments) or a
string (from a config string) and returns the validated value.  They raise
``ValueError`` or ``TypeError`` with a message that says what is accepted;
the caller adds the setting's name.
"""

from __future__ import annotations

import math
import pickle
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._interfaces import Setting

__all__ = [
    "CORE_SETTINGS",
    "DURABILITY_LEVELS",
    "OPTIONS",
    "boolean",
    "choice",
    "duration",
    "integer",
    "name",
    "size",
]

_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")
_DURATION_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _reject_bool(value: object, what: str) -> None:
    if isinstance(value, bool):
        raise TypeError(f"expected {what}, got the bool {value!r}")


def size(value: object) -> int:
    """A size in bytes: a non-negative int, or a string such as ``512MiB`` or ``1GB``."""
    _reject_bool(value, "a size in bytes")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}")
        return value
    if isinstance(value, str):
        match = _SIZE_RE.fullmatch(value)
        unit = match.group(2).lower() if match else ""
        if match is None or (unit not in _SIZE_UNITS and unit != ""):
            hint = ""
            if match is not None and unit in {"k", "m", "g", "t"}:
                hint = f" ('{match.group(2)}' is ambiguous: write {unit.upper()}iB or {unit.upper()}B)"
            raise ValueError(f"expected a size such as 4096, 512KiB, 64MiB or 1GB, got {value!r}{hint}")
        number = float(match.group(1)) if "." in match.group(1) else int(match.group(1))
        return int(number * _SIZE_UNITS.get(unit, 1))
    raise TypeError(f"expected a size in bytes (int or a string like '1GiB'), got {value!r}")


def integer(minimum: int = 0) -> Callable[[object], int]:
    """A parser for whole numbers no smaller than ``minimum``."""

    def parse(value: object) -> int:
        _reject_bool(value, "a whole number")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError(f"expected a whole number, got {value!r}") from None
        if not isinstance(value, int):
            raise TypeError(f"expected a whole number, got {value!r}")
        if value < minimum:
            raise ValueError(f"expected a whole number >= {minimum}, got {value}")
        return value

    return parse


def duration(value: object) -> float:
    """Seconds: a non-negative number, or a string such as ``30s``, ``5m``, ``2h``, ``1d``."""
    _reject_bool(value, "a duration in seconds")
    if isinstance(value, str):
        match = _DURATION_RE.fullmatch(value)
        if match is None or match.group(2).lower() not in _DURATION_UNITS:
            raise ValueError(f"expected a duration such as 10, 1.5s, 250ms, 5m, 2h or 1d, got {value!r}")
        return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    if not isinstance(value, int | float):
        raise TypeError(f"expected a duration in seconds, got {value!r}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"a duration must be a non-negative number, got {value!r}")
    return float(value)


def boolean(value: object) -> bool:
    """A bool, or one of the strings true/false/1/0/yes/no/on/off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueError(f"expected a boolean (true/false, 1/0, yes/no, on/off), got {value!r}")


def name(value: object) -> str:
    """A non-empty plugin name."""
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"expected a name, got {value!r}")
    return value.strip()


def choice(*allowed: str) -> Callable[[object], str]:
    """A parser that accepts one of ``allowed``."""

    def parse(value: object) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
        assert isinstance(value, str)
        return value

    return parse


def _secret(value: object) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, bytes):
        raise TypeError(f"expected a str or bytes secret key, got {type(value).__name__}")
    if len(value) < 16:
        raise ValueError("a secret_key must be at least 16 bytes long")
    return value


def _pickle_protocol(value: object) -> int:
    protocol = integer(0)(value)
    if protocol > pickle.HIGHEST_PROTOCOL:
        raise ValueError(f"the highest pickle protocol is {pickle.HIGHEST_PROTOCOL}, got {protocol}")
    return protocol


DURABILITY_LEVELS = ("normal", "full")

#: Settings the core persists in the cache directory (python-diskcache names).
CORE_SETTINGS: Mapping[str, Setting] = {
    "size_limit": Setting(2**30, size, "Volume in bytes above which entries are culled."),
    "cull_limit": Setting(10, integer(0), "Most entries removed by one write; 0 disables culling on writes."),
    "eviction_policy": Setting("least-recently-stored", name, "Which entries leave first."),
    "statistics": Setting(False, boolean, "Count hits and misses."),
    "tag_index": Setting(False, boolean, "Index entries by tag."),
    "serializer": Setting("pickle", name, "How values other than bytes, str, int and float are encoded."),
    "disk_min_file_size": Setting(2**15, size, "Payloads of this many bytes or more go to value files."),
    "disk_pickle_protocol": Setting(pickle.HIGHEST_PROTOCOL, _pickle_protocol, "Pickle protocol."),
    "disk_reserve": Setting(
        2**20, size, "Disk space held back in the directory so that removals work on a full disk; 0: none."
    ),
    "durability": Setting(
        "normal", choice(*DURABILITY_LEVELS), "normal: survives process crashes; full: power loss too."
    ),
}

#: Options that apply to one open cache object and are never persisted.
OPTIONS: Mapping[str, Setting] = {
    "timeout": Setting(60.0, duration, "Seconds to wait for the write lock.", persist=False),
    "secret_key": Setting(None, _secret, "Key that signs serialized values (HMAC-SHA256).", persist=False),
    "allow_insecure_directory": Setting(
        False, boolean, "Open a directory others could write to (see the security docs).", persist=False
    ),
}


def parse_setting(table: Mapping[str, Setting], key: str, value: Any) -> Any:
    """Validate ``value`` for setting ``key`` of ``table``; errors name the setting."""
    from ._errors import ConfigError

    try:
        return table[key].parse(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid value for setting {key!r}: {error}") from None
