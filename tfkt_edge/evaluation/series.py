"""Series-level evaluation: false alerts on diagnostic series, misses on low-dose copies, per source.

The input is a folder with a `series.csv` (written by `python -m
tfkt_edge.train.ladders`, or by hand for a site's own marked series):

    path,source,ladder,dose,label,expected
    /data/ct/exam1,hospitalA,exam1,1.0,4.0,pass
    /scratch/ladders/exam1/dose010,hospitalA,exam1,0.1,1.51,alert

`path` is a folder, a file, or files joined by ";" (relative paths are taken
from the csv's folder); `expected` is pass, alert, or either (scored, not
counted). Per source it reports the false-alert rate (diagnostic series that
alert), the miss rate (series that should alert and do not), the series found
outside the validated domain, and beside them the per-slice correlations with
the labels and the within-slice dose-ladder SROCC (each slice's copies ranked
by dose against their scores).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfkt_edge.backends.base import Backend
from tfkt_edge.errors import InputError
from tfkt_edge.evaluation.metrics import correlation_report, srocc
from tfkt_edge.pipeline.run import score_paths
from tfkt_edge.verdict.policy import OUTSIDE, AlertPolicy, overall_status

INDEX = "series.csv"
EXPECTED = ("pass", "alert", "either")


@dataclass
class SeriesOutcome:
    source: str
    ladder: str
    dose: float
    label: float
    expected: str
    status: str  # pass, alert, outside-domain, or nothing-scorable
    median: float | None
    slice_scores: list[float] = field(default_factory=list)
    score_alert: bool = False  # the scores alone would alert (the noise check off)
    slice_noise: list[float] = field(default_factory=list)  # the global noise index per slice (NaN: not measured)


def read_index(folder: Path) -> list[dict]:
    """The rows of ``folder/series.csv``, checked; raise InputError naming the problem."""
    index = folder / INDEX if folder.is_dir() else folder
    if not index.is_file():
        raise InputError(f"{index}: no {INDEX} (columns path,source,ladder,dose,label,expected)")
    with open(index, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise InputError(f"{index}: no series listed")
    for n, row in enumerate(rows, 2):
        if row.get("expected") not in EXPECTED or not row.get("path"):
            raise InputError(f"{index} line {n}: need a path and expected in {EXPECTED}")
        try:
            row["dose"], row["label"] = float(row.get("dose") or "nan"), float(row.get("label") or "nan")
        except ValueError:
            raise InputError(f"{index} line {n}: dose and label must be numbers") from None
        row["paths"] = [p if Path(p).is_absolute() else index.parent / p for p in map(Path, row["path"].split(";"))]
    return rows


def evaluate_series(folder: Path, backend: Backend, policy: AlertPolicy = AlertPolicy(), batch_size: int | None = None,
                    workers: int = 2, on_series: Callable[[], None] | None = None) -> list[SeriesOutcome]:
    """Score every listed series and record its verdict beside what was expected."""
    outcomes = []
    for row in read_index(folder):
        run = score_paths(row["paths"], backend, policy, batch_size, workers)
        results = run.results
        scores = [s.score for r in results for s in r.slices]
        noise = [np.nan if s.stats is None or s.stats.noise_hu is None else s.stats.noise_hu
                 for r in results for s in r.slices]
        status = overall_status(r.verdict for r in results) if results else "nothing-scorable"
        by_score = any(r.verdict.fired("scores") or r.verdict.fired("incomplete") for r in results)
        outcomes.append(SeriesOutcome(row["source"], row.get("ladder") or row["path"], row["dose"], row["label"],
                                      row["expected"], status, float(np.median(scores)) if scores else None, scores,
                                      by_score, noise))
        if on_series is not None:
            on_series()
    return outcomes


def _rate(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


def summarise(outcomes: list[SeriesOutcome]) -> dict:
    """Per source and overall: false-alert and miss rates, outside-domain counts, slice correlations."""
    by_source: dict[str, list[SeriesOutcome]] = defaultdict(list)
    for o in outcomes:
        by_source[o.source].append(o)
    table = {name: _figures(rows) for name, rows in sorted(by_source.items())}
    return {"sources": table, "all": _figures(outcomes)}


def _figures(rows: list[SeriesOutcome]) -> dict:
    diagnostic = [o for o in rows if o.expected == "pass"]
    low = [o for o in rows if o.expected == "alert"]
    false_alerts = sum(o.status == "alert" for o in diagnostic)
    misses = sum(o.status != "alert" for o in low)
    # Copies that alert by the noise check only: their scores alone would have missed them.
    by_noise = sum(o.status == "alert" and not o.score_alert for o in low)
    figures: dict[str, object] = {
        "diagnostic_series": len(diagnostic), "false_alerts": false_alerts,
        "false_alert_rate": _rate(false_alerts, len(diagnostic)),
        "low_dose_series": len(low), "misses": misses, "miss_rate": _rate(misses, len(low)),
        "caught_by_noise_check": by_noise,
        "outside_domain": sum(o.status == OUTSIDE for o in rows),
        "undegraded_median_score": _median([s for o in diagnostic for s in o.slice_scores]),
        "undegraded_min_score": round(min((s for o in diagnostic for s in o.slice_scores), default=float("nan")), 4),
    }
    ladders = _ladder_sroccs(rows)
    if ladders:
        figures["ladder_srocc_mean"] = round(float(np.mean(ladders)), 4)
        figures["ladder_srocc_min"] = round(float(np.min(ladders)), 4)
        figures["ladder_slices"] = len(ladders)
    # The global noise index on the same slices (negated: less noise, better), beside the model.
    noise_ladders = _ladder_sroccs(rows, lambda o: [-n for n in o.slice_noise])
    if noise_ladders:
        figures["noise_index_ladder_srocc_mean"] = round(float(np.mean(noise_ladders)), 4)
    for key, values in (("slices", lambda o: o.slice_scores), ("slices_noise_index", lambda o: [-n for n in o.slice_noise])):
        pairs = [(v, o.label) for o in rows if np.isfinite(o.label) for v in values(o) if np.isfinite(v)]
        if len(pairs) > 2 and np.ptp([p[1] for p in pairs]) > 0:
            predicted, labels = np.array(pairs).T
            figures[key] = {k: round(v, 4) if isinstance(v, float) else v
                            for k, v in correlation_report(predicted, labels).items()}
    return figures


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 4) if values else None


def _ladder_sroccs(rows: list[SeriesOutcome], values: Callable[[SeriesOutcome], list[float]] | None = None) -> list[float]:
    """SROCC of score (or ``values``) against dose for each slice of each ladder (slices matched by position in
    the series)."""
    values_of = values or (lambda o: o.slice_scores)
    ladders: dict[str, list[SeriesOutcome]] = defaultdict(list)
    for o in rows:
        if np.isfinite(o.dose):
            ladders[o.ladder].append(o)
    found: list[float] = []
    for members in ladders.values():
        series = [values_of(m) for m in members]
        if len(members) < 3 or len({len(v) for v in series}) != 1:
            continue
        for i in range(len(series[0])):
            column = [v[i] for v in series]
            if all(np.isfinite(column)):
                found.append(srocc([m.dose for m in members], column))
    return [v for v in found if np.isfinite(v)]


def to_document(outcomes: list[SeriesOutcome], model: str) -> dict:
    return {"model": model, "summary": summarise(outcomes),
            "series": [{"source": o.source, "ladder": o.ladder, "dose": o.dose, "label": o.label, "expected": o.expected,
                        "status": o.status, "score_alert": o.score_alert, "median_score": None if o.median is None else round(o.median, 4),
                        "slice_scores": [round(s, 4) for s in o.slice_scores]} for o in outcomes]}


def write_document(doc: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


COLUMNS = (("diagnostic_series", "diagnostic series"), ("false_alerts", "false alerts"),
           ("low_dose_series", "copies at <= 10% dose"), ("misses", "missed"),
           ("caught_by_noise_check", "alert by noise only"), ("outside_domain", "outside domain"),
           ("undegraded_median_score", "undegraded median"), ("undegraded_min_score", "undegraded min"),
           ("ladder_srocc_mean", "ladder SROCC mean"), ("ladder_srocc_min", "ladder SROCC min"),
           ("noise_index_ladder_srocc_mean", "noise index ladder SROCC mean"))


def markdown(summary: dict) -> str:
    """The per-source table of `summarise`, as Markdown."""
    lines = ["| source | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    rows = {**summary["sources"], "**all**": summary["all"]}
    for name, f in rows.items():
        cells = ["-" if f.get(key) is None else (f"{f[key]:.3f}" if isinstance(f[key], float) else str(f[key]))
                 for key, _ in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
