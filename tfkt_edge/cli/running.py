"""Scoring a list of paths for a command, with progress bars; the verdict's exit code; the HTML report.

Shared by `score`, `report` and `calibrate`, so no command module imports another.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tfkt_edge.cli import exit_codes
from tfkt_edge.cli.console import quiet
from tfkt_edge.cli.scoring_options import ScoringOptions
from tfkt_edge.errors import InputError
from tfkt_edge.pipeline.run import ScoringRun, score_paths
from tfkt_edge.verdict.policy import ALERT, OUTSIDE, PASS, AlertPolicy, overall_status


def verdict_exit_code(results) -> int:
    """1 if any series alerts; else 3 if any lies outside the validated domain (its score not acted on); else 0."""
    return {ALERT: exit_codes.ALERT, OUTSIDE: exit_codes.OUTSIDE, PASS: exit_codes.PASS}[overall_status(r.verdict for r in results)]


def run_scoring(paths: list[Path], options: ScoringOptions, policy: AlertPolicy, console: Console | None = None,
                texture: bool = True) -> ScoringRun:
    """Open the backend of ``options`` and score ``paths`` under ``policy`` (`ScoringOptions.policy`, or another for
    commands that judge by their own), with progress bars on ``console`` when it is a terminal. Without ``texture``
    (an output that shows no texture figure: the table, CSV, baselines) the streak index and NPS mean frequency
    are not taken (`pipeline.run.score_paths`)."""
    backend = options.open_backend()
    show = console is not None and console.is_terminal and not quiet()
    with closing(backend), Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeRemainingColumn(), console=console, transient=True, disable=not show) as progress:
        reading = progress.add_task("reading headers", total=None)
        scoring = progress.add_task("scoring slices", total=None)  # scoring starts while headers are read

        def scan_done(n_slices: int) -> None:
            progress.update(reading, visible=False)
            progress.update(scoring, total=n_slices)

        return score_paths(paths, backend, policy, options.batch_size, options.workers, on_file=lambda _: progress.advance(reading),
                           on_scan_done=scan_done, on_slice=lambda: progress.advance(scoring), decoders=options.decoders,
                           texture=texture)


def save_report(run, policy: AlertPolicy, output: Path, profiles: Path | None) -> list[Path]:
    from tfkt_edge.render.html import write_report

    try:
        return write_report(run, policy, output, profiles)
    except OSError as exc:
        raise InputError(f"cannot write the report {output}: {exc.strerror or exc}") from None


