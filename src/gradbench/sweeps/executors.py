"""Where a sweep's tasks run: in this process, in a local process pool, or on Dask.

Every executor takes a picklable function and picklable items (a sweep ships task records and
option records holding plugin *spec strings*, never estimator or objective objects, so a fresh
process can rebuild them) and yields each result as it finishes, in whatever order that is.
Used as a context manager; leaving the block by an exception (Ctrl-C included) cancels what
has not finished and stops the workers.

- ``inprocess``: one task after another in this process.
- ``process``: ``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` start method
  (safe with torch and CUDA), one task per worker at a time; workers ignore Ctrl-C, which the
  parent handles by stopping them.
- ``dask``: a ``distributed.LocalCluster`` of worker processes (one thread each) that gradbench
  starts and stops, or the existing cluster whose scheduler is at ``scheduler``. Dask is
  imported only here; without it, one line names ``pip install 'gradbench[dask]'``. A cluster
  without workers for :data:`NO_WORKERS_WARNING_S` seconds is one warning line on stderr
  (naming ``dask worker ADDRESS``), and the tasks go on waiting for a worker to join.

``concurrency`` is how many tasks may run at once; ``torch_threads`` how many threads torch
should use in each task (None: leave the worker's setting alone), so that concurrent tasks do
not oversubscribe the CPU.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any

from gradbench.core.errors import InputError

EXECUTORS = ("inprocess", "process", "dask")
DASK_EXTRA = "pip install 'gradbench[dask]'"
#: Seconds a Dask cluster may have no workers before a sweep waiting on it says so.
NO_WORKERS_WARNING_S = 30.0
#: Longest wait for a Dask result between two looks at the cluster's workers.
WORKER_CHECK_S = 2.0


class ExecutorError(RuntimeError):
    """The executor itself failed (a worker process died, a cluster went away)."""


def cpu_count() -> int:
    return os.cpu_count() or 1


class Executor(ABC):
    """Runs ``function(item)`` for each item, yielding results as they finish."""

    name = ""
    concurrency = 1
    torch_threads: int | None = None

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    @abstractmethod
    def run(self, function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """``function(item)`` for every item, each as it finishes; inside the ``with`` block."""

    def describe(self) -> str:
        """One line for the terminal: the executor and how many tasks run at once."""
        return f"{self.name}, {self.concurrency} task(s) at a time"


class InProcess(Executor):
    """One task after another, in this process (the default)."""

    name = "inprocess"

    def run(self, function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            yield function(item)


def _ignore_interrupts() -> None:
    """Worker initializer: Ctrl-C reaches the whole process group; the parent handles it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class ProcessPool(Executor):
    """A local pool of ``workers`` spawned processes (default: one per CPU core)."""

    name = "process"

    def __init__(self, workers: int | None = None) -> None:
        self.concurrency = workers or cpu_count()
        self.torch_threads = max(1, cpu_count() // self.concurrency)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ProcessPool:
        self._pool = ProcessPoolExecutor(
            self.concurrency,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_ignore_interrupts,
        )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._pool is None:
            return
        if kind is not None:
            _terminate(self._pool)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

    def run(self, function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        if self._pool is None:
            raise RuntimeError("ProcessPool.run() outside its `with` block")
        futures = [self._pool.submit(function, item) for item in items]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BrokenProcessPool as error:
            raise ExecutorError(f"a worker process died: {error}") from error


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now, running tasks included (their results are not wanted)."""
    stop = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if stop is not None:
        stop()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


class DaskCluster(Executor):
    """Dask distributed: a ``LocalCluster`` of ``workers`` processes, or ``scheduler``'s.

    ``processes=False`` starts the local workers as threads of this process instead (for
    tests and debugging; torch's thread setting is then left alone). ``no_workers_warning_s``
    is how long the cluster may have no workers, while results are awaited, before one
    warning line says so (default :data:`NO_WORKERS_WARNING_S`).
    """

    name = "dask"

    def __init__(
        self,
        workers: int | None = None,
        scheduler: str | None = None,
        processes: bool = True,
        no_workers_warning_s: float = NO_WORKERS_WARNING_S,
    ) -> None:
        self.distributed = _import_distributed()
        self.workers = workers or cpu_count()
        self.scheduler = scheduler
        self.processes = processes
        self.no_workers_warning_s = no_workers_warning_s
        self._client: Any = None
        self._cluster: Any = None
        self._futures: list[Future] = []

    def __enter__(self) -> DaskCluster:
        distributed = self.distributed
        if self.scheduler is None:
            self._cluster = distributed.LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=self.processes,
                dashboard_address=None,
            )
            self._client = distributed.Client(self._cluster)
            if self.processes:
                self.torch_threads = max(1, cpu_count() // self.workers)
        else:
            try:
                self._client = distributed.Client(self.scheduler)
            except (OSError, ValueError, TypeError) as error:
                raise InputError(
                    f"--scheduler {self.scheduler!r}: cannot connect ({error}); give the"
                    " address of a running Dask scheduler, e.g. tcp://host:8786"
                ) from None
        self.concurrency = max(1, sum(self._client.nthreads().values()))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        logger = logging.getLogger("distributed")
        level = logger.level
        if kind is not None:  # cancelled tasks and killed workers are expected now, not news
            logger.setLevel(logging.ERROR)
        try:
            if self._client is not None:
                if self._futures:
                    self._client.cancel(self._futures)
                self._client.close()
            if self._cluster is not None:
                self._cluster.close()
        finally:
            logger.setLevel(level)
            self._client = self._cluster = None
            self._futures = []

    def run(self, function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        if self._client is None:
            raise RuntimeError("DaskCluster.run() outside its `with` block")
        self._futures = [self._client.submit(function, item, pure=False) for item in items]
        finished: queue.Queue[Any] = queue.Queue()
        for future in self._futures:
            future.add_done_callback(finished.put)
        watch = _WorkerWatch(self.no_workers_warning_s)
        poll = max(0.1, min(WORKER_CHECK_S, self.no_workers_warning_s / 2))
        if self._futures:
            watch.look(self._worker_count(), self._address())
        for _ in self._futures:
            while True:
                try:
                    future = finished.get(timeout=poll)
                except queue.Empty:  # nothing finished for a while: is anyone working?
                    watch.look(self._worker_count(), self._address())
                else:
                    break
            yield future.result()

    def _worker_count(self) -> int:
        """How many workers the scheduler has now (asked, not cached)."""
        return len(self._client.nthreads())

    def _address(self) -> str:
        """The scheduler's address, as ``dask worker`` takes it."""
        return self.scheduler or str(self._client.scheduler.address)

    def describe(self) -> str:
        where = self.scheduler or "a LocalCluster"
        return f"dask on {where}, {self.concurrency} task(s) at a time"


class _WorkerWatch:
    """Warns once, on stderr, when a cluster has had no workers for ``after_s`` seconds."""

    def __init__(self, after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.after_s = after_s
        self.clock = clock
        self.empty_since: float | None = None
        self.warned = False

    def look(self, workers: int, address: str) -> None:
        """Note that the cluster at ``address`` has ``workers`` workers now; warn if due."""
        now = self.clock()
        if workers > 0:
            self.empty_since = None
            return
        if self.empty_since is None:
            self.empty_since = now
        if not self.warned and now - self.empty_since >= self.after_s:
            self.warned = True
            print(
                f"gradbench: warning: the Dask cluster at {address} has had no workers for"
                f" {self.after_s:g} s; tasks wait until a worker joins (start one with: dask"
                f" worker {address})",
                file=sys.stderr,
            )


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise InputError(
            f"--executor dask needs dask.distributed, which is not installed: {DASK_EXTRA}"
        ) from None
    return distributed


def make_executor(name: str, workers: int | None = None, scheduler: str | None = None) -> Executor:
    """The executor called ``name`` (one of :data:`EXECUTORS`); bad combinations are refused."""
    if name not in EXECUTORS:
        raise InputError(f"unknown executor {name!r}; valid choices: {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers}: must be a positive integer")
    if scheduler is not None and name != "dask":
        raise InputError(f"--scheduler {scheduler!r} needs --executor dask, not {name!r}")
    if name == "inprocess":
        if workers is not None:
            raise InputError(
                f"--workers {workers}: the in-process executor runs one task at a time;"
                " use --executor process or --executor dask"
            )
        return InProcess()
    if name == "process":
        return ProcessPool(workers)
    if scheduler is not None and workers is not None:
        raise InputError(
            f"--workers {workers} sizes the LocalCluster gradbench starts; the cluster at"
            f" --scheduler {scheduler!r} has its own workers"
        )
    return DaskCluster(workers, scheduler)
