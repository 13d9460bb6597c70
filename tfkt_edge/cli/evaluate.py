"""`tfkt-edge evaluate`: the challenge metric on a labelled folder in the LDCTIQAC layout."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ..backends import create_backend
from ..errors import TfktEdgeError
from ..evaluate import evaluate as run_evaluation
from ..evaluate import write_evaluation
from ..ldctiqac import LAYOUT, find_labelled_folder
from .console import error
from .options import BackendOpt, BatchOpt, ModelOpt


def evaluate(
    data: Annotated[Path, typer.Option("--data", help=f"Labelled folder: {LAYOUT}.", show_default=False)],
    model: ModelOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for predictions.json and scatter.png.")] = Path("evaluation"),
    batch_size: BatchOpt = 16,
    backend: BackendOpt = "onnxruntime",
) -> None:
    """PLCC, SROCC, KROCC and their sum (the LDCTIQAC overall score) of a model on labelled CT slices.

    Writes per-image predictions (JSON) and a predicted-vs-label scatter plot (PNG). Exit code 2 on bad input.
    """
    err, console = Console(stderr=True), Console()
    try:
        folder = find_labelled_folder(data)
        if len(folder.labels) < 2:
            raise TfktEdgeError(f"{folder.labels_file}: need at least 2 labelled images to correlate")
        engine = create_backend(backend, model)
        with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err, transient=True, disable=not err.is_terminal) as progress:
            task = progress.add_task("", total=len(folder.labels))
            with closing(engine):
                result = run_evaluation(folder, engine, batch_size, on_image=lambda: progress.advance(task))
        json_path, png_path = write_evaluation(result, output)
    except (TfktEdgeError, OSError) as exc:
        error(str(exc))
        raise typer.Exit(2) from None
    f = result.figures
    table = Table(title=f"{result.model} on {data} ({f['n']} images)")
    for column in ("PLCC", "SROCC", "KROCC", "overall"):
        table.add_column(column, justify="right")
    table.add_row(*(f"{f[k]:.4f}" for k in ("plcc", "srocc", "krocc", "overall")))
    console.print(table)
    console.print(f"predictions: {json_path}\nscatter plot: {png_path}", highlight=False)
