"""How a slice's noise compares with a routine scan of its kind: the reference that simulated dose is taken from.

LDCTIQAC's organisers inserted Poisson noise at one photon count N0 for every patient (FIELD), so the noise of
their "10% dose" grows with the patient's attenuation, not with the noise the original image happened to
hold. Taking dose relative to each image's own noise instead makes a quiet original (thick slices, a high
dose, iterative reconstruction) reach "10% dose" with less noise than routine scans of its size hold at full
dose. The reference here is the routine noise the verdict holds the slice to (`NoiseLimits.expected_hu`:
kernel class named in the header, patient size, at the slice's own thickness), measured with the verdict's
own estimator, so the simulated dose and the noise check speak of the same noise.
"""

from __future__ import annotations

import numpy as np

from tfkt_edge.dicom import SliceRef
from tfkt_edge.model.preprocess import LDCTIQAC, PreprocessContract, pad_square, preprocess
from tfkt_edge.verdict.domain import image_stats, kernel_class
from tfkt_edge.verdict.noise import PHYSICS_DEFAULTS, NoiseLimits, at_reference
from tfkt_edge.verdict.physics import water_diameter_cm

# Where the verdict's estimator finds no soft tissue, the slice is its own reference.
NO_FIGURE = 1.0


def routine_ratio(ref: SliceRef, hu: np.ndarray, limits: NoiseLimits = PHYSICS_DEFAULTS,
                  contract: PreprocessContract = LDCTIQAC) -> float:
    """Routine noise for this slice's kernel class, thickness and patient size over the slice's own noise
    (both as the verdict measures them): above 1 for an original quieter than routine."""
    stats = image_stats(preprocess(pad_square(hu, contract.hu_min), contract), contract)
    if stats.noise_hu is None or not np.isfinite(stats.noise_hu) or stats.noise_hu <= 0:
        return NO_FIGURE
    dw = water_diameter_cm([ref], [stats.water_diameter_px], contract.size)
    expected = limits.expected_hu(kernel_class(ref.kernel), dw)
    return float(expected / at_reference(stats.noise_hu, ref.thickness))
