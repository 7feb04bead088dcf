"""Key lookups for signers this replica does not know are limited by client address only: made-up
keyids from a few addresses never starve the lookup of a member registered a moment ago."""

from qdsn.api.signatures import Resolver


def test_made_up_keyids_do_not_starve_a_new_members_lookup():
    now, admitted, looked_up = [0.0], {}, []

    def lookup(did):  # what catching up with the log operator would find
        looked_up.append(did)
        return admitted.get(did)

    keys = Resolver(lambda did: None, lookup, clock=lambda: now[0])  # a node's Resolver, time frozen
    for address in range(10):
        for i in range(3):  # each address's whole allowance, on keyids made up
            assert keys(f"did:key:made-up-{address}-{i}", f"203.0.113.{address}") is None
    admitted["did:key:new-member"] = b"k" * 32
    assert keys("did:key:new-member", "198.51.100.7") == b"k" * 32
    assert looked_up[-1] == "did:key:new-member"
