"""`tfkt-edge calibrate`: per-protocol baselines from series a site has accepted."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from tfkt_edge.cli.console import StdoutConsole, require_writable
from tfkt_edge.cli.options import BackendOpt, ModelOpt, RunBatchOpt, WorkersOpt
from tfkt_edge.cli.scoring_options import ScoringOptions
from tfkt_edge.errors import InputError, TfktEdgeError
from tfkt_edge.verdict.baselines import MIN_SERIES, Protocol, learn, save
from tfkt_edge.verdict.record import RunRecord


def _from_folders(paths: list[Path], model, backend: str, batch_size: int | None, workers: int, console: Console):
    from tfkt_edge.cli.running import run_scoring
    from tfkt_edge.verdict.policy import PASS, AlertPolicy

    run = run_scoring(paths, ScoringOptions(model, backend, batch_size=batch_size, workers=workers), AlertPolicy(), console,
                      texture=False)  # a baseline learns scores and noise only
    # Only series that pass teach a protocol's normal range: one that alerted (or was not judged) would
    # widen it towards what should alert.
    pairs = [(Protocol.of(r.series), float(np.median(r.scores)), r.noise.noise_hu if r.noise is not None else None)
             for r in run.results if r.verdict.status == PASS]
    return pairs, run.model.identity, len(run.results) - len(pairs)


def _from_database(db: Path):
    from tfkt_edge.service.database import Database
    from tfkt_edge.verdict.policy import PASS

    if not db.is_file():
        raise TfktEdgeError(f"no results database at {db}")
    database = Database(db)
    try:
        events = database.events()
    finally:
        database.close()
    pairs, left_out = [], 0
    for event in events:
        for series in RunRecord.from_dict(event).series:
            if not series.protocol or series.median_score is None or series.status != PASS:
                left_out += 1
                continue
            noise = (series.noise or {}).get("noise_hu")
            pairs.append((Protocol(**series.protocol), float(series.median_score), None if noise is None else float(noise)))
    return pairs, left_out


def calibrate(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Folders of series the site has accepted as diagnostic.", show_default=False)] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The baseline file to write (JSON).")] = Path("baselines.json"),
    db: Annotated[Optional[Path], typer.Option("--db", help="Also learn from every series judged by serve/watch in this results database.")] = None,
    min_series: Annotated[int, typer.Option("--min-series", min=1, help="Accepted series a protocol needs before it gets a baseline.")] = MIN_SERIES,
    model: ModelOpt = None,
    backend: BackendOpt = "onnxruntime",
    batch_size: RunBatchOpt = None,
    workers: WorkersOpt = 2,
) -> None:
    """Learn each protocol's normal score range and noise (station, series description, kernel, slice thickness)
    from series the site accepted, into a small JSON file that score, report, watch and serve take as --baselines.

    Example: tfkt-edge calibrate /archive/accepted --db tfkt-results.sqlite -o baselines.json
    """
    if not paths and db is None:
        raise InputError("give folders of accepted series, --db results.sqlite, or both")
    require_writable(output)
    err, console = Console(stderr=True), StdoutConsole()
    pairs, left_out = [], 0
    if paths:
        pairs, identity, left_out = _from_folders(paths, model, backend, batch_size, workers, err)
    else:  # scores come from the database: the model is opened only to name it
        from tfkt_edge.backends import create_backend

        with closing(create_backend(backend, model)) as engine:
            identity = engine.model.identity
    if db is not None:
        found, skipped = _from_database(db)
        pairs, left_out = pairs + found, left_out + skipped
    if not pairs and not left_out:
        where = ", ".join(str(p) for p in paths or []) or str(db)
        raise TfktEdgeError(f"no CT series found in {where}: nothing to learn from, {output} not written")
    baselines = learn(pairs, identity, min_series)
    save(baselines, output)
    table = Table(title=f"baselines for {identity}: {len(baselines.entries)} protocol(s) from {len(pairs)} series")
    for column in ("station / description / kernel / thickness", "series", "median", "MAD", "alert below",
                   "noise HU", "noise ceiling"):
        table.add_column(column, justify="left" if column.startswith("station") else "right")
    for b in baselines.entries:
        table.add_row(b.protocol.text(), str(b.n_series), f"{b.median:.2f}", f"{b.mad:.2f}", f"{b.low:.2f}",
                      "-" if b.noise_hu is None else f"{b.noise_hu:.1f}",
                      "-" if b.noise_ceiling_hu is None else f"{b.noise_ceiling_hu:.1f}")
    console.print(table)
    protocols = len({pair[0] for pair in pairs})
    if protocols > len(baselines.entries):
        console.print(f"{protocols - len(baselines.entries)} protocol(s) have fewer than {min_series} accepted series "
                      "and keep the fixed threshold", highlight=False)
    if left_out:
        console.print(f"{left_out} series left out (they alerted, lay outside the validated domain, or were recorded "
                      "without protocol facts): a baseline learns only from series that passed",
                      highlight=False)
    console.print(f"wrote {output}", highlight=False)
