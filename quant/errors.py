"""How every command-line entry ends: one line on stderr, and an exit status.

- A user's mistake (a bad file, option or folder) raises a `UserError` subclass
  or an `OSError` that names a file: `<prog>: error: <file>[:<line>]: <what was
  expected>`, exit status 2.
- Anything else is a bug of the tool: one line naming the exception and the
  path of the saved traceback (under `build/crash/`), exit status 1.
- Ctrl-C: `<prog>: interrupted`, exit status 130.

`run_command` is the single place that applies these rules; `cosim` and every
`python -m ...` entry of the tool call it.
"""

from __future__ import annotations

import argparse
import datetime
import errno
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

USER_ERROR_STATUS = 2
BUG_STATUS = 1
INTERRUPTED_STATUS = 130

#: Where tracebacks of internal errors are saved (relative to the working directory).


class UserError(Exception):
    """Base of every error caused by the user's input; its message is one line that
    names the file (and line) or option and what was expected."""


def one_line(error: BaseException) -> str:
    """The first line of the exception's message (whitespace runs collapsed, at most
    500 characters), or its type name when the message is empty."""
    lines = str(error).strip().splitlines()
    text = " ".join(lines[0].split()) if lines else type(error).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def _os_error_line(error: OSError) -> str:
    """`<file>: <reason>` for an OSError raised on a path the user named."""
    where = os.fsdecode(error.filename)
    if error.filename2 is not None:
        where += f" -> {os.fsdecode(error.filename2)}"
    reason = error.strerror or type(error).__name__
    return f"{where}: {reason}"


#: OSError numbers that mean the machine or the user's paths, not the tool: a full or
#: read-only disk, a missing permission, a path that is not what the user said it was.
ENVIRONMENT_ERRNOS = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT,
    errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP, errno.EMFILE,
    errno.ENFILE, errno.EXDEV, errno.EBUSY, errno.ETXTBSY,
})


def is_user_error(error: BaseException) -> bool:
    """True for errors caused by input or the machine: UserError, an OSError naming a
    file, and an OSError whose errno is in ENVIRONMENT_ERRNOS (e.g. a full disk)."""
    if isinstance(error, UserError):
        return True
    return isinstance(error, OSError) and (error.filename is not None
                                           or error.errno in ENVIRONMENT_ERRNOS)


def report_user_error(prog: str, error: BaseException) -> int:
    """Print `<prog>: error: <message>` to stderr; returns the exit status for user errors."""
    if isinstance(error, OSError) and not isinstance(error, UserError) and error.filename:
        message = _os_error_line(error)
    elif isinstance(error, OSError) and not isinstance(error, UserError) and error.strerror:
        message = f"{error.strerror} (while writing or reading the files named on the command line)"
    else:
        message = one_line(error)
    print(f"{prog}: error: {message}", file=sys.stderr)
    return USER_ERROR_STATUS


def save_traceback(prog: str, error: BaseException, crash_dir: Path | None = None) -> Path:
    """Write the traceback of `error` to a new file under `crash_dir` (default: crash/ in
    the build folder, cosim.quant.workdir.build_root(); the system temp folder when that
    cannot be written); returns its path."""
    if crash_dir is None:
        from cosim.quant.workdir import build_root

        crash_dir = build_root() / "crash"
    text = "".join(traceback.format_exception(error))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    header = f"{prog} {' '.join(sys.argv[1:])}\n{stamp} pid {os.getpid()}\n\n"
    for folder in (crash_dir, Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=folder, prefix=f"{prog.split()[0]}-{stamp}-",
                                        suffix=".txt")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(header + text)
            return Path(name)
        except OSError:
            continue
    raise error


def report_bug(prog: str, error: BaseException) -> int:
    """One line for an internal error and where its traceback went; returns exit status 1."""
    try:
        saved = f"traceback saved in {save_traceback(prog, error)}"
    except BaseException:  # noqa: BLE001 - nowhere to write: say so, still one line
        saved = "the traceback could not be saved"
    print(f"{prog}: internal error: {type(error).__name__}: {one_line(error)} "
          f"(a bug of the tool, please report it; {saved})", file=sys.stderr)
    return BUG_STATUS


def run_command(prog: str, action: Callable[[], int]) -> int:
    """Run `action` (a command's body returning its exit status) under the rules above."""
    try:
        return action()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED_STATUS
    except Exception as error:  # noqa: BLE001 - the one top-level handler
        if is_user_error(error):
            return report_user_error(prog, error)
        return report_bug(prog, error)


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse whose option errors are one line (`<prog>: error: <what>; see
    '<prog> --help'`) with exit status 2, like every other user error."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {one_line(ValueError(message))}; see '{self.prog} --help'",
              file=sys.stderr)
        sys.exit(USER_ERROR_STATUS)
