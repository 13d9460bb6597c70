"""Low-dose and sparse-view CT simulation in the sinogram domain.

Mirrors how the LDCTIQAC 2023 images were made from routine-dose scans: lower
tube current (Poisson noise in the projections) and fewer projections (view
aliasing streaks). A slice's attenuation is forward-projected once (parallel
beam); each degradation draws Poisson counts at the reduced dose, keeps a subset
of views, reconstructs by filtered back-projection, and inserts only the
difference from the clean full-view reconstruction into the original image, so
the original resolution and texture are kept.

Because the original is already a routine-dose image with its own noise, the
sinogram noise drawn at dose fraction d is scaled by sqrt(1 - d): the inserted
variance is then var(d) - var(1), the increment that takes routine dose to d
(the approach of Yu et al., Med. Phys. 2012).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.transform import iradon, radon

MU_WATER_PER_MM = 0.019
FULL_VIEWS = 360
# Unattenuated photon count per ray at routine dose; calibrated so that a
# quarter-dose abdomen gains about 20 HU of noise (see docs/simulator.md).
ROUTINE_I0 = 5.0e6
NOISE_REF_HU = 10.0


@dataclass(frozen=True)
class Degradation:
    """dose: fraction of routine tube current in (0, 1]; views: projections over 180 degrees."""

    dose: float
    views: int = FULL_VIEWS

    @property
    def is_identity(self) -> bool:
        return self.dose >= 1.0 and self.views >= FULL_VIEWS


LABEL_RULE = ("Physics-derived, NOT radiologist scores: label = clip(4 - log2(1 + sigma/10 HU), 0, 4), "
              "sigma = RMS (HU, inside the body) of the noise and streaks inserted by the sinogram-domain simulator.")


def label_from_noise(sigma_hu: float) -> float:
    """The documented monotone mapping from inserted error to the 0-4 scale.

    label = clip(4 - log2(1 + sigma / 10 HU), 0, 4): 0 HU -> 4, 10 -> 3, 30 -> 2,
    70 -> 1, 150 HU or more -> 0. Physics-derived, not a radiologist score.
    """
    return float(np.clip(4.0 - np.log2(1.0 + sigma_hu / NOISE_REF_HU), 0.0, 4.0))


class SliceSimulator:
    """Forward-projects one HU slice once; degrades it many times."""

    def __init__(self, hu: np.ndarray, pixel_mm: float = 0.7, i0: float = ROUTINE_I0):
        if hu.ndim != 2 or hu.shape[0] != hu.shape[1]:
            raise ValueError(f"expected a square 2-D slice, got {hu.shape}")
        self.hu = hu.astype(np.float32)
        self.size = hu.shape[0]
        self.mu_pixel = MU_WATER_PER_MM * pixel_mm  # attenuation of water per pixel
        self.i0 = i0
        attenuation = np.clip(1.0 + self.hu.astype(np.float64) / 1000.0, 0.0, None) * self.mu_pixel
        self.theta = np.linspace(0.0, 180.0, FULL_VIEWS, endpoint=False)
        self.sinogram = radon(attenuation, self.theta, circle=False)
        self.clean = self._fbp(self.sinogram, self.theta)
        self.body = self.hu > -500.0

    def _fbp(self, sinogram: np.ndarray, theta: np.ndarray) -> np.ndarray:
        return iradon(sinogram, theta, circle=False, output_size=self.size, filter_name="ramp")

    def delta_hu(self, degradation: Degradation, rng: np.random.Generator, increment: bool = True) -> np.ndarray:
        """The image-domain change (HU) that a degradation inserts.

        Args:
            degradation: dose fraction and number of views.
            rng: random generator for the Poisson counts.
            increment: True for a routine-dose original (noise scaled by sqrt(1 - d));
                False for a noise-free phantom (the full noise of dose d).
        """
        step = FULL_VIEWS / max(1, min(degradation.views, FULL_VIEWS))
        keep = np.unique(np.floor(np.arange(0, FULL_VIEWS, step)).astype(int))
        sinogram = self.sinogram[:, keep]
        scale = np.sqrt(max(0.0, 1.0 - degradation.dose)) if increment else 1.0
        if scale > 0.0:
            expected = self.i0 * degradation.dose * np.exp(-sinogram)
            counts = np.maximum(rng.poisson(expected), 1)
            noisy = -np.log(counts / (self.i0 * degradation.dose))
            sinogram = sinogram + scale * (noisy - sinogram)
        recon = self._fbp(sinogram, self.theta[keep])
        return ((recon - self.clean) / self.mu_pixel * 1000.0).astype(np.float32)

    def degrade(self, degradation: Degradation, rng: np.random.Generator, base: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """Degrade ``base`` (default: the slice itself); return (HU image, inserted RMS in the body)."""
        base = self.hu if base is None else base
        if degradation.is_identity:
            return base.copy(), 0.0
        delta = self.delta_hu(degradation, rng)
        sigma = float(np.sqrt(np.mean(delta[self.body] ** 2))) if self.body.any() else float(np.sqrt(np.mean(delta**2)))
        return base + delta, sigma
