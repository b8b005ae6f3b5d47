"""What a miner signs, byte for byte, and how it is checked."""

from __future__ import annotations

import hashlib

import pytest
from nacl.signing import VerifyKey

from qortex.signing import (
    HELLO_DOMAIN,
    RESULT_DOMAIN,
    RESULT_DOMAIN_V1,
    Signer,
    hello_message,
    input_digest,
    miner_id_of,
    parse_public_key,
    result_message,
    result_message_v1,
    verify,
)

# RFC 8032, section 7.1, TEST 1.
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC_EMPTY_SIGNATURE = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46"
    "bd25bf5f0595bbe24655141438e7a100b"
)


@pytest.fixture(scope="module")
def rfc() -> Signer:
    return Signer.from_seed(RFC_SEED)


EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
POSITIVE_SHA256 = "ec67c5ca00e5983723e8bbc9bafbd0903fa1722f4fea5f999156a417f69fc2b6"


def test_result_message_exact_bytes() -> None:
    assert result_message("a1", "m1", "i1", b'"positive"') == (
        f"qortex-result-v2\na1\nm1\ni1\n{POSITIVE_SHA256}".encode()
    )
    assert result_message("A", "M", EMPTY_SHA256, b"") == (
        f"qortex-result-v2\nA\nM\n{EMPTY_SHA256}\n{EMPTY_SHA256}".encode()
    )


def test_input_digest_is_hex_sha256_of_the_exact_bytes() -> None:
    assert input_digest(b"") == EMPTY_SHA256
    assert input_digest(b'"positive"') == POSITIVE_SHA256
    assert input_digest(b'"x"') != input_digest(b' "x"')  # whitespace is part of the bytes


def test_result_message_names_the_input() -> None:
    output = b'"positive"'
    one = result_message("a", "m", input_digest(b'"I love it"'), output)
    other = result_message("a", "m", input_digest(b'"I hate it"'), output)
    assert one != other
    assert one.split(b"\n")[3] == input_digest(b'"I love it"').encode()


def test_result_message_hashes_the_exact_output_bytes() -> None:
    output = '{"label": "café"}'.encode()
    expected = f"qortex-result-v2\nx\ny\nz\n{hashlib.sha256(output).hexdigest()}".encode()
    assert result_message("x", "y", "z", output) == expected
    # a re-serialisation with other whitespace is another message
    assert result_message("x", "y", "z", b'{"label":"caf\\u00e9"}') != expected


def test_result_message_is_utf8_for_ids() -> None:
    message = result_message("é", "ü", "", b"")
    assert message.startswith("qortex-result-v2\né\nü\n\n".encode())


def test_version_1_result_message_exact_bytes() -> None:
    assert result_message_v1("a1", "m1", b'"positive"') == (
        f"qortex-result-v1\na1\nm1\n{POSITIVE_SHA256}".encode()
    )
    assert RESULT_DOMAIN_V1 == "qortex-result-v1"


def test_hello_message_exact_bytes() -> None:
    assert hello_message("abc") == b"qortex-hello-v1\nabc"
    assert hello_message("") == b"qortex-hello-v1\n"
    assert (RESULT_DOMAIN, HELLO_DOMAIN) == ("qortex-result-v2", "qortex-hello-v1")


def test_miner_id_is_32_hex_of_sha256_of_the_raw_key(rfc: Signer) -> None:
    raw = bytes.fromhex(RFC_PUBLIC)
    assert miner_id_of(raw) == "21fe31dfa154a261626bf854046fd227"
    assert miner_id_of(raw) == hashlib.sha256(raw).hexdigest()[:32]
    assert rfc.miner_id == "21fe31dfa154a261626bf854046fd227"
    assert len(rfc.miner_id) == 32
    assert all(c in "0123456789abcdef" for c in rfc.miner_id)
    assert miner_id_of(b"\x00" * 32) != miner_id_of(b"\x00" * 31 + b"\x01")


def test_signer_from_seed_matches_rfc_8032(rfc: Signer) -> None:
    assert rfc.public_hex == RFC_PUBLIC
    assert rfc.public_key == bytes.fromhex(RFC_PUBLIC)
    assert rfc.seed == RFC_SEED
    assert rfc.sign(b"") == RFC_EMPTY_SIGNATURE


def test_signer_from_seed_is_deterministic() -> None:
    a = Signer.from_seed(b"\x01" * 32)
    b = Signer.from_seed(b"\x01" * 32)
    c = Signer.from_seed(b"\x02" * 32)
    assert a.public_hex == b.public_hex
    assert a.miner_id == b.miner_id
    assert a.sign(b"msg") == b.sign(b"msg")
    assert c.public_hex != a.public_hex
    assert Signer.from_seed(a.seed).public_hex == a.public_hex


def test_generated_signers_differ_and_roundtrip() -> None:
    a, b = Signer(), Signer()
    assert a.public_hex != b.public_hex
    assert len(a.public_hex) == 64
    assert len(a.seed) == 32
    signature = a.sign(b"hello")
    assert len(signature) == 128
    assert verify(parse_public_key(a.public_hex), b"hello", signature)


def test_parse_public_key_accepts_64_hex() -> None:
    key = parse_public_key(RFC_PUBLIC)
    assert isinstance(key, VerifyKey)
    assert bytes(key) == bytes.fromhex(RFC_PUBLIC)


@pytest.mark.parametrize(
    "text",
    [
        "",
        RFC_PUBLIC[:-2],  # 31 bytes
        RFC_PUBLIC + "00",  # 33 bytes
        RFC_PUBLIC[:-1],  # odd length
        "zz" + RFC_PUBLIC[2:],  # non-hex, right length
        "0x" + RFC_PUBLIC[2:],
    ],
)
def test_parse_public_key_refusals(text: str) -> None:
    with pytest.raises(ValueError):
        parse_public_key(text)


def test_parse_public_key_wrong_length_message() -> None:
    with pytest.raises(ValueError, match="publicKey must be 64 hex digits"):
        parse_public_key("00" * 16)


def test_verify_accepts_a_good_signature(rfc: Signer) -> None:
    key = parse_public_key(RFC_PUBLIC)
    assert verify(key, b"", RFC_EMPTY_SIGNATURE) is True
    assert verify(key, b"x", rfc.sign(b"x")) is True


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "nothex",
        "zz" * 64,
        RFC_EMPTY_SIGNATURE[:-2],  # 63 bytes
        RFC_EMPTY_SIGNATURE + "00",  # 65 bytes
        RFC_EMPTY_SIGNATURE[:-1],  # odd length
        "00" * 64,
        RFC_EMPTY_SIGNATURE[:-2] + ("00" if RFC_EMPTY_SIGNATURE[-2:] != "00" else "01"),
    ],
)
def test_verify_false_on_bad_signatures(signature: str) -> None:
    assert verify(parse_public_key(RFC_PUBLIC), b"", signature) is False


def test_verify_false_on_wrong_key_or_message(rfc: Signer) -> None:
    other = Signer.from_seed(b"\x09" * 32)
    signature = rfc.sign(b"payload")
    assert verify(parse_public_key(other.public_hex), b"payload", signature) is False
    assert verify(parse_public_key(rfc.public_hex), b"payload!", signature) is False
