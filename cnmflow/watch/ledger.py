"""The watcher's memory: an SQLite file next to the results (``<output_root>/.cnmflow-watch.sqlite``).

It lets scans that run at different times, in different processes or at the same moment agree
on what was seen, what is running and what is done.  Every write is one ``BEGIN IMMEDIATE``
transaction (SQLite's write lock, taken up front), so a claim's read-decide-write cannot
interleave with another watcher's. The journal is SQLite's rollback journal, not WAL: a watched folder's results
often live on a lab's network share (NFS, SMB), where WAL's shared-memory index does not work (SQLite's file
format notes: not between machines; on mounts without shared mmap, such as many SMB ones, every write fails with a
disk I/O error). The ledger's transactions are a few rows each, so readers waiting on a writer cost nothing.

Tables:

``watched``
    The one folder whose scans the ledger remembers (its absolute path at the last scan).
``files``
    One row per path seen by the last scan: the size and mtime, the scan that first saw them
    (stability), and the content hash with the size and mtime it was computed for.  A series
    folder's listing is a row whose path ends in '/'.
``jobs``
    One row per run over some content (``key``: movie or series folder; ``content``: hash
    over its files): output folder, state (running / done / failed), attempts, the Prefect
    flow run id of the extraction, and the claim (host, pid, process start, time, token).
``job_files``
    The files of each job with the sha256 and size they had when it was claimed.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from cnmflow.errors import InputError
from cnmflow.watch.claims import Decision, Job, decide
from cnmflow.watch.owner import Owner
from cnmflow.watch.scan import Observation
from cnmflow.watch.stability import Remembered

LEDGER_NAME = ".cnmflow-watch.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS watched (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    folder TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    scan_id TEXT NOT NULL,
    seen_at REAL NOT NULL,
    sha256 TEXT,
    hashed_size INTEGER,
    hashed_mtime_ns INTEGER
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    content TEXT NOT NULL,
    output_dir TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    run_id TEXT,
    host TEXT,
    pid INTEGER,
    process_start TEXT,
    claimed_at REAL,
    claim_token TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    finished_at REAL,
    UNIQUE (key, content)
);
CREATE TABLE IF NOT EXISTS job_files (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    position INTEGER NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (job_id, position)
);
"""

_JOB_COLUMNS = ("id, key, content, output_dir, state, attempts, run_id, host, pid, process_start, "
                "claimed_at, claim_token, error")


