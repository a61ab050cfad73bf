"""The journal of a sweep: every finished task, appended as it finishes, so none is lost.

A journal is a directory (``results.csv.parts`` next to ``results.csv``) holding
``manifest.json`` (the options that decide the numbers: seed, sample count, dtype, …) and one
JSON-lines file per session (each run or resume of the sweep), one line per finished task::

    {"task": "gaussian-square|reinforce|k=0.5|replicate=3", "rows": [...], "details": [...], ...}

The process that collects results is the only writer; each task is one ``write`` of one line,
flushed and fsynced before the next, so a crash leaves at most a truncated last line, which
reading skips. Earlier sessions' files are never written again. Floats round-trip exactly
(``NaN`` and ``Infinity`` included, as Python's ``json`` writes them).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from gradbench.core.errors import InputError

MANIFEST = "manifest.json"
SESSION_SUFFIX = ".jsonl"


def journal_for(csv: Path) -> Path:
    """The journal directory of a sweep whose table goes to ``csv``."""
    return csv.with_name(f"{csv.name}.parts")


class Journal:
    """Finished tasks of one sweep, read from and appended to ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._session: Path | None = None

    @classmethod
    def start(cls, directory: Path, manifest: dict, resume: bool, overwrite: bool) -> Journal:
        """Open the journal for a new sweep, or for ``resume``-ing the one it holds.

        Without ``resume`` an existing journal is refused unless ``overwrite`` (which deletes
        it); with ``resume`` its manifest must equal ``manifest``, so that finished and new
        tasks are measured alike. Raises :class:`InputError` before anything is written.
        """
        journal = cls(directory)
        manifest = json.loads(json.dumps(manifest))  # compare as it reads back
        exists = directory.exists()
        if exists and not (directory / MANIFEST).is_file():
            raise InputError(
                f"{str(directory)!r} exists but is not a gradbench sweep journal"
                f" (no {MANIFEST}); move it away or choose another --csv"
            )
        if resume and exists:
            journal._check_manifest(manifest)
            return journal
        if exists and not overwrite:
            raise InputError(
                f"{str(directory)!r} holds an earlier sweep; pass --resume to finish it or"
                " --overwrite to start over"
            )
        if exists:
            shutil.rmtree(directory)
        directory.mkdir(parents=False)
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        return journal

    def _check_manifest(self, manifest: dict) -> None:
        recorded = json.loads((self.directory / MANIFEST).read_text())
        for key in sorted(set(recorded) | set(manifest)):
            if recorded.get(key) != manifest.get(key):
                raise InputError(
                    f"--resume: the sweep in {str(self.directory)!r} was run with"
                    f" {key}={recorded.get(key)!r}, not {manifest.get(key)!r}; give the same"
                    " options, or --overwrite to start over"
                )

    def finished(self) -> dict[str, dict]:
        """The record of every finished task by key; where a key repeats, the latest (a task
        that failed and ran again on resume)."""
        records: dict[str, dict] = {}
        for path in sorted(self.directory.glob(f"*{SESSION_SUFFIX}")):
            for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
                record = _parse(line)
                if record is not None:
                    records[record["task"]] = record
        return records

    def append(self, record: dict) -> None:
        """Add one finished task durably: one line, flushed and fsynced."""
        if self._session is None:
            self._session = self._new_session()
        line = json.dumps(record, allow_nan=True, separators=(",", ":")) + "\n"
        with self._session.open("a", encoding="utf-8") as stream:
            stream.write(line)
            stream.flush()
            os.fsync(stream.fileno())

    def _new_session(self) -> Path:
        """A new file, named by the time (so that names sort by age) and this process."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
        attempt = 0
        while True:
            path = self.directory / f"{stamp}-{os.getpid()}-{attempt}{SESSION_SUFFIX}"
            try:
                path.touch(exist_ok=False)
                return path
            except FileExistsError:
                attempt += 1


def _parse(line: str) -> dict | None:
    """A complete record, or None for the truncated last line a crash may leave."""
    if not line.endswith("\n"):
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and "task" in record else None
