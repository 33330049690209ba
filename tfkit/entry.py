"""The `tfkit` console script: the CLI, quiet about Ctrl-C from the first instant.

Commands handle an interrupt themselves (exit 130, staging cleaned up). This wrapper covers the
moments before a command runs (importing the CLI, parsing options), where Python would otherwise
print a traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from tfkit.cli import main as run

        run()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
