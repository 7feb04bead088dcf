"""Trained parameters in a safe file, named by their SHA-256.

Arrays go into an `.npz` (numpy's zip of `.npy` files) written here byte for byte the same for the same
arrays (fixed zip times), read with `allow_pickle=False`: a file holding a Python object is refused, never
unpickled. An estimator with no array form (an isolation forest's trees) goes through skops, loaded only
when every type the file names is on `TRUSTED`, and then only its checked arrays are kept (`forest`).
The hash is checked before a byte is parsed — except a forest named by its canonical digest (what an
attestation carries, since skops bytes differ between two dumps of one forest), which can only be known
from the parsed trees: that parse is bounded in size and to trusted types, and nothing is scored before
the digest matches.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np

from qdsn.compute import forest as trees
from qdsn.crypto import sha256
from qdsn.errors import IntegrityError, InvalidInput

MAX_BYTES = 64 * 2**20  # a parameters file, and what its members may unpack to
# What an isolation forest is made of in skops' own names; anything else in a file is refused.
TRUSTED = [
    "sklearn.ensemble._iforest.IsolationForest",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
    "numpy.random._mt19937.MT19937",
    "numpy.random.mtrand.RandomState",
    "builtins.int",
    "builtins.float",
    "builtins.str",
    "builtins.slice",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.int64",
    "numpy.float64",
]


def digest(data: bytes) -> str:
    """The lowercase hex SHA-256 of a parameters file: what an attestation carries."""
    return sha256(data).hex()


def dump_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz of plain arrays, the same bytes for the same arrays; object arrays are refused."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(arrays):
            a = np.asarray(arrays[name])
            if a.dtype.hasobject:
                raise InvalidInput(f"parameter {name} holds Python objects; only plain arrays are saved")
            member = io.BytesIO()
            np.lib.format.write_array(member, a, allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue())
    return buf.getvalue()


def check(data: bytes, expected: str, what: str) -> None:
    """InvalidInput past the size bound; IntegrityError unless `data` has the SHA-256 `expected`."""
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"the {what} is {len(data)} bytes, above the {MAX_BYTES}-byte bound")
    got = digest(data)
    if got != expected.lower():
        raise IntegrityError(f"the {what} has SHA-256 {got}, not the {expected} it should have",
                             "use the parameters file the attestation names; this one was changed or is "
                             "another")  # fmt: skip


def _unpacked(data: bytes) -> None:
    """InvalidInput when a zip's members claim to unpack past the bound (a small file can hold gigabytes)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        if sum(i.file_size for i in z.infolist()) > MAX_BYTES:
            raise InvalidInput(f"the parameters file unpacks to more than {MAX_BYTES} bytes")


def load_arrays(data: bytes, expected: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz whose SHA-256 is `expected`; IntegrityError when it is not, InvalidInput
    when the file is not plain arrays (a pickled object inside is refused, never loaded)."""
    check(data, expected, "parameters file")
    try:
        _unpacked(data)
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except ValueError as e:  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
        raise InvalidInput(f"the parameters file is not plain arrays ({e})", "only .npz files of numbers and "
                           "text are read; a pickled object is never loaded") from None  # fmt: skip
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise InvalidInput(f"the parameters file is not an .npz archive ({e})") from None


def dump_estimator(estimator: Any) -> bytes:
    """A scikit-learn estimator in skops' format (its file hash names this file, not the estimator: skops
    names members by object identity, so two dumps of one forest differ in bytes; `forest_digest` names
    the forest)."""
    import skops.io

    return bytes(skops.io.dumps(estimator))


def forest_digest(estimator: Any) -> str:
    """The canonical digest of an isolation forest: the same for the same trees however saved."""
    return trees.of(estimator)[1]


def load_estimator(data: bytes, expected: str) -> Any:
    """The isolation forest of a skops file whose SHA-256 is `expected`, when it names only `TRUSTED` types
    and its trees are sound; rebuilt from its checked arrays, never scored as loaded."""
    check(data, expected, "model file")
    return _forest(data)[0]


def load_forest(data: bytes, expected: str) -> tuple[Any, str]:
    """(the forest, its canonical digest) of a skops file named by `expected`: the file's SHA-256 or the
    forest's canonical digest; IntegrityError when it is neither."""
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"the model file is {len(data)} bytes, above the {MAX_BYTES}-byte bound")
    if digest(data) == expected.lower():
        return _forest(data)
    got, canonical = _forest(data)
    if canonical != expected.lower():
        raise IntegrityError(f"the model file has SHA-256 {digest(data)} and forest digest {canonical}, neither "
                             f"the {expected} it should have",
                             "use the parameters file the attestation names; this one was changed or is "
                             "another")  # fmt: skip
    return got, canonical


def _forest(data: bytes) -> tuple[Any, str]:
    import skops.io

    try:
        _unpacked(data)
        untrusted = [t for t in skops.io.get_untrusted_types(data=data) if t not in TRUSTED]
    except InvalidInput:
        raise
    except Exception as e:  # skops raises whatever its zip and JSON readers raise on a bad file
        raise InvalidInput(f"the model file is not a skops file ({type(e).__name__}: {e})") from None
    if untrusted:
        raise InvalidInput(f"the model file names types that are not trusted: {', '.join(sorted(untrusted))}",
                           "only an isolation forest's own types are loaded")  # fmt: skip
    try:
        loaded = skops.io.loads(data, trusted=TRUSTED)
    except Exception as e:
        raise InvalidInput(f"the model file does not load ({type(e).__name__}: {e})") from None
    return trees.of(loaded)
