"""The exit statuses every ``cnmflow`` command returns, so scripts and schedulers can tell them apart.

0: done; 1: the run (or the tracking) failed; 2: bad input, refused before any compute with one
line naming the file or parameter; 130 / 143: interrupted by Ctrl-C / SIGTERM
(:data:`cnmflow.processes.EXIT_STATUS`).
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
