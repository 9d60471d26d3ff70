"""``python -m checks``: the cnn-gradcheck command line (see checks.front.cli)."""

import sys

from checks.front.cli import main

if __name__ == "__main__":  # not when a spawned selftest worker re-imports the main module
    sys.exit(main())
