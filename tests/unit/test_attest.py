"""Attestations: PEM keys, the DSSE envelope checked against the spec and an independent verifier, the in-toto statement.

The independent verifier here is written from the DSSE spec with `json`,
`base64` and `cryptography` alone: it shares no code with harness.attest.dsse,
so a mistake in the PAE or the envelope encoding shows up as a disagreement.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from harness.attest import AttestError, CheckFailed, SignatureInvalid
from harness.attest.dsse import MEDIA_DSSE, PAYLOAD_IN_TOTO, Envelope, Signature, pae, sign_envelope, verify_envelope
from harness.attest.keys import ALGORITHMS, ECDSA_P256, ED25519, PASSWORD_ENV, generate_key, keyid, load_signer, load_verifier
from harness.attest.statement import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    parse_statement,
    statement_bytes,
    subject_digests,
    verification_statement,
)
from harness.compare import ArtifactResult, Difference
from harness.errors import EXIT_DRIFT
from harness.report import ImageInfo, Report
from harness.report.model import SideConsistency
from harness.settings import settings_sha256

PASSWORD = "correct horse battery staple"


# ------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def signers(tmp_path_factory):
    """One signer per algorithm, made by generate_key (module scope: hypothesis reuses them)."""
    root = tmp_path_factory.mktemp("keys")
    return {algorithm: generate_key(root / f"{algorithm}.pem", algorithm) for algorithm in ALGORITHMS}


def write_private(path: Path, key, *, mode: int = 0o600, fmt=serialization.PrivateFormat.PKCS8,
                  encryption=serialization.NoEncryption()) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt, encryption))
    path.chmod(mode)
    return path


def write_public(path: Path, public_key) -> Path:
    path.write_bytes(public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def spec_pae(payload_type: bytes, body: bytes) -> bytes:
    """PAE, spelled out from protocol.md: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body."""
    return b"".join([b"DSSEv1", b" ", str(len(payload_type)).encode("ascii"), b" ", payload_type, b" ",
                     str(len(body)).encode("ascii"), b" ", body])


def independent_verify(envelope_json: bytes, public_pem: bytes) -> bytes:
    """Verify a DSSE JSON envelope from the spec alone; raises cryptography's InvalidSignature when no signature holds."""
    document = json.loads(envelope_json)
    body = base64.b64decode(document["payload"], validate=True)
    message = spec_pae(document["payloadType"].encode("utf-8"), body)
    public = serialization.load_pem_public_key(public_pem)
    for entry in document["signatures"]:
        sig = base64.b64decode(entry["sig"], validate=True)
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(sig, message)
        else:
            public.verify(sig, message, ec.ECDSA(hashes.SHA256()))
    return body


def one_line(text: str) -> bool:
    return "\n" not in text and "\r" not in text


# ------------------------------------------------------------ PAE and the spec's test vector

# protocol.md, "Test Vectors": ECDSA P-256 / SHA-256, deterministic (RFC 6979), signature raw r || s.
SPEC_X = 46950820868899156662930047687818585632848591499744589407958293238635476079160
SPEC_Y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
SPEC_D = 97358161215184420915383655311931858321456579547487070936769975997791359926199
SPEC_ENVELOPE = (b'{"payload": "aGVsbG8gd29ybGQ=", "payloadType": "http://example.com/HelloWorld", '
                 b'"signatures": [{"sig": "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="}]}')


def test_pae_of_the_spec_example() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_pae_counts_utf8_bytes_not_characters() -> None:
    assert pae("é", b"") == b"DSSEv1 2 \xc3\xa9 0 "
    assert pae("", b"\x00 1") == b"DSSEv1 0  3 \x00 1"


def test_the_spec_test_vector_verifies(tmp_path: Path) -> None:
    public = ec.EllipticCurvePublicNumbers(SPEC_X, SPEC_Y, ec.SECP256R1()).public_key()
    envelope = Envelope.from_json(SPEC_ENVELOPE)  # standard base64, no keyid: both as the spec writes them
    assert (envelope.payload_type, envelope.payload, envelope.signatures[0].keyid) == (
        "http://example.com/HelloWorld", b"hello world", "")
    raw = envelope.signatures[0].sig
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    verifier = load_verifier(write_public(tmp_path / "spec.pub", public))
    # The vector's signature is raw r || s; ours are DER (as cosign's): the same (r, s) re-encoded verifies.
    assert verify_envelope(Envelope(envelope.payload_type, envelope.payload, (Signature("", der),)), verifier) == b"hello world"
    with pytest.raises(SignatureInvalid):
        verify_envelope(envelope, verifier)  # raw r || s is not a DER signature


