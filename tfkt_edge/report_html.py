"""The per-series visual report: one self-contained HTML file a scanner console can open offline.

Per series: the verdict and its reason, the quality profile (score against
slice position in anatomical order, the threshold line, slices below it
marked and runs long enough to alert shaded), and thumbnails of the worst
slices at a soft-tissue window. Every image is embedded as a data URI, so the
file needs nothing else: no network, no folder beside it. Each profile can
also be written as a PNG of its own for embedding elsewhere.
"""

from __future__ import annotations

import base64
import html
import io
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from tfkt_edge.dicom import load_hu
from tfkt_edge.policy import STATUS_TEXT, AlertPolicy, alerting_runs
from tfkt_edge.report import series_name
from tfkt_edge.scoring import ScoringRun, SeriesResult

WINDOW = (40.0, 400.0)  # level, width (HU): soft tissue, where low-dose noise shows
THUMBNAILS = 4
THUMB_SIZE = 192


def profile_png(result: SeriesResult, policy: AlertPolicy) -> bytes:
    """Score against slice position (mm along the patient axis when every slice has one, else slice number)."""
    from tfkt_edge.evaluation.plots import _pyplot

    plt = _pyplot()
    scores = result.scores
    positions = [s.ref.position for s in result.slices]
    by_position = all(p is not None for p in positions) and len(set(positions)) == len(positions)
    x = np.array(positions, dtype=float) if by_position else np.arange(1, len(scores) + 1)
    fig, ax = plt.subplots(figsize=(8, 2.8), dpi=100)
    for start, stop in alerting_runs(scores, policy):
        ax.axvspan(x[start] - 0.5 if not by_position else x[start], x[stop - 1] + (0.5 if not by_position else 0),
                   color="tab:red", alpha=0.15, lw=0)
    ax.plot(x, scores, color="tab:blue", lw=1.2, marker="o" if len(scores) <= 60 else None, ms=3)
    low = scores < policy.threshold
    ax.scatter(x[low], scores[low], color="tab:red", s=18, zorder=3, label="below threshold")
    ax.axhline(policy.threshold, color="tab:red", ls="--", lw=1, label=f"threshold {policy.threshold:.2f}")
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


def _series_html(number: int, result: SeriesResult, profile: bytes) -> str:
    series, verdict = result.series, result.verdict
    e = html.escape
    worst = np.argsort(result.scores, kind="stable")[:THUMBNAILS]
    thumbs = []
    for i in worst:
        s = result.slices[int(i)]
        try:
            img = f'<img alt="{e(s.label)}" src="{_data_uri(thumbnail_png(result, int(i)))}">'
        except Exception:  # the file changed or vanished since scoring: say so instead of failing the report
            img = '<div class="missing">image unavailable</div>'
        thumbs.append(f'<figure>{img}<figcaption>{e(s.label)}: <b>{s.score:.2f}</b></figcaption></figure>')
    state = verdict.status
    first = series.slices[0]
    return f"""
<section class="series {state}">
  <h2>#{number} {e(series_name(series.description, series.series_instance_uid))}</h2>
  <p class="verdict {state}">{STATUS_TEXT[verdict.status].upper()}: {e(verdict.reason)}</p>
  <p class="meta">{len(result.slices)} slices; median {float(np.median(result.scores)):.2f}, lowest {float(result.scores.min()):.2f};
     kernel {e(series.kernel or "-")}; series {e(series.series_instance_uid)}</p>
  <p class="meta">patient {e(first.patient_name or "-")} ({e(first.patient_id or "-")}); accession {e(first.accession_number or "-")};
     study {e(first.study_date or "-")} {e(first.study_instance_uid or "-")}; station {e(first.station or "-")}</p>
  <img class="profile" alt="quality profile of series {number}" src="{_data_uri(profile)}">
  <h3>Worst slices (window L{WINDOW[0]:g} W{WINDOW[1]:g})</h3>
  <div class="thumbs">{"".join(thumbs)}</div>
</section>"""


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
table { border-collapse: collapse; font-size: 13px; } td { padding: 2px 8px; border-bottom: 1px solid #eee; }
"""


def render(run: ScoringRun, policy: AlertPolicy, title: str = "tfkt-edge CT image quality report",
           profiles: list[bytes] | None = None) -> str:
    """The report page; ``profiles`` are the series' profile PNGs when the caller has made them already."""
    e = html.escape
    if profiles is None:
        profiles = [profile_png(r, policy) for r in run.results]
    model = run.model
    alerts = sum(r.verdict.alert for r in run.results)
    sections = "".join(_series_html(i, r, png) for i, (r, png) in enumerate(zip(run.results, profiles), 1))
    skipped = "".join(f"<tr><td>{e(str(s.path))}</td><td>{e(s.reason)}</td></tr>" for s in run.skipped[:200])
    more = f"<p>... and {len(run.skipped) - 200} more.</p>" if len(run.skipped) > 200 else ""
    skipped_html = f"<h2>Skipped ({len(run.skipped)})</h2><table>{skipped}</table>{more}" if run.skipped else ""
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{e(title)}</h1>
<p><b>{len(run.results)} series, {alerts} rescan alert(s).</b> Scores 0-4, higher is better; a series alerts when its
median, or {policy.min_run} consecutive slices, fall below {policy.threshold:.2f}.</p>
<p class="model">Model {e(model.name)} {e(str(model.card.get("version", "")))}. {e(model.card.get("labels", ""))}</p>
{sections}
{skipped_html}
<footer><p>Generated {generated} by tfkt-edge. Advisory for the technologist; not a diagnosis.</p></footer>
</body></html>
"""


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
