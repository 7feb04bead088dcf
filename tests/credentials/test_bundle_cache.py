"""An anonymous `POST /bundle` does not make the node read and encode its whole log each time: the log up
to a checkpoint is written to a file once, then streamed from it to whoever asks; a new checkpoint
writes a new one and only the newest are kept. What is sent still verifies offline as the bundle."""

import orjson
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.node import trust, verification
from qdsn.node.verification import verify_bundle

from .consortium import build


def test_the_log_is_read_once_per_checkpoint_and_streamed(tmp_path, monkeypatch):
    c = build(tmp_path / "c")
    try:
        shown = c.present(c.issue())
        store = c.lab.ledger.store
        reads: list[tuple[int, int]] = []
        leaves = store.leaves
        monkeypatch.setattr(store, "leaves", lambda a, b: reads.append((a, b)) or leaves(a, b))
        http = TestClient(create_app(c.lab))
        answers = [http.post("/bundle", json={"presentation": shown}) for _ in range(5)]
        assert all(r.status_code == 200 for r in answers)
        docs = [orjson.loads(r.content) for r in answers]  # the status token is signed afresh: its iat may differ
        assert all((d["log"], d["checkpoint"]) == (docs[0]["log"], docs[0]["checkpoint"]) for d in docs)
        assert reads == [(0, len(docs[0]["log"]))], reads  # one read of the log for five bundles
        assert answers[0].headers.get("content-length") is None  # streamed, not built whole
        doc = orjson.loads(answers[0].content)
        checks = verify_bundle(doc, aud="did:web:buyer.example", nonce="n-1",
                               trust=trust.load(trust.export(c.plant.ledger)))  # fmt: skip
        assert all(x.ok for x in checks), [x for x in checks if not x.ok]
        again = verification.bundle(c.lab, shown)
        same = ("log", "checkpoint")
        assert [again[k] for k in same] == [doc[k] for k in same]
        assert again["status_list"]["uri"] == doc["status_list"]["uri"]

        for _ in range(4):  # the log grows, each new checkpoint its own file; the old ones go
            c.run(job=f"job-{_ + 2}")
            c.cosign()
            assert http.post("/bundle", json={"presentation": shown}).status_code == 200
        assert len(list((c.lab.home.path / "bundles").glob("log-*.json"))) <= verification.KEPT
    finally:
        c.close()
