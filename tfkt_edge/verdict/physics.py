"""Dose and size beside the learned score: the patient's water-equivalent diameter and the size-specific
dose estimate, as dose-monitoring products show them.

* **Dw** (AAPM TG-220): ``2 sqrt((mean HU / 1000 + 1) A / pi)`` over the patient's outline, measured per
  slice on the model input (`domain.image_stats`, in model-input pixels; the window clips bone at +400 HU
  and the table is not removed, so Dw reads a little low or high by a few per cent), converted to cm with
  the slice's pixel spacing and the pad-and-resize rule, then the series median.
* **SSDE** (AAPM TG-204): ``CTDIvol x f(Dw)``, where the header holds CTDIvol (0018,9345), with TG-204's
  exponential fits of its conversion factors: ``3.704369 exp(-0.03671937 Dw)`` for the 32 cm body phantom,
  ``1.874799 exp(-0.03871313 Dw)`` for the 16 cm head phantom (the phantom a head protocol's CTDIvol uses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfkt_edge.dicom import SliceRef
from tfkt_edge.verdict.noise import finite_median

TG204 = {"body": (3.704369, 0.03671937), "head": (1.874799, 0.03871313)}


def mm_per_input_pixel(ref: SliceRef, size: int) -> float | None:
    """The size of a model-input pixel in mm: the slice is padded to a square of its larger side, then resized."""
    spacing = ref.pixel_spacing
    if spacing is None or not np.isfinite(spacing) or spacing <= 0:
        return None
    return float(spacing) * float(max(ref.rows, ref.columns)) / size


def water_diameter_cm(refs: Sequence[SliceRef], diameters_px: Sequence[float | None], size: int) -> float | None:
    """The series' water-equivalent diameter in cm: the median over axial slices (TG-220 is defined on the
    patient's cross-section; a coronal reformat's outline is not one) whose pixel size is known."""
    values = []
    for ref, px in zip(refs, diameters_px):
        if ref.axial is False:
            continue
        mm = mm_per_input_pixel(ref, size)
        if mm is not None and px is not None and np.isfinite(px) and px > 0:
            values.append(px * mm / 10.0)
    dw = finite_median(values)
    return dw if dw is not None and 5.0 <= dw <= 80.0 else None  # outside: not a patient outline


def ssde_mgy(ctdi_vol: float | None, dw_cm: float | None, region: str) -> float | None:
    """TG-204 size-specific dose estimate, None unless both CTDIvol and Dw are known."""
    if ctdi_vol is None or dw_cm is None:
        return None
    a, b = TG204["head" if region == "head" else "body"]
    return float(ctdi_vol * a * np.exp(-b * dw_cm))


@dataclass(frozen=True)
class SeriesPhysics:
    """What physics says of a series, shown beside the learned score in every output."""

    water_diameter_cm: float | None
    ctdi_vol_mgy: float | None
    ssde_mgy: float | None
    phantom: str  # the TG-204 phantom of the SSDE conversion: "body" (32 cm) or "head" (16 cm)
    streak_index: float | None = None  # the series median of tfkt_edge.verdict.streaks (reported, not an alert)
    nps_mean_per_mm: float | None = None  # noise texture: the NPS mean frequency, cycles/mm (reported)

    def to_dict(self) -> dict[str, Any]:
        def r(v: float | None, n: int = 2) -> float | None:
            return None if v is None else round(float(v), n)
        return {"water_diameter_cm": r(self.water_diameter_cm, 1), "ctdi_vol_mgy": r(self.ctdi_vol_mgy),
                "ssde_mgy": r(self.ssde_mgy), "ssde_phantom_cm": 16 if self.phantom == "head" else 32,
                "streak_index": r(self.streak_index, 1), "nps_mean_per_mm": r(self.nps_mean_per_mm, 3)}


def nps_mean_per_mm(refs: Sequence[SliceRef], frequencies_px: Sequence[float | None], size: int) -> float | None:
    """The series' NPS mean frequency in cycles/mm: the median over slices whose pixel size is known."""
    values = []
    for ref, f in zip(refs, frequencies_px):
        mm = mm_per_input_pixel(ref, size)
        if mm is not None and f is not None and np.isfinite(f):
            values.append(f / mm)
    return finite_median(values)


def series_physics(refs: Sequence[SliceRef], diameters_px: Sequence[float | None], size: int, region: str,
                   streaks: Sequence[float | None] = (), nps_px: Sequence[float | None] = ()) -> SeriesPhysics:
    dw = water_diameter_cm(refs, diameters_px, size)
    ctdi = finite_median(r.ctdi_vol for r in refs)
    return SeriesPhysics(dw, ctdi, ssde_mgy(ctdi, dw, region), "head" if region == "head" else "body",
                         finite_median(streaks), nps_mean_per_mm(refs, nps_px, size) if nps_px else None)
