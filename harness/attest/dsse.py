"""The DSSE envelope: a payload, its type, and signatures over their pre-authentication encoding.

Spec: https://github.com/secure-systems-lab/dsse (protocol.md, envelope.md).
What is signed is never the JSON envelope but `pae(payload_type, payload)`,
which binds the type to the bytes (no payload can be re-read as another
type) without any canonical JSON. Pure, apart from calling the signer's and
the verifier's methods (`harness.attest.keys`).

Key ids in an envelope are unauthenticated hints: `verify_envelope` tries
every signature with the one key it was given and trusts none of the ids.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from harness.attest.errors import SignatureInvalid

__all__ = [
    "MEDIA_DSSE",
    "PAYLOAD_IN_TOTO",
    "Envelope",
    "Signature",
    "pae",
    "sign_envelope",
    "strict_json",
    "unique_keys",
    "verify_envelope",
]

MEDIA_DSSE = "application/vnd.dsse.envelope.v1+json"
PAYLOAD_IN_TOTO = "application/vnd.in-toto+json"

_STANDARD = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]*={0,2}")
# How many of an envelope's key ids a refusal names, and how much of each: they are untrusted input.
_SHOWN_KEYIDS = 4
_KEYID_CHARS = 80


class _Signs(Protocol):
    keyid: str

    def sign(self, data: bytes) -> bytes: ...


class _Verifies(Protocol):
    keyid: str

    def verify(self, signature: bytes, data: bytes) -> bool: ...


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSEv1 SP LEN(type) SP type SP LEN(body) SP body, lengths the ASCII decimal byte counts (type as UTF-8)."""
    kind = payload_type.encode("utf-8")
    body = bytes(payload)
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(body), body)


