"""Hostile models: each is contained, ends with a clear status, and the next run works."""

import socket
import textwrap

import orjson
import pytest

from qdsn.compute import sandbox
from qdsn.compute.sandbox import Limits

TIGHT = Limits(wall_seconds=8, cpu_seconds=2, memory=1 << 30, processes=16, file_size=8 << 20, output=1 << 16)


def model(tmp_path, source):
    (tmp_path / "m.py").write_text(textwrap.dedent(source))
    return tmp_path


def go(tmp_path, source, job=b"{}", **kw):
    return sandbox.run(model(tmp_path, source), "m.py", job, limits=kw.pop("limits", TIGHT), **kw)


def test_a_plain_model_computes(tmp_path):
    r = go(tmp_path, """
        import sys, json, os
        job = json.load(sys.stdin)
        print(json.dumps({"sum": sum(job["x"]), "uid": os.getuid(), "env": sorted(os.environ)}))
    """, b'{"x": [1, 2, 3]}')  # fmt: skip
    assert r.ok and r.isolation == "bwrap"
    out = orjson.loads(r.stdout)
    assert out["sum"] == 6 and out["uid"] == 65534 and "QDSN_PASSPHRASE" not in out["env"]


def test_no_network(tmp_path):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        r = go(tmp_path, f"""
            import socket, json
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2)
                print(json.dumps({{"connected": True}}))
            except OSError as e:
                print(json.dumps({{"connected": False, "error": str(e)}}))
        """)  # fmt: skip
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()
    assert r.ok and orjson.loads(r.stdout)["connected"] is False


def test_no_view_of_etc_or_the_node_home(tmp_path):
    home = tmp_path / "home"
    (home / "keystore").mkdir(parents=True)
    (home / "keystore" / "key.json").write_text("sealed key")
    (tmp_path / "m").mkdir()
    r = go(tmp_path / "m", f"""
        import json, os
        seen = {{p: os.path.exists(p) for p in ("/etc/shadow", "/etc/passwd", "/home", {str(home / "keystore")!r})}}
        print(json.dumps(seen))
    """, secrets=[home])  # fmt: skip
    assert r.ok and not any(orjson.loads(r.stdout).values())


def test_runtime_beside_the_home_is_refused(tmp_path):
    from qdsn.errors import PermissionDenied

    inside = sandbox.runtime_paths()[0] / "some-node-home"
    with pytest.raises(PermissionDenied, match="would show the model"):
        sandbox.command("bwrap", tmp_path, "m.py", TIGHT, [inside])


@pytest.mark.parametrize(
    ("source", "statuses"),
    [
        # on a loaded machine the loop may not get its CPU allowance before the wall clock ends it
        ("while True:\n    pass\n", {"cpu-limit", "timeout"}),
        # killed at the run's memory limit; under load the kernel's reclaim before the kill may spend the
        # run's CPU allowance first
        ("x = []\nwhile True:\n    x.append(b'x' * (1 << 24))\n", {"memory-limit", "cpu-limit"}),
        ("import time\ntime.sleep(60)\n", {"timeout"}),
        ("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", {"output-too-large"}),
        ("with open('/tmp/big', 'wb') as f:\n    while True:\n        f.write(bytes(1 << 20))\n", {"killed", "failed"}),
        ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
         {"timeout", "cpu-limit", "killed"}),
    ],
    ids=["loops", "allocates", "sleeps", "floods-stdout", "fills-disk", "forks"],
)  # fmt: skip
def test_hostile_models_are_contained(tmp_path, source, statuses):
    (tmp_path / "a").mkdir()
    r = go(tmp_path / "a", source)
    assert r.status in statuses, (r.status, r.exit_code, r.stderr[-500:])
    assert r.seconds < TIGHT.wall_seconds + 5
    (tmp_path / "b").mkdir()
    assert go(tmp_path / "b", "print('{}')\n").ok  # and the next run works


def test_process_isolation_is_chosen_not_fallen_into(tmp_path, monkeypatch):
    from qdsn.errors import PermissionDenied

    monkeypatch.setattr(sandbox, "bwrap_works", lambda: "bwrap cannot create namespaces here: test")
    with pytest.raises(PermissionDenied, match="--isolation=process"):
        go(tmp_path, "print('{}')\n")
    r = go(tmp_path, "import json, os\nprint(json.dumps(sorted(os.environ)))\n", isolation="process")
    assert r.ok and r.isolation == "process" and "HOME" in orjson.loads(r.stdout)


def test_a_runtime_under_tmp_stays_visible(tmp_path):
    cmd = sandbox.command("bwrap", tmp_path, "m.py", TIGHT, [])
    tmpfs = cmd.index("--tmpfs")
    binds = [i for i, a in enumerate(cmd) if a == "--ro-bind"]
    assert cmd[tmpfs + 1] == "/tmp" and all(i > tmpfs for i in binds)  # a later mount is not hidden by /tmp