def test_our_pae_reproduces_the_spec_signature_deterministically() -> None:
    private = ec.EllipticCurvePrivateNumbers(SPEC_D, ec.EllipticCurvePublicNumbers(SPEC_X, SPEC_Y, ec.SECP256R1())).private_key()
    der = private.sign(pae("http://example.com/HelloWorld", b"hello world"), ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    expected = base64.b64decode(json.loads(SPEC_ENVELOPE)["signatures"][0]["sig"])
    assert r.to_bytes(32, "big") + s.to_bytes(32, "big") == expected


# ------------------------------------------------------------ the envelope against an independent verifier


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_an_independent_verifier_accepts_our_envelopes(signers, algorithm: str) -> None:
    signer = signers[algorithm]
    payload = b'{"_type":"https://in-toto.io/Statement/v1","x":"\xc3\xa9"}'
    envelope = sign_envelope(PAYLOAD_IN_TOTO, payload, signer)
    assert independent_verify(envelope.to_json(), signer.verifier().public_pem()) == payload
    assert envelope.signatures[0].keyid == signer.keyid


def test_signature_formats_are_der_ecdsa_and_raw_ed25519(signers) -> None:
    assert len(signers[ED25519].sign(b"data")) == 64
    der = signers[ECDSA_P256].sign(b"data")
    r, s = decode_dss_signature(der)  # DER, as cosign and sigstore write ECDSA signatures
    assert encode_dss_signature(r, s) == der and r > 0 and s > 0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_an_envelope_made_by_hand_verifies(signers, tmp_path: Path, algorithm: str) -> None:
    private_path = tmp_path / "k.pem"
    private = ec.generate_private_key(ec.SECP256R1()) if algorithm == ECDSA_P256 else ed25519.Ed25519PrivateKey.generate()
    write_private(private_path, private)
    payload = bytes(range(256))
    message = spec_pae(b"application/vnd.example+octets", payload)
    sig = private.sign(message, ec.ECDSA(hashes.SHA256())) if algorithm == ECDSA_P256 else private.sign(message)
    # URL-safe, unpadded, no keyid: the spec allows all three and a verifier must accept them.
    document = {"payloadType": "application/vnd.example+octets",
                "payload": base64.urlsafe_b64encode(payload).decode().rstrip("="),
                "signatures": [{"sig": base64.urlsafe_b64encode(sig).decode().rstrip("=")}]}
    envelope = Envelope.from_json(json.dumps(document).encode())
    assert verify_envelope(envelope, load_verifier(private_path)) == payload
    with pytest.raises(SignatureInvalid):
        verify_envelope(envelope, signers[algorithm].verifier())


def test_the_independent_verifier_refuses_a_tampered_envelope(signers) -> None:
    signer = signers[ED25519]
    document = json.loads(sign_envelope(PAYLOAD_IN_TOTO, b"payload", signer).to_json())
    document["payloadType"] = "application/json"
    with pytest.raises(InvalidSignature):
        independent_verify(json.dumps(document).encode(), signer.verifier().public_pem())


# ------------------------------------------------------------ properties

payload_types = st.text(max_size=40)


@given(algorithm=st.sampled_from(ALGORITHMS), payload=st.binary(max_size=300), payload_type=payload_types,
       keyids=st.lists(st.text(max_size=12), min_size=0, max_size=3))
def test_sign_verify_and_the_json_round_trip(signers, algorithm, payload, payload_type, keyids) -> None:
    signer = signers[algorithm]
    envelope = sign_envelope(payload_type, payload, signer)
    assert verify_envelope(envelope, signer.verifier()) == payload
    assert Envelope.from_json(envelope.to_json()) == envelope
    # More signatures, with arbitrary (untrusted) key ids, around the good one: still verifies, still round-trips.
    crowded = Envelope(payload_type, payload, tuple(Signature(k, b"\x01" * 64) for k in keyids) + envelope.signatures)
    assert verify_envelope(crowded, signer.verifier()) == payload
    assert Envelope.from_json(crowded.to_json()) == crowded
    assert crowded.to_json() == Envelope.from_json(crowded.to_json()).to_json()


@given(algorithm=st.sampled_from(ALGORITHMS), payload=st.binary(min_size=1, max_size=200),
       payload_type=st.text(min_size=1, max_size=30), target=st.sampled_from(["payload", "payloadType", "sig"]),
       position=st.integers(0, 2**16), mask=st.integers(1, 255), replacement=st.characters())
def test_flipping_any_one_byte_breaks_the_signature(signers, algorithm, payload, payload_type, target, position, mask,
                                                    replacement) -> None:
    signer = signers[algorithm]
    envelope = sign_envelope(payload_type, payload, signer)
    # The position is drawn before the signature exists (ECDSA signatures vary in length): taken modulo the length.
    if target == "payloadType":
        i = position % len(payload_type)
        other = replacement if replacement != payload_type[i] else chr((ord(replacement) + 1) % 0xD800)
        envelope = Envelope(payload_type[:i] + other + payload_type[i + 1:], payload, envelope.signatures)
    else:
        original = payload if target == "payload" else envelope.signatures[0].sig
        flipped = bytearray(original)
        flipped[position % len(original)] ^= mask
        envelope = (Envelope(payload_type, bytes(flipped), envelope.signatures) if target == "payload"
                    else Envelope(payload_type, payload, (Signature(signer.keyid, bytes(flipped)),)))
    with pytest.raises(SignatureInvalid) as raised:
        verify_envelope(envelope, signer.verifier())
    assert one_line(str(raised.value)) and signer.keyid in str(raised.value)


# ------------------------------------------------------------ the envelope's JSON


def test_to_json_is_compact_sorted_and_standard_base64() -> None:
    envelope = Envelope("t", b"\xfb\xff", (Signature("k1", b"\xfb\xef"),))
    assert envelope.to_json() == b'{"payload":"+/8=","payloadType":"t","signatures":[{"keyid":"k1","sig":"++8="}]}'
    assert MEDIA_DSSE == "application/vnd.dsse.envelope.v1+json"


def test_from_json_reads_url_safe_and_unpadded_base64() -> None:
    document = {"payload": "-_8", "payloadType": "t", "signatures": [{"keyid": "k", "sig": "--8="}]}
    assert Envelope.from_json(json.dumps(document).encode()) == Envelope("t", b"\xfb\xff", (Signature("k", b"\xfb\xef"),))


GOOD = {"payload": "aGk=", "payloadType": "t", "signatures": [{"keyid": "k", "sig": "c2ln"}]}


@pytest.mark.parametrize(("document", "reason"), [
    (b"not json", "invalid JSON"),
    (b"\xff\xfe\x00", "JSON"),
    (b"[]", "found a JSON list"),
    ({**GOOD, "payload": None}, "payload to be a base64 string"),
    ({k: v for k, v in GOOD.items() if k != "payload"}, "'payload', found it missing"),
    ({k: v for k, v in GOOD.items() if k != "payloadType"}, "'payloadType', found it missing"),
    ({k: v for k, v in GOOD.items() if k != "signatures"}, "'signatures', found it missing"),
    ({**GOOD, "payloadType": 3}, "'payloadType' to be a string"),
    ({**GOOD, "payloadType": "\ud800"}, "unpaired surrogate"),
    ({**GOOD, "payload": "a*b="}, "other characters"),
    ({**GOOD, "payload": "aGk"[:1]}, "length"),
    ({**GOOD, "payload": "a+_b"}, "other characters"),
    ({**GOOD, "signatures": []}, "at least one signature"),
    ({**GOOD, "signatures": {"sig": "c2ln"}}, "'signatures' to be a list"),
    ({**GOOD, "signatures": ["c2ln"]}, "signature 0 to be an object"),
    ({**GOOD, "signatures": [{"keyid": "k"}]}, "to have a 'sig'"),
    ({**GOOD, "signatures": [{"sig": ""}]}, "empty 'sig'"),
    ({**GOOD, "signatures": [{"sig": "c2ln", "keyid": 7}]}, "'keyid' to be a string"),
    (b'{"payload":"aGk=","payload":"b3RoZXI=","payloadType":"t","signatures":[{"sig":"c2ln"}]}', "twice"),
])
def test_from_json_refuses_what_is_malformed_in_one_line(document, reason: str) -> None:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    with pytest.raises(ValueError, match=reason) as raised:
        Envelope.from_json(data)
    assert one_line(str(raised.value)) and str(raised.value).startswith("DSSE envelope: expected")


# ------------------------------------------------------------ verifying with the wrong key, key id hints


def test_another_key_is_refused_naming_both_key_ids(signers) -> None:
    envelope = sign_envelope(PAYLOAD_IN_TOTO, b"{}", signers[ED25519])
    other = signers[ECDSA_P256].verifier()
    with pytest.raises(SignatureInvalid) as raised:
        verify_envelope(envelope, other)
    message = str(raised.value)
    assert other.keyid in message and signers[ED25519].keyid in message and "do not deploy" in message
    assert raised.value.exit_code == EXIT_DRIFT and isinstance(raised.value, CheckFailed) and one_line(message)


def test_key_ids_are_hints_only(signers) -> None:
    signer = signers[ECDSA_P256]
    good = sign_envelope(PAYLOAD_IN_TOTO, b"{}", signer).signatures[0]
    # A good signature under a lying key id still verifies; a bad one under the right key id does not.
    lying = Envelope(PAYLOAD_IN_TOTO, b"{}", (Signature("sha256:" + "0" * 64, good.sig),))
    assert verify_envelope(lying, signer.verifier()) == b"{}"
    claimed = Envelope(PAYLOAD_IN_TOTO, b"{}", (Signature(signer.keyid, b"\x30\x06\x02\x01\x01\x02\x01\x01"),))
    with pytest.raises(SignatureInvalid):
        verify_envelope(claimed, signer.verifier())
    # Untrusted key ids are shown on one line, cut short.
    noisy = Envelope(PAYLOAD_IN_TOTO, b"{}", tuple(Signature("x\n" * 100, b"s") for _ in range(6)))
    with pytest.raises(SignatureInvalid, match="and 2 more") as raised:
        verify_envelope(noisy, signer.verifier())
    assert one_line(str(raised.value)) and len(str(raised.value)) < 800


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_verifier_returns_false_for_garbage_and_never_raises(signers, algorithm: str) -> None:
    verifier = signers[algorithm].verifier()
    good = signers[algorithm].sign(b"data")
    assert verifier.verify(good, b"data") is True
    for garbage in (b"", b"\x00", good[:-1], good + b"\x00", b"\xff" * 64, b"\x30" * 72, "text", None):
        assert verifier.verify(garbage, b"data") is False
    assert verifier.verify(good, b"other") is False


# ------------------------------------------------------------ key files


def test_generate_key_writes_a_0600_private_key_and_a_public_pem(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    signer = generate_key(path, ECDSA_P256)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    pub = tmp_path / "signing.pem.pub"
    assert stat.S_IMODE(os.stat(pub).st_mode) == 0o644
    assert pub.read_bytes() == signer.verifier().public_pem()
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8, not encrypted
    assert (signer.algorithm, load_signer(path).keyid) == (ECDSA_P256, signer.keyid)
    assert generate_key(tmp_path / "default.pem").algorithm == ED25519
    assert generate_key(tmp_path / "short.pem", "ecdsa-p256").algorithm == ECDSA_P256  # the CLI's spelling


def test_generate_key_refuses_an_existing_path(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    generate_key(path)
    before = path.read_bytes()
    with pytest.raises(AttestError, match="existing file"):
        generate_key(path)
    assert path.read_bytes() == before
    (tmp_path / "only-pub.pem.pub").write_text("x")
    with pytest.raises(AttestError, match=r"only-pub\.pem\.pub.*existing file"):
        generate_key(tmp_path / "only-pub.pem")
    assert not (tmp_path / "only-pub.pem").exists()
    with pytest.raises(AttestError, match="expected one of"):
        generate_key(tmp_path / "rsa.pem", "rsa")


def test_keyid_is_the_sha256_of_the_subject_public_key_info(signers) -> None:
    for signer in signers.values():
        public = serialization.load_pem_public_key(signer.verifier().public_pem())
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert signer.keyid == keyid(public) == "sha256:" + hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o700 | 0o001])
def test_an_exposed_private_key_is_refused_before_it_is_read(tmp_path: Path, mode: int) -> None:
    path = write_private(tmp_path / "key.pem", ed25519.Ed25519PrivateKey.generate(), mode=mode)
    with pytest.raises(AttestError) as raised:
        load_signer(path)
    message = str(raised.value)
    assert f"chmod 600 {path}" in message and f"{mode:04o}" in message and one_line(message)
    body = path.read_text().splitlines()[1]
    assert "BEGIN" not in message and body not in message
    with pytest.raises(AttestError, match="chmod 600"):
        load_verifier(path)
    # Not PEM at all, and exposed: the mode is what is reported, since it is checked before the file is read.
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"\x00not a key")
    garbage.chmod(mode)
    with pytest.raises(AttestError, match="chmod 600"):
        load_signer(garbage)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_an_owner_only_private_key_loads(tmp_path: Path, mode: int) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    path = write_private(tmp_path / "key.pem", key, mode=mode)
    signer = load_signer(path)
    assert (signer.algorithm, signer.keyid) == (ED25519, keyid(key.public_key()))
    assert "PRIVATE" not in repr(signer) and "_private" not in repr(signer)


