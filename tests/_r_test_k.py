import sys, socket, threading, time
import uvicorn
sys.path.insert(0, "tests")
from credentials.consortium import build
from qdsn.api.app import create_app

def test_slow_body(tmp_path):
    c = build(tmp_path / "c")
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    server = uvicorn.Server(uvicorn.Config(create_app(c.lab), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started: time.sleep(0.05)
    try:
        socks = []
        for i in range(200):
            k = socket.create_connection(("127.0.0.1", port))
            k.sendall(b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")
            socks.append(k)
        t0 = time.monotonic()
        for step in range(4):
            time.sleep(10)
            for k in socks: k.sendall(b"1\r\n \r\n")  # one byte every 10 s
        alive = 0
        for k in socks:
            k.setblocking(False)
            try:
                d = k.recv(100); alive += 0 if d == b"" else 0
            except BlockingIOError:
                alive += 1
        print("connections still open after", round(time.monotonic() - t0), "s of 1 byte/10 s:", alive, "of", len(socks))
    finally:
        server.should_exit = True; c.close()
