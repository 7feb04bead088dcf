import pytest

from .services import postgres


@pytest.fixture(scope="session")
def postgres_url():
    with postgres() as url:
        yield url
