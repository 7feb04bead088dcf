"""Appends batches to a ledger forever, printing each acknowledged batch's txids; the crash test
SIGKILLs it at random moments."""

import sys

from qdsn.crypto import SigningKey
from qdsn.identity import did_key_from_public_key, multikey_from_public_key
from qdsn.ledger import Ledger, tx


def payload(key: SigningKey, role: str, name: str) -> dict:
    return {
        "did": did_key_from_public_key(key.verify_key.raw),
        "role": role,
        "name": name,
        "key": multikey_from_public_key(key.verify_key.raw),
    }


def main(db: str, seed_hex: str) -> None:
    reg = SigningKey.from_seed(bytes.fromhex(seed_hex))
    did = did_key_from_public_key(reg.verify_key.raw)
    ledger = Ledger.open(db, origin="qdsn.test/crash")
    if ledger.size == 0:
        ledger.append([tx.sign_tx("identity.register", payload(reg, "regulator", "SAMR"), reg, did)])
    n = 0
    while True:
        envs = [
            tx.sign_tx("identity.register", payload(SigningKey.generate(), "enterprise", f"E{n + i}"), reg, did)
            for i in range(25)
        ]
        receipts = ledger.append(envs)
        n += len(envs)
        print(" ".join(r.txid for r in receipts), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
