"""The terminal table of `tfkt-edge score`: one row per series, its verdict in colour, then each reason."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from tfkt_edge.dicom import Skip
from tfkt_edge.render.document import STATUS_STYLE, series_name
from tfkt_edge.render.shown import markup_safe
from tfkt_edge.verdict.policy import STATUS_TEXT
from tfkt_edge.verdict.record import Study
from tfkt_edge.verdict.result import SeriesResult


def print_table(console: Console, results: Sequence[SeriesResult], skipped: Sequence[Skip], threshold: float) -> None:
    """One row per series, then each series' verdict reason, then the skipped files."""
    if results:
        _print_series(console, results, threshold)
    if skipped:
        console.print(f"[yellow]skipped {len(skipped)} file(s):[/]")
        for skip in skipped[:20]:
            console.print(f"  [dim]{markup_safe(str(skip.path))}[/]: {markup_safe(skip.reason)}", highlight=False, soft_wrap=True)
        if len(skipped) > 20:
            console.print(f"  ... and {len(skipped) - 20} more (use --format json for the full list)")


def _noise_cell(result: SeriesResult) -> str:
    """The noise check at a glance: measured / ceiling, red when above; '-' where it does not apply."""
    noise = result.noise
    if noise is None:
        return "-"
    text = f"{noise.noise_hu:.1f}/{noise.ceiling_hu:.1f}"
    return f"[red]{text}[/]" if noise.above else text


def _physics_cell(result: SeriesResult) -> str:
    """Water-equivalent diameter (cm), with the SSDE (mGy) after a slash where the header gives CTDIvol."""
    physics = result.physics
    if physics is None or physics.water_diameter_cm is None:
        return "-"
    dw = f"{physics.water_diameter_cm:.0f}"
    return dw if physics.ssde_mgy is None else f"{dw}/{physics.ssde_mgy:.1f}"


def _patient_cell(result: SeriesResult) -> str:
    """'NAME [ID] DATE' of the series' first slice, '-' where the headers hold none of them."""
    if not result.series.slices:
        return "-"
    study = Study.of(result.series.slices[0])
    name = study.patient_name.replace("^", " ").strip()
    parts = [name, f"[{study.patient_id}]" if study.patient_id and study.patient_id != name else "", study.study_date]
    return " ".join(p for p in parts if p) or "-"


def _print_series(console: Console, results: Sequence[SeriesResult], threshold: float) -> None:
    table = Table(title=f"tfkt-edge: CT image quality (0-4, higher is better; alert below {threshold:.1f})")
    table.add_column("#", justify="right")
    table.add_column("verdict", no_wrap=True)
    placed = console.width >= 120 and any(_patient_cell(r) != "-" for r in results)  # a narrow console: no room
    if placed:  # who and which study, so a technologist can place the verdict (anonymised files: no column)
        table.add_column("patient / study", overflow="fold")
    table.add_column("series", overflow="fold")
    table.add_column("kernel")
    for column in ("slices", "median", "min"):
        table.add_column(column, justify="right")
    table.add_column("noise HU", justify="right", no_wrap=True)
    table.add_column("Dw/SSDE", justify="right", no_wrap=True)
    if any(r.noise is not None for r in results):
        basis = sorted({r.noise.basis for r in results if r.noise is not None})
        table.caption = ("noise HU: the series' soft-tissue noise / its ceiling for its kernel class and patient size "
                         f"(scaled to 3 mm where the slice thickness is known; ceilings from {', '.join(basis)}); "
                         "Dw/SSDE: water-equivalent diameter, cm (TG-220) / size-specific dose estimate, mGy (TG-204)")
    for number, result in enumerate(results, 1):
        scores = result.scores
        status = result.verdict.status
        verdict = f"[{STATUS_STYLE[status]}]{STATUS_TEXT[status]}[/]"
        table.add_row(str(number), verdict, *([markup_safe(_patient_cell(result))] if placed else []),
                      markup_safe(series_name(result.series.description, result.series.series_instance_uid)),
                      markup_safe(result.series.kernel or "-"),
                      str(len(result.slices)), f"{np.median(scores):.2f}" if scores.size else "-",
                      f"{scores.min():.2f}" if scores.size else "-", _noise_cell(result),
                      _physics_cell(result))
    console.print(table)
    for number, result in enumerate(results, 1):
        colour = STATUS_STYLE[result.verdict.status]
        console.print(f"[{colour}]#{number}[/] {markup_safe(result.verdict.reason)} [dim]({markup_safe(result.series.series_instance_uid)})[/]",
                      highlight=False)
