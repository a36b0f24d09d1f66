"""User errors on the command line: one line on stderr and exit status 2, not a traceback.

A mistake in what the user typed or pointed at (a missing file, a number out of range, a
corrupt checkpoint) raises :class:`UserError`, or one of the path errors a loader raises
(``FileNotFoundError``, ``NotADirectoryError``, ...; their messages name the path).
:func:`cli_main` wraps each entry point (``freeaction``, ``python -m agents.train``,
``python -m agents.evaluate``) and turns those into ``error: <message>`` on stderr, exit
status 2. Every other exception is a bug and keeps its traceback. ``--debug`` anywhere on
the command line, or ``FREEACTION_DEBUG=1`` in the environment, re-raises user errors
too, traceback and all.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable


class UserError(ValueError):
    """A bad command-line value or input file; the message names the option or path."""


PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError,
               PermissionError)  # fmt: skip
"""OS errors about a path the user gave (an input that is not there, an output that
cannot be written)."""


def is_debug(argv: list[str]) -> bool:
    """``--debug`` in ``argv`` or ``FREEACTION_DEBUG=1``: show user errors' tracebacks."""
    return "--debug" in argv or os.environ.get("FREEACTION_DEBUG", "") not in ("", "0")


def one_line(err: BaseException) -> str:
    """``err``'s message on one line; an OS error as ``<reason>: <path>``."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        text = f"{err.strerror}: {err.filename}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def cli_main(main: Callable[[list[str]], int]) -> Callable[[list[str] | None], int]:
    """Decorate an entry point ``main(argv) -> exit status``: ``argv`` defaults to
    ``sys.argv[1:]``, ``--debug`` is taken out of it, and a user error
    (:class:`UserError`, :data:`PATH_ERRORS`) prints ``error: <message>`` to stderr and
    returns 2 (re-raised when debugging, see :func:`is_debug`)."""

    @functools.wraps(main)
    def wrapped(argv: list[str] | None = None) -> int:
        argv = list(sys.argv[1:] if argv is None else argv)
        debug = is_debug(argv)
        try:
            return main([a for a in argv if a != "--debug"])
        except (UserError, *PATH_ERRORS) as err:
            if debug:
                raise
            print(f"error: {one_line(err)}", file=sys.stderr)
            return 2

    return wrapped
