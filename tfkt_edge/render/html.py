"""The per-series visual report: one self-contained HTML file a scanner console can open offline.

Per series: the verdict and its reason, the quality profile (score against
slice position in anatomical order, the threshold line, slices below it
marked and runs long enough to alert shaded), and thumbnails of the worst
slices at a soft-tissue window. Every image is embedded as a data URI, so the
file needs nothing else: no network, no folder beside it. Each profile can
also be written as a PNG of its own for embedding elsewhere. The page is the
jinja2 template `tfkt_edge/templates/report.html`, autoescaped.
"""

from __future__ import annotations

import base64
import io
import re
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np

from tfkt_edge.dicom import load_hu
from tfkt_edge.pipeline.run import ScoringRun
from tfkt_edge.render.document import physics_line, series_name
from tfkt_edge.render.shown import visible
from tfkt_edge.verdict.policy import STATUS_TEXT, AlertPolicy, alerting_runs
from tfkt_edge.verdict.record import Study
from tfkt_edge.verdict.result import SeriesResult

WINDOW = (40.0, 400.0)  # level, width (HU): soft tissue, where low-dose noise shows
THUMBNAILS = 4
THUMB_SIZE = 192


MAX_POSITION_MM = 1e5


def profile_png(result: SeriesResult, policy: AlertPolicy) -> bytes:
    """Score against slice position (mm along the patient axis when every slice has one, else slice number)."""
    from tfkt_edge.render.plots import _pyplot

    plt = _pyplot()
    scores = result.scores
    positions = [s.ref.position for s in result.slices]
    # Positions a plot can use: present, distinct, and within a scanner's reach (a header can claim 1e308 mm).
    by_position = all(p is not None and abs(p) < MAX_POSITION_MM for p in positions) and len(set(positions)) == len(positions)
    x = np.array(positions, dtype=float) if by_position else np.arange(1, len(scores) + 1)
    fig, ax = plt.subplots(figsize=(8, 2.8), dpi=100)
    # Outside the validated domain the learned score is not acted on: drawn in grey, without the alert marks.
    judged = result.domain.inside
    warn = "tab:red" if judged else "tab:gray"
    if judged:
        for start, stop in alerting_runs(scores, policy):
            ax.axvspan(x[start] - 0.5 if not by_position else x[start], x[stop - 1] + (0.5 if not by_position else 0),
                       color="tab:red", alpha=0.15, lw=0)
    ax.plot(x, scores, color="tab:blue" if judged else "tab:gray", lw=1.2, marker="o" if len(scores) <= 60 else None, ms=3)
    low = scores < policy.threshold
    ax.scatter(x[low], scores[low], color=warn, s=18, zorder=3,
               label="below threshold" if judged else "below threshold (not judged: outside the validated domain)")
    ax.axhline(policy.threshold, color=warn, ls="--", lw=1, label=f"threshold {policy.threshold:.2f}")
    ax.set_ylim(0, 4.05)
    ax.set_ylabel("quality (0-4)")
    ax.set_xlabel("position along the patient axis (mm)" if by_position else "slice (anatomical order)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def thumbnail_png(result: SeriesResult, index: int) -> bytes:
    """One slice at the soft-tissue window, scaled to THUMB_SIZE pixels wide."""
    from PIL import Image

    level, width = WINDOW
    hu = load_hu(result.slices[index].ref)
    grey = np.clip((hu - (level - width / 2)) / width, 0, 1) * 255
    image = Image.fromarray(grey.astype(np.uint8))
    image.thumbnail((THUMB_SIZE, THUMB_SIZE))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _section(result: SeriesResult, profile: bytes) -> dict:
    """What the template shows of one series; text is escaped by the template, never here."""
    series, verdict = result.series, result.verdict
    thumbs = []
    for i in np.argsort(result.scores, kind="stable")[:THUMBNAILS]:
        s = result.slices[int(i)]
        try:
            src = _data_uri(thumbnail_png(result, int(i)))
        except Exception:  # the file changed or vanished since scoring: say so instead of failing the report
            src = None
        thumbs.append({"label": s.label, "score": s.score, "src": src})
    study = Study.of(series.slices[0])
    return {"state": verdict.status, "name": series_name(series.description, series.series_instance_uid),
            "status_text": STATUS_TEXT[verdict.status].upper(), "reason": verdict.reason, "n_slices": len(result.slices),
            "median": float(np.median(result.scores)) if result.scores.size else float("nan"),
            "lowest": float(result.scores.min()) if result.scores.size else float("nan"), "kernel": series.kernel,
            "series_uid": series.series_instance_uid, "patient_name": study.patient_name, "patient_id": study.patient_id,
            "accession": study.accession_number, "study_date": study.study_date, "study_uid": study.study_instance_uid,
            "station": study.station, "profile": _data_uri(profile), "thumbs": thumbs,
            "physics": physics_line(result.noise.to_dict() if result.noise else None,
                                    result.physics.to_dict() if result.physics else None)}


STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #111; background: #fff; max-width: 1000px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-bottom: 4px; } h3 { font-size: 14px; color: #444; }
.series { border: 1px solid #ccc; border-left: 10px solid #2e7d32; padding: 8px 16px; margin: 16px 0; }
.series.alert { border-left-color: #c62828; }
.series.outside-domain { border-left-color: #f9a825; }
.verdict.outside-domain { background: #8d6e00; }
.verdict { font-size: 17px; font-weight: bold; padding: 6px 10px; display: inline-block; color: #fff; background: #2e7d32; }
.verdict.alert { background: #c62828; }
.meta, .model, footer { color: #444; font-size: 13px; }
.profile { width: 100%; max-width: 800px; display: block; }
.thumbs { display: flex; gap: 12px; flex-wrap: wrap; }
figure { margin: 0; text-align: center; font-size: 12px; } figure img { background: #000; display: block; }
.missing { width: 192px; height: 192px; background: #eee; line-height: 192px; }
table { border-collapse: collapse; font-size: 13px; } td, th { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: left; }
td.alert { color: #c62828; font-weight: bold; } td.outside-domain { color: #8d6e00; font-weight: bold; } td.pass { color: #2e7d32; }
.summary td.reason { max-width: 420px; }
"""


def render(run: ScoringRun, policy: AlertPolicy, title: str = "tfkt-edge CT image quality report",
           profiles: list[bytes] | None = None) -> str:
    """The report page (jinja2, autoescaped); ``profiles`` are the series' profile PNGs when made already."""
    if profiles is None:
        profiles = [profile_png(r, policy) for r in run.results]
    sections = [_section(r, png) for r, png in zip(run.results, profiles)]
    for number, section in enumerate(sections, 1):
        section["number"] = number
    order = {"alert": 0, "outside-domain": 1}
    return _template().render(
        title=title, style=STYLE, results=run.results, alerts=sum(r.verdict.alert for r in run.results), policy=policy,
        model=run.model, window=WINDOW, sections=sections,
        summary=sorted(sections, key=lambda s: (order.get(s["state"], 2), s["number"])),
        skipped=[{"path": str(k.path), "reason": k.reason} for k in run.skipped],
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


@lru_cache(maxsize=1)
def _template():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    environment = Environment(loader=PackageLoader("tfkt_edge.render", "templates"), autoescape=select_autoescape(["html"]),
                              finalize=lambda value: visible(value, "\n\t") if isinstance(value, str) else value,
                              undefined=StrictUndefined)
    return environment.get_template("report.html")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80] or "series"


def write_report(run: ScoringRun, policy: AlertPolicy, output: Path, profiles: Path | None = None) -> list[Path]:
    """Write the HTML report (atomically) and, with ``profiles``, one profile PNG per series; return the paths."""
    pngs = [profile_png(r, policy) for r in run.results]
    partial = output.with_name(f".{output.name}.partial")
    partial.write_text(render(run, policy, profiles=pngs), encoding="utf-8")
    partial.replace(output)
    written = [output]
    if profiles is not None:
        profiles.mkdir(parents=True, exist_ok=True)
        for i, (result, png) in enumerate(zip(run.results, pngs), 1):
            path = profiles / f"{i:02d}_{_slug(result.series.series_instance_uid)}.png"
            path.write_bytes(png)
            written.append(path)
    return written
