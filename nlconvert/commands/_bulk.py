"""The failure contract of the bulk commands (``predict``, ``evaluate``, ``features``).

One rule for the three, documented in the README's exit-code table:

* every input that failed is named once, on standard error, as ``nlconvert: failed: <reason>``
  (the reason names the file): ``predict`` and ``features`` as it fails, ``evaluate`` when its
  run ends (the database has them as they happen);
* a video that decoded with warnings (maybe truncated or damaged) is named once on standard
  error as ``nlconvert: warning: <path>: <warnings>``; with ``--strict`` it is a failure;
* the run goes on past failed inputs, writes its results for the others, and exits
  :data:`~nlconvert.errors.EXIT_SOME_FAILED` (3) when any listed input is recorded as failed
  (by this run or, for the resumable ``evaluate``/``features``, an earlier one); 0 otherwise.
  Exit 2 stays for a run that could not start (bad option, model, list or output).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import click

from ..errors import EXIT_OK, EXIT_SOME_FAILED

#: ``--strict``, on the three bulk commands.
strict_option = click.option(
    "--strict", is_flag=True,
    help="Count videos with decode warnings (packets that failed to decode, or fewer frames or "
         "a shorter duration than the container declares: truncated or damaged) as failed.")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def failure_text(reason: str) -> str:
    """The one-line failure of an input (its reason names the file)."""
    return f"nlconvert: failed: {_one_line(reason)}"


def print_failure(reason: str) -> None:
    """Name one failed input (its reason names the file) on standard error."""
    print(failure_text(reason), file=sys.stderr, flush=True)


def warning_text(path: str, warnings: Iterable[str]) -> str:
    """The one-line warning of a video that decoded with `warnings`."""
    return _one_line(f"nlconvert: warning: {path}: {'; '.join(warnings)}")


def print_warnings(path: str, warnings: Iterable[str]) -> None:
    """Name one video with decode warnings on standard error (nothing if there are none)."""
    warnings = list(warnings)
    if warnings:
        print(warning_text(path, warnings), file=sys.stderr, flush=True)


def exit_code(failed: int) -> int:
    """3 when some inputs are recorded as failed, else 0."""
    return EXIT_SOME_FAILED if failed else EXIT_OK
