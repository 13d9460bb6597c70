"""The root command: it only composes the command modules."""

from __future__ import annotations

import logging
import warnings
from typing import Annotated

import typer

from tfkt_edge.cli import export, train
from tfkt_edge.cli.benchmark import benchmark
from tfkt_edge.cli.boundary import CONTEXT, CommandGroup, show_version
from tfkt_edge.cli.calibrate import calibrate
from tfkt_edge.cli.config_file import envvar_prefix
from tfkt_edge.cli.console import set_verbosity
from tfkt_edge.cli.demo import demo
from tfkt_edge.cli.env import env
from tfkt_edge.cli.evaluate import evaluate
from tfkt_edge.cli.models import models
from tfkt_edge.cli.report import report
from tfkt_edge.cli.score import score
from tfkt_edge.cli.serve import results, serve, watch
from tfkt_edge.cli.triton import triton_serve

app = typer.Typer(name="tfkt-edge", help="Reference-free CT image quality at the scanner: score slices 0-4, alert on non-diagnostic series.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, cls=CommandGroup,
                  context_settings=CONTEXT)


@app.callback()
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
app.command()(score)
app.command()(demo)
app.command()(evaluate)
app.command()(models)
app.command(context_settings=envvar_prefix("serve"))(serve)
app.command(context_settings=envvar_prefix("watch"))(watch)
app.command()(results)
app.command()(benchmark)
app.command()(report)
app.command()(calibrate)
app.command()(env)
app.command(name="triton-serve")(triton_serve)
app.add_typer(train.app, name="train")
app.add_typer(export.app, name="export")


def main() -> None:
    # Real-world DICOM is full of small standard violations; pydicom warns about
    # each one. Files that cannot be used are reported as skips instead.
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?")
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    app()
