"""Schemathesis against the node's OpenAPI: requests generated from the schema for every operation,
signed by a member so that they reach past authentication, never get a 5xx, and every refusal is
problem+json."""

import json

import httpx
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from qdsn.api.app import create_app
from qdsn.api.signatures import Throttle, sign

from ..conftest import LOOPBACK
from .test_transfer_api import market  # noqa: F401 — the fixture: a provider with anchored data and offers


def test_no_server_errors(market):  # noqa: F811
    node, _, homes = market
    unbounded = Throttle((1e9, 1e9), (1e9, 1e9))  # every generated case reaches its route, none is held at 429
    app = create_app(node, counterparts=unbounded, scored=unbounded)
    http, member = TestClient(app, client=LOOPBACK), homes["cqc"]
    secure = TestClient(app, base_url="https://testserver", client=LOOPBACK)  # PACT's routes answer over HTTPS only
    operations = [op.ok() for op in schemathesis.openapi.from_asgi("/openapi.json", app).get_all_operations()]
    assert len(operations) >= 18

    def send(case) -> None:
        pact = case.path.startswith(("/3/", "/auth/", "/.well-known/openid"))  # PACT v3's own error objects
        client = secure if pact else http
        kw = case.as_transport_kwargs(base_url=str(client.base_url))
        body = json.dumps(kw["json"]).encode() if "json" in kw else b""
        url = str(httpx.URL(kw["url"], params=kw.get("params") or None))
        headers = [(k, v) for k, v in kw["headers"].items() if k.lower() == "content-type"]
        headers = sign(case.method, url, headers, body, member.key(), member.did)
        r = client.request(case.method, url, content=body, headers=headers)
        assert r.status_code < 500, f"{case.method} {url} → {r.status_code}: {r.text}"
        if r.status_code >= 400 and pact:
            said = r.json()
            assert r.headers["content-type"] == "application/json", r.text
            assert said.get("message") or said.get("error"), r.text
        elif r.status_code >= 400:
            assert r.headers["content-type"] == "application/problem+json" and r.json()["detail"], r.text

    fuzz = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    for op in operations:
        fuzz(given(op.as_strategy())(lambda case: send(case)))()
