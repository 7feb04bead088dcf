import uuid

import pytest

from ..services import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def vault_url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "vault.db")
    return fresh_database(request.getfixturevalue("postgres_url"), f"vault_{uuid.uuid4().hex[:12]}")