def test_a_traditional_ec_key_loads(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = write_private(tmp_path / "ec.pem", key, fmt=serialization.PrivateFormat.TraditionalOpenSSL)
    assert path.read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert load_signer(path).keyid == keyid(key.public_key())


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL])
def test_an_encrypted_key_needs_the_right_password(tmp_path: Path, monkeypatch, fmt) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = write_private(tmp_path / "enc.pem", key, fmt=fmt,
                         encryption=serialization.BestAvailableEncryption(PASSWORD.encode()))
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(AttestError, match=f"{PASSWORD_ENV} not set") as raised:
        load_signer(path)
    assert one_line(str(raised.value)) and str(path) in str(raised.value)
    monkeypatch.setenv(PASSWORD_ENV, "wrong password 12345")
    with pytest.raises(AttestError, match="wrong password") as raised:
        load_signer(path)
    assert "wrong password 12345" not in str(raised.value) and one_line(str(raised.value))
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    assert load_signer(path).keyid == keyid(key.public_key())
    assert load_verifier(path).keyid == keyid(key.public_key())
    monkeypatch.delenv(PASSWORD_ENV)
    monkeypatch.setenv("OTHER_PASSWORD", PASSWORD)
    assert load_signer(path, password_env="OTHER_PASSWORD").keyid == keyid(key.public_key())


