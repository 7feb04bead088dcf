"""The batch verifier's worker processes: order, interleaving, other threads, and dead workers."""

import threading

from qdsn.crypto import SigningKey
from qdsn.crypto.verifier import CHUNK, Batch, Pool


def checks(n, bad_every=0):
    key = SigningKey.generate()
    out = []
    for i in range(n):
        msg = f"entry {i}".encode()
        sig = key.sign(msg)
        if bad_every and i % bad_every == 0:
            sig = bytes([sig[0] ^ 1]) + sig[1:]
        out.append((key.verify_key.raw, sig, msg))
    return out


def expected(n, bad_every):
    return bytes(0 if bad_every and i % bad_every == 0 else 1 for i in range(n))


def test_verdicts_in_order_across_chunks():
    pool = Pool(2)
    try:
        items = checks(CHUNK * 3 + 17, bad_every=41)
        with Batch(pool) as batch:
            for item in items:
                batch.add(*item)
            assert batch.results() == expected(len(items), 41)
        assert len(pool.workers) == 2
    finally:
        pool.close()


def test_two_batches_in_flight_get_their_own_answers():
    pool = Pool(2)
    try:
        a, b = checks(CHUNK * 2 + 5, bad_every=7), checks(CHUNK * 3, bad_every=13)
        with Batch(pool) as first, Batch(pool) as second:
            for i in range(max(len(a), len(b))):
                if i < len(a):
                    first.add(*a[i])
                if i < len(b):
                    second.add(*b[i])
            assert second.results() == expected(len(b), 13)
            assert first.results() == expected(len(a), 7)
    finally:
        pool.close()


def test_a_batch_from_another_thread_verifies_inline():
    pool = Pool(2)
    got = {}
    try:
        with Batch(pool) as mine:
            items = checks(CHUNK + 1, bad_every=5)
            for item in items:
                mine.add(*item)

            def other():
                with Batch(pool) as theirs:
                    for item in items:
                        theirs.add(*item)
                    got["theirs"] = theirs.results()

            t = threading.Thread(target=other)
            t.start()
            t.join()
            assert mine.results() == expected(len(items), 5)
        assert got["theirs"] == expected(len(items), 5)
    finally:
        pool.close()


def test_a_killed_worker_loses_no_check():
    pool = Pool(2)
    try:
        items = checks(CHUNK * 4, bad_every=11)
        with Batch(pool) as batch:
            for i, item in enumerate(items):
                batch.add(*item)
                if i == CHUNK * 2:
                    pool.workers[0].proc.kill()
                    pool.workers[0].proc.wait()
            assert batch.results() == expected(len(items), 11)
        with Batch(pool) as again:  # the pool starts fresh workers
            for item in items:
                again.add(*item)
            assert again.results() == expected(len(items), 11)
    finally:
        pool.close()


def test_a_small_batch_starts_no_worker():
    pool = Pool(2)
    items = checks(CHUNK - 1, bad_every=3)
    with Batch(pool) as batch:
        for item in items:
            batch.add(*item)
        assert batch.results() == expected(len(items), 3)
    assert pool.workers == []
