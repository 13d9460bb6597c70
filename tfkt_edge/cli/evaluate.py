"""`tfkt-edge evaluate`: the challenge metric on a labelled folder in the LDCTIQAC layout."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Annotated, Optional

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

from tfkt_edge.cli.console import StdoutConsole, quiet
from tfkt_edge.cli.options import BackendOpt, BaselinesOpt, BatchOpt, MinRunOpt, ModelOpt, NoiseCheckOpt, ThresholdOpt
from tfkt_edge.cli.scoring_options import ScoringOptions
from tfkt_edge.errors import InputError, TfktEdgeError
from tfkt_edge.evaluation.evaluate import evaluate as run_evaluation
from tfkt_edge.evaluation.evaluate import write_evaluation
from tfkt_edge.evaluation.ldctiqac import LAYOUT, find_labelled_folder


def evaluate(
    data: Annotated[Optional[Path], typer.Option("--data", help=f"Labelled folder: {LAYOUT}.", show_default=False)] = None,
    series: Annotated[Optional[Path], typer.Option("--series", help="Series mode: a folder with series.csv (path,source,ladder,dose,label,expected), e.g. from python -m tfkt_edge.train.ladders.", show_default=False)] = None,
    model: ModelOpt = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Also write predictions.json and scatter.png to this folder (series mode: series.json and series.md); nothing is written without it.", show_default=False)] = None,
    batch_size: BatchOpt = 16,
    backend: BackendOpt = "onnxruntime",
    threshold: ThresholdOpt = 2.0,
    min_run: MinRunOpt = 3,
    baselines: BaselinesOpt = None,
    noise_check: NoiseCheckOpt = True,
) -> None:
    """PLCC, SROCC, KROCC and their sum (the LDCTIQAC overall score) of a model on labelled CT slices;
    or, with --series, the false-alert and miss rates of the rescan alert on whole series, per source.

    Writes per-image predictions (JSON) and a predicted-vs-label scatter plot (PNG). Exit code 2 on bad input.

    Example: tfkt-edge evaluate --series /scratch/ladders -o evaluation/
    """
    options = ScoringOptions(model, backend, batch_size=batch_size, threshold=threshold, min_run=min_run,
                             baselines=baselines, noise_check=noise_check)
    if (data is None) == (series is None):
        raise InputError("give one of --data (labelled slices) or --series (a folder with series.csv)")
    if baselines is not None and series is None:
        raise InputError("--baselines applies to --series (whole series and their verdicts), not to --data")
    if series is not None:
        _evaluate_series(series, output, options)
        return
    assert data is not None  # one of the two, checked above
    err, console = Console(stderr=True), StdoutConsole()
    folder = find_labelled_folder(data)
    if len(folder.labels) < 2:
        raise TfktEdgeError(f"{folder.labels_file}: need at least 2 labelled images to correlate")
    engine = options.open_backend()
    with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=not err.is_terminal or quiet()) as progress:
        task = progress.add_task("", total=len(folder.labels))
        with closing(engine):
            result = run_evaluation(folder, engine, batch_size, on_image=lambda: progress.advance(task))
    written = write_evaluation(result, output) if output is not None else None
    f, g, h = result.figures, result.noise_index_figures, result.learned_figures
    table = Table(title=f"{result.model} on {data} ({f['n']} images)")
    for column in ("", "images", "PLCC", "SROCC", "KROCC", "overall"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row(f"{result.model} (verdict score)", str(f["n"]), *(f"{f[k]:.4f}" for k in ("plcc", "srocc", "krocc", "overall")))
    table.add_row("learned score alone", str(h["n"]), *(f"{h[k]:.4f}" for k in ("plcc", "srocc", "krocc", "overall")))
    if g is not None:
        table.add_row("global noise index", str(g["n"]), *(f"{abs(g[k]):.4f}" for k in ("plcc", "srocc", "krocc", "overall")))
    console.print(table)
    if g is None:
        console.print("the global noise index could not be measured on these images (too little soft tissue)")
    else:
        for name, figures in (("the verdict score (learned, capped by the noise bound)", f), ("the learned score alone", h)):
            beats = figures["overall"] > g["overall"]
            console.print(f"{name} {'beats' if beats else 'does NOT beat'} the global noise index on these images "
                          f"(overall {figures['overall']:.3f} against {g['overall']:.3f})", highlight=False)
    if written is not None:
        console.print(f"predictions: {written[0]}\nscatter plot: {written[1]}", highlight=False)


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _evaluate_series(folder: Path, output: Path | None, options: ScoringOptions) -> None:
    from tfkt_edge.evaluation.series import evaluate_series, markdown, read_index, to_document, write_document

    err = Console(stderr=True)
    console = StdoutConsole() if StdoutConsole().is_terminal else StdoutConsole(width=160)
    total = len(read_index(folder))
    policy = options.policy()
    engine = options.open_backend()
    with Progress(TextColumn("series"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=not err.is_terminal or quiet()) as progress:
        task = progress.add_task("", total=total)
        with closing(engine):
            outcomes = evaluate_series(folder, engine, policy, options.batch_size, on_series=lambda: progress.advance(task))
            doc = to_document(outcomes, engine.model.name)
    path = write_document(doc, output / "series.json") if output is not None else None
    table = Table(title=f"{doc['model']}: rescan alerts on {folder} (alert below {policy.threshold:.2f})")
    for column in ("source", "diagnostic", "false alerts", "low-dose", "missed", "by noise only", "outside", "median", "min",
                   "ladder SROCC", "noise index SROCC"):
        table.add_column(column, justify="left" if column == "source" else "right")
    rows = {**doc["summary"]["sources"], "all": doc["summary"]["all"]}
    for name, f in rows.items():
        table.add_row(name, str(f["diagnostic_series"]), str(f["false_alerts"]), str(f["low_dose_series"]), str(f["misses"]),
                      str(f["caught_by_noise_check"]), str(f["outside_domain"]), _fmt(f["undegraded_median_score"]), _fmt(f["undegraded_min_score"]),
                      _fmt(f.get("ladder_srocc_mean"), ".3f"), _fmt(f.get("noise_index_ladder_srocc_mean"), ".3f"))
    console.print(table)
    console.print("median/min: slice scores of the undegraded diagnostic series; low-dose: copies at 10% dose or less; "
                  "by noise only: low-dose copies that alert on the noise check, their scores passing; ladder SROCC: "
                  "the score's rank correlation with dose down each slice's ladder, beside the global noise index's",
                  highlight=False)
    everything = doc["summary"]["all"]
    if "slices" in everything and "slices_noise_index" in everything:
        model_overall, noise_overall = everything["slices"]["overall"], everything["slices_noise_index"]["overall"]
        console.print(f"against the labels, over all slices: the learned score's overall {model_overall:.3f}, the global "
                      f"noise index's {noise_overall:.3f}: the learned score "
                      f"{'beats' if model_overall > noise_overall else 'does NOT beat'} the noise index", highlight=False)
    if output is not None and path is not None:
        markdown_path = output / "series.md"
        markdown_path.write_text(markdown(doc["summary"]))
        console.print(f"series results: {path} and {markdown_path}", highlight=False)
