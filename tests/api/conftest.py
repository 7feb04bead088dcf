import time

import httpx
import pytest

FAST = 2**4  # scrypt cost for the throwaway keystores of these tests


def answering(proc, name: str, port: int):
    """`proc`, a `qdsn node start` on `port`, once it answers; the test fails with its output if it stops
    or does not answer within 30 s."""
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/.well-known/did.json", timeout=1)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{name} did not start: {proc.stdout.read().decode()}")
            time.sleep(0.1)
