"""One scan of a watched folder, minus the running: survey, claim, and record the result.

The orchestrator (the ``watch-folder`` flow) calls :meth:`Scan.survey`, then for each candidate
:meth:`Scan.claim`, runs the extraction for the claims it won and reports back with
:meth:`Scan.finish`.  Claiming one job right before running it (not all up front) lets two
watchers running side by side share out the work.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from cnmflow.errors import InputError
from cnmflow.watch.claims import Job
from cnmflow.watch.hashing import content_id, sha256_file
from cnmflow.watch.ledger import ClaimResult, Ledger, Member
from cnmflow.watch.owner import Owner
from cnmflow.watch.scan import Observation, folder_listing, scan_folder
from cnmflow.watch.series import Group, confirm_ome_set, group_files
from cnmflow.watch.stability import readiness
from cnmflow.watch.summary import ALREADY_DONE, BUSY, EXTRACTED, FAILED, GAVE_UP, GROWING, UNREADABLE, Outcome

#: A claim older than this is taken over even if its watcher cannot be shown dead (other host).
DEFAULT_MAX_CLAIM_AGE_S = 24 * 3600.0

_NOT_STARTED = {"done": ALREADY_DONE, "busy": BUSY, "gave_up": GAVE_UP}


@dataclass(frozen=True)
class Candidate:
    """A movie or series whose files are all ready, with their content hashes."""

    group: Group
    members: tuple[Member, ...]
    content: str


def is_bad_input(error: BaseException) -> bool:
    """Failures the user must fix (bad movie or parameters, foreign results in the output folder)."""
    return isinstance(error, (InputError, FileExistsError))


def _unreadable(path: str, error: OSError) -> str:
    """The report line of a file or folder the watcher may not read."""
    what = "folder" if path.endswith("/") else "file"
    return (f"{what} {path} cannot be read ({error.strerror or error}); make it readable by the watcher's user; "
            "it is tried again at the next scan")


class Scan:
    """One scan of ``folder`` into ``output_root`` by this process."""

    def __init__(self, folder: str | os.PathLike, output_root: str | os.PathLike, *, patterns: Sequence[str],
                 series_rule: str = "subfolder", max_attempts: int = 3,
                 max_claim_age_s: float = DEFAULT_MAX_CLAIM_AGE_S, min_stable_s: float = 0.0,
                 owner: Owner | None = None) -> None:
        self.folder = Path(folder).expanduser().absolute()
        self.output_root = Path(output_root).expanduser().absolute()
        if not self.folder.is_dir():
            raise InputError(f"watched folder {self.folder} does not exist or is not a folder")
        if self.output_root.resolve() == self.folder.resolve():
            raise InputError(f"output_root {self.output_root} is the watched folder itself: the results written "
                             "into it (.isxd cell sets, motion-corrected movies) would be taken for new recordings; "
                             f"give a sub-folder such as {self.folder / 'results'} or a folder elsewhere")
        if max_attempts < 1:
            raise InputError(f"max_attempts={max_attempts}: give 1 or more")
        self.patterns = tuple(patterns)
        self.series_rule = series_rule
        self.max_attempts = max_attempts
        self.max_claim_age_s = max_claim_age_s
        self.min_stable_s = min_stable_s
        self.owner = owner or Owner.current()
        self.scan_id = uuid.uuid4().hex

    # -------------------------------------------------------------------------------- survey
    def survey(self, ledger: Ledger) -> tuple[list[Candidate], list[Outcome]]:
        """Scan, remember what was seen, and split the runs into ready candidates and the others
        (growing, unreadable)."""
        ledger.serve(self.folder)
        unreadable: list[tuple[str, OSError]] = []
        files = scan_folder(self.folder, self.patterns, exclude=[self.output_root], unreadable=unreadable)
        by_path = {obs.path: obs for obs in files}
        groups = group_files(by_path, self.series_rule)
        listings: list[Observation] = []
        moved: set[str] = set()
        for group in (g for g in groups if g.is_series):
            try:
                listings.append(folder_listing(self.folder, group.key))
            except FileNotFoundError:  # renamed or removed since it was walked: had failed the scan
                moved.add(group.key)
        now = time.time()
        previous = ledger.observe([*files, *listings], scan_id=self.scan_id, now=now,
                                  exists=lambda path: (self.folder / path).exists())
        observed = {**by_path, **{obs.path: obs for obs in listings}}
        candidates: list[Candidate] = []
        growing = [Outcome(path, UNREADABLE, _unreadable(path, error)) for path, error in unreadable]
        blocked = {PurePosixPath(path).parent.as_posix() + "/" for path, _ in unreadable if not path.endswith("/")}
        for group in groups:
            if group.key in blocked:  # a series missing a file it cannot see would run without it
                continue
            if group.key in moved:
                growing.append(Outcome(group.key, GROWING, "renamed or removed while scanned; looked at again "
                                                           "at the next scan"))
                continue
            paths = ([group.key] if group.is_series else []) + list(group.members)
            waits = [f"{p}: {why}" for p in paths
                     if (why := readiness(previous[p], observed[p], scan_id=self.scan_id, now=now,
                                          min_age_s=self.min_stable_s))]
            if waits:
                growing.append(Outcome(group.key, GROWING, "; ".join(waits)))
                continue
            runs, missing = confirm_ome_set(group, self.folder)  # finished files: a multi-file OME-TIFF's read
            if missing:
                growing.append(Outcome(group.key, GROWING, f"waiting for {', '.join(missing)}, which the multi-file "
                                                           "OME-TIFF's metadata names (still being copied?)"))
            for run in runs:
                try:
                    members = self._hash(ledger, [by_path[p] for p in run.members])
                except OSError as error:  # one unreadable file had failed the whole scan, every scan
                    growing.append(Outcome(run.key, UNREADABLE, _unreadable(error.filename or run.key, error)))
                    continue
                if members is None:
                    growing.append(Outcome(run.key, GROWING, "changed while being hashed"))
                    continue
                hashes = {m.path: m.sha256 for m in members}
                candidates.append(Candidate(run, tuple(members), content_id(run.members, hashes)))
        return candidates, growing

    def _hash(self, ledger: Ledger, files: list[Observation]) -> list[Member] | None:
        """The files' hashes (remembered ones reused); None if a file changed or went while being hashed.
        Raises OSError for a file that cannot be read (e.g. permission denied)."""
        members = []
        for obs in files:
            digest = ledger.cached_hash(obs.path, obs.size, obs.mtime_ns)
            if digest is None:
                path = self.folder / obs.path
                try:
                    digest = sha256_file(path)
                    stat = path.stat()
                except FileNotFoundError:
                    return None
                if (stat.st_size, stat.st_mtime_ns) != (obs.size, obs.mtime_ns):
                    return None
                ledger.store_hash(obs.path, obs.size, obs.mtime_ns, digest)
            members.append(Member(obs.path, digest, obs.size))
        return members

    # ------------------------------------------------------------------------- claim / finish
    def claim(self, ledger: Ledger, candidate: Candidate) -> ClaimResult:
        """Take the candidate for this process, atomically, if nobody holds or finished it."""
        return ledger.claim(candidate.group.key, candidate.content, candidate.members, candidate.group.output_base,
                            owner=self.owner, max_attempts=self.max_attempts, max_age_s=self.max_claim_age_s)

    @staticmethod
    def not_started(result: ClaimResult) -> Outcome:
        """The report line of a candidate this scan did not start."""
        job = result.job
        return Outcome(job.key if job else "?", _NOT_STARTED[result.decision], result.reason,
                       output_dir=job.output_dir if job else None, run_id=job.run_id if job else None,
                       attempts=job.attempts if job else None)

    def movies(self, job: Job, ledger: Ledger) -> list[str]:
        """Absolute paths of the job's movies, in run order."""
        return [str(self.folder / m.path) for m in ledger.members(job.id)]

    def output_dir(self, job: Job) -> str:
        """Absolute output folder of the job."""
        return str(self.output_root / job.output_dir)

    def finish(self, ledger: Ledger, job: Job, *, run_id: str | None, error: BaseException | None) -> Outcome:
        """Record how our extraction of ``job`` ended and describe it for the report."""
        message = None if error is None else f"{type(error).__name__}: {error}"
        if error is not None and is_bad_input(error):
            message = f"bad input (fix the file or folder; counts as an attempt): {message}"
        kept = ledger.finish(job, ok=error is None, run_id=run_id, error=message)
        detail = message or "extracted"
        if error is not None:
            left = self.max_attempts - job.attempts
            detail += f" — {left} attempt(s) left" if left > 0 else " — no attempts left: giving up"
        if not kept:
            detail += " (the claim had been taken over by another watcher; ledger left as it is)"
        return Outcome(job.key, EXTRACTED if error is None else FAILED, detail, output_dir=self.output_dir(job),
                       run_id=run_id, attempts=job.attempts)
