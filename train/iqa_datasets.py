"""Loaders for the public image-quality datasets, in their exact distributed layouts.

Every loader returns an ImageSet whose labels are the dataset's mean opinion
score rescaled linearly to 0..4 (higher is better), the range of the LDCTIQAC
scale the model is fine-tuned to:

| dataset          | file read                                      | MOS range   | to 0..4       |
|------------------|------------------------------------------------|-------------|---------------|
| KADID-10k        | dmos.csv (dist_img, ref_img, dmos, var)        | DMOS 1..5   | dmos - 1      |
| KonIQ-10k        | koniq10k_scores_and_distributions.csv (MOS)    | 1..5        | MOS - 1       |
| TID2013          | mos_with_names.txt ("MOS filename")            | 0..9        | MOS * 4 / 9   |
| LIVE Challenge   | Data/AllImages_release.mat, AllMOS_release.mat | 0..100      | MOS / 25      |
| SPAQ             | Annotations/MOS and Image attribute scores.xlsx| 0..100      | MOS / 25      |

Images are read as RGB, turned grey and brought to 512x512 by the shared resize
rule (`natural_corpus.to_model_input`). KADID-10k and TID2013 carry their
distortion type in the file name, which task-focused selection uses; the other
three are authentic distortions and have none. A missing file raises
DatasetLayoutError naming it and the expected layout.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from tfkt_edge.errors import InputError
from tfkt_edge.train.distortions import KADID_FAMILIES, TID2013_FAMILIES
from tfkt_edge.train.imagesets import ImageSet
from tfkt_edge.train.natural_corpus import load_rgb, to_model_input


class DatasetLayoutError(InputError):
    """A dataset folder does not have the layout its loader expects."""


LAYOUTS = {
    "kadid10k": "DIR/dmos.csv and DIR/images/I01_01_01.png ...",
    "koniq10k": "DIR/koniq10k_scores_and_distributions.csv and DIR/1024x768/*.jpg (or DIR/512x384/)",
    "tid2013": "DIR/mos_with_names.txt and DIR/distorted_images/i01_01_1.bmp ...",
    "livec": "DIR/Data/AllImages_release.mat, DIR/Data/AllMOS_release.mat and DIR/Images/*.bmp",
    "spaq": "DIR/Annotations/MOS and Image attribute scores.xlsx and DIR/TestImage/*.jpg",
}


def _require(path: Path, dataset: str) -> Path:
    if not path.exists():
        raise DatasetLayoutError(f"{dataset}: missing {path}; expected layout: {LAYOUTS[dataset]}")
    return path


def read_natural(path: Path) -> np.ndarray:
    """Any RGB/grey photograph -> 512x512 grey float32 model input."""
    return to_model_input(load_rgb(path))


def _image_set(dataset: str, rows: list[tuple[Path, float, str, str | None]]) -> ImageSet:
    if not rows:
        raise DatasetLayoutError(f"{dataset}: the score file lists no images; expected layout: {LAYOUTS[dataset]}")
    for path, *_ in rows:
        _require(path, dataset)
    paths, labels, groups, families = zip(*rows)
    return ImageSet.from_files(list(paths), np.clip(labels, 0.0, 4.0), groups, families, read_natural)


def load_kadid10k(root: Path) -> ImageSet:
    with _require(root / "dmos.csv", "kadid10k").open(newline="") as handle:
        records = list(csv.DictReader(handle))
    if records and not {"dist_img", "ref_img", "dmos"} <= set(records[0]):
        raise DatasetLayoutError(f"kadid10k: dmos.csv needs columns dist_img,ref_img,dmos,var; got {list(records[0])}")
    rows = []
    for r in records:
        kind = int(Path(r["dist_img"]).stem.split("_")[1])
        rows.append((root / "images" / r["dist_img"], float(r["dmos"]) - 1.0, r["ref_img"], KADID_FAMILIES[kind]))
    return _image_set("kadid10k", rows)


def load_koniq10k(root: Path) -> ImageSet:
    with _require(root / "koniq10k_scores_and_distributions.csv", "koniq10k").open(newline="") as handle:
        records = list(csv.DictReader(handle))
    folder = next((root / d for d in ("1024x768", "512x384") if (root / d).is_dir()), root / "1024x768")
    rows = [(folder / r["image_name"], float(r["MOS"]) - 1.0, r["image_name"], None) for r in records]
    return _image_set("koniq10k", rows)


def _find_case_insensitive(folder: Path, name: str) -> Path:
    exact = folder / name
    if exact.exists() or not folder.is_dir():
        return exact
    return next((p for p in folder.iterdir() if p.name.lower() == name.lower()), exact)


def load_tid2013(root: Path) -> ImageSet:
    text = _require(root / "mos_with_names.txt", "tid2013").read_text()
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        mos, name = line.split()
        match = re.match(r"[iI](\d+)_(\d+)_(\d+)", name)
        if match is None:
            raise DatasetLayoutError(f"tid2013: unexpected file name {name!r} in mos_with_names.txt")
        ref, kind = int(match.group(1)), int(match.group(2))
        path = _find_case_insensitive(root / "distorted_images", name)
        rows.append((path, float(mos) * 4.0 / 9.0, f"I{ref:02d}", TID2013_FAMILIES[kind]))
    return _image_set("tid2013", rows)


def load_livec(root: Path, drop_first: int = 7) -> ImageSet:
    """LIVE In the Wild; the first seven entries (training images of the original study) are dropped."""
    from scipy.io import loadmat

    names = loadmat(_require(root / "Data" / "AllImages_release.mat", "livec"))["AllImages_release"]
    mos = loadmat(_require(root / "Data" / "AllMOS_release.mat", "livec"))["AllMOS_release"]
    names = [str(np.asarray(n).ravel()[0]) for n in np.asarray(names).ravel()]
    scores = np.asarray(mos, dtype=float).ravel()
    rows = [(root / "Images" / n, s / 25.0, n, None) for n, s in zip(names[drop_first:], scores[drop_first:])]
    return _image_set("livec", rows)


def load_spaq(root: Path) -> ImageSet:
    from openpyxl import load_workbook

    path = _require(root / "Annotations" / "MOS and Image attribute scores.xlsx", "spaq")
    sheet = load_workbook(path, read_only=True).active
    header, *records = list(sheet.iter_rows(values_only=True))
    header = [str(h).strip() if h is not None else "" for h in header]
    if "Image name" not in header or "MOS" not in header:
        raise DatasetLayoutError(f"spaq: the annotation sheet needs 'Image name' and 'MOS' columns; got {header}")
    name_col, mos_col = header.index("Image name"), header.index("MOS")
    rows = [(root / "TestImage" / str(r[name_col]), float(r[mos_col]) / 25.0, str(r[name_col]), None)
            for r in records if r[name_col] is not None]
    return _image_set("spaq", rows)


NATURAL_LOADERS = {"kadid10k": load_kadid10k, "koniq10k": load_koniq10k, "tid2013": load_tid2013,
                   "livec": load_livec, "spaq": load_spaq}
