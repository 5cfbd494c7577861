"""``python -m cnmflow.cli``: the same as the ``cnmflow`` command."""

import sys

from cnmflow.cli import main

sys.exit(main())
