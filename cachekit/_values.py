"""Value encoding: native kinds, the configured serializer, and signing.

``bytes``, ``str``, ``int`` and ``float`` are stored natively (as
python-diskcache does), so they read back fast and ``incr`` works whatever
the serializer.  Everything else goes through the serializer; with a
``secret_key`` the serialized bytes carry an HMAC-SHA256 that is checked
before they are decoded.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from ._errors import InsecureDirectory, SerializationError
from ._interfaces import Serializer

__all__ = ["IntegrityError", "ValueCodec"]

_FLOAT = struct.Struct(">d")
_MAC_SIZE = 32  # HMAC-SHA256


def _signer(key: bytes) -> Callable[[bytes], bytes]:
    """HMAC-SHA256 with ``key`` (hmac is imported only by caches that sign)."""
    import hashlib
    import hmac

    def sign(payload: bytes) -> bytes:
        return hmac.new(key, payload, hashlib.sha256).digest()

    return sign


def _unsigned(payload: bytes) -> bytes:
    raise AssertionError("signing without a secret_key")


class IntegrityError(SerializationError):
    """A signed payload's signature does not match: it was altered or written without the key."""


def _encode_int(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 8) // 8, "big", signed=True)


def _decode_int(data: bytes) -> int:
    return int.from_bytes(data, "big", signed=True)


def _decode_str(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def _decode_float(data: bytes) -> float:
    value: float = _FLOAT.unpack(data)[0]
    return value


class ValueCodec:
    """Encodes values to ``(serializer name, payload)`` and back."""

    def __init__(
        self,
        serializer: Serializer,
        secret_key: bytes | None,
        refuse_pickle: bool,
        resolve: Callable[[str], Serializer],
    ) -> None:
        self.serializer = serializer
        self.secret_key = secret_key
        self._sign = _signer(secret_key) if secret_key is not None else _unsigned
        self._resolve = resolve
        self._refuse_pickle = refuse_pickle and secret_key is None
        self._decoders: dict[str, Callable[[bytes], Any]] = {
            "bytes": bytes,
            "str": _decode_str,
            "int": _decode_int,
            "float": _decode_float,
        }
        self._add_decoder(serializer)

    def _add_decoder(self, serializer: Serializer) -> Callable[[bytes], Any]:
        loads = serializer.loads
        if self._refuse_pickle and serializer.name == "pickle":

            def refuse(data: bytes) -> Any:
                raise InsecureDirectory(
                    "refusing to unpickle a value from a cache directory that others can write to; "
                    "configure a secret_key so that cachekit can verify what it unpickles"
                )

            loads = refuse
        decoder = self._verified(loads) if self.secret_key is not None else loads
        self._decoders[serializer.name] = decoder
        return decoder

    def _verified(self, loads: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        import hmac

        sign = self._sign

        def verified_loads(data: bytes) -> Any:
            mac, payload = data[:_MAC_SIZE], data[_MAC_SIZE:]
            if len(mac) != _MAC_SIZE or not hmac.compare_digest(mac, sign(payload)):
                raise IntegrityError("a stored value's signature does not match the secret_key")
            return loads(payload)

        return verified_loads

    def dumps(self, value: Any) -> bytes:
        """Serialize (and sign) a value that is not stored natively."""
        if self._refuse_pickle and self.serializer.name == "pickle":
            raise InsecureDirectory(
                "refusing to store a pickled value in a cache directory that others can write to: it could "
                "never be read back safely; configure a secret_key or use the msgpack or json serializer"
            )
        try:
            payload = self.serializer.dumps(value)
        except Exception as error:
            raise SerializationError(
                f"the {self.serializer.name} serializer cannot encode a {type(value).__name__}: {error}"
            ) from error
        if self.secret_key is not None:
            payload = self._sign(payload) + payload
        return payload

    def loads(self, data: bytes) -> Any:
        """Decode what :meth:`dumps` produced with the current serializer."""
        return self.decode(self.serializer.name, data)

    def encode(self, value: Any) -> tuple[str, bytes]:
        """Return ``(serializer name, payload)`` for ``value``."""
        kind = type(value)
        if kind is bytes:
            return "bytes", value
        if kind is str:
            return "str", value.encode("utf-8", "surrogatepass")
        if kind is int:
            return "int", _encode_int(value)
        if kind is float:
            return "float", _FLOAT.pack(value)
        return self.serializer.name, self.dumps(value)

    def decode(self, serializer: str, payload: bytes) -> Any:
        """Decode a payload recorded with ``serializer``."""
        decoder = self._decoders.get(serializer)
        if decoder is None:
            decoder = self._add_decoder(self._resolve(serializer))
        try:
            return decoder(payload)
        except (SerializationError, InsecureDirectory):
            raise
        except Exception as error:
            raise SerializationError(f"cannot decode a value stored with {serializer!r}: {error}") from error
