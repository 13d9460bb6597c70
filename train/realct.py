"""The real multi-vendor CT slices of the shared `realct` folder, read in place, and their split.

The folder (113 images from public repositories, each with its own licence) sits
beside the project checkout as `../shared/realct`, or wherever `TFKT_REALCT`
points. Nothing from it is copied into this repository: the corpus builder
reads the files where they are and keeps only model inputs in `data/`.

The split is by **patient group** (source repository plus patient folder, or
the file itself), so a coronal reformat never sits on the other side of the
split from its axial original; pydicom's `CT_small.dcm`, a crop of the
NEMA CT1 image, is grouped with that image.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from tfkt_edge.train.sources import real_ct_slices

ENV = "TFKT_REALCT"

# Held out whole: an unseen vendor (Siemens, a 20-slice contiguous series), a Toshiba patient
# (soft FC07/FC17 with AIDR 3D), two GE patients (chest; abdomen), a GE lumbar spine, the only
# Toshiba FC52 (sharp, lung-type) body slice, and the Hitachi skull base.
HELDOUT_GROUPS = (
    "totalsegmentator",
    "saltyjoke/A067967",
    "saltyjoke/A048383",
    "saltyjoke/A058062",
    "fo-dicom/GH1308.dcm",
    "pylibjpeg-data/TOSHIBA_J2K_OpenJPEGv2Regression.dcm",
    "pydicom/skull-base",
)


@dataclass(frozen=True)
class RealSlice:
    path: Path
    group: str
    source: str  # the repository folder, or "pydicom" for the slices shipped in packages
    kind: str  # clinical or phantom
    manufacturer: str
    kernel: str
    thickness: float | None
    body_part: str
    plane: str

    @property
    def split(self) -> str:
        return "heldout" if self.group in HELDOUT_GROUPS else "train"


def realct_folder() -> Path | None:
    """``$TFKT_REALCT``, else ``../shared/realct`` beside the checkout; None when absent."""
    candidates = [Path(os.environ[ENV])] if os.environ.get(ENV) else []
    candidates += [Path(__file__).resolve().parents[1].parent / "shared" / "realct", Path.cwd().parent / "shared" / "realct"]
    return next((c for c in candidates if (c / "MANIFEST.csv").is_file()), None)


def _group(file: str) -> str:
    parts = file.split("/")
    if parts[0] == "saltyjoke":
        return "/".join(parts[:2])
    if parts[0] in ("totalsegmentator", "actilib", "rt-utils"):
        return parts[0]
    if file == "fo-dicom/D_CLUNIE_CT1_RLE_FRAGS.dcm":
        return "nema-ct1"
    return file


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def manifest_slices(folder: Path | None = None) -> list[RealSlice]:
    """Every image of the shared folder's MANIFEST.csv (clinical and phantom); [] when the folder is absent."""
    folder = folder or realct_folder()
    if folder is None:
        return []
    with open(folder / "MANIFEST.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [RealSlice(folder / row["file"], _group(row["file"]), row["file"].split("/")[0], row["kind"],
                      row["manufacturer"], row["kernel"], _float(row["slice_thickness"]), row["body_part"], row["plane"])
            for row in rows]


_PACKAGE_FACTS = {  # manufacturer, kernel, thickness, body part of the slices shipped by pydicom/pydicom-data
    "head-693": ("", "", None, "HEAD"),
    "neck-spine": ("", "", None, "NECK"),
    "abdomen-pancreas": ("", "", None, "ABDOMEN"),
    "skull-base": ("Hitachi", "", None, "HEAD"),
    "chest-small": ("GE", "STANDARD", 5.0, "CHEST"),
}


def training_slices(folder: Path | None = None) -> list[RealSlice]:
    """The clinical slices the model trains and is held-out-tested on: realct plus the package slices."""
    slices = [s for s in manifest_slices(folder) if s.kind == "clinical"]
    for name, path in real_ct_slices().items():
        if name == "chest-small":
            continue  # a 128x128 crop of NEMA CT1, which realct holds whole
        manufacturer, kernel, thickness, body = _PACKAGE_FACTS[name]
        slices.append(RealSlice(path, f"pydicom/{name}", "pydicom", "clinical", manufacturer, kernel, thickness, body, "axial"))
    return slices
