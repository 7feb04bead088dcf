"""Approving a job in the console: the model runs in a task of the node, the page answers at once and
follows the run step by step, then shows the outcome; the audit log names the approver and the entry."""

import re
import threading
import time

from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.node import jobs as node_jobs
from qdsn.node.consumer import negotiate
from qdsn.web.staff import StaffStore

from ..api.test_jobs_api import ask, lab  # noqa: F401  (the fixture: a maker's node, a certifier, a published model)
from ..conftest import LOOPBACK

PW = "a long staff password"


def test_approving_runs_the_job_in_a_task_whose_progress_the_page_shows(lab, monkeypatch):  # noqa: F811
    node, c, blob = lab
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    job = ask(c["cqc"], a, blob)["id"]
    StaffStore(node.home.path).add("wang.fang", "approver", PW)
    web = TestClient(create_app(node), client=LOOPBACK)
    token = re.search(r'name="csrf" value="([^"]+)"', web.get("/console/login").text)[1]
    assert web.post("/console/login", data={"name": "wang.fang", "password": PW, "csrf": token}).status_code == 200
    go, run = threading.Event(), node_jobs.execute

    def held(*args, **kw):  # the model's run, held until the page has been seen during it
        go.wait(30)
        return run(*args, **kw)

    monkeypatch.setattr(node_jobs, "execute", held)
    page = web.get(f"/console/enterprise/jobs/{job}").text
    token = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    began = time.monotonic()
    r = web.post(f"/console/enterprise/jobs/{job}/approve", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and time.monotonic() - began < 10 and not go.is_set()  # answered while it runs
    task = r.headers["location"].split("task=")[1]
    for _ in range(100):
        if web.get(f"/console/tasks/{task}").json()["stage"] == "running":
            break
        time.sleep(0.05)
    during = web.get(r.headers["location"])
    assert 'id="progress"' in during.text and "running the model in the sandbox" in during.text
    assert web.get("/console/enterprise/overview").status_code == 200  # the console answers meanwhile
    go.set()
    for _ in range(600):
        state = web.get(f"/console/tasks/{task}").json()
        if state["state"] != "running":
            break
        time.sleep(0.1)
    assert state["state"] == "done" and state["outcome"]["state"] == "done", state
    after = web.get(r.headers["location"]).text
    assert 'id="progress"' not in after and re.search(r'class="done" id="state"', after)
    (line,) = StaffStore(node.home.path).trail(action="job.approve")
    assert line["staff"] == "wang.fang" and line["detail"]["outcome"] == "done"
    assert isinstance(line["detail"]["entry"], int)


def test_approving_a_job_that_is_not_pending_is_refused_at_once_and_audited(lab):  # noqa: F811
    node, c, blob = lab
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    job = ask(c["cqc"], a, blob)["id"]
    node_jobs.deny(node, job, "not now")
    StaffStore(node.home.path).add("wang.fang", "approver", PW)
    web = TestClient(create_app(node), client=LOOPBACK)
    token = re.search(r'name="csrf" value="([^"]+)"', web.get("/console/login").text)[1]
    web.post("/console/login", data={"name": "wang.fang", "password": PW, "csrf": token})
    token = re.search(r'name="csrf" value="([^"]+)"', web.get("/console/enterprise/overview").text)[1]
    r = web.post(f"/console/enterprise/jobs/{job}/approve", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 409 and "is denied" in r.text
    (line,) = StaffStore(node.home.path).trail(action="job.approve")
    assert line["detail"]["outcome"] == "refused"
