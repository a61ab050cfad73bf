"""One timed task per device at a time: a readers-writer lock per (host, device).

A task holds the lock of its device *shared* while it computes its statistics and takes it
*exclusive* for its timed repeats, so a timing never overlaps work of another task on that
device, whether that task runs in a thread, a process pool or a Dask worker on the same host,
or in another sweep of the same user. Untimed work still runs side by side.

The lock is ``flock(2)`` on a file in the host's temporary directory (one per user and
device), so it needs a POSIX system; :func:`device_lock` returns None elsewhere, and the sweep
then marks the timings of concurrent tasks as taken under contention. A waiting task holds
no lock, so the locks cannot deadlock.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]


def lock_directory() -> Path:
    """Where the device locks of this user live on this host."""
    return Path(tempfile.gettempdir()) / f"gradbench-device-locks-{os.getuid()}"


class DeviceLock:
    """Shared while entered; :meth:`exclusive` for the timed part. Not reentrant."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None

    def __enter__(self) -> DeviceLock:
        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        # Each entry opens its own descriptor: flock locks belong to an open file, so tasks
        # in threads of one process exclude each other as tasks in separate processes do.
        self._descriptor = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o600)
        fcntl.flock(self._descriptor, fcntl.LOCK_SH)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # releases the lock
            self._descriptor = None

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the device alone: wait until no other task computes or times on it."""
        if self._descriptor is None:
            raise RuntimeError("DeviceLock.exclusive() outside its `with` block")
        # Release first, so that two tasks asking at once do not wait on each other's share.
        fcntl.flock(self._descriptor, fcntl.LOCK_UN)
        fcntl.flock(self._descriptor, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            fcntl.flock(self._descriptor, fcntl.LOCK_SH)


def device_lock(device: str) -> DeviceLock | None:
    """The lock of ``device`` (``cpu``, ``cuda:0``) on this host; None without ``flock``."""
    if fcntl is None:
        return None
    return DeviceLock(lock_directory() / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', device)}.lock")
