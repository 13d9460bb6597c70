"""The root command: it only composes the command modules.

A run imports and registers only the command it was asked for (``tfkt-edge score DIR`` never imports the
DICOM node, the trainer or the exporters, and Typer builds one command, not fourteen): a one-file score then
starts in well under a second on a 2-core CPU (benchmarks/README.md, "Start-up"), the more so as no garbage
collection runs while the command tree is built. Without a known command
(``tfkt-edge -h``, a typo) every command is registered, so help lists them all and a typo is named. ``app``,
the whole command tree, is built on first use (tests, documentation tools).
"""

from __future__ import annotations

import gc
import logging
import sys
import warnings
from collections.abc import Sequence
from functools import cache
from importlib import import_module
from typing import Annotated

import typer

from tfkt_edge.cli.boundary import CONTEXT, CommandGroup, show_version
from tfkt_edge.cli.console import set_verbosity

HELP = "Reference-free CT image quality at the scanner: score slices 0-4, alert on non-diagnostic series."
# Command name -> (module, attribute), in the order help lists them; "train" and "export" are groups.
COMMANDS = {
    "score": ("tfkt_edge.cli.score", "score"),
    "demo": ("tfkt_edge.cli.demo", "demo"),
    "evaluate": ("tfkt_edge.cli.evaluate", "evaluate"),
    "models": ("tfkt_edge.cli.models", "models"),
    "serve": ("tfkt_edge.cli.serve", "serve"),
    "watch": ("tfkt_edge.cli.serve", "watch"),
    "results": ("tfkt_edge.cli.serve", "results"),
    "benchmark": ("tfkt_edge.cli.benchmark", "benchmark"),
    "report": ("tfkt_edge.cli.report", "report"),
    "calibrate": ("tfkt_edge.cli.calibrate", "calibrate"),
    "env": ("tfkt_edge.cli.env", "env"),
    "triton-serve": ("tfkt_edge.cli.triton", "triton_serve"),
    "train": ("tfkt_edge.cli.train", "app"),
    "export": ("tfkt_edge.cli.export", "app"),
}
GROUPS = ("train", "export")
ENV_SETTINGS = ("serve", "watch")  # options also read from TFKT_EDGE_<COMMAND>_<OPTION>


def root(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=show_version, help="Print the version and exit.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors: no progress bars, no warnings in the log.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail in the log (-vv: debug).")] = 0,
) -> None:
    """Reference-free CT image quality at the scanner: score slices 0-4, alert on non-diagnostic series.

    Exit codes (every command): 0 pass, 1 rescan alert, 2 error (one line on stderr), 3 outside the
    validated domain, 130 interrupted. -q and -v work before or after the command: tfkt-edge score DIR -q.
    """
    set_verbosity(-1 if quiet else verbose)


def build(only: str | None = None) -> typer.Typer:
    """The CLI with every command, or with only the command ``only``."""
    from tfkt_edge.cli.config_file import envvar_prefix

    cli = typer.Typer(name="tfkt-edge", help=HELP, no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False, cls=CommandGroup, context_settings=CONTEXT)
    cli.callback()(root)
    for name, (module, attribute) in COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(import_module(module), attribute)
        if name in GROUPS:
            cli.add_typer(target, name=name)
        else:
            cli.command(name=name, context_settings=envvar_prefix(name) if name in ENV_SETTINGS else None)(target)
    return cli


def requested(argv: Sequence[str]) -> str | None:
    """The command an argument list names: its first word that is not an option (the root takes no values)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


@cache
def _whole() -> typer.Typer:
    return build()


def __getattr__(name: str) -> typer.Typer:
    if name == "app":
        return _whole()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    # Real-world DICOM is full of small standard violations; pydicom warns about
    # each one. Files that cannot be used are reported as skips instead.
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?")
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    # Start-up allocates long-lived objects only (modules, the command tree): no garbage collection pays for
    # itself there (it cost 15 ms of a one-file score), and frozen they are never traversed again.
    gc.disable()
    try:
        cli = build(requested(sys.argv[1:]))
    finally:
        gc.freeze()
        gc.enable()
    cli()
