"""How the commands report problems: one line on standard error, the message printed verbatim."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from tfkt_edge.cli.exit_codes import USAGE as EXIT_USAGE

_verbosity = 0  # -q: -1, -v: 1, -vv: 2 (set once per command by the shared options)


class StdoutConsole(Console):
    """A console whose reader going away (``| head``) ends the command with exit 141 at the CLI's boundary
    (rich's own default would exit 1, the alert code)."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def set_verbosity(level: int) -> None:
    """-q quiets progress bars and warnings; -v and -vv show the service's info and debug log."""
    global _verbosity
    _verbosity = max(-1, min(2, level))
    import logging

    logging.getLogger("tfkt_edge").setLevel({-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}[_verbosity])


def quiet() -> bool:
    return _verbosity < 0


def error(message: str) -> None:
    """``error: <message>`` on one line; the message is text, never read as console markup
    (an extra like ``tfkt-edge[gpu]`` or a series description in brackets stays as written)."""
    Console(stderr=True).print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """``warning: <message>`` on one line of standard error, unless -q."""
    if not quiet():
        Console(stderr=True).print(Text.assemble(("warning:", "yellow"), " ", message), highlight=False, soft_wrap=True)


def require_writable(*paths: Path | None) -> None:
    """Exit 2 before any work when an output path is a folder or its folder does not exist."""
    for path in paths:
        if path is not None and (path.is_dir() or not path.parent.is_dir()):
            error(f"cannot write {path}: not a file in an existing folder")
            raise typer.Exit(EXIT_USAGE)
