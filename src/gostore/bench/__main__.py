"""``python -m gostore.bench``: the comparison benchmark (see :mod:`gostore.bench.runner`)."""

from __future__ import annotations

import sys

from gostore.bench.runner import main

if __name__ == "__main__":
    try:
        code = main()
    except KeyboardInterrupt:
        # As `gostore bench`: one line and the shell's code for SIGINT, no traceback.
        print("gostore bench: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
