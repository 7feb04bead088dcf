"""The login limit as a guesser would try it: many wrong passwords at once, from one address and from
many, and an approver's own desk still signing in while others guess at its account."""

import threading
import time

import pytest
from argon2 import PasswordHasher

from qdsn.errors import InvalidInput, RateLimited
from qdsn.web import staff
from qdsn.web.staff import ACCOUNT_LIMIT, ADDRESS_LIMIT, CHECKS, PAIR_LIMIT, StaffStore

PW = "a long staff password"


@pytest.fixture
def store(tmp_path, monkeypatch):
    # Argon2id with small parameters: the limits count checks, whatever each costs (the real ones take 64 MiB)
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(staff, "_hasher", cheap)
    monkeypatch.setattr(staff, "_DUMMY", cheap.hash("not an account's"))
    s = StaffStore(tmp_path)
    s.add("approver", "approver", PW)
    yield s
    s.close()


class Slow:
    """The hasher, each check taking a while and counted: how many run at once."""

    def __init__(self, real):
        self.real, self.inside, self.most, self.lock = real, 0, 0, threading.Lock()

    def __getattr__(self, name):
        return getattr(self.real, name)

    def verify(self, hashed, password):
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        try:
            time.sleep(0.2)
            return self.real.verify(hashed, password)
        finally:
            with self.lock:
                self.inside -= 1


def attempt(store, name, password, address):
    try:
        store.login(name, password, address)
        return "in"
    except RateLimited:
        return "limited"
    except InvalidInput:
        return "wrong"


def test_concurrent_wrong_passwords_are_all_counted_before_they_are_checked(tmp_path, store, monkeypatch):
    """Eight guesses at once, from as many processes (each its own store on the one file): no more
    passwords are checked than the limit allows."""
    monkeypatch.setattr(staff, "_hasher", Slow(staff._hasher))
    stores = [StaffStore(tmp_path) for _ in range(8)]
    gate = threading.Barrier(8)
    said = []

    def guess(s):
        gate.wait()
        said.append(attempt(s, "approver", "not the password", "203.0.113.9"))

    threads = [threading.Thread(target=guess, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert said.count("wrong") == PAIR_LIMIT and said.count("limited") == 8 - PAIR_LIMIT, said
    assert attempt(store, "approver", PW, "203.0.113.9") == "limited"  # even the right one, from there


def test_at_most_a_few_passwords_are_checked_at_once(store, monkeypatch):
    """Each check takes Argon2's 64 MiB: anonymous logins at once cannot take the node's memory."""
    slow = Slow(staff._hasher)
    monkeypatch.setattr(staff, "_hasher", slow)
    threads = [threading.Thread(target=attempt, args=(store, "approver", "wrong password", f"198.51.100.{i}"))
               for i in range(8)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= slow.most <= CHECKS


def test_a_login_that_cannot_be_checked_is_refused_as_busy_and_not_counted(store, monkeypatch):
    monkeypatch.setattr(staff, "CHECK_WAIT", 0.05)
    for _ in range(CHECKS):
        staff._checking.acquire()
    try:
        with pytest.raises(RateLimited, match="busy"):
            store.login("approver", PW, "192.0.2.1")
    finally:
        for _ in range(CHECKS):
            staff._checking.release()
    for _ in range(PAIR_LIMIT - 1):
        assert attempt(store, "approver", "wrong password", "192.0.2.1") == "wrong"
    assert attempt(store, "approver", PW, "192.0.2.1") == "in"  # the busy refusal was no failure


def test_a_guesser_cannot_lock_an_approver_out(store):
    for _ in range(PAIR_LIMIT):
        assert attempt(store, "approver", "wrong password", "203.0.113.9") == "wrong"
    assert attempt(store, "approver", PW, "203.0.113.9") == "limited"
    assert attempt(store, "approver", PW, "10.0.0.7") == "in"  # the approver at its own desk


def test_many_guessers_lock_the_account_but_not_where_it_signs_in_from(store):
    assert attempt(store, "approver", PW, "10.0.0.7") == "in"  # its desk, known
    said = [attempt(store, "approver", "wrong password", f"198.51.100.{i // 4}") for i in range(ACCOUNT_LIMIT)]
    assert said == ["wrong"] * ACCOUNT_LIMIT
    assert attempt(store, "approver", "wrong password", "198.51.100.200") == "limited"
    assert attempt(store, "approver", PW, "192.0.2.55") == "limited"  # an address it never signed in from
    assert attempt(store, "approver", PW, "10.0.0.7") == "in"


def test_one_address_guessing_many_names_is_limited(store):
    said = [attempt(store, f"name{i}", "wrong password", "203.0.113.50") for i in range(ADDRESS_LIMIT + 1)]
    assert said[:ADDRESS_LIMIT] == ["wrong"] * ADDRESS_LIMIT and said[-1] == "limited"
    assert attempt(store, "approver", PW, "203.0.113.50") == "limited"


def test_a_right_password_clears_only_its_own_address_failures(store):
    for _ in range(PAIR_LIMIT - 1):
        attempt(store, "approver", "wrong password", "10.0.0.7")
    assert attempt(store, "approver", PW, "10.0.0.7") == "in"
    for _ in range(PAIR_LIMIT):
        assert attempt(store, "approver", "wrong password", "10.0.0.7") == "wrong"
    assert attempt(store, "approver", "wrong password", "10.0.0.7") == "limited"
