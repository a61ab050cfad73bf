"""The disk cache of estimated references, shared by processes (sweep workers, repeated runs).

A file ``<cache_dir>/references/<key>.pt`` holds the state of one reference stream
(:mod:`gradbench.engine.reference`); ``key`` is the SHA-256 of everything that decides its
numbers: the objective's name and class (and the contents of the file that defines it, so editing a
model's cost invalidates its entries; data it loads from elsewhere do not, so pass
``--no-cache`` after changing those), settings and parameter values, the estimator's class and
options, the device type, dtype, rows per call and groups, and the gradbench version. A
file is replaced atomically (written beside it, then renamed), and only by a stream that holds
more calls, so concurrent writers leave a valid file and a reader never sees half of one.

The default location is ``$GRADBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/gradbench``, else
``~/.cache/gradbench`` (:func:`default_cache_dir`).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import tempfile
from importlib.metadata import version
from pathlib import Path

import torch

from gradbench.core.estimator import Estimator
from gradbench.core.objective import Objective
from gradbench.core.params import Params

#: Overrides the cache's location.
CACHE_ENV = "GRADBENCH_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$GRADBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/gradbench``, else ``~/.cache/gradbench``."""
    if chosen := os.environ.get(CACHE_ENV):
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gradbench"


def key(
    objective: Objective,
    params: Params,
    estimator: Estimator,
    device: torch.device,
    dtype: torch.dtype,
    rows_per_call: int,
    groups: int,
) -> str:
    """The hex SHA-256 naming one reference stream (see the module docstring)."""
    digest = hashlib.sha256()
    for part in (
        version("gradbench"),
        objective.name,
        f"{type(objective).__module__}.{type(objective).__qualname__}",
        repr(sorted(objective.config.items())),
        f"{type(estimator).__module__}.{type(estimator).__qualname__}",
        repr(sorted(estimator.config.items())),
        device.type,
        str(dtype),
        str(rows_per_call),
        str(groups),
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(_source_digest(type(objective)))
    for name, value in params.items():
        digest.update(name.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.detach().double().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _source_digest(cls: type) -> bytes:
    """The SHA-256 of the file that defines ``cls`` (empty when there is none to read)."""
    try:
        source = inspect.getsourcefile(cls)
        return hashlib.sha256(Path(source).read_bytes()).digest() if source else b""
    except (OSError, TypeError):
        return b""


def _path(cache_dir: Path, name: str) -> Path:
    return cache_dir / "references" / f"{name}.pt"


def load(cache_dir: Path, name: str) -> dict | None:
    """The stored state for ``name``, or None when there is none or it cannot be read."""
    path = _path(cache_dir, name)
    try:
        return torch.load(path, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError):  # missing, or not a state we wrote
        return None


def store(cache_dir: Path, name: str, state: dict) -> None:
    """Write ``state`` for ``name`` unless the file already holds as many blocks or more. A
    cache that cannot be written (read-only, full) is skipped: it only saves time."""
    stored = load(cache_dir, name)
    if stored is not None and int(stored["calls"]) >= int(state["calls"]):
        return
    path = _path(cache_dir, name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(state, file)
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
