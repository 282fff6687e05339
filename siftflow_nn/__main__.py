"""``python -m siftflow_nn``: the ``siftflow-nn`` command line."""

import sys

from siftflow_nn.cli import main

if __name__ == "__main__":
    sys.exit(main())