@dataclass(frozen=True)
class Signature:
    """One signature: `sig` over the PAE, `keyid` a hint of who made it (may be empty)."""

    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """The DSSE JSON envelope, decoded: `payload` is the signed bytes, not their base64."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "signatures", tuple(self.signatures))

    def to_json(self) -> bytes:
        """The envelope as compact JSON with sorted keys and standard base64: the same envelope, the same bytes."""
        document = {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [{"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")} for s in self.signatures],
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii")

    @classmethod
    def from_json(cls, data: bytes) -> "Envelope":
        """Decode an envelope; standard and URL-safe base64 (padded or not) are both read, as the spec requires.

        Anything malformed is a ValueError with a one-line reason. `keyid` may
        be absent (the spec lets empty fields be omitted); payload,
        payloadType and at least one signature may not.
        """
        try:
            document = strict_json(data)
        except ValueError as exc:
            raise ValueError(f"DSSE envelope: expected a JSON object, found {exc}") from None
        if not isinstance(document, dict):
            raise ValueError(f"DSSE envelope: expected a JSON object, found a JSON {type(document).__name__}")
        for name in ("payload", "payloadType", "signatures"):
            if name not in document:
                raise ValueError(f"DSSE envelope: expected the field {name!r}, found it missing")
        payload_type = document["payloadType"]
        if not isinstance(payload_type, str):
            raise ValueError(f"DSSE envelope: expected 'payloadType' to be a string, found a {_json_type(payload_type)}")
        try:
            payload_type.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("DSSE envelope: expected 'payloadType' to be Unicode text, found an unpaired surrogate") from None
        payload = _b64decode(document["payload"], "payload")
        signatures = document["signatures"]
        if not isinstance(signatures, list):
            raise ValueError(f"DSSE envelope: expected 'signatures' to be a list, found a {_json_type(signatures)}")
        if not signatures:
            raise ValueError("DSSE envelope: expected at least one signature, found none")
        return cls(payload_type=payload_type, payload=payload,
                   signatures=tuple(_signature(entry, i) for i, entry in enumerate(signatures)))


def strict_json(data: bytes | str) -> Any:
    """`json.loads` with repeated keys refused; ValueError whose text is one line saying what is wrong."""
    try:
        return json.loads(data, object_pairs_hook=unique_keys)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError as exc:
        reason = f"invalid JSON ({exc.msg} at byte {exc.pos})" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise ValueError(" ".join(reason.splitlines())) from None


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads(object_pairs_hook=...)`: a key given twice is refused, not resolved (two readers of one
    document must not see two envelopes or two statements)."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"the key {key!r} twice in one object")
        document[key] = value
    return document


def _json_type(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _b64decode(text: Any, field: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"DSSE envelope: expected {field} to be a base64 string, found a {_json_type(text)}")
    if _STANDARD.fullmatch(text) is None:
        if _URL_SAFE.fullmatch(text) is None:
            raise ValueError(f"DSSE envelope: expected {field} in standard or URL-safe base64, found other characters")
        text = text.translate(str.maketrans("-_", "+/"))
    bare = text.rstrip("=")
    if len(bare) % 4 == 1 or (bare != text and len(text) % 4):
        raise ValueError(f"DSSE envelope: expected {field} in base64, found a length no base64 text has")
    try:
        return base64.b64decode(bare + "=" * (-len(bare) % 4), validate=True)
    except binascii.Error:
        raise ValueError(f"DSSE envelope: expected {field} in base64, found text that does not decode") from None


def _signature(entry: Any, index: int) -> Signature:
    if not isinstance(entry, dict):
        raise ValueError(f"DSSE envelope: expected signature {index} to be an object, found a {_json_type(entry)}")
    if "sig" not in entry:
        raise ValueError(f"DSSE envelope: expected signature {index} to have a 'sig', found it missing")
    keyid = entry.get("keyid", "")
    if not isinstance(keyid, str):
        raise ValueError(f"DSSE envelope: expected signature {index}'s 'keyid' to be a string, found a {_json_type(keyid)}")
    sig = _b64decode(entry["sig"], f"signature {index}'s 'sig'")
    if not sig:
        raise ValueError(f"DSSE envelope: expected signature {index} to hold a signature, found an empty 'sig'")
    return Signature(keyid=keyid, sig=sig)


def sign_envelope(payload_type: str, payload: bytes, signer: _Signs) -> Envelope:
    """An envelope holding `payload` and the signer's signature over pae(payload_type, payload)."""
    if not isinstance(payload, (bytes, bytearray)):
        raise TypeError(f"sign_envelope: expected the payload as bytes, found {type(payload).__name__}")
    payload = bytes(payload)
    return Envelope(payload_type=payload_type, payload=payload,
                    signatures=(Signature(keyid=signer.keyid, sig=signer.sign(pae(payload_type, payload))),))


def _shown(keyid: str) -> str:
    if not keyid:
        return "no key id"
    text = "".join(ch if ch.isprintable() else "?" for ch in keyid)
    return text if len(text) <= _KEYID_CHARS else text[:_KEYID_CHARS] + "..."


def verify_envelope(envelope: Envelope, verifier: _Verifies) -> bytes:
    """The payload, when at least one signature verifies over the PAE with `verifier`; else SignatureInvalid.

    Every signature is tried whatever its key id says: an id is a hint an
    attacker controls, neither a reason to trust nor to skip a signature.
    """
    message = pae(envelope.payload_type, envelope.payload)
    for signature in envelope.signatures:
        if verifier.verify(signature.sig, message):
            return envelope.payload
    ids = [_shown(s.keyid) for s in envelope.signatures]
    found = ", ".join(ids[:_SHOWN_KEYIDS]) + (f" and {len(ids) - _SHOWN_KEYIDS} more" if len(ids) > _SHOWN_KEYIDS else "")
    raise SignatureInvalid(f"the attestation's signature does not verify with key {verifier.keyid} "
                           f"(signatures by {found or 'nobody: the envelope has no signature'}): "
                           "it was altered or signed by another key; do not deploy it")
