"""Signer: HMAC-SHA256 wire format, key rotation, and refusal of anything not validly signed."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import taskmill as tm
from taskmill.payloads import MsgpackSerializer, PayloadCodec, Signer, SignerStatistics

K1 = b"1" * 32
K2 = b"2" * 32


class TestWireFormat:
    def test_header_is_magic_key_id_and_hex_mac(self) -> None:
        """Signed = `tm1.<kid>.<hex HMAC-SHA256 of b'tm1.<kid>.' + payload>.<payload>`."""
        signed = Signer(keys={"k2": K2}, current="k2").sign(b"payload")
        mac = hmac.new(K2, b"tm1.k2.payload", hashlib.sha256).hexdigest().encode()
        assert b"tm1.k2." + mac + b".payload" == signed

    def test_round_trip_returns_the_payload(self) -> None:
        """verify(sign(x)) == x, for empty and binary payloads too."""
        signer = Signer(keys={"k": K1}, current="k")
        for payload in (b"", b"\x00\xff" * 100, b"tm1.looks-signed"):
            assert payload == signer.verify(signer.sign(payload))

    def test_is_signed(self) -> None:
        """is_signed looks only at the prefix."""
        assert Signer.is_signed(b"tm1.anything")
        assert not Signer.is_signed(b'{"version": 1}')


class TestRotation:
    def test_old_key_still_verifies_and_new_key_signs(self) -> None:
        """After rotation, payloads signed with k1 verify; new ones are signed with k2."""
        old = Signer(keys={"k1": K1}, current="k1")
        rotated = Signer(keys={"k2": K2, "k1": K1}, current="k2")
        assert b"x" == rotated.verify(old.sign(b"x"))
        assert rotated.sign(b"x").startswith(b"tm1.k2.")

    def test_signer_without_the_new_key_refuses_it(self) -> None:
        """A not-yet-upgraded verifier refuses the new key id by name."""
        old = Signer(keys={"k1": K1}, current="k1")
        rotated = Signer(keys={"k2": K2, "k1": K1}, current="k2")
        with pytest.raises(tm.SignatureError, match="unknown key id 'k2'"):
            old.verify(rotated.sign(b"x"))

    def test_dropped_key_is_refused(self) -> None:
        """Once k1 is removed, what it signed is refused."""
        old = Signer(keys={"k1": K1}, current="k1")
        with pytest.raises(tm.SignatureError, match="unknown key id 'k1'"):
            Signer(keys={"k2": K2}, current="k2").verify(old.sign(b"x"))


def _signed() -> bytes:
    return Signer(keys={"k1": K1}, current="k1").sign(b'{"task": "t"}')


def _flip(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


MAC_START = len(b"tm1.k1.")
PAYLOAD_START = MAC_START + 65

REFUSALS: dict[str, tuple[bytes, str]] = {
    "unsigned": (b'{"task": "t"}', "not signed"),
    "empty": (b"", "not signed"),
    "forged_mac": (_flip(_signed(), MAC_START + 10), "does not match"),
    "uppercase_mac": (
        _signed()[:MAC_START]
        + _signed()[MAC_START:PAYLOAD_START].upper()
        + _signed()[PAYLOAD_START:],
        "does not match",
    ),
    "tampered_payload": (_flip(_signed(), PAYLOAD_START + 3), "does not match"),
    "appended_byte": (_signed() + b" ", "does not match"),
    "truncated_payload": (_signed()[:-1], "does not match"),
    "key_id_swapped": (_signed().replace(b"tm1.k1.", b"tm1.k2.", 1), "does not match"),
    "unknown_key_id": (_signed().replace(b"tm1.k1.", b"tm1.k9.", 1), "unknown key id 'k9'"),
    "no_key_id": (b"tm1.." + b"0" * 64 + b".x", "malformed signature header"),
    "key_id_too_long": (b"tm1." + b"k" * 33 + b"." + b"0" * 64 + b".x", "malformed"),
    "key_id_bad_chars": (b"tm1.k$." + b"0" * 64 + b".x", "malformed"),
    "short_mac": (b"tm1.k1." + b"0" * 63 + b".x", "malformed"),
    "mac_without_separator": (_signed()[: PAYLOAD_START - 1], "malformed"),
    "header_only": (b"tm1.", "malformed"),
}


class TestRefusals:
    @pytest.mark.parametrize("case", list(REFUSALS))
    def test_refused(self, case: str) -> None:
        """Unsigned, forged, tampered, unknown-key and malformed inputs raise SignatureError."""
        data, reason = REFUSALS[case]
        signer = Signer(keys={"k1": K1, "k2": K2}, current="k1")
        with pytest.raises(tm.SignatureError, match=reason) as info:
            signer.verify(data)
        assert isinstance(info.value, tm.PayloadError)

    def test_comparison_is_constant_time(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The MAC is compared with hmac.compare_digest."""
        calls: list[tuple[bytes, bytes]] = []
        real = hmac.compare_digest

        def spy(a: bytes, b: bytes) -> bool:
            calls.append((a, b))
            return real(a, b)

        monkeypatch.setattr(hmac, "compare_digest", spy)
        Signer(keys={"k1": K1}, current="k1").verify(_signed())
        assert 1 == len(calls)

    @settings(max_examples=200, deadline=None)
    @given(index=st.integers(min_value=0), bit=st.integers(0, 7))
    def test_any_bit_flip_is_refused(self, index: int, bit: int) -> None:
        """Flipping any single bit of a signed payload makes it fail verification."""
        data = bytearray(_signed())
        data[index % len(data)] ^= 1 << bit
        with pytest.raises(tm.SignatureError):
            Signer(keys={"k1": K1}, current="k1").verify(bytes(data))


