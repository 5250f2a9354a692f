"""``python -m gridconv``: the command-line tool."""

import sys

from gridconv.cli import main

if __name__ == "__main__":
    sys.exit(main())
