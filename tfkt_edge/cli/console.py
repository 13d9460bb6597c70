"""How the commands report problems: one line on standard error, the message printed verbatim."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

EXIT_USAGE = 2


def error(message: str) -> None:
    """``error: <message>`` on one line; the message is text, never read as console markup
    (an extra like ``tfkt-edge[gpu]`` or a series description in brackets stays as written)."""
    Console(stderr=True).print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)


def require_writable(*paths: Path | None) -> None:
    """Exit 2 before any work when an output path is a folder or its folder does not exist."""
    for path in paths:
        if path is not None and (path.is_dir() or not path.parent.is_dir()):
            error(f"cannot write {path}: not a file in an existing folder")
            raise typer.Exit(EXIT_USAGE)
