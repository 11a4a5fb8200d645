"""Exit codes and the one error boundary of the three command-line tools (``perception``, ``autolabel``, ``deploy``).

Exit codes (the same for every subcommand of the three tools)::

    0  success
    1  the run failed: a check failed (``perception check`` found a bad clip, ``deploy parity``), nothing was
       processed, an output could not be written, or an unexpected error (a bug: see below)
    2  bad input: the command line, or a file it names (rig.yaml, frames.csv, labels.json, a model, a config);
       the message names the file, the field, what was expected and what was found
    3  partial: a batch finished but some of its items failed (``autolabel``: listed in LABEL_DIR/failures.json;
       ``deploy bench``: a model is over its latency budget)

Expected errors are subclasses of ``InputError`` (``RigError``, ``ClipError``, ``LabelsError``, ``VideoError``,
``ExportError``, ...), plus missing files (``FileNotFoundError``): ``cli_boundary`` prints them as one line and
exits 2. Anything else is unexpected: one line naming the error and "rerun with --debug for the traceback"; with
``--debug`` (anywhere on the command line) the traceback is printed as well.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130

DEBUG_FLAG = "--debug"
_debug = False  # set by cli_boundary for the run it wraps


def debug_enabled() -> bool:
    """True inside a command run with ``--debug`` (code that handles an error itself may print its traceback)."""
    return _debug


class InputError(ValueError):
    """Bad input a user can fix: the message names the file, the field, what was expected and what was found."""


class RunFailed(RuntimeError):
    """The run could not do what was asked (nothing processed, an output not written); exit 1 with the message."""


def load_yaml(path: str | os.PathLike, expected: str, error_type: type[Exception] = InputError) -> object:
    """The YAML document of ``path`` (safe loader); ``error_type`` naming the file when it cannot be read, is not UTF-8
    text (a binary file) or is not valid YAML. ``expected`` says what the file should be ("a rig.yaml")."""
    import yaml

    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise error_type(
            f"{path}: expected {expected} (UTF-8 YAML text), found binary data (byte {error.start} is not UTF-8)"
        ) from None
    except FileNotFoundError:
        raise error_type(f"{path}: expected {expected}, found no such file") from None
    except OSError as error:
        raise error_type(f"{path}: expected {expected}, cannot read it ({error.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        found = " ".join(str(error).split())
        raise error_type(f"{path}: expected {expected}, found text that is not valid YAML: {found}") from None
    except RecursionError:
        raise error_type(f"{path}: expected {expected}, found YAML nested too deeply") from None


def one_line(error: BaseException) -> str:
    """The error's message on one line (line breaks and runs of blanks become one blank)."""
    return " ".join(str(error).split()) or type(error).__name__


def exit_code_for(error: BaseException) -> int:
    """2 for bad input (``InputError`` and missing/wrong-kind paths), 1 for everything else."""
    if isinstance(error, InputError | FileNotFoundError | NotADirectoryError | IsADirectoryError):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def is_expected(error: BaseException) -> bool:
    """Errors that are a verdict on the input or the environment, not a bug: printed without the debug hint."""
    return isinstance(error, InputError | RunFailed | OSError)


def cli_boundary(
    tool: str,
    run: Callable[[list[str]], int | None],
    argv: Sequence[str] | None = None,
    subcommands: Collection[str] = (),
) -> int:
    """Run ``run(argv)`` (argv without ``--debug``) and turn every exception into a one-line message and an exit code.

    ``tool`` is the program name; messages are prefixed with it and the subcommand when ``argv[0]`` is one of
    ``subcommands`` (``perception check: ...``).
    ``SystemExit`` (argparse) gives its code; ``KeyboardInterrupt`` 130. With ``--debug`` the traceback of an
    error is printed too.
    """
    global _debug
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    argv = [item for item in argv if item != DEBUG_FLAG]
    prog = f"{tool} {argv[0]}" if argv and argv[0] in subcommands else tool
    previous, _debug = _debug, debug
    try:
        return int(run(argv) or 0)
    except SystemExit as exit_:
        code = exit_.code
        if code is None or isinstance(code, int):
            return int(code or 0)
        print(f"{prog}: {code}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # the boundary: nothing leaves as a traceback unless asked for
        if debug:
            traceback.print_exc()
        if is_expected(error):
            print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        else:
            hint = "" if debug else " (unexpected; rerun with --debug for the traceback)"
            print(f"{prog}: internal error: {type(error).__name__}: {one_line(error)}{hint}", file=sys.stderr)
        return exit_code_for(error)
    finally:
        _debug = previous


__all__ = [
    "DEBUG_FLAG",
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "InputError",
    "RunFailed",
    "cli_boundary",
    "debug_enabled",
    "exit_code_for",
    "is_expected",
    "load_yaml",
    "one_line",
]
