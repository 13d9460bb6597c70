"""The one error boundary of the CLI.

Each command raises ``TfktEdgeError`` (or lets an ``OSError`` through) for what
a user can fix; here, for every command and sub-command, it becomes one
``error: ...`` line and exit code 2 (``exit_codes``), never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys

import typer
from typer.core import TyperGroup

from tfkt_edge.cli import exit_codes
from tfkt_edge.cli.console import error
from tfkt_edge.errors import TfktEdgeError

CONTEXT = {"help_option_names": ["-h", "--help"]}  # inherited by every sub-command's context
# The root's verbosity flags, accepted anywhere before a "--": tfkt-edge score DIR -q == tfkt-edge -q score DIR.
VERBOSITY_FLAGS = frozenset({"-q", "--quiet", "-v", "-vv", "-vvv", "--verbose"})


def hoist_verbosity(args: list[str]) -> list[str]:
    """Move -q/-v given after a command to the front, where the root command reads them."""
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in VERBOSITY_FLAGS]
    return flags + [a for a in args[:end] if a not in VERBOSITY_FLAGS] + args[end:]


class CommandGroup(TyperGroup):
    """A Typer group whose commands' errors all end here."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, hoist_verbosity(list(args)) if ctx.parent is None else args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TfktEdgeError as exc:
            error(str(exc))
            raise typer.Exit(exit_codes.USAGE) from None
        except BrokenPipeError:  # the reader went away (| head): nothing to say to anyone
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(exit_codes.PIPE_CLOSED) from None
        except OSError as exc:
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            error(f"{where}{exc.strerror or exc}")
            raise typer.Exit(exit_codes.USAGE) from None
        except KeyboardInterrupt:
            logging.getLogger("tfkt_edge").warning("interrupted")
            raise typer.Exit(exit_codes.INTERRUPTED) from None


def show_version(value: bool) -> None:
    if not value:
        return
    import tfkt_edge

    installed = tfkt_edge.__version__
    package = "tfkt-edge (not installed as a package)" if installed == tfkt_edge.NOT_INSTALLED else f"tfkt-edge {installed}"
    typer.echo(f"{package}; shipped model {_model_version()}")
    raise typer.Exit(exit_codes.PASS)


def _model_version() -> str:
    """The shipped model's name and version, from its card beside the ONNX file (no model is opened)."""
    import json

    from tfkt_edge.model.model_file import DEFAULT_MODEL

    try:
        card = json.loads(DEFAULT_MODEL.with_suffix(".card.json").read_text())
        return f"{card.get('name', DEFAULT_MODEL.stem)} {card.get('version', '')}".strip()
    except (OSError, ValueError):
        return f"{DEFAULT_MODEL.stem} (card unreadable)"
