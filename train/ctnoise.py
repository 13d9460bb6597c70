"""A slice's own noise: its level and texture, kernel variants, and the label rule.

Routine CT differs in noise level and texture by kernel, slice thickness and
iterative reconstruction, and every one of those images is diagnostic. So the
simulator measures each image's own noise (the global-noise-index approach:
local standard deviations over flat soft tissue) and its noise power spectrum
(NPS, from the same patches), inserts dose-reduction noise *with that texture*
at the level physics gives relative to the image's own noise, and labels by
how far the image was taken from its routine dose, not by an absolute HU
figure that would call every sharp-kernel image poor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter

PATCH = 32
STRIDE = 16
# Flat soft tissue: smoothed HU in this range.
SOFT_HU = (-150.0, 200.0)
# Below this a native noise estimate is not trusted as a reference (HU).
MIN_NATIVE_HU = 4.0
# The label rule: what a reader sees in the window they read with (docs/simulator.md). The visible degradation
# D = (W_soft / W_read) * sqrt(noise^2 + STREAK_WEIGHT * streaks^2), noise and streaks in HU (RMS over soft
# tissue), and label = 4 / (1 + (D / D_HALF)^SHAPE). D_HALF, SHAPE and STREAK_WEIGHT were fitted
# (python -m tfkt_edge.train.label_fit) so that the LDCTIQAC 2023 protocol re-created on the real abdominal
# slices of the training split (doses 100/50/25/10%, 720/360/180 views) gives the challenge's per-version sorted
# mean scores (FIELD: 3.84 ... 0.48).
D_HALF = 43.66
SHAPE = 4.475
STREAK_WEIGHT = 0.473
SOFT_WINDOW = 350.0  # readers of LDCTIQAC: W350 / L40 (preprocess.SHARP_VIEW is SOFT_WINDOW / SHARP_WINDOW)
SHARP_WINDOW = 1500.0  # a sharp (lung, bone) kernel is read at a lung or bone window
SHARP_HEAD_WINDOW = 2000.0  # sharp head kernels (skull, temporal bone) at a bone window
# Over-smoothing: readers mark waxy, over-denoised images down. Removing more than SMOOTH_FREE of an image's
# own noise costs up to SMOOTH_PENALTY points (all of it removed).
SMOOTH_FREE = 0.5
SMOOTH_PENALTY = 2.0
NPS_BINS = PATCH // 2 + 1

LABEL_RULE = (f"Physics calibrated to radiologists' reads, NOT radiologist scores of these images: label = "
              f"4 / (1 + (D / {D_HALF:g} HU)^{SHAPE:g}) with D = (350 / W) * sqrt(noise^2 + {STREAK_WEIGHT:g} * "
              "streaks^2), the absolute noise (the image's own plus the inserted) and sparse-view streaks (HU RMS over "
              "soft tissue) as seen in the window W a reader uses (350 for soft kernels, 1500 for sharp ones, 2000 for "
              "sharp head kernels); fitted so that the LDCTIQAC 2023 protocol (doses 100/50/25/10%, 720/360/180 views) "
              "re-created on the real abdominal training slices gives the challenge's sorted mean scores 3.84 ... 0.48. Over-denoised "
              f"copies lose up to {SMOOTH_PENALTY:g} points for the share of their own noise removed beyond "
              f"{100 * SMOOTH_FREE:.0f}%.")


def reading_window(kernel_class: str, head: bool = False) -> float:
    """The window width (HU) a reader views an image of this kernel class with."""
    if kernel_class == "sharp":
        return SHARP_HEAD_WINDOW if head else SHARP_WINDOW
    return SOFT_WINDOW


def visible_degradation(noise_hu: float, streak_hu: float = 0.0, window: float = SOFT_WINDOW,
                         streak_weight: float = STREAK_WEIGHT) -> float:
    """D of the label rule: noise and streaks (HU) as a reader sees them at ``window``, in W350 HU (the weight
    is a parameter for `label_fit`, which fits it)."""
    return float(SOFT_WINDOW / window * np.sqrt(noise_hu**2 + streak_weight * streak_hu**2))


def label_from_visible(degradation: float, d_half: float = D_HALF, shape: float = SHAPE) -> float:
    """The documented label of an image whose visible degradation is ``degradation`` (W350 HU); the constants
    are parameters for `label_fit`, which fits them."""
    return float(4.0 / (1.0 + (max(degradation, 0.0) / d_half) ** shape))


def smoothing_penalty(noise_before: float, noise_after: float) -> float:
    """Points lost by an image denoised from ``noise_before`` to ``noise_after`` HU (0 for mild denoising)."""
    if noise_before <= 0:
        return 0.0
    removed = 1.0 - min(1.0, max(0.0, noise_after / noise_before))
    return SMOOTH_PENALTY * max(0.0, removed - SMOOTH_FREE) / (1.0 - SMOOTH_FREE)


def label_image(noise_hu: float, streak_hu: float, window: float, penalty: float = 0.0) -> float:
    """The label of an image: its visible noise and streaks, less any over-smoothing penalty."""
    return max(0.0, label_from_visible(visible_degradation(noise_hu, streak_hu, window)) - penalty)


def dose_noise_rms(native_sigma: float, dose: float, reference: float = 1.0) -> float:
    """RMS of the noise that takes an image to dose fraction ``dose`` (quantum noise ~ 1/sqrt(dose)) of a
    reference dose whose noise is ``reference`` times the image's own: 1 (the image's own dose) or more (the
    routine dose of a quieter original, `routine.routine_ratio`), never less than the image's own noise."""
    sigma, scale = max(native_sigma, MIN_NATIVE_HU), max(reference, 1.0)
    return sigma * float(np.sqrt(max(0.0, scale**2 / dose - 1.0)))


