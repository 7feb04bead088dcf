"""The token endpoint before a client is known: an outsider making up client ids is limited by its
address, in a bucket of its own, and never spends the allowance of the organisations holding credentials."""

import time
import uuid

from fastapi import FastAPI
from fastapi.testclient import TestClient

from qdsn.api import pact as pact_api
from qdsn.api.signatures import Throttle


def test_made_up_client_ids_do_not_empty_the_members_allowance(world):
    now = [0.0]  # the members' budget stands still for the length of the attack: nothing refills it
    app = FastAPI()
    app.include_router(pact_api.router(
        world.node, throttle=Throttle(pact_api.PER_COUNTERPART, pact_api.OVERALL, clock=lambda: now[0])))  # fmt: skip
    with TestClient(app, base_url="https://pact.maker.example", client=("203.0.113.9", 5000)) as outsider:
        got, t0 = {}, time.monotonic()
        for _ in range(405):
            r = outsider.post("/auth/token", data={"grant_type": "client_credentials"}, auth=(uuid.uuid4().hex, "x"))
            got[r.status_code] = got.get(r.status_code, 0) + 1
    burst, rate = pact_api.TOKEN_ATTEMPTS_PER_ADDRESS  # limited by its address, whatever ids it makes up
    assert set(got) == {401, 429} and got[401] <= burst + rate * (time.monotonic() - t0) + 1, got
    assert r.json()["error"] == "invalid_request" and "from this address" in r.json()["error_description"]
    with TestClient(app, base_url="https://pact.maker.example", client=("198.51.100.7", 5000)) as buyer:
        creds = world.creds  # another address, and the organisation's allowance untouched
        r = buyer.post("/auth/token", data={"grant_type": "client_credentials"},
                       auth=(creds["client_id"], creds["client_secret"]))  # fmt: skip
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        r = buyer.get("/3/footprints?limit=1", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text


def test_from_many_addresses_strangers_fill_their_own_bucket_only(world):
    now = [0.0]
    clock = lambda: now[0]  # noqa: E731
    members = Throttle(pact_api.PER_COUNTERPART, (3, 0.001), clock=clock)  # a small overall budget for members
    app = FastAPI()
    app.include_router(pact_api.router(world.node, throttle=members,
                                       attempts=Throttle((2, 0.001), (5, 0.001), clock=clock)))  # fmt: skip
    statuses = []
    for i in range(10):  # ten addresses of the attacker's: only the strangers' overall bucket runs dry
        with TestClient(app, base_url="https://pact.maker.example", client=(f"203.0.113.{i}", 5000)) as http:
            r = http.post("/auth/token", data={"grant_type": "client_credentials"}, auth=(uuid.uuid4().hex, "x"))
            statuses.append(r.status_code)
    assert statuses == [401] * 5 + [429] * 5
    token = world.token()  # the node's own app, its own buckets: the credentials work
    with TestClient(app, base_url="https://pact.maker.example", client=("198.51.100.7", 5000)) as buyer:
        auth = {"authorization": f"Bearer {token}"}
        assert [buyer.get("/3/footprints?limit=1", headers=auth).status_code for _ in range(3)] == [200] * 3
