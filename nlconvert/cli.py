"""The ``nlconvert`` command line: a click group whose sub-commands load on first use.

Each sub-command is a module of :mod:`nlconvert.commands` exposing ``command`` (a
``click.Command``) that parses options, calls the Python API and prints; it holds no library
logic. Sub-command modules import only click and torch-free parts of nlconvert at import
time, so ``nlconvert --help`` and every ``--help`` are quick.

Errors a user can cause are :class:`~nlconvert.errors.NLConvertError` (and click's usage
errors): they are printed here, once, as one line, with exit code 2 for bad input or usage
and 1 for a failed check (3: a bulk command went on past failed inputs, commands/_bulk.py).
``--debug`` (before or after the sub-command) shows tracebacks.
Shell completion: ``eval "$(_NLCONVERT_COMPLETE=bash_source nlconvert)"`` (zsh_source,
fish_source for the other shells).
"""

from __future__ import annotations

import importlib
import io
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from ._version import __version__
from .commands.options import debug_enabled, debug_option, enable_debug
from .errors import EXIT_BAD_INPUT, EXIT_OK, NLConvertError, speak_cli

#: Sub-command name -> module of nlconvert.commands, in the order `--help` lists them.
COMMANDS = {
    "demo": "demo",
    "caffe2-to-torch": "convert",
    "info": "info",
    "parity": "parity",
    "export-caffe2": "export_caffe2",
    "export-onnx": "export_onnx",
    "export-hub": "export_hub",
    "export-mmaction2": "export_mmaction2",
    "run": "run",
    "bench": "bench",
    "predict": "predict",
    "evaluate": "evaluate",
    "features": "features",
    "attention": "attention",
}

class LazyGroup(click.Group):
    """A group that imports a sub-command's module only when the sub-command is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command: click.Command = importlib.import_module(f"nlconvert.commands.{module}").command
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:  # an unknown sub-command: suggest the nearest
            import difflib

            close = difflib.get_close_matches(args[0], list(COMMANDS), n=1) if args else []
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise click.UsageError(f"{exc.message}{hint}", ctx) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                               "max_content_width": 100},
             epilog="Exit codes: 0 ok, 1 a check failed (parity, tolerance), 2 bad input or "
                    "usage, 3 some inputs of predict/evaluate/features failed (the run went "
                    "on). Shell completion: eval \"$(_NLCONVERT_COMPLETE=bash_source nlconvert)\".")
@click.version_option(__version__, prog_name="nlconvert")
@debug_option
def cli() -> None:
    """Convert the Caffe2 video models of Non-local Neural Networks to PyTorch and ONNX, prove
    parity, classify videos as the paper tested them, and extract features at scale."""


class _PipeSafeStdout(io.TextIOBase):
    """Standard output that survives a closed pipe (``nlconvert ... | head -1``).

    After the reader goes away, further output is dropped and the command runs to its end;
    its exit code is that of the work, not of the pipe.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._broken = False

    def write(self, text: str) -> int:
        if not self._broken:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._break()
        return len(text)

    def flush(self) -> None:
        if not self._broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._break()

    def _break(self) -> None:
        self._broken = True
        try:  # the interpreter flushes stdout at exit: point fd 1 at /dev/null first
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass

    def isatty(self) -> bool:
        # asked at exit too (Ray's atexit colour reset), when the stream may be closed
        return not self._stream.closed and bool(self._stream.isatty())

    @property
    def buffer(self) -> Any:  # click writes bytes (e.g. completion scripts) to the buffer
        return self._stream.buffer

    def fileno(self) -> int:
        return int(self._stream.fileno())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self._stream, "encoding", "utf-8"))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nlconvert`` command; returns the exit code."""
    enable_debug(False)
    speak_cli(True)  # error messages name --force, --arch (the API's say force=True, arch_name=)
    stdout = sys.stdout
    if not isinstance(stdout, _PipeSafeStdout):
        sys.stdout = _PipeSafeStdout(stdout)
    try:
        return _run(list(argv) if argv is not None else None)
    finally:
        speak_cli(False)
        sys.stdout = stdout


def _run(argv: list[str] | None) -> int:
    try:
        result = cli.main(args=argv, prog_name="nlconvert", standalone_mode=False)
    except click.exceptions.Exit as exc:  # pragma: no cover - click returns it instead
        return int(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `nlconvert`: the normal help
        click.echo(exc.ctx.get_help() if exc.ctx is not None else cli.get_help(click.Context(cli)))
        return EXIT_OK
    except click.UsageError as exc:
        if debug_enabled():
            traceback.print_exc()
        if exc.ctx is not None and not isinstance(exc, click.BadParameter):
            print(exc.ctx.get_usage(), file=sys.stderr)
        print(f"nlconvert: error: {_one_line(exc.format_message())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except click.ClickException as exc:
        print(f"nlconvert: error: {_one_line(exc.format_message())}", file=sys.stderr)
        return exc.exit_code
    except click.Abort:
        print("nlconvert: interrupted", file=sys.stderr)
        return 130
    except NLConvertError as exc:
        if debug_enabled():
            traceback.print_exc()
        print(f"nlconvert: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if debug_enabled():
            traceback.print_exc()
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"nlconvert: error: {where}{_one_line(exc.strerror or str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("nlconvert: interrupted", file=sys.stderr)
        return 130
    if isinstance(result, int):
        return result
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
