"""C2SP signed notes against golang.org/x/mod/sumdb/note's test vectors (note_test.go), plus
tlog-checkpoint parsing and tlog-cosignature (type 0x04)."""

import base64

import pytest

from qdsn.crypto import SigningKey
from qdsn.errors import BadSignature, InvalidInput
from qdsn.ledger.checkpoint import (
    COSIGNATURE_V1,
    Checkpoint,
    NoteSigner,
    add_signature,
    cosignature_time,
    cosigners_verified,
    open_note,
    parse_signer,
    parse_verifier,
    sign_note,
    verify_note,
)

SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"


def test_sign_reproduces_the_go_vector():
    assert sign_note(TEXT, SKEY) == TEXT + "\n" + PETER_SIG
    assert parse_signer(SKEY).verifier().text() == VKEY
    assert parse_signer(SKEY).text() == SKEY


def test_replacing_a_signature_by_the_same_key():
    bad = TEXT + "\n— PeterNeumann " + "x08go/ZJ" + "A" * 88 + "\n"
    assert add_signature(bad, SKEY) == TEXT + "\n" + PETER_SIG


@pytest.mark.parametrize("key,parse", [(VKEY, parse_verifier), (SKEY, parse_signer)])
def test_every_mangled_key_is_refused(key, parse):
    parse(key)
    b = key
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if (i, j) != (0, len(b)):
                with pytest.raises((InvalidInput, ValueError)):
                    parse(b[i:j])
    for i in range(len(b)):
        mangled = b[:i] + chr(ord(b[i]) + 1) + b[i + 1 :]
        with pytest.raises((InvalidInput, ValueError)):
            parse(mangled)


def test_wrong_length_and_unknown_algorithm_keys():
    for bad in [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ]:
        with pytest.raises(InvalidInput):
            parse_verifier(bad)


def test_open_verifies_known_and_ignores_unknown():
    n = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [VKEY])
    assert n.text == TEXT
    assert [s.name for s in n.verified] == ["PeterNeumann"]
    assert [s.name for s in n.unverified] == ["EnochRoot"]
    both = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [VKEY, ENOCH])
    assert [s.name for s in both.verified] == ["PeterNeumann", "EnochRoot"]
    with pytest.raises(BadSignature, match="no verifiable signatures"):
        open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])


def test_invalid_signature_from_known_key_rejects_the_note():
    with pytest.raises(BadSignature, match="PeterNeumann"):
        verify_note(TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:], [VKEY])


def test_too_many_signatures():
    with pytest.raises(InvalidInput):
        verify_note(TEXT + "\n" + PETER_SIG * 101, [VKEY])


@pytest.mark.parametrize(
    "msg",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        b"\xff" + (TEXT + "\n" + PETER_SIG).encode(),
        TEXT
        + "\n"
        + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
    ],
)
def test_malformed_notes(msg):
    with pytest.raises(InvalidInput, match="malformed note"):
        verify_note(msg, [VKEY])


def test_renamed_or_rehashed_signature_is_not_from_the_known_key():
    for bad in [PETER_SIG.replace("PeterNeumann", "CarmenSandiego"), PETER_SIG.replace("x08g", "xxxx")]:
        with pytest.raises(BadSignature, match="no verifiable"):
            verify_note(TEXT + "\n" + bad, [VKEY])


def test_checkpoint_text_round_trip_and_refusals():
    cp = Checkpoint(
        "example.com/behind-the-sofa", 20852163, base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    )
    assert cp.text() == "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert Checkpoint.parse(cp.text()) == cp
    for bad in [
        "o\n01\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n1\nAAAA\n",
        "o\n1\n",
        "o\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n",
    ]:
        with pytest.raises(InvalidInput):
            Checkpoint.parse(bad)


def test_cosignature_v1():
    log = NoteSigner("example.com/log", SigningKey.generate())
    witness = NoteSigner("witness.example/w1", SigningKey.generate(), COSIGNATURE_V1)
    text = Checkpoint("example.com/log", 5, bytes(range(32))).text()
    note = add_signature(sign_note(text, log), witness, timestamp=1679315147)
    assert verify_note(note, [log.verifier()]) == text
    assert cosigners_verified(note, [witness.verifier()]) == ["witness.example/w1"]
    sig = open_note(note, [witness.verifier()]).verified[0]
    assert cosignature_time(sig) == 1679315147
    assert base64.b64decode(witness.verifier().text().split("+", 2)[2])[0] == 0x04
    other = NoteSigner("witness.example/w2", SigningKey.generate(), COSIGNATURE_V1)
    assert cosigners_verified(note, [other.verifier()]) == []
    tampered = note.replace(text, text.replace("\n5\n", "\n6\n"))
    with pytest.raises(BadSignature):
        cosigners_verified(tampered, [witness.verifier()])
    with pytest.raises(InvalidInput):
        add_signature(note, witness)  # a cosignature needs a timestamp
