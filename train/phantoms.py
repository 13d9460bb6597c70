"""Procedural anatomical phantoms (HU), for variety beyond the few real slices."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

PIXEL_MM = 0.7


def _ellipse(shape: tuple[int, int], centre, axes, angle: float = 0.0) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    y, x = yy - centre[0], xx - centre[1]
    c, s = np.cos(angle), np.sin(angle)
    u, v = x * c + y * s, -x * s + y * c
    return (u / axes[1]) ** 2 + (v / axes[0]) ** 2 <= 1.0


def _texture(rng: np.random.Generator, shape, sigma_px: float, amplitude: float) -> np.ndarray:
    field = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px)
    return field / (field.std() + 1e-6) * amplitude


def abdomen(rng: np.random.Generator, size: int = 512) -> np.ndarray:
    """An axial abdomen: fat, muscle wall, liver, spleen, kidneys, aorta, spine, bowel gas."""
    shape, c = (size, size), size / 2
    s = size / 512
    img = np.full(shape, -1000.0, np.float32)
    ay, ax = rng.uniform(120, 160) * s, rng.uniform(170, 215) * s
    cy = c + rng.uniform(-15, 15) * s
    img[_ellipse(shape, (cy, c), (ay, ax))] = rng.uniform(-110, -80)
    img[_ellipse(shape, (cy, c), (ay - 12 * s, ax - 14 * s))] = 45.0
    img[_ellipse(shape, (cy, c), (ay - 20 * s, ax - 24 * s))] = rng.uniform(-60, -20)
    img[_ellipse(shape, (cy - 10 * s, c - 0.45 * ax), (0.55 * ay, 0.38 * ax), rng.uniform(-0.4, 0.4))] = rng.uniform(50, 70)
    img[_ellipse(shape, (cy - 20 * s, c + 0.55 * ax), (0.3 * ay, 0.2 * ax), 0.5)] = rng.uniform(40, 55)
    for side in (-1, 1):
        kidney = (cy + 0.25 * ay, c + side * 0.3 * ax)
        img[_ellipse(shape, kidney, (0.22 * ay, 0.13 * ax), side * 0.5)] = rng.uniform(120, 180)
        img[_ellipse(shape, kidney, (0.1 * ay, 0.06 * ax), side * 0.5)] = rng.uniform(20, 40)
    img[_ellipse(shape, (cy + 0.1 * ay, c + 0.06 * ax), (11 * s, 11 * s))] = rng.uniform(150, 300)
    spine = (cy + 0.55 * ay, c)
    img[_ellipse(shape, spine, (26 * s, 30 * s))] = 900.0
    img[_ellipse(shape, spine, (21 * s, 25 * s))] = rng.uniform(200, 350)
    for _ in range(rng.integers(2, 7)):
        centre = (cy + rng.uniform(-0.4, 0.2) * ay, c + rng.uniform(-0.3, 0.5) * ax)
        img[_ellipse(shape, centre, rng.uniform(5, 18, 2) * s, rng.uniform(0, np.pi))] = -950.0
    for _ in range(rng.integers(3, 9)):  # bowel loops: real texture that is not noise
        centre = (cy + rng.uniform(-0.5, 0.3) * ay, c + rng.uniform(-0.45, 0.55) * ax)
        loop = _ellipse(shape, centre, rng.uniform(10, 28, 2) * s, rng.uniform(0, np.pi))
        img[loop] = _bowel_content(rng, shape)[loop]
    for _ in range(rng.integers(4, 12)):  # enhanced vessels
        centre = (cy + rng.uniform(-0.6, 0.5) * ay, c + rng.uniform(-0.6, 0.6) * ax)
        img[_ellipse(shape, centre, rng.uniform(2, 6, 2) * s)] = rng.uniform(120, 280)
    _support(img, rng, cy + ay, ax, s)
    return _finish(img, rng)


def _bowel_content(rng: np.random.Generator, shape) -> np.ndarray:
    """Faeces and fluid with small gas bubbles: mottled texture at several scales."""
    base = rng.uniform(-40, 40) + _texture(rng, shape, rng.uniform(1.0, 2.5), rng.uniform(15, 60))
    bubbles = gaussian_filter(rng.standard_normal(shape).astype(np.float32), 1.2) > rng.uniform(0.35, 0.55)
    return np.where(bubbles, -900.0, base).astype(np.float32)


def _support(img: np.ndarray, rng: np.random.Generator, below: float, half_width: float, s: float) -> None:
    """A patient table and, sometimes, a foam pad or cushion shell: common high-contrast edges."""
    shape, c = img.shape, img.shape[1] / 2
    # a shallow arc curving up at the sides: the bottom of a large ellipse centred above
    centre = (below + 10 * s - 700 * s, c)
    table = _ellipse(shape, centre, (700 * s, 900 * s)) & ~_ellipse(shape, centre, (693 * s, 893 * s))
    table &= np.abs(np.arange(shape[1])[None, :] - c) < 1.3 * half_width
    img[table & (img < -500)] = rng.uniform(150, 500)
    if rng.random() < 0.5:
        pad = _ellipse(shape, (below + 18 * s, c), (14 * s, 1.1 * half_width)) & (img < -500)
        img[pad] = rng.uniform(-200, -80)


def head(rng: np.random.Generator, size: int = 512) -> np.ndarray:
    """An axial head: scalp, skull, brain, ventricles."""
    shape, c = (size, size), size / 2
    s = size / 512
    img = np.full(shape, -1000.0, np.float32)
    ay, ax = rng.uniform(150, 185) * s, rng.uniform(120, 150) * s
    img[_ellipse(shape, (c, c), (ay, ax))] = 30.0
    img[_ellipse(shape, (c, c), (ay - 6 * s, ax - 6 * s))] = rng.uniform(900, 1500)
    img[_ellipse(shape, (c, c), (ay - 14 * s, ax - 14 * s))] = rng.uniform(30, 40)
    for side in (-1, 1):
        img[_ellipse(shape, (c - 10 * s, c + side * 14 * s), (38 * s, 9 * s), side * 0.25)] = 8.0
    for _ in range(rng.integers(0, 3)):
        centre = (c + rng.uniform(-0.5, 0.5) * ay, c + rng.uniform(-0.5, 0.5) * ax)
        img[_ellipse(shape, centre, rng.uniform(6, 20, 2) * s)] = rng.uniform(45, 70)
    if rng.random() < 0.6:  # sinuses or mastoid air cells near the skull
        centre = (c - 0.7 * ay, c + rng.uniform(-0.2, 0.2) * ax)
        cells = _ellipse(shape, centre, (18 * s, 30 * s))
        img[cells] = _bowel_content(rng, shape)[cells]
    _support(img, rng, c + ay, ax, s)
    return _finish(img, rng)


def _finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    body = img > -500
    img = img + np.where(body, _texture(rng, img.shape, 4.0, rng.uniform(4, 10)), 0.0)
    return gaussian_filter(img, 0.8).astype(np.float32)  # partial-volume edges


PHANTOMS = {"abdomen": abdomen, "head": head}
