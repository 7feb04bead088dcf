"""A member follows the operator's log over the API: it validates every entry itself, cosigns
checkpoints that match its replica, and catches a split view."""

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.errors import IntegrityError
from qdsn.ledger import tx
from qdsn.ledger.checkpoint import Checkpoint, cosigners_verified, sign_note
from qdsn.ledger.ledger import SplitView
from qdsn.node import Node, NodeHome
from qdsn.node.follow import follow, pull

from ..conftest import LOOPBACK
from .conftest import FAST


@pytest.fixture
def setup(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Maker", "pw", origin=reg.origin, scrypt_n=FAST)
    reg.submit("identity.register", maker.registration())
    operator = Node(reg)
    http = TestClient(create_app(operator), client=LOOPBACK)
    replica = maker.ledger()
    yield operator, maker, replica, NodeClient(str(http.base_url), maker.key(), maker.did, http=http)
    replica.close()
    operator.close()


def test_follow_cosign_and_follow_again(setup):
    operator, maker, replica, client = setup
    pulled, _ = follow(maker, replica, client)
    assert pulled == 2 and replica.root_at(2) == operator.ledger.root_at(2)
    assert operator.ledger.size == 3  # the member's checkpoint.cosign transaction
    note = operator.ledger.store.checkpoint_notes()[-1][1]
    assert cosigners_verified(note, [maker.cosigner().verifier()]) == [maker.did]
    pulled, _ = follow(maker, replica, client)  # consistent with the checkpoint it cosigned before
    assert pulled == 1 and (replica.size, operator.ledger.size) == (3, 4)
    assert pull(replica, client) == 1
    assert replica.state.digest() == operator.ledger.state.digest()


def test_a_split_view_is_refused(setup, monkeypatch):
    operator, maker, replica, client = setup
    follow(maker, replica, client)
    size = operator.ledger.size
    fake = sign_note(Checkpoint(operator.home.origin, size - 1, bytes(32)).text(), operator.home.log_signer())
    monkeypatch.setattr(operator, "checkpoint", lambda: fake)
    with pytest.raises(SplitView, match=r"split view"):
        follow(maker, replica, client)
    (row,) = operator.ledger.store.rows_of_type("alert.raise")  # the evidence, on the ledger
    alert = tx.from_leaf(row.leaf)
    theirs, ours = alert.payload["claims"]
    assert alert.submitter == maker.did and alert.payload["size"] == size - 1
    assert (theirs["signer"], theirs["root"]) == (operator.did, "00" * 32) and "timestamp" not in theirs
    assert ours == {**ours, "signer": maker.did, "root": replica.root_at(size - 1).hex()}


def test_a_fork_is_refused(setup, monkeypatch):
    """A checkpoint beyond this replica whose root no consistency proof reaches from the last one cosigned."""
    operator, maker, replica, client = setup
    follow(maker, replica, client)
    fake = sign_note(Checkpoint(operator.home.origin, replica.size + 5, bytes(32)).text(), operator.home.log_signer())
    with pytest.raises(IntegrityError, match=r"forked|consistency"):
        replica.witness(fake, operator.home.log_signer().verifier(), maker.cosigner(), 1,
                        proof=[bytes(32)])  # fmt: skip
