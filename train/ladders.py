"""Write dose ladders of real diagnostic series: the input of `tfkt-edge evaluate --series`.

    python -m tfkt_edge.train.ladders --output /tmp/ladders [--split heldout] [--doses 1,0.5,0.25,0.1,0.05,0.02]

For every real clinical series of the chosen split (by default the held-out
patient groups of `realct.HELDOUT_GROUPS`), the original files are listed as
they are (dose 100%, expected to pass) and a simulated copy is written per
lower dose: the same noise-in-its-own-texture simulator as training, as new
DICOM series (new UIDs, "SIMULATED" in the description, DERIVED image type).

A dose is a fraction of a reference dose (`--reference`):

* ``routine`` (the default): of the lower of the original's own dose and the routine dose for its kernel
  class, thickness and patient size (`routine.routine_ratio`). This is how LDCTIQAC's organisers made their
  doses, at one photon count for every patient. A quiet original then reaches 10% dose with the noise a
  routine scan of its size has at 10%, not with three times its own low noise.
* ``own``: of the original's own dose (noise x 1/sqrt(dose)), whatever that dose was.
`series.csv` lists every series with its source, dose, label and expected
verdict. The copies are derived pixel data of the shared images: keep them
out of this repository (write them to a scratch folder).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.model.preprocess import pad_square
from tfkt_edge.train.ctnoise import TexturedSimulator, label_image, reading_window
from tfkt_edge.train.ctsim import FULL_VIEWS
from tfkt_edge.train.realct import training_slices
from tfkt_edge.train.routine import routine_ratio
from tfkt_edge.verdict.domain import kernel_class
from tfkt_edge.verdict.noise import region_of

DOSES = (1.0, 0.5, 0.25, 0.1, 0.05, 0.02)
ALERT_AT_OR_BELOW = 0.1
FIELDS = ["path", "source", "ladder", "dose", "label", "expected", "reference"]
REFERENCES = ("routine", "own")


def expected_verdict(dose: float) -> str:
    """pass for the routine original, alert at 10% dose or less, 'either' in between (not counted)."""
    if dose >= 1.0:
        return "pass"
    return "alert" if dose <= ALERT_AT_OR_BELOW + 1e-9 else "either"


def _write_copy(path: Path, hu: np.ndarray, out: Path, series_uid: str, dose: float) -> None:
    ds = pydicom.dcmread(path)
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    stored = np.round((hu - intercept) / slope)
    info = np.iinfo(np.int16 if ds.get("PixelRepresentation", 0) else np.uint16)
    ds.PixelData = np.clip(stored, info.min, info.max).astype(info.dtype).tobytes()
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SeriesDescription = f"SIMULATED {dose:.0%} dose - not clinical"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.DerivationDescription = f"tfkt-edge simulator: {dose:.0%} dose, noise in the image's own texture"
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)


def write_ladders(output: Path, split: str = "heldout", doses=DOSES, seed: int = 11, progress=print,
                  reference: str = "routine") -> Path:
    """Write the ladders under ``output`` and return the path of series.csv."""
    groups: dict[str, list[Path]] = {}
    for s in training_slices():
        if s.split == split:
            groups.setdefault(s.group, []).append(s.path)
    rows = []
    for g, (group, paths) in enumerate(sorted(groups.items())):
        for k, series in enumerate(scan(paths).series):
            ladder = f"{group}#{k}"
            # The originals as their own files: their folder may hold other series.
            original = len(rows)
            rows.append({"path": ";".join(str(r.path) for r in series.slices), "source": group, "ladder": ladder,
                         "dose": 1.0, "label": 4.0, "expected": "pass", "reference": reference})
            window = reading_window(kernel_class(series.slices[0].kernel), region_of(series.slices[0].body_part) == "head")
            own: list[float] = []
            rng = np.random.default_rng(seed + 1000 * g + k)
            uids = {dose: generate_uid() for dose in doses if dose < 1.0}
            folders = {dose: output / group.replace("/", "__") / f"series{k}" / f"dose{round(dose * 100):03d}" for dose in uids}
            labels: dict[float, list[float]] = {dose: [] for dose in uids}
            for i, ref in enumerate(series.slices):
                hu = load_hu(ref)
                square = pad_square(hu, -1000.0)
                sim = TexturedSimulator(square, ref.pixel_spacing or 0.7, rng)
                prepared = sim.prepare(square)
                scale = routine_ratio(ref, hu) if reference == "routine" else 1.0
                own.append(label_image(prepared[0].sigma, 0.0, window))
                top, left = (square.shape[0] - hu.shape[0]) // 2, (square.shape[1] - hu.shape[1]) // 2
                for dose in uids:
                    image, label, _ = sim.degrade(square, prepared, dose, FULL_VIEWS, window=window, reference=scale)
                    labels[dose].append(label)
                    crop = image[top : top + hu.shape[0], left : left + hu.shape[1]]
                    _write_copy(ref.path, crop, folders[dose] / f"{i:04d}.dcm", uids[dose], dose)
            rows[original]["label"] = round(float(np.mean(own)), 4)
            for dose in uids:
                rows.append({"path": str(folders[dose]),
                             "source": group, "ladder": ladder, "dose": dose,
                             "label": round(float(np.mean(labels[dose])), 4), "expected": expected_verdict(dose),
                             "reference": reference})
            progress(f"{ladder}: {len(series.slices)} slice(s) x {len(uids)} doses")
    output.mkdir(parents=True, exist_ok=True)
    index = output / "series.csv"
    with open(index, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--split", default="heldout", choices=("heldout", "train"))
    parser.add_argument("--doses", default=",".join(f"{d:g}" for d in DOSES))
    parser.add_argument("--seed", type=int, default=11, help="noise draws (11: the ladders of the model card)")
    parser.add_argument("--reference", default="routine", choices=REFERENCES,
                        help="what a dose is a fraction of (module help)")
    args = parser.parse_args(argv)
    doses = tuple(float(d) for d in args.doses.split(","))
    print(write_ladders(args.output, args.split, doses, args.seed, reference=args.reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
