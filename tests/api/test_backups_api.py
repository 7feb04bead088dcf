"""The real-time backup: a manufacturer's node hands its sealed vault to a member node that keeps it
without reading it, again whenever the vault changes; only the owner fetches it back and opens it."""

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.data import backup
from qdsn.data.vault import Vault
from qdsn.errors import IntegrityError, InvalidInput, NotFound, PermissionDenied
from qdsn.node import Node, NodeHome

from ..conftest import LOOPBACK
from .conftest import FAST


@pytest.fixture
def consortium(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Maker", "pw", origin=reg.origin, scrypt_n=FAST)
    lab = NodeHome.init(tmp_path / "lab", "certifier", "Lab", "pw", origin=reg.origin, scrypt_n=FAST)
    for h in (maker, lab):
        reg.submit("identity.register", h.registration())
    keeper = Node(lab, ledger=reg.ledger())  # one machine: the keeper reads the regulator's log file
    http = TestClient(create_app(keeper), client=LOOPBACK)
    yield reg, maker, lab, keeper, lambda home: NodeClient(str(http.base_url), home.key(), home.did, http=http)
    keeper.close()


def test_kept_sealed_refreshed_when_changed_and_returned_only_to_the_owner(consortium, tmp_path):
    reg, maker, lab, keeper, client = consortium
    plant = Node(maker, ledger=keeper.ledger)
    try:
        plant.vault.create("line-secret", "measurements")
        plant.vault.add_batch("line-secret", [{"characteristic": "r", "value": 17.5, "time": "2026-03-01T08:00:00Z"}])
        to_keeper = client(maker)
        first = plant.back_up(to_keeper)
        assert first is not None and plant.back_up(to_keeper) is None  # unchanged: nothing sent
        kept = keeper.keeper.fetch(maker.did)
        assert b"line-secret" not in kept and backup.parse_header(kept)["owner"] == maker.did
        with pytest.raises(NotFound):  # the keeper holds the owner's key nowhere
            backup.restore(kept, Vault(str(tmp_path / "k.db"), lab.kek).engine, lab.kek)
        plant.vault.add_batch("line-secret", [{"characteristic": "r", "value": 17.6, "time": "2026-03-01T08:01:00Z"}])
        assert plant.back_up(to_keeper) not in (None, first)  # the vault grew: sent again
        with pytest.raises(PermissionDenied):
            client(reg).call("GET", f"/backups/{maker.did}")
        with pytest.raises(PermissionDenied):
            client(lab).call("PUT", f"/backups/{maker.did}", raw=kept)
        with pytest.raises(InvalidInput, match="not a QDSN vault backup"):
            to_keeper.call("PUT", f"/backups/{maker.did}", raw=b"not a backup")
        with pytest.raises(NotFound):
            client(reg).call("GET", f"/backups/{reg.did}")
        back = to_keeper.call("GET", f"/backups/{maker.did}")
        fresh = Vault(str(tmp_path / "restored.db"), maker.kek)
        backup.restore(back, fresh.engine, maker.kek)
        assert [r["value"] for r in fresh.records("line-secret")] == [17.5, 17.6]
        tampered = back[:-5] + bytes([back[-5] ^ 1]) + back[-4:]
        with pytest.raises(IntegrityError):
            backup.restore(tampered, Vault(str(tmp_path / "t.db"), maker.kek).engine, maker.kek)
    finally:
        plant.close()
