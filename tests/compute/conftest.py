import pytest

from qdsn.compute import cgroups


@pytest.fixture
def made_groups(monkeypatch):
    """The groups this test's runs make; other tests' runs may make theirs on the same machine at once."""
    made: list[cgroups.Group] = []
    create = cgroups.create

    def recording(memory: int, processes: int) -> cgroups.Group:
        made.append(create(memory, processes))
        return made[-1]

    monkeypatch.setattr(cgroups, "create", recording)
    return made
