"""The streak index: how strongly a slice shows the spokes of too few projection views.

Filtered back-projection from V views over 180 degrees leaves its high spatial frequencies sampled on V
spokes; with too few views the gaps between them show as the fine streaks of sparse-view CT. So the
power spectrum of the slice, read along circles at high frequency, is modulated with period 180/V
degrees. The index is the strongest angular harmonic of that modulation (harmonics 20-320: 20-320 views
over 180 degrees) over the median harmonic: about 5-10 on routine clinical slices, 20-110 with 240-90
of 360 views in the simulator (its 360 views are a routine scanner's view density at this resolution).
Measured on the 2x-pooled model input (256x256, Hann-windowed); its cost end to end: benchmarks/README.md.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from tfkt_edge.verdict.noise import block_sums

SIDE = 256
ANGLES = 720  # 0.25 degree steps over 180 degrees
RADII = (40, 124)  # frequency rings, in 1/256 cycles per pooled pixel
HARMONICS = (20, 320)


@lru_cache(maxsize=1)
def _polar() -> tuple[np.ndarray, np.ndarray]:
    """Flat indices into the rfft2 grid along the rings (conjugate symmetry folds angles onto kx >= 0), and
    the window."""
    theta = np.arange(ANGLES) * np.pi / ANGLES
    radius = np.arange(*RADII)
    ky = np.rint(np.outer(radius, np.sin(theta))).astype(int)
    kx = np.rint(np.outer(radius, np.cos(theta))).astype(int)
    flip = kx < 0
    ky, kx = np.where(flip, -ky, ky) % SIDE, np.abs(kx)
    window = np.hanning(SIDE).astype(np.float32)
    return ky * (SIDE // 2 + 1) + kx, np.outer(window, window)


def streak_index(image: np.ndarray) -> float | None:
    """The index of one preprocessed slice (contract.size 512 squared); None for another size."""
    if image.shape != (2 * SIDE, 2 * SIDE):
        return None
    pooled = block_sums(image, 2)
    pooled *= 0.25
    rings_at, window = _polar()
    power = np.abs(np.fft.rfft2((pooled - pooled.mean()) * window)) ** 2
    rings = np.log(np.take(power, rings_at) + 1e-20)
    profile = (rings - rings.mean(axis=1, keepdims=True)).mean(axis=0)
    spectrum = np.abs(np.fft.rfft(profile - profile.mean()))[HARMONICS[0]:HARMONICS[1]]
    typical = float(np.median(spectrum))
    return float(spectrum.max() / typical) if typical > 0 else None
