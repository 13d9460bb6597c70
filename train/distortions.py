"""KADID-10k-style distortion types, and which of them resemble CT degradations.

Each distortion takes an RGB float image in [0, 1] (H x W x 3), a level 1..5
(1 mildest) and a random generator, and returns the distorted RGB image. The
numbering follows KADID-10k's 25 types (Lin et al., QoMEX 2019); the three it
has that need a colour-space model we do not reproduce (4 colour diffusion,
5 colour shift, 8 saturation in a second space) are left out.

Task-focused selection (`CT_LIKE_FAMILIES`): the CNN-transformer is taught
quality on natural images only through distortions whose appearance has a CT
counterpart:

- noise (white, multiplicative, impulse; TID2013 also correlated/high-frequency
  noise): quantum noise at low dose, detector spikes;
- blur (Gaussian, lens, motion; pixelation): smooth kernels, partial volume,
  patient motion, coarse matrices;
- denoise: iterative or deep-learning reconstruction at low dose (waxy texture);
- sharpen: bone/edge-enhancing reconstruction kernels;
- contrast (brighten, darken, mean shift, contrast change): window/level and
  shading from beam hardening;
- compression (JPEG, JPEG 2000; TID2013 also sparse sampling): lossy archive
  compression, sparse-view reconstruction.

Colour distortions (CT is grey) and geometric ones (jitter, patch displacement,
colour blocks, grey-level quantization) are dropped. Datasets of authentic
distortions (KonIQ-10k, LIVE Challenge, SPAQ) carry no distortion type and are
kept whole under either setting.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

CT_LIKE_FAMILIES = frozenset({"noise", "blur", "denoise", "sharpen", "contrast", "compression"})
SELECTIONS = ("task-focused", "all")

Distortion = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class DistortionType:
    kadid_id: int
    name: str
    family: str
    apply: Distortion

    @property
    def ct_like(self) -> bool:
        return self.family in CT_LIKE_FAMILIES


def selected(family: str | None, selection: str) -> bool:
    """Whether an image of this distortion family is used under ``selection``.

    Images without a family (authentic distortions, pristine references) are always kept.
    """
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; choose from {', '.join(SELECTIONS)}")
    return selection == "all" or family is None or family in CT_LIKE_FAMILIES


def _level(values: tuple, level: int):
    return values[level - 1]


def _per_channel(image: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([fn(image[..., c]) for c in range(image.shape[-1])], axis=-1)


def _grey(image: np.ndarray) -> np.ndarray:
    return image @ np.array([0.299, 0.587, 0.114])


def gaussian_blur(image, level, rng):
    sigma = _level((0.6, 1.2, 2.0, 3.5, 6.0), level)
    return _per_channel(image, lambda c: ndimage.gaussian_filter(c, sigma))


def lens_blur(image, level, rng):
    radius = _level((1, 2, 4, 6, 8), level)
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = (x * x + y * y <= radius * radius).astype(float)
    return _per_channel(image, lambda c: ndimage.convolve(c, disk / disk.sum(), mode="reflect"))


def motion_blur(image, level, rng):
    length = _level((3, 5, 9, 15, 23), level)
    angle = rng.uniform(0, np.pi)
    kernel = np.zeros((length, length))
    centre = (length - 1) / 2
    for t in np.linspace(-centre, centre, 4 * length):
        kernel[round(centre + t * np.sin(angle)), round(centre + t * np.cos(angle))] = 1.0
    return _per_channel(image, lambda c: ndimage.convolve(c, kernel / kernel.sum(), mode="reflect"))


def color_quantization(image, level, rng):
    levels = _level((24, 16, 10, 6, 4), level)
    return np.round(image * (levels - 1)) / (levels - 1)


def color_saturation(image, level, rng):
    # In HSV, as KADID does: scale saturation, keep value (the largest channel), so luminance changes too.
    factor = _level((0.7, 0.5, 0.3, 0.15, 0.0), level)
    value = image.max(axis=-1, keepdims=True)
    return value - factor * (value - image)


def _codec(image, fmt: str, **options) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(buffer, format=fmt, **options)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float64) / 255.0


def jpeg2000(image, level, rng):
    rate = _level((40, 80, 160, 320, 640), level)
    return _codec(image, "JPEG2000", quality_mode="rates", quality_layers=[rate])


def jpeg(image, level, rng):
    return _codec(image, "JPEG", quality=_level((45, 25, 12, 6, 2), level))


def white_noise(image, level, rng):
    sigma = _level((0.02, 0.04, 0.07, 0.11, 0.17), level)
    return image + rng.normal(0, sigma, image.shape[:2])[..., None]


def color_noise(image, level, rng):
    sigma = _level((0.03, 0.06, 0.1, 0.15, 0.22), level)
    return image + rng.normal(0, sigma, image.shape) * np.array([0.2, 0.3, 1.0])


def impulse_noise(image, level, rng):
    amount = _level((0.005, 0.015, 0.03, 0.06, 0.12), level)
    out = image.copy()
    hit = rng.random(image.shape[:2]) < amount
    out[hit] = rng.integers(0, 2, int(hit.sum()))[:, None].astype(float)
    return out


def multiplicative_noise(image, level, rng):
    sigma = _level((0.06, 0.12, 0.2, 0.3, 0.45), level)
    return image * (1 + rng.normal(0, sigma, image.shape[:2]))[..., None]


def denoise(image, level, rng):
    noisy = white_noise(image, level, rng)
    sigma = _level((0.8, 1.2, 1.8, 2.6, 3.6), level)
    return _per_channel(noisy, lambda c: ndimage.gaussian_filter(c, sigma))


def brighten(image, level, rng):
    gamma = _level((0.8, 0.65, 0.5, 0.38, 0.28), level)
    return np.clip(image, 0, 1) ** gamma


def darken(image, level, rng):
    gamma = _level((1.3, 1.6, 2.0, 2.6, 3.4), level)
    return np.clip(image, 0, 1) ** gamma


def mean_shift(image, level, rng):
    shift = _level((0.06, 0.12, 0.2, 0.3, 0.42), level)
    return image + (shift if image.mean() < 0.5 else -shift)  # towards the far end, so clipping cannot undo it


def jitter(image, level, rng):
    amount = _level((1, 2, 3, 5, 8), level)
    h, w = image.shape[:2]
    rows = np.clip(np.arange(h)[:, None] + rng.integers(-amount, amount + 1, (h, w)), 0, h - 1)
    cols = np.clip(np.arange(w)[None, :] + rng.integers(-amount, amount + 1, (h, w)), 0, w - 1)
    return image[rows, cols]


def non_eccentricity_patch(image, level, rng):
    count = _level((20, 50, 100, 200, 400), level)
    out, h, w, p = image.copy(), image.shape[0], image.shape[1], 16
    for _ in range(count):
        y, x = rng.integers(0, h - p), rng.integers(0, w - p)
        dy, dx = rng.integers(-8, 9, 2)
        sy, sx = np.clip(y + dy, 0, h - p), np.clip(x + dx, 0, w - p)
        out[y : y + p, x : x + p] = image[sy : sy + p, sx : sx + p]
    return out


def pixelate(image, level, rng):
    factor = _level((2, 3, 5, 8, 12), level)
    h, w = image.shape[:2]
    small = image[::factor, ::factor]
    return np.repeat(np.repeat(small, factor, 0), factor, 1)[:h, :w]


def quantization(image, level, rng):
    levels = _level((16, 10, 7, 5, 3), level)
    steps = np.round(np.clip(_grey(image), 0, 1) * (levels - 1)) / (levels - 1)
    return np.repeat(steps[..., None], 3, axis=-1)


def color_block(image, level, rng):
    count = _level((4, 10, 20, 40, 80), level)
    out, h, w, p = image.copy(), image.shape[0], image.shape[1], 24
    for _ in range(count):
        y, x = rng.integers(0, h - p), rng.integers(0, w - p)
        out[y : y + p, x : x + p] = rng.random(3)
    return out


def high_sharpen(image, level, rng):
    amount = _level((1.0, 2.0, 3.5, 5.5, 8.0), level)
    return _per_channel(image, lambda c: c + amount * (c - ndimage.gaussian_filter(c, 1.5)))


def contrast_change(image, level, rng):
    factor = _level((0.7, 0.5, 0.35, 0.22, 0.12), level)
    mean = image.mean()
    return mean + factor * (image - mean)


DISTORTIONS: tuple[DistortionType, ...] = (
    DistortionType(1, "gaussian_blur", "blur", gaussian_blur),
    DistortionType(2, "lens_blur", "blur", lens_blur),
    DistortionType(3, "motion_blur", "blur", motion_blur),
    DistortionType(6, "color_quantization", "colour", color_quantization),
    DistortionType(7, "color_saturation", "colour", color_saturation),
    DistortionType(9, "jpeg2000", "compression", jpeg2000),
    DistortionType(10, "jpeg", "compression", jpeg),
    DistortionType(11, "white_noise", "noise", white_noise),
    DistortionType(12, "color_noise", "colour", color_noise),
    DistortionType(13, "impulse_noise", "noise", impulse_noise),
    DistortionType(14, "multiplicative_noise", "noise", multiplicative_noise),
    DistortionType(15, "denoise", "denoise", denoise),
    DistortionType(16, "brighten", "contrast", brighten),
    DistortionType(17, "darken", "contrast", darken),
    DistortionType(18, "mean_shift", "contrast", mean_shift),
    DistortionType(19, "jitter", "geometric", jitter),
    DistortionType(20, "non_eccentricity_patch", "geometric", non_eccentricity_patch),
    DistortionType(21, "pixelate", "blur", pixelate),
    DistortionType(22, "quantization", "geometric", quantization),
    DistortionType(23, "color_block", "geometric", color_block),
    DistortionType(24, "high_sharpen", "sharpen", high_sharpen),
    DistortionType(25, "contrast_change", "contrast", contrast_change),
)

# KADID-10k type ids -> family (all 25, for the real dataset's file names).
KADID_FAMILIES = {d.kadid_id: d.family for d in DISTORTIONS} | {4: "colour", 5: "colour", 8: "colour"}

# TID2013 type ids 1..24 -> family.
TID2013_FAMILIES = {
    1: "noise", 2: "colour", 3: "noise", 4: "noise", 5: "noise", 6: "noise", 7: "geometric", 8: "blur",
    9: "denoise", 10: "compression", 11: "compression", 12: "geometric", 13: "geometric", 14: "geometric",
    15: "geometric", 16: "contrast", 17: "contrast", 18: "colour", 19: "noise", 20: "noise", 21: "compression",
    22: "colour", 23: "colour", 24: "compression",
}