@dataclass(frozen=True)
class NativeNoise:
    """sigma: the image's own noise (HU); nps: radial NPS shape, NPS_BINS values over 0..0.5 cycles/pixel."""

    sigma: float
    nps: np.ndarray | None
    patches: int


def _plane_residual(patch: np.ndarray, design: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(design, patch.ravel(), rcond=None)
    return patch - (design @ coef).reshape(patch.shape)


def _radial(power: np.ndarray) -> np.ndarray:
    """Radial mean of a centred-at-0 2-D spectrum of side PATCH, NPS_BINS bins over 0..0.5 cycles/pixel."""
    f = np.fft.fftfreq(power.shape[0])
    radius = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    bins = np.minimum(np.rint(radius * power.shape[0]).astype(int), NPS_BINS - 1)
    total = np.bincount(bins.ravel(), power.ravel(), NPS_BINS)
    count = np.bincount(bins.ravel(), None, NPS_BINS)
    return total / np.maximum(count, 1)


def native_noise(hu: np.ndarray) -> NativeNoise:
    """Estimate an image's own noise level and texture from flat soft-tissue patches."""
    hu = hu.astype(np.float64)
    smooth = uniform_filter(hu, 5)
    gradient = np.hypot(*np.gradient(smooth))
    soft = (smooth > SOFT_HU[0]) & (smooth < SOFT_HU[1]) & (gradient < 15.0)
    yy, xx = np.mgrid[0:PATCH, 0:PATCH]
    design = np.stack([np.ones(PATCH * PATCH), yy.ravel(), xx.ravel()], axis=1).astype(np.float64)
    stds, spectra = [], []
    rows, cols = hu.shape
    for r in range(0, rows - PATCH + 1, STRIDE):
        for c in range(0, cols - PATCH + 1, STRIDE):
            if soft[r : r + PATCH, c : c + PATCH].mean() < 0.95:
                continue
            residual = _plane_residual(hu[r : r + PATCH, c : c + PATCH], design)
            stds.append(residual.std())
            spectra.append(np.abs(np.fft.fft2(residual)) ** 2)
    if len(stds) < 6:
        # Too little flat soft tissue (lung-only or bone-only slices): the lowest local SDs of the body.
        local = np.sqrt(np.maximum(uniform_filter(hu**2, 7) - uniform_filter(hu, 7) ** 2, 0.0))
        body = hu > -500.0
        sigma = float(np.percentile(local[body], 10)) if body.any() else MIN_NATIVE_HU
        return NativeNoise(max(sigma, MIN_NATIVE_HU), None, len(stds))
    stds_array = np.array(stds)
    # Anatomy only adds variance: like the global noise index, trust the flattest patches.
    flat = stds_array <= np.percentile(stds_array, 50)
    sigma = float(np.median(stds_array[flat]))
    nps = _radial(np.mean(np.array(spectra)[flat], axis=0))
    return NativeNoise(max(sigma, MIN_NATIVE_HU), nps / nps.max(), len(stds))


def _radial_grid(shape: tuple[int, int]) -> np.ndarray:
    fy, fx = np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1])
    return np.hypot(*np.meshgrid(fy, fx, indexing="ij"))


def kernel_window(nps: np.ndarray) -> np.ndarray:
    """The reconstruction window A(f) (radial, NPS_BINS values) that turns ramp-filter noise into noise with
    the radial NPS ``nps``: FBP noise has NPS ~ f A(f)^2, so A^2 ~ nps / f. Normalised to 1 at low frequency
    and made non-increasing, like every reconstruction kernel's window: it never amplifies the low
    frequencies where a patch NPS is unreliable and the ramp's own content is directional streaks."""
    f = np.arange(NPS_BINS) / PATCH
    window = np.sqrt(np.maximum(nps[1:], 0.0) / f[1:])
    window = np.minimum.accumulate(window / window[1])  # bins 1-2 (1/32-1/16 cycles/pixel) as reference
    return np.clip(np.r_[1.0, window], 0.0, 1.0)


