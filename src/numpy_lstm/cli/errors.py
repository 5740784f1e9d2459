"""How the command line reports a user's error: one line on stderr, no traceback.

One mechanism for every command. The parsers are :class:`CommandLineParser`s, whose usage errors
(an unknown flag, a value its `type=` check refuses) print one line and exit with status 2.
A handler that meets a user's error simply raises it; :func:`describe` turns the error types that
mean "the user's input or environment is wrong" into one line naming the argument or the file,
and `main` prints it with exit status 2 (:class:`UsageError`) or 1 (everything else). Any other
exception is a bug and keeps its traceback; `--debug` shows the traceback of user errors too.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from ..core.validation import check_int
from ..train.task import Check
from ..train.trainer import NonFiniteError

ArgumentType = Callable[[str], object]  # an argparse `type=`

# The optional dependencies by the module an ImportError names → the extra that installs them.
EXTRAS = {
    "torch": "torch",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "keras": "keras",
    "h5py": "keras",
    "numba": "fast",
    "matplotlib": "plot",
    "sklearn": "digits",
}


class CommandError(Exception):
    """An error a command found in what it was given (exit status 1); the message names the
    argument or the file."""

    status = 1


class UsageError(CommandError):
    """The command line itself is wrong (a flag's value, a combination): exit status 2."""

    status = 2


class CommandLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (`PROG: error: MESSAGE`, status 2),
    with `--debug` on every (sub)command, and which records in the parsed namespace which
    command's handler runs (`command`: its prog, for the error messages)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,  # so that a subcommand's default cannot reset it
            help="show the Python traceback of an error",
        )

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")

    def set_defaults(self, **kwargs: Any) -> None:
        if "handler" in kwargs:
            kwargs.setdefault("command", self.prog)
        super().set_defaults(**kwargs)


def one_line(text: str) -> str:
    return " ".join(text.split())


def describe(error: BaseException) -> str | None:
    """The one-line message of a user's error, or None for a bug (which keeps its traceback).

    User errors: ours (:class:`CommandError`), a ValueError (the library's way to refuse an
    argument or a file — FileFormatError included: it names the file), an OSError (a missing,
    unreadable or unwritable file, a full disk: named by its filename), a diverged training run
    (NonFiniteError), a missing optional dependency (named with its extra) and running out of
    memory (a size the machine cannot hold).
    """
    if isinstance(error, (CommandError, ValueError, NonFiniteError)):
        return one_line(str(error))
    if isinstance(error, OSError):
        if error.filename is None:
            return one_line(str(error))
        named = _path_text(error.filename)
        if error.filename2 is not None:
            named += f" → {_path_text(error.filename2)}"
        return one_line(f"{named}: {error.strerror or error}")
    if isinstance(error, ImportError):  # an optional library is missing; else: a bug
        module = (error.name or "").partition(".")[0]
        if "pip install" in str(error):  # the library's own message, naming the extra
            return one_line(str(error))
        if module in EXTRAS:
            return f"this needs {module}: pip install 'numpy-lstm[{EXTRAS[module]}]'"
    if isinstance(error, MemoryError):
        return one_line(f"out of memory ({error or 'a size too large for this machine'})")
    return None


def _path_text(filename: object) -> str:
    if isinstance(filename, (str, bytes, os.PathLike)):
        return os.fsdecode(filename)
    return str(filename)  # a file descriptor


# -- argparse `type=` functions: a bad value is a usage error naming the flag ---------------------
def checked_type(name: str, kind: type, check: Check | None) -> ArgumentType:
    """An argparse `type`: the text as `kind`, then `check`ed, so that a bad value is a usage
    error ("argument --hidden-size: expected a positive integer, got 0")."""

    def parse(text: str) -> object:
        value = kind(text)  # a ValueError here reads "invalid int value: 'many'"
        if check is None:
            return value
        try:
            return check(name, value)
        except (ValueError, TypeError) as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix(f"{name}: ")) from None

    parse.__name__ = kind.__name__  # what argparse calls the type in its messages
    return parse


def _positive_number(name: str, value: float) -> float:
    if not 0 < value < math.inf:  # NaN fails every comparison
        raise ValueError(f"{name}: expected a positive number, got {value}")
    return value


def _non_negative_number(name: str, value: float) -> float:
    if not 0 <= value < math.inf:
        raise ValueError(f"{name}: expected a number ≥ 0, got {value}")
    return value


def positive_count(name: str) -> ArgumentType:
    """An integer ≥ 1 (a step count, a length, threads)."""
    return checked_type(name, int, lambda n, v: check_int(n, v, minimum=1))


def non_negative_count(name: str) -> ArgumentType:
    """An integer ≥ 0 (a seed, an index)."""
    return checked_type(name, int, lambda n, v: check_int(n, v, minimum=0))


def positive_number(name: str) -> ArgumentType:
    """A finite float > 0 (minutes, a learning rate, a temperature)."""
    return checked_type(name, float, _positive_number)


def non_negative_number(name: str) -> ArgumentType:
    """A finite float ≥ 0 (weight decay, a clipping norm where 0 means off)."""
    return checked_type(name, float, _non_negative_number)


# -- files --------------------------------------------------------------------------------------
def check_writable(path: str | os.PathLike[str], flag: str, replaced: bool = True) -> None:
    """Fail now — before minutes of training — if `path` cannot be written: its folder is
    missing, read-only or not a folder, or `path` is a folder. `replaced`: the library writes it
    atomically (a new file beside it, renamed over it), so it must not be a device, a FIFO or a
    socket, which the rename would replace (root may: `--checkpoint /dev/null`). Tries it for
    real, as root passes every permission bit."""
    target, shown = Path(path), os.fspath(path)
    if target.is_dir():
        raise CommandError(f"{flag}: cannot write {shown}: it is a folder")
    if target.exists() and not target.is_file():
        if not replaced:
            return  # written in place, as `> /dev/null` would be
        raise CommandError(
            f"{flag}: cannot write {shown}: not a regular file, it would be replaced"
        )
    probe = target.parent / f".probe-{secrets.token_hex(6)}-{target.name}"
    try:
        probe.open("xb").close()
    except OSError as err:
        raise CommandError(f"{flag}: cannot write {shown}: {err.strerror or err}") from None
    probe.unlink(missing_ok=True)


def make_folder(path: str | os.PathLike[str], flag: str) -> None:
    """Create the folder `path` (and its parents) if missing, or fail naming `flag`."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise CommandError(
            f"{flag}: cannot create the folder {os.fspath(path)}: {err.strerror or err}"
        ) from None


def read_text(path: str, flag: str) -> str:
    """A UTF-8 text file's contents; a file that is not UTF-8 text is refused naming it."""
    try:
        return Path(path).read_text("utf-8")
    except UnicodeDecodeError as err:
        raise CommandError(
            f"{flag}: {path} is not UTF-8 text (byte {err.start}: {err.reason})"
        ) from None
