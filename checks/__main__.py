"""``python -m checks``: the cnn-gradcheck command line (see checks.cli)."""

import sys

from checks.cli import main

if __name__ == "__main__":  # not when a spawned selftest worker re-imports the main module
    sys.exit(main())
