"""Where the shared, read-only test data lives: ``../shared`` beside the checkout (CI lays a copy there).

Tests that need these files skip when they are absent; nothing from there is copied into the repo.
"""

from pathlib import Path

SHARED = (Path(__file__).resolve().parents[1].parent / "shared").resolve()
IDEAS = SHARED / "data" / "ideas"
CAIMAN_REFERENCE = SHARED / "data" / "caiman-reference"
