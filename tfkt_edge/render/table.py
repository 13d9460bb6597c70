"""The terminal table of `tfkt-edge score`: one row per series, its verdict in colour, then each reason.

Up to LISTED_ABOVE series make a box table; more are listed one aligned line each, with the same columns.
rich draws a table cell by cell, about 0.2 s for 280 one-slice series on the 2-core CPU (a tenth of
the whole run); the listing, with the verdict reasons after it, takes 0.03 s, and a long listing reads as
well without boxes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.cells import cell_len, set_cell_size
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tfkt_edge.dicom import Skip
from tfkt_edge.render.document import STATUS_STYLE, series_name
from tfkt_edge.render.shown import markup_safe, visible
from tfkt_edge.verdict.policy import STATUS_TEXT
from tfkt_edge.verdict.record import Study
from tfkt_edge.verdict.result import SeriesResult


def print_table(console: Console, results: Sequence[SeriesResult], skipped: Sequence[Skip], threshold: float) -> None:
    """One row per series, then each series' verdict reason, then the skipped files."""
    if results:
        if len(results) > LISTED_ABOVE:
            _print_listing(console, results, threshold)
        else:
            _print_series(console, results, threshold)
        _print_reasons(console, results)
    if skipped:
        console.print(f"[yellow]skipped {len(skipped)} file(s):[/]")
        for skip in skipped[:20]:
            console.print(f"  [dim]{markup_safe(str(skip.path))}[/]: {markup_safe(skip.reason)}", highlight=False, soft_wrap=True)
        if len(skipped) > 20:
            console.print(f"  ... and {len(skipped) - 20} more (use --format json for the full list)")


LISTED_ABOVE = 40  # series; more are listed a line each


def _noise_text(result: SeriesResult) -> tuple[str, str]:
    """The noise check at a glance: measured / ceiling, and its style (red when above); '-' where it does not
    apply."""
    noise = result.noise
    if noise is None:
        return "-", ""
    return f"{noise.noise_hu:.1f}/{noise.ceiling_hu:.1f}", "red" if noise.above else ""


def _noise_cell(result: SeriesResult) -> str:
    text, style = _noise_text(result)
    return f"[{style}]{text}[/]" if style else text


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


def _title(threshold: float) -> str:
    return f"tfkt-edge: CT image quality (0-4, higher is better; alert below {threshold:.1f})"


def _caption(results: Sequence[SeriesResult]) -> str | None:
    """What the noise and size columns hold, where a series has a noise check."""
    if not any(r.noise is not None for r in results):
        return None
    basis = sorted({r.noise.basis for r in results if r.noise is not None})
    return ("noise HU: the series' soft-tissue noise / its ceiling for its kernel class and patient size "
            f"(scaled to 3 mm where the slice thickness is known; ceilings from {', '.join(basis)}); "
            "Dw/SSDE: water-equivalent diameter, cm (TG-220) / size-specific dose estimate, mGy (TG-204)")


def _placed(console: Console, results: Sequence[SeriesResult]) -> bool:
    """Whether the patient / study column is shown: a console of 120 columns or more, and headers that name one."""
    return console.width >= 120 and any(_patient_cell(r) != "-" for r in results)


def _print_series(console: Console, results: Sequence[SeriesResult], threshold: float) -> None:
    table = Table(title=_title(threshold), caption=_caption(results))
    table.add_column("#", justify="right")
    table.add_column("verdict", no_wrap=True)
    placed = _placed(console, results)
    if placed:  # who and which study, so a technologist can place the verdict (anonymised files: no column)
        table.add_column("patient / study", overflow="fold")
    table.add_column("series", overflow="fold")
    table.add_column("kernel")
    for column in ("slices", "median", "min"):
        table.add_column(column, justify="right")
    table.add_column("noise HU", justify="right", no_wrap=True)
    table.add_column("Dw/SSDE", justify="right", no_wrap=True)
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


def _print_reasons(console: Console, results: Sequence[SeriesResult]) -> None:
    """Each series' verdict reason, a line each (one print: a print per line costs 0.1 ms)."""
    lines = [Text.assemble((f"#{number}", STATUS_STYLE[result.verdict.status]), " ", visible(result.verdict.reason), " ",
                           (f"({visible(result.series.series_instance_uid)})", "dim"))
             for number, result in enumerate(results, 1)]
    console.print(Text("\n").join(lines))


# The listing's columns: header, right-aligned, and at most how many cells wide (None: as wide as its text).
_FIXED = (("#", True, None), ("verdict", False, None))
_NAMED = (("patient / study", False, 32), ("series", False, None), ("kernel", False, 16))
_FIGURES = (("slices", True, None), ("median", True, None), ("min", True, None), ("noise HU", True, None),
            ("Dw/SSDE", True, None))


def _listed_cells(number: int, result: SeriesResult, placed: bool) -> list[tuple[str, str]]:
    """(text, style) of one series' cells, in the listing's column order."""
    scores = result.scores
    status = result.verdict.status
    named = [visible(_patient_cell(result))] if placed else []
    named += [visible(series_name(result.series.description, result.series.series_instance_uid)),
              visible(result.series.kernel or "-")]
    figures = [str(len(result.slices)), f"{np.median(scores):.2f}" if scores.size else "-",
               f"{scores.min():.2f}" if scores.size else "-"]
    return [(str(number), ""), (STATUS_TEXT[status], STATUS_STYLE[status]), *((text, "") for text in named),
            *((text, "") for text in figures), _noise_text(result), (_physics_cell(result), "")]


def _print_listing(console: Console, results: Sequence[SeriesResult], threshold: float) -> None:
    """One aligned line per series (the table's columns, without boxes): long names cut with an ellipsis so
    each line fits the console."""
    placed = _placed(console, results)
    columns = [*_FIXED, *(_NAMED if placed else _NAMED[1:]), *_FIGURES]
    rows = [_listed_cells(number, result, placed) for number, result in enumerate(results, 1)]
    widths = [max(cell_len(header), *(cell_len(row[k][0]) for row in rows)) for k, (header, _, _) in enumerate(columns)]
    widths = [min(width, cap) if cap else width for width, (_, _, cap) in zip(widths, columns)]
    series = [header for header, _, _ in columns].index("series")
    spare = console.width - (sum(widths) + 2 * (len(widths) - 1))
    if spare < 0:  # the series column gives way first, down to its header's width
        widths[series] = max(cell_len("series"), widths[series] + spare)

    def line(cells: list[tuple[str, str]], header: bool = False) -> Text:
        text = Text()
        for k, ((value, style), width, (_, right, _)) in enumerate(zip(cells, widths, columns)):
            if cell_len(value) > width:
                value = set_cell_size(value, width - 1) + "…"
            padding = " " * (width - cell_len(value))
            text.append(padding if right else "")
            text.append(value, "bold" if header else style)
            text.append("" if right else padding)
            text.append("  " if k < len(cells) - 1 else "")
        return text

    lines = [Text(_title(threshold), "italic"), line([(header, "") for header, _, _ in columns], header=True)]
    lines += [line(cells) for cells in rows]
    console.print(Text("\n").join(lines), no_wrap=True, crop=False)
    caption = _caption(results)
    if caption is not None:
        console.print(Text(caption, "dim"))
