"""What one scan did, for the flow's return value, its log and its artifact."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

#: Outcome statuses, in the order the report lists them.
EXTRACTED = "extracted"        # started in this scan and finished
FAILED = "failed"              # started in this scan and failed (tried again later while attempts remain)
GROWING = "growing"            # not started: a file is new or still being written
UNREADABLE = "unreadable"      # not started: a file cannot be read (e.g. its permissions); tried again next scan
ALREADY_DONE = "already done"  # not started: this content was processed before
BUSY = "busy"                  # not started: another live watcher is running it
GAVE_UP = "gave up"            # not started: it failed max_attempts times
STATUSES: tuple[str, ...] = (EXTRACTED, FAILED, GROWING, UNREADABLE, ALREADY_DONE, BUSY, GAVE_UP)


@dataclass(frozen=True)
class Outcome:
    """What happened to one movie or series in a scan."""

    item: str
    status: str
    detail: str = ""
    output_dir: str | None = None
    run_id: str | None = None
    attempts: int | None = None


@dataclass(frozen=True)
class ScanSummary:
    """The scan's outcomes; ``counts`` has every status (0 when none)."""

    folder: str
    output_root: str
    outcomes: tuple[Outcome, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, folder: str, output_root: str, outcomes: list[Outcome]) -> "ScanSummary":
        tally = Counter(o.status for o in outcomes)
        return cls(folder, output_root, tuple(outcomes), {s: tally.get(s, 0) for s in STATUSES})

    def with_status(self, status: str) -> list[Outcome]:
        """The outcomes with one status."""
        return [o for o in self.outcomes if o.status == status]

    @property
    def started(self) -> int:
        """Extractions started by this scan."""
        return self.counts[EXTRACTED] + self.counts[FAILED]


def _cell(text: object) -> str:
    return "" if text is None else str(text).replace("|", "\\|").replace("\n", " ")


def summary_markdown(summary: ScanSummary) -> str:
    """The scan as a markdown table, one row per movie or series."""
    counts = ", ".join(f"{n} {s}" for s, n in summary.counts.items() if n) or "nothing to do"
    lines = [f"# Watch scan of `{summary.folder}`", "", f"Results in `{summary.output_root}`: {counts}.", "",
             "| movie or series | status | attempts | output folder | extraction run | detail |",
             "|---|---|---|---|---|---|"]
    for o in summary.outcomes:
        lines.append(f"| `{_cell(o.item)}` | {o.status} | {_cell(o.attempts)} | {_cell(o.output_dir)} "
                     f"| {_cell(o.run_id)} | {_cell(o.detail)} |")
    return "\n".join(lines) + "\n"
