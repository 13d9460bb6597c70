"""The root command: it only composes the command modules."""

from __future__ import annotations

import logging
import warnings

import typer

from . import export, train
from .benchmark import benchmark
from .calibrate import calibrate
from .demo import demo
from .evaluate import evaluate
from .models import models
from .report import report
from .score import score
from .serve import results, serve, watch

app = typer.Typer(name="tfkt-edge", help="Reference-free CT image quality at the scanner: score slices 0-4, alert on non-diagnostic series.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.command()(score)
app.command()(demo)
app.command()(evaluate)
app.command()(models)
app.command()(serve)
app.command()(watch)
app.command()(results)
app.command()(benchmark)
app.command()(report)
app.command()(calibrate)
app.add_typer(train.app, name="train")
app.add_typer(export.app, name="export")


def main() -> None:
    # Real-world DICOM is full of small standard violations; pydicom warns about
    # each one. Files that cannot be used are reported as skips instead.
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?")
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    app()
