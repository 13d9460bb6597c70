"""`tfkt-edge score`: score DICOM series and raise rescan alerts."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tfkt_edge.cli.console import StdoutConsole, require_writable, warn
from tfkt_edge.cli.options import (
    BackendOpt,
    BaselinesOpt,
    Decoders,
    DecodersOpt,
    FormatOpt,
    MinRunOpt,
    ModelOpt,
    NoiseCheckOpt,
    OutputFormat,
    OutputOpt,
    ReportOpt,
    RunBatchOpt,
    ThresholdOpt,
    TritonModelOpt,
    UrlOpt,
    WorkersOpt,
)
from tfkt_edge.cli.running import run_scoring, save_report, verdict_exit_code
from tfkt_edge.cli.scoring_options import ScoringOptions
from tfkt_edge.errors import InputError
from tfkt_edge.render.document import document, to_csv, to_json
from tfkt_edge.render.table import print_table


def score(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files, folders (searched recursively) or DICOMDIR files.", show_default=False)],
    format: FormatOpt = OutputFormat.table,
    output: OutputOpt = None,
    threshold: ThresholdOpt = 2.0,
    min_run: MinRunOpt = 3,
    batch_size: RunBatchOpt = None,
    workers: WorkersOpt = 2,
    model: ModelOpt = None,
    backend: BackendOpt = "onnxruntime",
    url: UrlOpt = None,
    triton_model: TritonModelOpt = None,
    decoders: DecodersOpt = Decoders.threads,
    baselines: BaselinesOpt = None,
    noise_check: NoiseCheckOpt = True,
    report: ReportOpt = None,
) -> None:
    """Score CT slices 0-4 (higher is better) per series and flag series that need a rescan.

    Exit code 0: every series passes; 1: at least one rescan alert; 2: nothing scorable or bad usage;
    3: no alert, but a series lies outside the validated domain (its learned score not acted on).

    Example: tfkt-edge score /data/exam42 --format json -o exam42.json
    """
    err = Console(stderr=True)
    require_writable(output, report)
    options = ScoringOptions(model, backend, url, triton_model, batch_size, workers, decoders.value, threshold, min_run,
                             baselines, noise_check)
    policy = options.policy()
    # The texture figures (streak index, NPS mean frequency) are shown by the JSON document and the report only.
    shown = format is OutputFormat.json or report is not None
    run = run_scoring(paths, options, policy, err, texture=shown)  # a TfktEdgeError ends at the CLI's boundary: one line, exit 2
    if run.model.held_to_defaults:
        warn(f"{run.model.name} carries no domain limits or noise figures of its own ({run.model.checks}): its series "
             "are held to the physics defaults")
    if format is OutputFormat.table:
        buffer = io.StringIO()
        console = Console(file=buffer, width=160) if output is not None else StdoutConsole()
        print_table(console, run.results, run.skipped, threshold)
        text = buffer.getvalue() if output is not None else None
    elif format is OutputFormat.json:
        text = to_json(document(run.model, run.results, run.skipped, threshold))
    else:
        text = to_csv(run.results, run.skipped)
    if text is not None and output is None:
        typer.echo(text, nl=False)
    elif text is not None and output is not None:
        try:
            output.write_text(text)
        except OSError as exc:
            raise InputError(f"cannot write {output}: {exc.strerror}") from None
    if report is not None and run.results:
        save_report(run, policy, report, None)
    if not run.results:
        raise InputError(f"nothing scorable in {', '.join(map(str, paths))} ({len(run.skipped)} file(s) skipped)")
    raise typer.Exit(verdict_exit_code(run.results))
