"""The validated domain: is a series one the model was trained and tested to judge?

A score is only a verdict inside the domain the model was validated on. Each
series is checked against it from two sides:

* **header facts**: kernel class, slice thickness, reconstructed field of
  view, body region, and phantom/QA words in the patient, study, series or
  protocol text;
* **image statistics** of the model input itself (`image_stats`, computed on
  the windowed 512x512 slice every backend receives, so training and runtime
  measure the same thing): how much of the field of view the body fills, how
  much of the body is fat and soft tissue, and how much structure that
  tissue has (a uniform water phantom has almost none; an air-filled skull
  phantom has no soft tissue at all).

The limits travel inside the model file (`Domain`, in the card under
"domain"), measured on the training slices. A series outside them is reported
as "outside the validated domain" with the reasons, and never raises a rescan
alert on an uncalibrated score.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from tfkt_edge.dicom import SliceRef
from tfkt_edge.model.preprocess import LDCTIQAC, PreprocessContract
from tfkt_edge.verdict import noise
from tfkt_edge.verdict.streaks import streak_index

# Stats are taken on an 8x mean-pooled copy of the 512x512 input (64x64): enough for the body outline and
# the tissue share, and it averages away noise that a 4x pool left strong enough to push soft tissue out of
# the tissue window (a 2%-dose copy of a sharp-kernel head slice, 546 HU of noise, read as "not patient
# anatomy" at 4x). Model files whose limits were measured at 4x (up to 0.3.1) record no pool and keep 4.
POOL = 8
LEGACY_POOL = 4
BODY_HU = -500.0
TISSUE_HU = (-200.0, 300.0)
TRUNCATED_EDGE = 0.1  # share of the image border inside the body above which the outline is cut off

# Kernel classes by vendor naming (FIELD: GE STANDARD/SOFT/DETAIL soft, BONE/BONEPLUS/LUNG sharp; Siemens
# B/Br/I/Qr/H + number, higher is sharper; Philips A/B/C/UB soft, D/E/YA/YB/L sharp; Toshiba/Canon FC01-FC18
# soft body, FC30-FC35 bone, FC50-FC86 lung/sharp).
_GE = {"SOFT": "soft", "STANDARD": "soft", "STND": "soft", "DETAIL": "soft", "CHST": "soft", "BONE": "sharp",
       "BONEPLUS": "sharp", "LUNG": "sharp", "EDGE": "sharp", "HD STANDARD": "soft"}
_PHILIPS = {"A": "soft", "B": "soft", "C": "soft", "UB": "soft", "CB": "soft", "D": "sharp", "E": "sharp",
            "YA": "sharp", "YB": "sharp", "YC": "sharp", "L": "sharp", "EC": "sharp"}

# Every region scanned routinely is judged (head, neck, chest, abdomen, pelvis, spine, heart); extremities
# too when the header names a kernel of a known class. Words of BodyPartExamined, matched whole.
NOT_VALIDATED_REGIONS = ("BREAST", "TOOTH", "TEETH", "DENTAL", "JAW")
EXTREMITIES = ("HAND", "WRIST", "FOREARM", "ELBOW", "ARM", "UPPERARM", "SHOULDER", "HIP", "THIGH", "KNEE", "LEG",
               "LOWERLEG", "ANKLE", "FOOT", "FEET", "EXTREMITY", "UPPEREXTREMITY", "LOWEREXTREMITY", "FINGER", "TOE")
# Routine slice widths: a series is judged slice by slice against these (a sequential head with 4 and 7 mm).
ROUTINE_THICKNESS_MM = (0.5, 10.0)


def words(text: str) -> set[str]:
    """The whole words of a header value (letters and digits; '^', '_', spaces and the rest separate)."""
    return set(re.findall(r"[A-Z0-9]+", text.upper()))


def kernel_class(kernel: str) -> str:
    """'soft', 'sharp' or 'unknown' for a ConvolutionKernel value (any vendor)."""
    name = kernel.split("\\")[0].strip().upper()
    if not name:
        return "unknown"
    if name in _GE:
        return _GE[name]
    if name in _PHILIPS:
        return _PHILIPS[name]
    if name.startswith("FC") and name[2:4].isdigit():
        return "soft" if int(name[2:4]) < 30 else "sharp"
    digits = "".join(ch for ch in name if ch.isdigit())
    if name[0] in "BIQHDJ" and digits:  # Siemens B30f, Br38f, I40f, Qr40, H30s, Bv, Hr...
        return "soft" if int(digits[:2]) < 50 else "sharp"
    return "unknown"


@dataclass(frozen=True)
class ImageStats:
    """Per-slice statistics of the model input (see the module docstring)."""

    body_fraction: float  # of the field of view, inside the body outline
    tissue_fraction: float  # of the body outline, fat and soft tissue (-200..300 HU)
    structure_hu: float  # SD of the tissue on the pooled image: anatomy, not noise
    noise_hu: float | None = None  # tfkt_edge.verdict.noise.measure: soft-tissue noise, HU (None: too little tissue)
    noise_texture: float | None = None  # its texture ratio (low: sharp-kernel noise)
    water_diameter_px: float | None = None  # AAPM TG-220 water-equivalent diameter, in model-input pixels
    streak_index: float | None = None  # tfkt_edge.verdict.streaks: sparse-view spokes (about 5-10 routine)
    nps_mean_frequency: float | None = None  # noise.nps_mean_frequency: cycles per model-input pixel (reported)

    def to_dict(self) -> dict[str, float | None]:
        return {k: None if v is None else round(float(v), 4) for k, v in asdict(self).items()}


def _filled(mask: np.ndarray) -> np.ndarray:
    """The outline of a mask filled row-wise and column-wise (closes lungs, skull, bowel gas)."""
    def along(m: np.ndarray) -> np.ndarray:
        idx = np.arange(m.shape[1])
        first = np.where(m.any(axis=1), np.argmax(m, axis=1), m.shape[1])
        last = np.where(m.any(axis=1), m.shape[1] - 1 - np.argmax(m[:, ::-1], axis=1), -1)
        inside: np.ndarray = (idx[None, :] >= first[:, None]) & (idx[None, :] <= last[:, None])
        return inside

    filled: np.ndarray = along(mask) & along(mask.T).T
    return filled


def image_stats(image: np.ndarray, contract: PreprocessContract = LDCTIQAC, pool: int = POOL,
                texture: bool = True) -> ImageStats:
    """Statistics of one preprocessed slice (values in [0, 1], contract.size squared), the tissue ones on a
    ``pool``x mean-pooled copy (the model's `Domain.pool`: its limits were measured that way). Without
    ``texture`` the two figures that are reported only, as series medians (streak index, NPS mean frequency:
    two thirds of the cost), are left out (`pipeline.decode.TextureSampler` takes them on some slices)."""
    pooled = noise.block_sums(image, pool) / (pool * pool)
    hu = contract.hu_min + pooled * (contract.hu_max - contract.hu_min)
    body = _filled(hu > BODY_HU)
    if not body.any():
        return ImageStats(0.0, 0.0, 0.0)
    inside = hu[body]
    tissue = inside[(inside > TISSUE_HU[0]) & (inside < TISSUE_HU[1])]
    # TG-220: Dw = 2 sqrt((mean HU / 1000 + 1) A / pi) over the patient's outline (the window clips bone at its
    # top). An outline cut by the field of view (a targeted reconstruction) would read small: no figure.
    area = float(body.sum()) * pool * pool
    edge = np.concatenate([body[0], body[-1], body[:, 0], body[:, -1]])
    water = 2.0 * float(np.sqrt(max(float(inside.mean()) / 1000.0 + 1.0, 0.0) * area / np.pi)) \
        if edge.mean() <= TRUNCATED_EDGE else None
    return ImageStats(float(body.mean()), float(tissue.size / inside.size), float(tissue.std()) if tissue.size > 8 else 0.0,
                      *noise.measure(image, contract), water, streak_index(image) if texture else None,
                      noise.nps_mean_frequency(image, contract) if texture else None)


@dataclass(frozen=True)
class Domain:
    """The validated domain; limits measured on the training slices, with margins."""

    min_body_fraction: float = 0.03
    min_tissue_fraction: float = 0.15
    min_structure_hu: float = 15.0
    thickness_mm: tuple[float, float] = ROUTINE_THICKNESS_MM
    fov_mm: tuple[float, float] = (150.0, 520.0)
    kernel_classes: tuple[str, ...] = ("soft", "sharp", "unknown")
    validated: str = ""  # what the held-out figures cover, in words
    pool: int = POOL  # the mean-pooling of image_stats the limits were measured with

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Domain:
        known = {f.name for f in fields(cls)}
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
        values.setdefault("pool", LEGACY_POOL)  # a card written before the pool was recorded
        return cls(**values)  # type: ignore[arg-type]  # the card JSON, typed by the fields it fills


# Held to by a model file that records no domain: the header checks, routine widths and lenient image limits.
DEFAULT_DOMAIN = Domain(validated="physics defaults: the model file records no validated domain")


@dataclass(frozen=True)
class DomainStatus:
    inside: bool
    reasons: tuple[str, ...] = ()
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "inside" if self.inside else "outside"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reasons": list(self.reasons), "stats": self.stats}


def check_series(refs: Sequence[SliceRef], stats: Sequence[ImageStats | None], domain: Domain | None) -> DomainStatus:
    """Where a series lies against the model's validated domain.

    Args:
        refs: the series' dicom.SliceRef objects (header facts).
        stats: per-slice ImageStats, None where not measured.
        domain: the model's domain; None (a model file without one) checks nothing.
    """
    summary = {}
    for f in fields(ImageStats):
        value = noise.finite_median(getattr(s, f.name) for s in stats if s is not None)
        if value is not None:
            summary[f.name] = round(value, 4)
    if domain is None or not refs:
        return DomainStatus(True, (), summary)
    reasons = []
    first = refs[0]
    if any(r.phantom_header for r in refs):
        reasons.append("a phantom or QA scan (header)")
    region = first.body_part.upper()
    kernel = kernel_class(first.kernel or "")
    named = words(region)
    if named & set(NOT_VALIDATED_REGIONS):
        reasons.append(f"body region {region} not validated")
    elif named & set(EXTREMITIES) and kernel == "unknown":
        reasons.append(f"an extremity ({region}) with a kernel of no known class ({first.kernel or 'none named'})")
    if kernel not in domain.kernel_classes:
        reasons.append(f"{kernel} kernel {first.kernel} not validated")
    # Judged slice by slice, each against the wider of the card's and the routine range: a median of 4 and
    # 7 mm slices is no slice's width.
    low, high = min(domain.thickness_mm[0], ROUTINE_THICKNESS_MM[0]), max(domain.thickness_mm[1], ROUTINE_THICKNESS_MM[1])
    widths = [r.thickness for r in refs if r.thickness is not None and noise.usable_thickness(r.thickness)]
    outside = [t for t in widths if not low - 1e-6 <= t <= high + 1e-6]
    if widths and 2 * len(outside) > len(widths):
        reasons.append(f"{len(outside)} of {len(widths)} slices {min(outside):g}-{max(outside):g} mm thick, "
                       f"outside {low:g}-{high:g} mm")
    fov = noise.finite_median((r.pixel_spacing or np.nan) * max(r.rows, r.columns) for r in refs)
    low, high = domain.fov_mm
    if fov is not None and not low <= fov <= high:
        reasons.append(f"field of view {fov:.0f} mm outside {low:.0f}-{high:.0f} mm")
    if "body_fraction" in summary:
        if summary["body_fraction"] < domain.min_body_fraction:
            reasons.append(f"body fills {100 * summary['body_fraction']:.0f}% of the image (validated from "
                           f"{100 * domain.min_body_fraction:.0f}%)")
        elif summary["tissue_fraction"] < domain.min_tissue_fraction:
            reasons.append(f"{100 * summary['tissue_fraction']:.0f}% of the body is soft tissue (validated from "
                           f"{100 * domain.min_tissue_fraction:.0f}%): not patient anatomy")
        elif summary["structure_hu"] < domain.min_structure_hu:
            reasons.append(f"uniform content (tissue SD {summary['structure_hu']:.0f} HU, validated from "
                           f"{domain.min_structure_hu:.0f} HU): a phantom, not patient anatomy")
    return DomainStatus(not reasons, tuple(reasons), summary)
