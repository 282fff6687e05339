"""The ``siftflow-nn`` command line: one module per command group, failures handled here.

Argument errors and failures a user can cause and act on (an image that cannot be read, an output
that cannot be written, a run that cannot resume, not enough memory) end with one line
``siftflow-nn: error: ...`` and exit status 2, before any output is written; outputs are written
under a temporary name and renamed when complete. Anything else is a bug: it shows its traceback.
A command that goes on past failed items (``docunet``'s pairs) reports each and exits with 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from siftflow_nn.cli import dataset, demo, descriptors, docunet, flow
from siftflow_nn.cli._arguments import CommandFailed, UsageError
from siftflow_nn.io import ImageReadError, OutputError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from siftflow_nn import __version__

    parser = argparse.ArgumentParser(
        prog="siftflow-nn", description="SIFT Flow descriptors and dense flow.", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (descriptors, flow, demo, dataset, docunet):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.handler(args)
    except (UsageError, CommandFailed, ImageReadError, OutputError) as error:
        print(f"siftflow-nn: error: {error}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
