"""`tfkt-edge demo`: score a bundled real CT slice and a degraded copy of it."""

from __future__ import annotations

from pathlib import Path

import typer

from tfkt_edge.cli.console import StdoutConsole
from tfkt_edge.cli.running import run_scoring
from tfkt_edge.cli.scoring_options import ScoringOptions
from tfkt_edge.examples import EXAMPLES
from tfkt_edge.render.table import print_table
from tfkt_edge.verdict.policy import AlertPolicy


def demo() -> None:
    """Score the bundled clinical abdomen slice and its simulated low-dose, sparse-view copy.

    Exits 0 when the clinical series passes and the degraded copy raises the alert.

    Example: tfkt-edge demo
    """
    console = StdoutConsole()
    console.print(f"[bold]tfkt-edge demo[/]: scoring the bundled examples in {EXAMPLES}\n"
                  " clinical/  a real abdominal CT slice (pydicom-data test set; one of the model's training sources)\n"
                  " degraded/  the same slice with simulated 5% dose and 90 views (noise and streaks)\n", highlight=False)
    run = run_scoring([EXAMPLES / "clinical", EXAMPLES / "degraded"], ScoringOptions(), AlertPolicy(), console, texture=False)
    print_table(console, run.results, run.skipped, AlertPolicy().threshold)
    verdicts = {Path(r.series.slices[0].path).parent.name: r.verdict.alert for r in run.results}
    ok = verdicts.get("clinical") is False and verdicts.get("degraded") is True
    console.print("[green]demo ok: the clinical slice passes and the degraded copy raises a rescan alert[/]" if ok
                  else f"[red]demo: unexpected verdicts {verdicts}[/]")
    raise typer.Exit(0 if ok else 1)