class TestConfiguration:
    @pytest.mark.parametrize(
        ("keys", "current", "match"),
        [
            ({}, "k", "non-empty mapping"),
            ([("k", K1)], "k", "non-empty mapping"),
            ({"k": b"short"}, "k", "length >= 32"),
            ({"k": "1" * 32}, "k", "must be bytes"),
            ({"has.dot": K1}, "has.dot", "key ids"),
            ({"": K1}, "", "key ids"),
            ({"k" * 33: K1}, "k" * 33, "key ids"),
            ({1: K1}, 1, "key ids"),
            ({"k1": K1}, "k2", "current must be one of the key ids"),
        ],
    )
    def test_invalid_keys_are_refused(self, keys: Any, current: Any, match: str) -> None:
        """Bad key ids, short or non-bytes keys and an unknown current id raise at construction."""
        with pytest.raises(tm.ConfigurationError, match=match):
            Signer(keys=keys, current=current)

    def test_repr_shows_ids_not_keys(self) -> None:
        """The repr never contains key material."""
        text = repr(Signer(keys={"k2": K2, "k1": K1}, current="k2"))
        assert "<Signer current='k2' keys=['k1', 'k2']>" == text

    def test_statistics(self) -> None:
        """Signed, verified and refused payloads are counted."""
        signer = Signer(keys={"k1": K1}, current="k1")
        signer.verify(signer.sign(b"a"))
        signer.sign(b"b")
        with pytest.raises(tm.SignatureError):
            signer.verify(b"unsigned")
        assert SignerStatistics(signed=2, verified=1, refused=1) == signer.statistics()
        assert ("k1", ("k1",)) == (signer.current, signer.key_ids)


class TestSignedCodec:
    @pytest.mark.parametrize("serializer", [None, MsgpackSerializer()])
    def test_everything_encoded_is_signed_and_verified(self, serializer: Any) -> None:
        """Envelopes, results and errors are signed; each decodes back."""
        codec = PayloadCodec(signer=Signer(keys={"k1": K1}, current="k1"), serializer=serializer)
        data = codec.encode(codec.build("t", [1]))
        assert data.startswith(b"tm1.k1.")
        assert [1] == codec.decode(data).args
        assert 5 == codec.decode_result(codec.encode_result(5))
        assert "boom" == codec.decode_error(codec.encode_error(ValueError("boom"))).message

    def test_unsigned_envelope_is_refused(self) -> None:
        """A codec with a signer refuses unsigned payloads, results and errors."""
        plain = PayloadCodec()
        codec = PayloadCodec(signer=Signer(keys={"k1": K1}, current="k1"))
        for decode, data in (
            (codec.decode, plain.encode(plain.build("t"))),
            (codec.decode_result, plain.encode_result(1)),
            (codec.decode_error, plain.encode_error(ValueError())),
        ):
            with pytest.raises(tm.SignatureError, match="not signed"):
                decode(data)

    def test_forged_envelope_is_refused(self) -> None:
        """Signed with a key the codec does not hold: refused (a different secret, same id)."""
        attacker = PayloadCodec(signer=Signer(keys={"k1": b"x" * 32}, current="k1"))
        codec = PayloadCodec(signer=Signer(keys={"k1": K1}, current="k1"))
        with pytest.raises(tm.SignatureError, match="does not match"):
            codec.decode(attacker.encode(attacker.build("t")))
        assert 1 == codec.statistics().decode_errors
