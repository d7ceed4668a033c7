"""Error types of nlconvert.

Every failure a user can cause (a bad file, a wrong architecture, a missing blob) is raised
as a subclass of :class:`NLConvertError`; the command line catches it once and prints a
single line. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

# Exit codes of the command line (documented in the README).
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_SOME_FAILED = 3  # a bulk command went on past failed inputs (see commands/_bulk.py)

#: How a user passes each option an error message may advise: on the command line, in Python.
_OPTION_WORDS = {
    "arch": ("--arch", "arch_name="),
    "force": ("--force", "force=True"),
    "inflate": ("--inflate", "inflate=True"),
    "predict-net": ("--predict-net", "predict_net="),
}
_SPEAKING = {"cli": False}


def speak_cli(on: bool = True) -> None:
    """Error messages name the command line's options (set by the CLI for its run); else the
    Python API's keyword arguments, since a Python user never typed ``--force``."""
    _SPEAKING["cli"] = on


def option(name: str) -> str:
    """Option `name` (``"arch"``, ``"force"``, ...) in the words of the interface in use:
    ``--arch`` on the command line, ``arch_name=`` in Python."""
    cli, python = _OPTION_WORDS[name]
    return cli if _SPEAKING["cli"] else python


class NLConvertError(Exception):
    """Base class of the errors a user can cause; printed as one line by the CLI."""

    exit_code = EXIT_BAD_INPUT


class CheckpointFormatError(NLConvertError):
    """A file is not a readable Caffe2 checkpoint (truncated, wrong kind, corrupt)."""


class UnsafePickleError(CheckpointFormatError):
    """A pickle asked for something beyond numpy arrays and plain containers."""


class NonFiniteWeightError(CheckpointFormatError):
    """A weight blob holds NaN or Inf values."""


class ArchitectureError(NLConvertError):
    """The architecture is unknown, ambiguous, or does not fit the input."""


class MappingError(NLConvertError):
    """A blob is missing, left over, or has the wrong shape for the model."""


class OutputExistsError(NLConvertError):
    """The output file exists and ``--force`` was not given."""


class InputShapeError(NLConvertError):
    """An input tensor has a shape the network cannot take."""


class VideoError(NLConvertError):
    """A video cannot be opened or decoded."""


class ParityError(NLConvertError):
    """Outputs differ beyond tolerance."""

    exit_code = EXIT_CHECK_FAILED


class HubError(NLConvertError):
    """A hub folder, repository or download cannot be used (missing file, bad config, network)."""
