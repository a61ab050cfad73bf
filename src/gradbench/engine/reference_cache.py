"""The disk cache of estimated references, shared by processes (sweep workers, repeated runs).

A file ``<cache_dir>/references/<key>.pt`` holds the state of one reference stream
(:mod:`gradbench.engine.reference`); ``key`` is the SHA-256 of everything that decides its
numbers: the objective's name, settings and parameter values; the code of its class and of the
estimator's — the files that define every class of both (outside torch), and for classes made
at run time (``ModelObjective.define``) the code of their functions and the tensors and modules
those reach (closures, globals), so editing a model invalidates its entries; the estimator's
options; the device type, dtype, rows per call and groups; the gradbench and torch versions.
Data read from elsewhere at run time are not in the key: pass ``--no-cache`` after changing
those. Classes whose code cannot be read (defined in a REPL) are not cached on disk. A
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
import types
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
) -> tuple[str, bool]:
    """The hex SHA-256 naming one reference stream (see the module docstring), and whether it
    may go to disk: not when the code of a class cannot be read (then the key covers it by
    identity, for this process only)."""
    digest = hashlib.sha256()
    for part in (
        version("gradbench"),
        torch.__version__,
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
    try:
        digest.update(code_digest(type(objective)) + code_digest(type(estimator)))
        on_disk = True
    except (OSError, TypeError):  # a class from a REPL: its code has no file to read
        digest.update(f"{id(type(objective))}/{id(type(estimator))}".encode())
        on_disk = False
    for name, value in params.items():
        digest.update(name.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.detach().double().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest(), on_disk


def code_digest(cls: type) -> bytes:
    """The SHA-256 of the code behind ``cls``: the source file of every class in its MRO
    (outside torch and builtins), and the functions in their ``__dict__`` with what they reach.
    Raises :class:`OSError` where a class's source cannot be read."""
    digest, seen = hashlib.sha256(), set()
    for base in cls.__mro__:
        if base.__module__.split(".")[0] in ("builtins", "torch", "abc", "typing"):
            continue
        source = inspect.getsourcefile(base)
        if source is None:
            raise OSError(f"no source file for {base.__qualname__}")
        digest.update(Path(source).read_bytes())
        for value in vars(base).values():
            _reach(value, digest, seen)
    return digest.digest()


def _reach(value: object, digest: hashlib._Hash, seen: set[int]) -> None:
    """Fold into ``digest`` what a function computes with: its code, and the tensors, modules
    and functions it reaches through closures, defaults and globals."""
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, staticmethod | classmethod):
        value = value.__func__
    if isinstance(value, torch.Tensor):
        digest.update(value.detach().double().cpu().contiguous().numpy().tobytes())
    elif isinstance(value, torch.nn.Module):
        digest.update(repr(value).encode())
        for tensor in value.state_dict().values():
            _reach(tensor, digest, seen)
    elif isinstance(value, types.FunctionType):
        code = value.__code__
        digest.update(code.co_code + repr(code.co_consts).encode() + repr(code.co_names).encode())
        reached = [cell.cell_contents for cell in value.__closure__ or ()]
        reached += [value.__globals__[name] for name in code.co_names if name in value.__globals__]
        for item in [*reached, *(value.__defaults__ or ())]:
            if isinstance(item, torch.Tensor | torch.nn.Module | types.FunctionType):
                _reach(item, digest, seen)


def _path(cache_dir: Path, name: str) -> Path:
    return cache_dir / "references" / f"{name}.pt"


def load(cache_dir: Path, name: str) -> dict | None:
    """The stored state for ``name``, or None when there is none or it cannot be read."""
    path = _path(cache_dir, name)
    try:
        state = torch.load(path, weights_only=True)
    except Exception:  # missing, truncated, or not a state we wrote: the cache only saves time
        return None
    return state if isinstance(state, dict) else None


def store(cache_dir: Path, name: str, state: dict) -> None:
    """Write ``state`` for ``name`` unless the file already holds as many calls or more. A
    cache that cannot be written (read-only, full) is skipped: it only saves time."""
    stored = load(cache_dir, name)
    if stored is not None and stored.get("calls", 0) >= state["calls"]:
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