def test_a_password_set_for_an_unencrypted_key_is_harmless(tmp_path: Path, monkeypatch) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    assert load_signer(write_private(tmp_path / "k.pem", key)).keyid == keyid(key.public_key())


@pytest.mark.parametrize(("key", "reason"), [
    (rsa.generate_private_key(public_exponent=65537, key_size=2048), "found an RSA key"),
    (ec.generate_private_key(ec.SECP384R1()), "curve secp384r1"),
])
def test_rsa_and_other_curves_are_refused(tmp_path: Path, key, reason: str) -> None:
    private = write_private(tmp_path / "k.pem", key)
    public = write_public(tmp_path / "k.pub", key.public_key())
    for load, path in ((load_signer, private), (load_verifier, private), (load_verifier, public)):
        with pytest.raises(AttestError, match=reason) as raised:
            load(path)
        assert "P-256" in str(raised.value) and one_line(str(raised.value))


def test_files_that_are_not_keys_are_refused(tmp_path: Path) -> None:
    cases = {"not.pem": b"just some text\n", "cert.pem": b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
             "other.pem": b"-----BEGIN DH PARAMETERS-----\nMIIB\n-----END DH PARAMETERS-----\n",
             "broken.pem": b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
             "broken.pub": b"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n"}
    reasons = {"not.pem": "found no PEM block", "cert.pem": "found a certificate", "other.pem": "another kind of PEM block",
               "broken.pem": "does not parse", "broken.pub": "does not parse"}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        path.chmod(0o600)
        loader = load_signer if name != "broken.pub" else load_verifier
        with pytest.raises(AttestError, match=reasons[name]) as raised:
            loader(path)
        assert one_line(str(raised.value)) and "bm90IGEga2V5" not in str(raised.value)


