"""Strangers cannot make a follower call its log operator at will: anonymous reads answer from the
replica as it stands (caught up at most every PUBLIC_RECENT seconds), and every catch-up, whoever asks,
is one at a time and at most one every CATCH_UP_EVERY seconds, while a caller that must see the log as
it stands still sees every entry written before it asked."""

import threading
import time

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.node import Node, NodeHome
from qdsn.node.node import CATCH_UP_EVERY

from .conftest import FAST


class Counting:
    """The log operator's API, counting the entries requests a follower makes."""

    def __init__(self, inner: NodeClient) -> None:
        self.inner, self.calls = inner, 0

    def call(self, method, path, *args, **kw):
        if path.startswith("/ledger/entries"):
            self.calls += 1
            time.sleep(0.02)  # a real operator takes a moment: concurrent askers overlap
        return self.inner.call(method, path, *args, **kw)

    def submit(self, envelopes):
        return self.inner.submit(envelopes)


@pytest.fixture
def follower(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Maker", "pw", origin=reg.origin, scrypt_n=FAST)
    reg.submit("identity.register", maker.registration())
    operator = Node(reg)
    http = TestClient(create_app(operator))
    link = Counting(NodeClient(str(http.base_url), maker.key(), maker.did, http=http))
    node = Node(maker, link=link)
    node.catch_up()
    yield reg, operator, node, link
    node.close()
    operator.close()


@pytest.mark.parametrize("path", ["/.well-known/qdsn-trust.json", "/stats/tasks", "/supervision/actions",
                                  "/supervision/plans", "/console/verify"])  # fmt: skip
def test_anonymous_reads_do_not_call_the_operator_each(follower, path):
    _, _, node, link = follower
    before = link.calls
    with TestClient(create_app(node)) as anonymous:
        statuses = {anonymous.get(path).status_code for _ in range(50)}
    assert statuses <= {200, 404}, statuses
    assert link.calls - before <= 1, f"50 anonymous GET {path}: the operator was called {link.calls - before} times"


def test_catch_ups_are_coalesced_whoever_asks(follower):
    _, _, node, link = follower
    before, start = link.calls, threading.Barrier(16)

    def ask():
        start.wait()
        node.catch_up()

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert link.calls - before <= 2  # one under way when they asked, and one for all of them after it
    before, t0 = link.calls, time.monotonic()
    for _ in range(4):
        node.catch_up()  # each must see the log as it stands: it waits for the next one
    took = time.monotonic() - t0
    assert link.calls - before == 4 and took >= 3 * CATCH_UP_EVERY  # at most one every CATCH_UP_EVERY


def test_a_caller_that_must_see_the_log_sees_what_was_written_before_it_asked(follower):
    reg, operator, node, _ = follower
    node.catch_up()
    other = NodeHome.init(reg.path.parent / "other", "enterprise", "Other", "pw", origin=reg.origin, scrypt_n=FAST)
    operator.submit([reg.sign("identity.register", other.registration())])  # at once after the last catch-up
    assert node.catch_up() == 1 and node.key_of(other.did) is not None
    assert node.ledger.size == operator.ledger.size


def test_a_members_own_submission_is_followed_back_at_once(follower):
    reg, operator, node, _ = follower
    node.catch_up_every = 30.0  # the pace made long: only a caller held to it would wait
    other = NodeHome.init(reg.path.parent / "other", "enterprise", "Other", "pw", origin=reg.origin, scrypt_n=FAST)
    (receipt,) = operator.submit([reg.sign("identity.register", other.registration())])
    t0 = time.monotonic()
    assert node.catch_up(until=receipt.seq + 1) == 1  # as `submit` follows its own entries back
    assert time.monotonic() - t0 < 10
    assert node.catch_up(recent=60) == 0  # an anonymous reader does not make it call again