@dataclass(frozen=True)
class Member:
    """A file of a job as it was when the job was claimed."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ClaimResult:
    """The outcome of :meth:`Ledger.claim`; ``job.claim_token`` is ours when ``decision == "claim"``."""

    decision: Decision
    reason: str
    job: Job | None


def _job(row: sqlite3.Row | tuple) -> Job:
    (id_, key, content, output_dir, state, attempts, run_id, host, pid, started, claimed_at, token, error) = row
    owner = Owner(host, pid, started) if host is not None and pid is not None else None
    return Job(id_, key, content, output_dir, state, attempts, run_id, owner, claimed_at, token, error)


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def revision_dir(base: str, revision: int) -> str:
    """Output folder of the ``revision``-th recording at one place: ``base``, then ``base.rev2``…"""
    return base if revision <= 1 else f"{base}.rev{revision}"


class Ledger:
    """One connection to the ledger file (one per thread: sqlite3 connections are not shared)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        self._db.execute("PRAGMA journal_mode = DELETE")  # see the module's docstring; converts a WAL ledger
        with self.transaction() as db:
            for statement in _SCHEMA.split(";"):  # not executescript: it would commit our transaction
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @classmethod
    def in_folder(cls, output_root: str | Path) -> "Ledger":
        """The ledger of a watched output folder."""
        return cls(Path(output_root) / LEDGER_NAME)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from its start (``BEGIN IMMEDIATE``)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ------------------------------------------------------------------------------ observations
    def serve(self, folder: str | Path) -> None:
        """Record that this ledger remembers the scans of ``folder``.  A second watched folder is refused while the
        first is still there: each scan forgets the paths it does not see, so two folders sharing one ledger
        forgot each other's files at every scan and neither's were ever started.  A moved folder is taken over
        (paths are kept relative, so a ledger survives a move)."""
        folder = Path(folder)
        with self.transaction() as db:
            row = db.execute("SELECT folder FROM watched").fetchone()
            earlier = Path(row[0]) if row else folder
            if earlier != folder and earlier.is_dir() and not _same_folder(earlier, folder):
                raise InputError(
                    f"output_root {self.path.parent} already holds the results of the watched folder {earlier}; "
                    f"a second watched folder ({folder}) cannot share it (each scan would forget the other's "
                    "files, and neither would ever be started); give each watched folder its own output_root, "
                    f"e.g. {self.path.parent / folder.name}")
            db.execute("INSERT INTO watched (id, folder) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET "
                       "folder = excluded.folder", (str(folder),))

    def observe(self, observations: Iterable[Observation], *, scan_id: str, now: float | None = None,
                exists: Callable[[str], bool] | None = None) -> dict[str, Remembered | None]:
        """Record this scan's observations; return what was remembered before it (None: new path).

        An unchanged path keeps the scan that first saw it that way; paths gone from the folder
        are forgotten.  With ``exists``, a path this scan did not see is forgotten only where
        ``exists(path)`` is false: a watcher of the same folder with other patterns (e.g. one for
        .isxd, one for .tif) sees other files, and each had forgotten the other's at every scan,
        so that neither's were ever started.
        """
        now = time.time() if now is None else now
        seen = {obs.path: obs for obs in observations}
        previous: dict[str, Remembered | None] = {}
        with self.transaction() as db:
            rows = db.execute("SELECT path, size, mtime_ns, scan_id, seen_at FROM files").fetchall()
            known = {path: Remembered(size, mtime, sid, at) for path, size, mtime, sid, at in rows}
            for path, obs in seen.items():
                before = known.get(path)
                previous[path] = before
                if before is not None and (before.size, before.mtime_ns) == (obs.size, obs.mtime_ns):
                    continue
                db.execute("INSERT INTO files (path, size, mtime_ns, scan_id, seen_at) VALUES (?, ?, ?, ?, ?) "
                           "ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
                           "scan_id = excluded.scan_id, seen_at = excluded.seen_at",
                           (path, obs.size, obs.mtime_ns, scan_id, now))
            gone = [p for p in known if p not in seen and (exists is None or not exists(p))]
            db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in gone])
        return previous

    def cached_hash(self, path: str, size: int, mtime_ns: int) -> str | None:
        """The file's sha256 if it was computed for this very size and mtime."""
        row = self._db.execute("SELECT sha256 FROM files WHERE path = ? AND hashed_size = ? AND hashed_mtime_ns = ?",
                               (path, size, mtime_ns)).fetchone()
        return row[0] if row else None

    def store_hash(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        """Remember a file's sha256 for its size and mtime."""
        with self.transaction() as db:
            db.execute("UPDATE files SET sha256 = ?, hashed_size = ?, hashed_mtime_ns = ? WHERE path = ?",
                       (sha256, size, mtime_ns, path))

    # ------------------------------------------------------------------------------------ jobs
    def job(self, key: str, content: str) -> Job | None:
        """The ledger row of the run over ``content`` at ``key``, if any."""
        row = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE key = ? AND content = ?",
                               (key, content)).fetchone()
        return _job(row) if row else None

    def jobs(self) -> list[Job]:
        """Every run the ledger knows, oldest first."""
        return [_job(r) for r in self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY id")]

    def members(self, job_id: int) -> list[Member]:
        """The files of a job, in run order."""
        rows = self._db.execute("SELECT path, sha256, size FROM job_files WHERE job_id = ? ORDER BY position",
                                (job_id,))
        return [Member(*row) for row in rows]

    def _output_dir(self, db: sqlite3.Connection, key: str, base: str) -> str:
        """A folder name no other live or finished run uses: a changed recording at the same place
        gets ``.rev2``, ``.rev3``… rather than silently reusing an older run's folder.  Folders of
        this key's failed runs (never finished) are free again."""
        taken = {row[0] for row in db.execute(
            "SELECT output_dir FROM jobs WHERE key != ? OR state IN ('running', 'done')", (key,))}
        revision = 1
        while revision_dir(base, revision) in taken:
            revision += 1
        return revision_dir(base, revision)

    def claim(self, key: str, content: str, members: Sequence[Member], output_base: str, *, owner: Owner,
              max_attempts: int, max_age_s: float, now: float | None = None) -> ClaimResult:
        """Atomically decide whether ``owner`` may run this job and, if so, take it (one attempt)."""
        now = time.time() if now is None else now
        with self.transaction() as db:
            row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE key = ? AND content = ?",
                             (key, content)).fetchone()
            existing = _job(row) if row else None
            decision, reason = decide(existing, max_attempts=max_attempts, now=now, max_age_s=max_age_s)
            if decision == "gave_up" and existing is not None and existing.state == "running":
                db.execute("UPDATE jobs SET state = 'failed', error = ?, claim_token = NULL, finished_at = ? "
                           "WHERE id = ?", ("abandoned by its watcher", now, existing.id))
            if decision != "claim":
                return ClaimResult(decision, reason, existing)
            token = uuid.uuid4().hex
            claim = (owner.host, owner.pid, owner.started, now, token)
            if existing is None:
                cur = db.execute(
                    "INSERT INTO jobs (key, content, output_dir, state, attempts, host, pid, process_start, "
                    "claimed_at, claim_token, created_at) VALUES (?, ?, ?, 'running', 1, ?, ?, ?, ?, ?, ?)",
                    (key, content, self._output_dir(db, key, output_base), *claim, now))
                job_id = int(cur.lastrowid)  # type: ignore[arg-type]
                db.executemany("INSERT INTO job_files (job_id, position, path, sha256, size) VALUES (?, ?, ?, ?, ?)",
                               [(job_id, i, m.path, m.sha256, m.size) for i, m in enumerate(members)])
            else:
                job_id = existing.id
                db.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1, host = ?, pid = ?, "
                           "process_start = ?, claimed_at = ?, claim_token = ?, finished_at = NULL WHERE id = ?",
                           (*claim, job_id))
            row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return ClaimResult("claim", reason, _job(row))

    def set_run_id(self, job: Job, run_id: str | None) -> None:
        """Record the Prefect flow run id of the extraction started for a claimed job."""
        with self.transaction() as db:
            db.execute("UPDATE jobs SET run_id = ? WHERE id = ? AND claim_token = ?", (run_id, job.id, job.claim_token))

    def finish(self, job: Job, *, ok: bool, run_id: str | None = None, error: str | None = None,
               now: float | None = None) -> bool:
        """Close our claim on ``job`` as done or failed; False when the claim was no longer ours
        (another watcher took it over as abandoned), in which case nothing is changed."""
        now = time.time() if now is None else now
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE jobs SET state = ?, run_id = COALESCE(?, run_id), error = ?, finished_at = ?, "
                "claim_token = NULL WHERE id = ? AND claim_token = ? AND state = 'running'",
                ("done" if ok else "failed", run_id, None if ok else error, now, job.id, job.claim_token))
            return cur.rowcount == 1
