"""Watch a folder for new movies and run each new movie or series once.

The pieces, one job each and no orchestrator import: :mod:`~cnmflow.watch.scan` lists the
files, :mod:`~cnmflow.watch.stability` says when one is finished, :mod:`~cnmflow.watch.series`
groups them into runs, :mod:`~cnmflow.watch.hashing` keys a run by content,
:mod:`~cnmflow.watch.ledger` remembers everything in SQLite and hands out claims by
:mod:`~cnmflow.watch.claims`' rule, :mod:`~cnmflow.watch.owner` tells live watchers from dead
ones, and :mod:`~cnmflow.watch.watcher` strings one scan together.  The ``watch-folder`` flow
(``flows/watch_folder.py``) runs a scan and starts the extractions.
"""

from cnmflow.watch.ledger import LEDGER_NAME, Ledger
from cnmflow.watch.scan import DEFAULT_PATTERNS, parse_patterns
from cnmflow.watch.series import SERIES_RULES, SeriesRule
from cnmflow.watch.summary import ScanSummary, summary_markdown
from cnmflow.watch.watcher import Scan

__all__ = ["DEFAULT_PATTERNS", "LEDGER_NAME", "Ledger", "SERIES_RULES", "Scan", "ScanSummary", "SeriesRule",
           "parse_patterns", "summary_markdown"]
