"""Write the demo's bundled examples (run once; the outputs are committed).

    python -m tfkt_edge.train.make_examples

clinical/: the real abdominal slice from pydicom-data, copied unchanged.
degraded/: the same slice through the simulator (5% dose, 90 views), written as
a new, clearly labelled derived series (new UIDs), RLE-compressed.
"""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pydicom
from pydicom.uid import RLELossless, generate_uid

from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.examples import EXAMPLES
from tfkt_edge.train.ctsim import Degradation, SliceSimulator
from tfkt_edge.train.sources import real_ct_slices

DEGRADATION = Degradation(dose=0.05, views=90)


def main() -> int:
    source = real_ct_slices()["abdomen-pancreas"]
    (EXAMPLES / "clinical").mkdir(parents=True, exist_ok=True)
    (EXAMPLES / "degraded").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, EXAMPLES / "clinical" / "abdomen.dcm")

    ds = pydicom.dcmread(source)
    hu = load_hu(scan([source]).series[0].slices[0])
    image, sigma = SliceSimulator(hu, float(ds.PixelSpacing[0])).degrade(DEGRADATION, np.random.default_rng(7))
    stored = np.round((image - float(ds.RescaleIntercept)) / float(ds.RescaleSlope))
    info = np.iinfo(np.int16 if ds.PixelRepresentation else np.uint16)
    ds.PixelData = np.clip(stored, info.min, info.max).astype(info.dtype).tobytes()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SeriesDescription = f"SIMULATED {DEGRADATION.dose:.0%} dose {DEGRADATION.views} views - not clinical"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.DerivationDescription = (f"tfkt-edge simulator: Poisson noise at {DEGRADATION.dose:.0%} dose, {DEGRADATION.views} views, "
                                f"FBP; inserted RMS {sigma:.0f} HU")
    ds.compress(RLELossless)
    ds.save_as(EXAMPLES / "degraded" / "abdomen_degraded.dcm", enforce_file_format=True)
    print(f"wrote examples to {EXAMPLES} (inserted RMS {sigma:.1f} HU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
