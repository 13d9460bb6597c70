"""The result as a document: JSON and CSV for machines, and the shared pieces every rendering uses (a series'
name, its physics in one line, the status colours)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from tfkt_edge.dicom import Skip
from tfkt_edge.model.model_file import ModelInfo
from tfkt_edge.verdict.policy import ALERT, OUTSIDE, PASS
from tfkt_edge.verdict.record import RunRecord
from tfkt_edge.verdict.result import SeriesResult

STATUS_STYLE = {PASS: "green", ALERT: "bold red", OUTSIDE: "yellow"}


def series_name(description: str, series_instance_uid: str) -> str:
    """The description, or for a series without one the end of its UID, so two such series differ."""
    return description or f"(no description) ...{series_instance_uid[-12:]}"

CSV_FIELDS = ["series_instance_uid", "description", "path", "sop_instance_uid", "instance_number", "frame",
              "score", "learned_score", "noise_bound", "series_alert", "series_status", "skip_reason"]


def document(model: ModelInfo, results: Sequence[SeriesResult], skipped: Sequence[Skip], threshold: float) -> dict:
    """The JSON document of a scoring run: the stored record (`verdict.record.RunRecord`) as a dict."""
    return RunRecord.of(model, list(results), list(skipped), threshold).to_dict()


def to_json(doc: dict) -> str:
    return json.dumps(doc, indent=2) + "\n"


def to_csv(results: Sequence[SeriesResult], skipped: Sequence[Skip]) -> str:
    """One row per scored slice, then one per skipped file (with its reason)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for result in results:
        for s in result.slices:
            writer.writerow({"series_instance_uid": result.series.series_instance_uid, "description": result.series.description,
                             "path": str(s.ref.path), "sop_instance_uid": s.ref.sop_instance_uid,
                             "instance_number": s.ref.instance_number, "frame": s.ref.frame, "score": f"{s.score:.4f}",
                             "learned_score": f"{s.learned:.4f}", "noise_bound": "" if s.bound is None else f"{s.bound:.4f}",
                             "series_alert": int(result.verdict.alert), "series_status": result.verdict.status,
                             "skip_reason": ""})
    for skip in skipped:
        writer.writerow({"path": str(skip.path), "skip_reason": skip.reason})
    return out.getvalue()


def physics_line(noise: dict | None, physics: dict | None) -> str:
    """A series' physics in one line, from its document's "noise" and "physics" (documents stored by 0.3.x lack
    some keys): noise against its ceiling, size, dose, streaks. The HTML report and the SR both show it."""
    noise, physics = noise or {}, physics or {}
    parts = []
    if noise.get("noise_hu") is not None and noise.get("ceiling_hu") is not None:
        at = f" at {noise['at_mm']:g} mm" if noise.get("at_mm") else ""
        of = ", ".join([f"{noise['kernel_class']} kernels"] * bool(noise.get("kernel_class"))
                       + [str(noise["ceiling_of"])] * bool(noise.get("ceiling_of")))
        parts.append(f"noise {noise['noise_hu']:.1f} HU{at} (ceiling {noise['ceiling_hu']:.1f} HU{f', {of}' if of else ''})")
    for key, text in (("water_diameter_cm", "water-equivalent diameter {:.1f} cm"), ("ctdi_vol_mgy", "CTDIvol {:.1f} mGy"),
                      ("ssde_mgy", "SSDE {:.1f} mGy"), ("streak_index", "streak index {:.1f}"),
                      ("nps_mean_per_mm", "noise texture: NPS mean frequency {:.2f}/mm")):
        if physics.get(key) is not None:
            parts.append(text.format(physics[key]))
    return "; ".join(parts) or "not measured"



