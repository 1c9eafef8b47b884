"""``python -m gostore``: the command line (see :mod:`gostore.cli`)."""

from __future__ import annotations

import sys

from gostore.cli import main

if __name__ == "__main__":
    sys.exit(main())