def test_missing_files_directories_and_public_keys_given_to_sign(tmp_path: Path, signers) -> None:
    with pytest.raises(AttestError, match="found nothing at that path"):
        load_signer(tmp_path / "absent.pem")
    with pytest.raises(AttestError, match="found nothing at that path"):
        load_verifier(tmp_path / "absent.pub")
    with pytest.raises(AttestError, match="found a directory"):
        load_signer(tmp_path)
    pub = write_public(tmp_path / "k.pub", ed25519.Ed25519PrivateKey.generate().public_key())
    pub.chmod(0o644)
    with pytest.raises(AttestError, match=r"chmod 600 .*if it is a public key, sign with the private key"):
        load_signer(pub)  # the mode is checked before the contents: the name is the only clue
    pub.chmod(0o600)
    with pytest.raises(AttestError, match="found a public key"):
        load_signer(pub)
    huge = tmp_path / "huge.pem"
    huge.write_bytes(b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 100_000)
    huge.chmod(0o600)
    with pytest.raises(AttestError, match="more than"):
        load_signer(huge)


def test_without_cryptography_the_loaders_name_the_extra(tmp_path: Path, monkeypatch) -> None:
    import harness.attest.keys as keys

    monkeypatch.setattr(keys, "_CRYPTOGRAPHY", False)
    for call in (lambda: load_signer(tmp_path / "k.pem"), lambda: load_verifier(tmp_path / "k.pub"),
                 lambda: generate_key(tmp_path / "new.pem")):
        with pytest.raises(AttestError, match=r"needs the 'cryptography' package: pip install 'mlrepro\[attest\]'"):
            call()
    assert not (tmp_path / "new.pem").exists()


