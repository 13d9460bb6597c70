"""The image's own noise: its estimate, texture matching, kernel variants and the label rule."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy")
pytest.importorskip("skimage")

from scipy.ndimage import gaussian_filter

from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.train.ctnoise import (
    SHARP_WINDOW,
    SOFT_WINDOW,
    KernelVariant,
    TexturedSimulator,
    label_from_visible,
    label_image,
    match_texture,
    native_noise,
    noise_kept,
    smoothing_penalty,
    visible_degradation,
)
from tfkt_edge.train.label_fit import PUBLIC_SORTED_MEANS, SliceCells, cell_labels, sorted_means, ten_of_twelve

from .conftest import data_store_files


def _flat_phantom(sigma: float, blur: float, seed: int = 0) -> np.ndarray:
    """A 40 HU disc in air with stationary noise of SD ``sigma`` and texture set by ``blur``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:256, :256]
    disc = np.where((yy - 128) ** 2 + (xx - 128) ** 2 < 110**2, 40.0, -1000.0)
    noise = gaussian_filter(rng.normal(size=disc.shape), blur) if blur else rng.normal(size=disc.shape)
    return (disc + sigma * noise / noise.std()).astype(np.float32)


@pytest.mark.parametrize("sigma", [8.0, 25.0, 60.0])
def test_native_noise_level_is_measured_on_flat_tissue(sigma):
    own = native_noise(_flat_phantom(sigma, 0.0))
    assert own.patches > 20
    assert own.sigma == pytest.approx(sigma, rel=0.1)


def test_native_nps_tells_a_soft_texture_from_a_sharp_one():
    soft, sharp = native_noise(_flat_phantom(10, 1.5)).nps, native_noise(_flat_phantom(10, 0.0)).nps
    high = slice(len(soft) // 2, None)
    assert soft[high].mean() < 0.2 * sharp[high].mean()


def test_match_texture_moves_the_spectrum_and_keeps_the_rms():
    rng = np.random.default_rng(1)
    white = rng.normal(size=(256, 256)).astype(np.float32)
    target = native_noise(_flat_phantom(10, 1.5)).nps
    shaped = match_texture(white, target)
    assert np.sqrt(np.mean(shaped**2)) == pytest.approx(np.sqrt(np.mean(white**2)), rel=1e-3)
    spectrum = np.abs(np.fft.fft2(shaped)) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(256), np.fft.fftfreq(256), indexing="ij"))
    assert spectrum[f > 0.35].mean() < 0.1 * spectrum[f < 0.1].mean()  # white noise made soft


def test_the_label_falls_with_absolute_visible_noise_and_streaks():
    values = [label_image(n, 0.0, SOFT_WINDOW) for n in np.linspace(0, 200, 40)]
    assert values[0] == pytest.approx(4.0) and all(a > b for a, b in zip(values, values[1:]))
    assert label_image(20.0, 30.0, SOFT_WINDOW) < label_image(20.0, 0.0, SOFT_WINDOW)
    # Absolute, not relative: the same added dose reads lower on a noisier image.
    assert label_image(12.0 / np.sqrt(0.25), 0, SOFT_WINDOW) > label_image(30.0 / np.sqrt(0.25), 0, SOFT_WINDOW)
    # A sharp kernel is read at a lung or bone window, where the same HU noise looks W/350 times smaller.
    assert visible_degradation(80.0, 0.0, SHARP_WINDOW) == pytest.approx(80.0 * SOFT_WINDOW / SHARP_WINDOW)
    assert label_image(80.0, 0.0, SHARP_WINDOW) > 3.0 > label_image(80.0, 0.0, SOFT_WINDOW)
    assert label_from_visible(43.66) == pytest.approx(2.0, abs=0.01)  # D_HALF: the "fair" line


def test_over_smoothing_costs_points_beyond_half_of_the_noise():
    assert smoothing_penalty(10.0, 6.0) == 0.0  # an iterative reconstruction: no penalty
    assert 0 < smoothing_penalty(10.0, 3.0) < smoothing_penalty(10.0, 1.0) <= 2.0
    # An over-denoised normal-dose image reads lower than the image itself.
    assert label_image(2.0, 0.0, SOFT_WINDOW, smoothing_penalty(1.0, 0.2)) < label_image(15.0, 0.0, SOFT_WINDOW)
    rng = np.random.default_rng(0)
    white = rng.normal(size=(128, 128))
    assert noise_kept(KernelVariant("denoise", 0.05), white) < noise_kept(KernelVariant("smooth", 0.25), white) < 1.0


def test_the_rule_reproduces_the_readers_sorted_means_on_routine_abdominal_noise():
    """The protocol's 12 cells (4 doses x 3 views) of slices with the training split's noise and streaks
    (train/label_fit.py measured them) give sorted means within 0.3 of LDCTIQAC's readers."""
    from tfkt_edge.train.ctnoise import D_HALF, SHAPE, STREAK_WEIGHT

    cells = [SliceCells("s", "train", sigma, {180: s180, 90: s90}) for sigma, s180, s90 in
             ((13.2, 15.1, 49.5), (18.4, 22.9, 57.1), (17.8, 14.1, 37.2), (19.9, 19.9, 56.5), (16.0, 19.0, 56.9),
              (26.6, 15.8, 39.3), (18.7, 17.4, 46.7), (14.4, 12.2, 39.5))]
    means = sorted_means([cell_labels(c, D_HALF, SHAPE, STREAK_WEIGHT) for c in cells])
    assert np.max(np.abs(means - np.array(PUBLIC_SORTED_MEANS))) < 0.3
    assert list(ten_of_twelve(range(12))) == pytest.approx(list(np.linspace(11, 0, 10)))


@pytest.fixture(scope="module")
def abdomen():
    ref = scan([data_store_files() / "explicit_VR-UN.dcm"]).series[0].slices[0]
    return load_hu(ref), ref.pixel_spacing


def test_kernel_variants_change_noise_not_anatomy(abdomen):
    hu, _ = abdomen
    native = native_noise(hu).sigma
    sharp, smooth = KernelVariant("sharp", 6.0).apply(hu), KernelVariant("smooth", 0.2).apply(hu)
    assert native_noise(sharp).sigma > 2 * native
    assert native_noise(smooth).sigma < 0.8 * native
    tissue = (hu > -100) & (hu < 200)
    for variant in (sharp, smooth):  # soft tissue keeps its HU; only edges and noise change
        assert abs(float(np.median(variant[tissue] - hu[tissue]))) < 10.0


def test_textured_simulator_follows_the_dose_physics_on_a_real_slice(abdomen):
    hu, pixel_mm = abdomen
    sim = TexturedSimulator(hu, pixel_mm, np.random.default_rng(0), draws=1)
    prepared = sim.prepare(hu)
    labels, rms = [], []
    for dose in (1.0, 0.5, 0.25, 0.1):
        _, label, added = sim.degrade(hu, prepared, dose, 360)
        labels.append(label)
        rms.append(added)
    assert labels[0] == pytest.approx(label_image(prepared[0].sigma, 0.0, SOFT_WINDOW)) and rms[0] == 0.0
    assert labels == sorted(labels, reverse=True) and labels[0] > labels[-1] + 1.0
    assert rms[3] == pytest.approx(prepared[0].sigma * 3.0, rel=0.02)  # sqrt(1/0.1 - 1) = 3
    _, streak_label, _ = sim.degrade(hu, prepared, 1.0, 90)
    assert streak_label < labels[0]
