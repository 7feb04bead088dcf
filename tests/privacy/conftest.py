import pytest

from qdsn.privacy import field


@pytest.fixture(params=["c", "python"])
def arithmetic(request, monkeypatch):
    """Run a test with the fields' C kernel, then with the Python code that stands in for it where it was
    not built. The C run fails, not skips, if it was not: the kernel is part of the build (setup.py)."""
    if request.param == "c":
        assert field.kernel is not None, "qdsn.privacy._fields was not built: pip install -e . needs a C compiler"
    else:
        monkeypatch.setattr(field, "kernel", None)
    return request.param
