"""HMAC-SHA256 payload signing with key rotation.

Wire format of a signed payload (ASCII header, then the payload bytes unchanged)::

    tm1.<key id>.<64 lowercase hex chars of HMAC-SHA256>.<payload>

The MAC covers ``b"tm1." + key_id + b"." + payload``, so neither the key id nor the
payload can be swapped. Key ids are 1 to 32 characters of ``[A-Za-z0-9_-]``; the
header is at most :data:`MAX_HEADER_BYTES` long. Verification compares with
:func:`hmac.compare_digest` (constant time). Rotation: sign with ``current``,
verify with any key in ``keys``; drop an old key once nothing signed with it can
still be in flight.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, final

from ._errors import ConfigurationError, SignatureError

__all__ = ["MAGIC", "MAX_HEADER_BYTES", "MIN_KEY_BYTES", "Signer", "SignerStatistics"]

MAGIC: Final = b"tm1."
"""The prefix of every signed payload (format version 1)."""

MIN_KEY_BYTES: Final = 32
"""The shortest accepted key (HMAC-SHA256's output size)."""

_KEY_ID = re.compile(rb"[A-Za-z0-9_-]{1,32}")
_MAC_HEX: Final = 64
MAX_HEADER_BYTES: Final = len(MAGIC) + 32 + 1 + _MAC_HEX + 1
"""The longest possible signature header, in bytes."""


def _mac(key: bytes, key_id: bytes, payload: bytes) -> bytes:
    digest = hmac.new(key, MAGIC + key_id + b"." + payload, hashlib.sha256)
    return digest.hexdigest().encode("ascii")


def _check_keys(keys: object, current: object) -> dict[bytes, bytes]:
    if not isinstance(keys, Mapping) or not keys:
        raise ConfigurationError("keys must be a non-empty mapping of key id -> bytes")
    checked: dict[bytes, bytes] = {}
    for key_id, key in keys.items():
        if not isinstance(key_id, str) or _KEY_ID.fullmatch(key_id.encode()) is None:
            raise ConfigurationError(
                f"key ids must be 1 to 32 characters of [A-Za-z0-9_-], got {key_id!r}"
            )
        if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
            raise ConfigurationError(
                f"key {key_id!r} must be bytes of length >= {MIN_KEY_BYTES} "
                "(e.g. secrets.token_bytes(32))"
            )
        checked[key_id.encode()] = key
    if not isinstance(current, str) or current.encode() not in checked:
        raise ConfigurationError(f"current must be one of the key ids, got {current!r}")
    return checked


@final
@dataclass(frozen=True, kw_only=True, slots=True)
class SignerStatistics:
    """Counters of a :class:`Signer`.

    Attributes:
        signed: Payloads signed.
        verified: Payloads whose signature checked out.
        refused: Payloads refused (unsigned, malformed header, unknown key, bad MAC).
    """

    signed: int
    verified: int
    refused: int


@final
class Signer:
    """Signs payloads with the current key and verifies them with any known key.

    Args:
        keys: Key id -> secret key (bytes, at least 32 long). Ids are 1 to 32
            characters of ``[A-Za-z0-9_-]``.
        current: The id of the key new payloads are signed with.

    Raises:
        ConfigurationError: A key id or key is invalid, or ``current`` is unknown.

    Example:
        >>> signer = Signer(keys={"k2": b"n" * 32, "k1": b"o" * 32}, current="k2")
        >>> signer.verify(signer.sign(b"{}"))
        b'{}'
    """

    __slots__ = ("_current", "_keys", "_lock", "_refused", "_signed", "_verified")

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        self._keys = _check_keys(keys, current)
        self._current = current.encode()
        self._lock = threading.Lock()
        self._signed = self._verified = self._refused = 0

    @property
    def current(self) -> str:
        """The id of the signing key."""
        return self._current.decode()

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every id that verifies, sorted."""
        return tuple(sorted(key_id.decode() for key_id in self._keys))

    def sign(self, payload: bytes) -> bytes:
        """Return ``payload`` with a signature header in front."""
        key_id = self._current
        mac = _mac(self._keys[key_id], key_id, payload)
        with self._lock:
            self._signed += 1
        return b"".join((MAGIC, key_id, b".", mac, b".", payload))

    def verify(self, data: bytes) -> bytes:
        """Check the signature of ``data`` and return the payload it covers.

        Raises:
            SignatureError: ``data`` is unsigned, its header is malformed, its key id
                is unknown, or the signature does not match (forged or tampered).
        """
        try:
            payload = self._verify(data)
        except SignatureError:
            with self._lock:
                self._refused += 1
            raise
        with self._lock:
            self._verified += 1
        return payload

    def _verify(self, data: bytes) -> bytes:
        if not data.startswith(MAGIC):
            raise SignatureError("payload is not signed (signing is required)")
        end = data.find(b".", len(MAGIC), len(MAGIC) + 33)
        key_id = data[len(MAGIC) : end] if end >= 0 else b""
        if _KEY_ID.fullmatch(key_id) is None:
            raise SignatureError("payload has a malformed signature header")
        mac_end = end + 1 + _MAC_HEX
        if data[mac_end : mac_end + 1] != b".":
            raise SignatureError("payload has a malformed signature header")
        key = self._keys.get(key_id)
        if key is None:
            raise SignatureError(f"payload is signed with an unknown key id {key_id.decode()!r}")
        payload = data[mac_end + 1 :]
        if not hmac.compare_digest(_mac(key, key_id, payload), data[end + 1 : mac_end]):
            raise SignatureError("signature does not match (forged or tampered payload)")
        return payload

    @staticmethod
    def is_signed(data: bytes) -> bool:
        """Return whether ``data`` starts with a signature header (not whether it is valid)."""
        return data.startswith(MAGIC)

    def statistics(self) -> SignerStatistics:
        """Return the counters."""
        with self._lock:
            return SignerStatistics(
                signed=self._signed, verified=self._verified, refused=self._refused
            )

    def __repr__(self) -> str:
        return f"<Signer current={self.current!r} keys={list(self.key_ids)!r}>"
