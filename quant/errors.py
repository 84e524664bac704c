"""How every command-line entry reports a user error: one line, exit status 2."""

from __future__ import annotations

import sys

USER_ERROR_STATUS = 2


def one_line(error: BaseException) -> str:
    """The first line of the exception's message (whitespace runs collapsed), or its type
    name when the message is empty."""
    lines = str(error).strip().splitlines()
    return " ".join(lines[0].split()) if lines else type(error).__name__


def report_user_error(prog: str, error: BaseException) -> int:
    """Print `<prog>: error: <message>` to stderr; returns the exit status for user errors."""
    print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
    return USER_ERROR_STATUS
