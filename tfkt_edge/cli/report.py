"""`tfkt-edge report`: score series and write the visual report (self-contained HTML, profile PNGs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from tfkt_edge.cli.console import StdoutConsole, require_writable
from tfkt_edge.cli.options import (
    BackendOpt,
    BaselinesOpt,
    MinRunOpt,
    ModelOpt,
    NoiseCheckOpt,
    RunBatchOpt,
    ThresholdOpt,
    TritonModelOpt,
    UrlOpt,
    WorkersOpt,
)
from tfkt_edge.cli.running import run_scoring, save_report, verdict_exit_code
from tfkt_edge.cli.scoring_options import ScoringOptions
from tfkt_edge.errors import InputError

ProfilesOpt = Annotated[Optional[Path], typer.Option("--profiles", help="Also write each series' quality profile as a PNG into this folder.")]


def report(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files, folders or DICOMDIR files.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path("report.html"),
    profiles: ProfilesOpt = None,
    threshold: ThresholdOpt = 2.0,
    min_run: MinRunOpt = 3,
    baselines: BaselinesOpt = None,
    noise_check: NoiseCheckOpt = True,
    batch_size: RunBatchOpt = None,
    workers: WorkersOpt = 2,
    model: ModelOpt = None,
    backend: BackendOpt = "onnxruntime",
    url: UrlOpt = None,
    triton_model: TritonModelOpt = None,
) -> None:
    """Score series and write a self-contained HTML report: per series the verdict and reason, the quality
    profile along the patient axis, and the worst slices. Exit code as for `score` (0 pass, 1 alert, 2 nothing, 3 outside the domain).

    Example: tfkt-edge report /data/exam42 -o exam42.html
    """
    err = Console(stderr=True)
    require_writable(output)
    options = ScoringOptions(model, backend, url, triton_model, batch_size, workers, "threads", threshold, min_run,
                             baselines, noise_check)
    policy = options.policy()
    run = run_scoring(paths, options, policy, err)
    if not run.results:
        raise InputError(f"nothing scorable in {', '.join(map(str, paths))} ({len(run.skipped)} file(s) skipped)")
    written = save_report(run, policy, output, profiles)
    alerts = sum(r.verdict.alert for r in run.results)
    StdoutConsole().print(f"report: {written[0]} ({len(run.results)} series, {alerts} rescan alert(s))"
                    + (f"; {len(written) - 1} profile PNG(s) in {profiles}" if profiles else ""), highlight=False)
    raise typer.Exit(verdict_exit_code(run.results))