def test_the_public_file_and_the_private_file_give_the_same_key_id(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    signer = generate_key(path, ECDSA_P256)
    from_pub = load_verifier(tmp_path / "k.pem.pub")
    from_private = load_verifier(path)
    assert from_pub.keyid == from_private.keyid == signer.keyid
    assert from_pub.algorithm == from_private.algorithm == ECDSA_P256
    assert from_pub.verify(signer.sign(b"x"), b"x") and from_private.verify(signer.sign(b"x"), b"x")
    (tmp_path / "k.pem.pub").chmod(0o644)  # a public key may be world-readable
    assert load_verifier(tmp_path / "k.pem.pub").public_pem() == signer.verifier().public_pem()


# ------------------------------------------------------------ the statement

IMAGE = ImageInfo(tag="mlrepro/iris:3f2a9c1d", image_id="sha256:" + "9b" * 32, content_hash="sha256:" + "c0" * 32,
                  base_image="python:3.11.7-slim-bookworm", base_image_id="sha256:" + "5a" * 32)
PROBE = {
    "schema": 1,
    "python": {"version": "3.11.7", "implementation": "CPython", "compiler": "GCC 12.2.0"},
    "platform": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.36", "release": "6.1.0"},
    "packages": {"numpy": "2.4.6", "scikit-learn": "1.9.1"},
    "threadpools": [{"user_api": "blas", "internal_api": "openblas", "num_threads": 1, "version": "0.3.27",
                     "architecture": "Haswell", "filename": "libopenblas.so"}],
    "env": {"OMP_NUM_THREADS": "1"},
}
SETTINGS = {"schema": 1, "project": "iris",
            "artifacts": [{"path": "predictions.csv", "mode": "numeric", "atol": 1e-9, "rtol": 0, "key": None},
                          {"path": "model.skops", "mode": "bitwise", "atol": 0.0, "rtol": 0.0, "key": None}]}
ARTIFACTS = (
    ArtifactResult("predictions.csv", "numeric", "equivalent", "predictions.csv: equivalent",
                   {"sha256": {"image": "a" * 64, "host": "b" * 64}}),
    ArtifactResult("model.skops", "bitwise", "identical", "model.skops: identical", {"size": 5}),
)
SUBJECTS = [("registry.example/iris:1.0", "sha256:" + "9b" * 32)]


def report(*, settings=SETTINGS, differences=(), consistency=()) -> Report:
    return Report(project="iris", image=IMAGE, lock_sha256="d" * 64, environments={"image": PROBE, "host": PROBE},
                  differences=differences, artifacts=ARTIFACTS, settings=settings, consistency=consistency,
                  reference_sha256=None)


def statement(the_report: Report | None = None, **overrides):
    arguments = dict(subjects=SUBJECTS, report=the_report or report(), report_sha256="e" * 64, sbom_sha256="f" * 64,
                     tool_version="1.2.3", platforms=["linux/amd64"])
    return verification_statement(**(arguments | overrides))


def test_the_statement_of_a_reproducible_verification() -> None:
    the_report = report()
    made = statement(the_report)
    assert (made["_type"], made["predicateType"]) == (STATEMENT_TYPE, PREDICATE_TYPE)
    assert made["subject"] == [{"name": "registry.example/iris:1.0", "digest": {"sha256": "9b" * 32}}]
    predicate = made["predicate"]
    assert predicate["verdict"] == "REPRODUCIBLE" and predicate["verdict_line"] == the_report.verdict()
    assert predicate["reproducible"] is True and predicate["lock_sha256"] == "d" * 64
    assert predicate["image"] == {"id": IMAGE.image_id, "content_hash": IMAGE.content_hash,
                                  "base_image": IMAGE.base_image, "base_image_id": IMAGE.base_image_id}
    assert predicate["settings_sha256"] == settings_sha256(SETTINGS) == settings_sha256(the_report.settings)
    assert predicate["report_sha256"] == "e" * 64
    assert predicate["sbom"] == {"mediaType": "application/vnd.cyclonedx+json", "sha256": "f" * 64}
    assert predicate["artifacts"] == [
        {"path": "predictions.csv", "mode": "numeric", "status": "equivalent", "image_sha256": "a" * 64, "host_sha256": "b" * 64},
        {"path": "model.skops", "mode": "bitwise", "status": "identical", "image_sha256": None, "host_sha256": None},
    ]
    assert predicate["tolerances"] == {"predictions.csv": {"atol": 1e-9, "rtol": 0.0}, "model.skops": {"atol": 0.0, "rtol": 0.0}}
    assert isinstance(predicate["tolerances"]["predictions.csv"]["rtol"], float)
    assert predicate["environments"]["image"] == {
        "python": {"version": "3.11.7", "implementation": "CPython"},
        "platform": {"machine": "x86_64", "system": "Linux"},
        "threadpools": [{"user_api": "blas", "internal_api": "openblas", "num_threads": 1, "version": "0.3.27"}],
        "env": {"OMP_NUM_THREADS": "1"},
    }
    assert sorted(predicate["environments"]) == ["host", "image"]
    assert all("packages" not in side for side in predicate["environments"].values())
    assert "scikit-learn" not in json.dumps(predicate)
    assert predicate["platforms"] == ["linux/amd64"] and predicate["reference_sha256"] is None
    assert predicate["tool"] == {"name": "mlrepro", "version": "1.2.3"}


def test_the_statement_round_trips_through_its_bytes_and_a_signed_envelope(signers) -> None:
    made = statement()
    data = statement_bytes(made)
    assert data == json.dumps(made, sort_keys=True, separators=(",", ":")).encode()
    assert statement_bytes(json.loads(data)) == data
    envelope = Envelope.from_json(sign_envelope(PAYLOAD_IN_TOTO, data, signers[ED25519]).to_json())
    parsed = parse_statement(verify_envelope(envelope, signers[ED25519].verifier()))
    assert parsed == made
    assert subject_digests(parsed) == {"sha256:" + "9b" * 32}


def test_without_settings_or_sbom_those_fields_are_empty() -> None:
    predicate = statement(report(settings=None), sbom_sha256=None)["predicate"]
    assert (predicate["settings_sha256"], predicate["tolerances"], predicate["sbom"]) == (None, {}, None)


def test_drift_and_non_determinism_are_named_by_their_first_word() -> None:
    drift = report(differences=(Difference("package", "numpy", "numpy: image 2.4.6, host 2.4.5", "drift"),))
    predicate = statement(drift)["predicate"]
    assert (predicate["verdict"], predicate["reproducible"]) == ("DRIFT", False)
    assert predicate["verdict_line"].startswith("DRIFT: ")
    moved = (SideConsistency("image", 2, moved=(ArtifactResult("p.csv", "bitwise", "differs", "p.csv: differs"),)),)
    predicate = statement(report(consistency=moved))["predicate"]
    assert (predicate["verdict"], predicate["reproducible"]) == ("NON-DETERMINISTIC", False)


def test_nan_is_refused_in_statement_bytes() -> None:
    with pytest.raises(ValueError):
        statement_bytes({"x": float("nan")})


@pytest.mark.parametrize("overrides", [
    {"subjects": []},
    {"subjects": [("image", "sha256:" + "AB" * 32)]},
    {"subjects": [("image", "9b" * 32)]},
    {"subjects": [("image", "sha256:" + "9b" * 31)]},
    {"subjects": [("image", "sha512:" + "9b" * 64)]},
    {"subjects": [("", "sha256:" + "9b" * 32)]},
    {"subjects": [("a", "sha256:" + "9b" * 32), ("a", "sha256:" + "9c" * 32)]},
    {"subjects": ["sha256:" + "9b" * 32]},
    {"report_sha256": "sha256:" + "e" * 64},
    {"sbom_sha256": "f" * 63},
    {"platforms": "linux/amd64"},
])
def test_a_statement_is_never_made_with_a_bad_digest_or_subject(overrides) -> None:
    with pytest.raises(ValueError) as raised:
        statement(**overrides)
    assert one_line(str(raised.value)) and "expected" in str(raised.value)


def _mutated(change) -> bytes:
    made = json.loads(statement_bytes(statement()))
    change(made)
    return json.dumps(made).encode()


@pytest.mark.parametrize(("payload", "reason"), [
    (_mutated(lambda s: s.update(_type="https://in-toto.io/Statement/v0.1")), "_type"),
    (_mutated(lambda s: s.update(predicateType="https://slsa.dev/provenance/v1")), "predicateType"),
    (_mutated(lambda s: s.update(subject=[])), "no subject"),
    (_mutated(lambda s: s.pop("subject")), "no subject"),
    (_mutated(lambda s: s.update(subject={"name": "x"})), "not a list"),
    (_mutated(lambda s: s["subject"][0]["digest"].update(sha256="9b" * 31)), "subject 0 without a sha256"),
    (_mutated(lambda s: s["subject"][0]["digest"].update(sha256="9B" * 32)), "subject 0 without a sha256"),
    (_mutated(lambda s: s["subject"][0].update(digest={"sha512": "9b" * 64})), "subject 0 without a sha256"),
    (_mutated(lambda s: s["subject"][0].pop("name")), "subject 0 without a name"),
    (_mutated(lambda s: s["subject"].append("sha256:" + "9b" * 32)), "subject 1 without a name"),
    (_mutated(lambda s: s.pop("predicate")), "no predicate"),
    (_mutated(lambda s: s["predicate"].update(verdict=True)), "no predicate with a verdict"),
    (b"not json", "invalid JSON"),
    (b"[1, 2]", "a JSON list"),
    (b'{"_type": "a", "_type": "https://in-toto.io/Statement/v1"}', "twice"),
])
def test_parse_statement_refuses_what_is_not_a_verification_statement(payload: bytes, reason: str) -> None:
    with pytest.raises(CheckFailed, match=reason) as raised:
        parse_statement(payload)
    assert raised.value.exit_code == EXIT_DRIFT and one_line(str(raised.value))
    assert not isinstance(raised.value, SignatureInvalid)
