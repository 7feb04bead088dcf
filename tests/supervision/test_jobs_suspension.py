"""Jobs and the regulator: a suspended model is refused when asked for and fails when approved; a suspended
requester's job is refused and, suspended after asking, denied; each refusal says the regulator's reason."""

import pytest

from qdsn.errors import PermissionDenied
from qdsn.node import NodeHome
from qdsn.node.jobs import visible

from ..api.test_jobs_api import ask, lab  # noqa: F401  (the fixture: a maker's node with a published model)


def regulate(node, tmp_path, **payload):
    reg = NodeHome.open(tmp_path / "reg", "pw")
    node.order([reg.sign("regulator.action", {"reason": "模型缺陷 model defect"} | payload)])


def test_a_suspended_model_is_refused_by_jobs(lab, tmp_path):  # noqa: F811
    node, c, blob = lab
    from qdsn.compute import package
    from qdsn.node.consumer import negotiate

    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    pending = ask(c["cqc"], a, blob)
    regulate(node, tmp_path, action="suspend", scope="model", subject=package.code_hash(blob))
    done = c["maker"].call("POST", f"/jobs/{pending['id']}/approval", {})
    assert done["state"] == "failed" and "suspended by the regulator" in done["reason"] and "模型缺陷" in done["reason"]
    with pytest.raises(PermissionDenied, match="suspended by the regulator"):
        ask(c["cqc"], a, blob)
    refusals = [r for r in node.ledger.store.rows_of_type("access.decision") if b"suspended by the regulator" in r.leaf]
    assert len(refusals) == 1  # the refusal is on the ledger, as every refused request is
    pre = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:pc")[1])["uid"]
    with pytest.raises(PermissionDenied, match="suspended by the regulator"):
        ask(c["cqc"], pre, blob)  # the owner's standing approval of the code does not outrank the regulator
    regulate(node, tmp_path, action="reinstate", scope="model", subject=package.code_hash(blob), reason="fixed")
    assert ask(c["cqc"], pre, blob)["state"] == "done"


def test_a_suspended_requesters_jobs_are_refused(lab, tmp_path):  # noqa: F811
    node, c, blob = lab
    from qdsn.node.consumer import negotiate

    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    pending = ask(c["cqc"], a, blob)
    cqc = next(j.requester for j in visible(node, node.did))
    regulate(node, tmp_path, action="suspend", scope="member", subject=cqc)
    done = c["maker"].call("POST", f"/jobs/{pending['id']}/approval", {})
    assert done["state"] == "denied" and "requester is suspended by the regulator" in done["reason"]
    with pytest.raises(PermissionDenied, match="is suspended by the regulator"):
        ask(c["cqc"], a, blob)