def match_texture(delta: np.ndarray, nps: np.ndarray | None) -> np.ndarray:
    """Re-filter simulated noise (ramp-filter FBP texture) with the window of the image's own kernel
    (`kernel_window` of its NPS); the RMS is preserved.

    The spatial envelope (more noise along long paths, streak directions) is kept;
    only the spectrum's shape changes, to that of the image's own reconstruction.
    """
    if nps is None:
        return delta
    radius = _radial_grid(delta.shape)
    gain = np.interp(radius, np.arange(NPS_BINS) / PATCH, kernel_window(nps))
    out = np.real(np.fft.ifft2(np.fft.fft2(delta) * gain))
    rms_in, rms_out = np.sqrt(np.mean(delta**2)), np.sqrt(np.mean(out**2))
    return (out * (rms_in / rms_out if rms_out > 0 else 0.0)).astype(np.float32)


@dataclass(frozen=True)
class KernelVariant:
    """Another reconstruction of the same acquisition: a field of view (``zoom``: > 1 magnifies the centre,
    < 1 shows more around it, same matrix) and a kernel change in the image domain: 'sharp' (boost) or
    'smooth' (Gaussian)."""

    name: str
    strength: float = 0.0
    zoom: float = 1.0

    def apply(self, hu: np.ndarray) -> np.ndarray:
        """The slice at this variant's field of view and kernel."""
        return self.reconstruct(self.at_fov(hu))

    def at_fov(self, hu: np.ndarray) -> np.ndarray:
        return zoom_fov(hu, self.zoom) if self.zoom != 1.0 else hu

    def reconstruct(self, hu: np.ndarray) -> np.ndarray:
        """The kernel change alone, on a slice already at this variant's field of view."""
        if self.name == "native":
            return hu
        # Air stays air: filter the attenuation above air, then restore the air level.
        filtered = np.real(np.fft.ifft2(np.fft.fft2(hu + 1000.0) * self.gain(hu.shape))) - 1000.0
        return filtered.astype(np.float32)

    def gain(self, shape: tuple[int, int]) -> np.ndarray:
        """The filter's frequency response on an FFT grid of ``shape``."""
        radius = _radial_grid(shape) / 0.5  # 0 at DC, 1 at Nyquist
        if self.name == "native":
            return np.ones(shape)
        if self.name == "sharp":
            return 1.0 + self.strength * radius**2
        if self.name in ("smooth", "denoise"):  # a soft kernel / iterative reconstruction; "denoise": far stronger
            return np.exp(-0.5 * (radius * 0.5 / self.strength) ** 2)
        raise ValueError(f"unknown kernel variant {self.name!r}")


def zoom_fov(hu: np.ndarray, zoom: float) -> np.ndarray:
    """Magnify (zoom > 1, centre crop) or shrink (zoom < 1, padded with air), same matrix size."""
    from scipy.ndimage import zoom as resample

    n = hu.shape[0]
    scaled = resample(hu, zoom, order=1)
    m = scaled.shape[0]
    if m >= n:
        start = (m - n) // 2
        return scaled[start : start + n, start : start + n].astype(np.float32)
    out = np.full_like(hu, -1000.0)
    start = (n - m) // 2
    out[start : start + m, start : start + m] = scaled
    return out


def _zoom(rng: np.random.Generator) -> float:
    return float(np.exp(rng.uniform(np.log(0.75), np.log(1.4))))


def kernel_variants(rng: np.random.Generator) -> tuple[KernelVariant, ...]:
    """The native image; the same at another field of view; a sharper (bone/lung-like) and a smoother
    (soft/IR-like) reconstruction, each at its own field of view; and an over-denoised copy (waxy: readers
    mark it down), applied after the degradation, as a denoiser would be."""
    return (KernelVariant("native"), KernelVariant("native", 0.0, _zoom(rng)),
            KernelVariant("sharp", float(rng.uniform(3.0, 9.0)), _zoom(rng)),
            KernelVariant("smooth", float(rng.uniform(0.15, 0.3)), _zoom(rng)),
            KernelVariant("denoise", float(rng.uniform(0.04, 0.1)), _zoom(rng)))


