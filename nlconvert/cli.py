"""The ``nlconvert`` command line: a thin layer that parses arguments and wires the steps.

Each sub-command lives in a module of :mod:`nlconvert.commands` that exposes
``register(subparsers)``; the parser calls the function set with ``set_defaults(run=...)``.
Errors a user can cause are :class:`~nlconvert.errors.NLConvertError` and are printed here
as one line; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from . import __version__
from .errors import EXIT_BAD_INPUT, NLConvertError

# Sub-command modules, in the order `nlconvert --help` lists them.
COMMAND_MODULES = (
    "demo",
    "convert",
    "info",
    "parity",
    "export_caffe2",
    "export_onnx",
    "run_onnx",
    "bench",
    "predict",
    "evaluate",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 2, on one line
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nlconvert",
        description="Convert the Caffe2 video models of Non-local Neural Networks to PyTorch "
        "and ONNX, prove parity, and classify videos as the paper tested them.",
        epilog="exit codes: 0 ok, 1 check failed (parity/tolerance), 2 bad input or usage",
    )
    parser.add_argument("--version", action="version", version=f"nlconvert {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"nlconvert.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"nlconvert.commands.{name}":
                raise
            continue  # command not built yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nlconvert`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.run(args) or 0)
    except NLConvertError as exc:
        if args.debug:
            traceback.print_exc()
        msg = str(exc).replace("\n", " ")
        print(f"nlconvert: error: {msg}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if args.debug:
            traceback.print_exc()
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"nlconvert: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("nlconvert: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
