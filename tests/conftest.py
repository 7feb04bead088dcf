import os

import pytest

from .services import etcd_cluster, postgres

# The peer address every in-process TestClient is given: this machine, as a browser on the node's own host.
# Starlette's default is the name "testclient", which is no address and so not local (web.auth.local): a
# console login from it over plain HTTP is refused, as from another machine.
LOOPBACK = ("127.0.0.1", 50000)

# Tables are read by the tests: wide enough that an id is never folded, whichever worker prints them.
os.environ["COLUMNS"] = "250"
# The test nodes serve on 127.0.0.1 and fetch each other's status lists and published presentations there:
# the operator's development allowance, and no more (127.0.0.2 and the rest of loopback stay refused).
os.environ["QDSN_OUTBOUND_ALLOW"] = "127.0.0.1/32"


@pytest.fixture(scope="session")
def postgres_url():
    with postgres() as url:
        yield url


@pytest.fixture(scope="session")
def etcd():
    """One 3-member etcd cluster for the tests that only order through it (each uses its own log)."""
    with etcd_cluster(3) as cluster:
        yield cluster