def ramp_noise(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Stationary noise with the NPS of ramp-filter FBP (NPS ~ f), unit RMS."""
    white = rng.standard_normal(shape)
    noise = np.real(np.fft.ifft2(np.fft.fft2(white) * np.sqrt(_radial_grid(shape))))
    return (noise / noise.std()).astype(np.float32)


class TexturedSimulator:
    """Degrades one slice (and kernel variants of it) with noise and streaks in each image's own texture.

    Dose noise is quantum noise as an FBP image shows it: ramp-shaped NPS, here
    stationary (scanners' tube-current modulation, bowtie filters and adaptive
    filtering of photon-starved rays make routine CT noise close to isotropic;
    the unmodulated parallel-beam noise of `ctsim` is streakier than any
    clinical scan, and meaningless on coronal and sagittal reformats). Each image
    variant takes it through its own kernel window (`match_texture`), scaled to
    its own noise level. Sparse-view streaks come from the sinogram simulator
    (`ctsim.SliceSimulator`, once per slice and number of views), in the same
    texture.
    """

    def __init__(self, hu: np.ndarray, pixel_mm: float, rng: np.random.Generator, draws: int = 3):
        self.hu, self.pixel_mm, self.rng = hu, pixel_mm, rng
        self.body = hu > -500.0
        self.soft = self.body & (hu > SOFT_HU[0]) & (hu < SOFT_HU[1])  # where streaks are measured for the label
        self.noise = [ramp_noise(hu.shape, rng) for _ in range(draws)]
        self._sinogram_sim = None  # the forward projection (seconds) is made only when streaks are asked for
        self._streaks: dict[int, np.ndarray] = {}

    def _streak(self, views: int) -> np.ndarray:
        from tfkt_edge.train.ctsim import Degradation, SliceSimulator

        if self._sinogram_sim is None:
            self._sinogram_sim = SliceSimulator(self.hu, self.pixel_mm)
        if views not in self._streaks:
            self._streaks[views] = self._sinogram_sim.delta_hu(Degradation(1.0, views), self.rng)
        return self._streaks[views]

    def _unit(self, delta: np.ndarray) -> np.ndarray:
        inside = delta[self.body] if self.body.any() else delta
        rms = float(np.sqrt(np.mean(inside**2)))
        return delta / rms if rms > 0 else delta

    def prepare(self, image: np.ndarray) -> tuple[NativeNoise, list[np.ndarray]]:
        """An image's own noise and the simulator's noise draws in its texture (unit RMS in the body)."""
        own = native_noise(image)
        return own, [self._unit(match_texture(n, own.nps)) for n in self.noise]

    def degrade(self, image: np.ndarray, prepared: tuple[NativeNoise, list[np.ndarray]], dose: float, views: int,
                draw: int = 0, window: float = SOFT_WINDOW, reference: float = 1.0) -> tuple[np.ndarray, float, float]:
        """(degraded HU image, label, inserted RMS in the body) at dose fraction ``dose`` (of the reference dose
        of `dose_noise_rms`) and ``views`` views, labelled by what a reader sees at ``window`` (`reading_window`)."""
        degraded, noise, streaks, rms = self.degrade_parts(image, prepared, dose, views, draw, reference)
        return degraded, label_image(noise, streaks, window), rms

    def degrade_parts(self, image: np.ndarray, prepared: tuple[NativeNoise, list[np.ndarray]], dose: float,
                      views: int, draw: int = 0, reference: float = 1.0) -> tuple[np.ndarray, float, float, float]:
        """(degraded HU image, its noise HU, its streaks HU over soft tissue, inserted RMS in the body)."""
        from tfkt_edge.train.ctsim import FULL_VIEWS

        own, unit_noise = prepared
        added = np.zeros_like(image, dtype=np.float32)
        dose_rms = dose_noise_rms(own.sigma, dose, reference) if dose < 1.0 else 0.0
        if dose_rms > 0:
            added += unit_noise[draw % len(unit_noise)] * dose_rms
        streak_rms = 0.0
        if views < FULL_VIEWS:
            streaks = match_texture(self._streak(views), own.nps)
            added += streaks
            streak_rms = float(np.sqrt(np.mean(streaks[self.soft] ** 2))) if self.soft.any() else 0.0
        rms = float(np.sqrt(np.mean(added[self.body] ** 2))) if self.body.any() else 0.0
        return image + added, float(np.hypot(own.sigma, dose_rms)), streak_rms, rms


def noise_kept(variant: KernelVariant, unit_noise: np.ndarray) -> float:
    """The share of an image's noise (RMS) that survives ``variant``'s filter: measured on a noise draw in the
    image's own texture, so anatomy cannot pass for noise."""
    kept = np.real(np.fft.ifft2(np.fft.fft2(unit_noise) * variant.gain(unit_noise.shape)))
    return float(np.sqrt(np.mean(kept**2)) / max(np.sqrt(np.mean(unit_noise**2)), 1e-12))

