"""The image's own noise: its estimate, texture matching, kernel variants and the dose-relative label."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy")
pytest.importorskip("skimage")

from scipy.ndimage import gaussian_filter

from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.train.ctnoise import (
    KernelVariant,
    TexturedSimulator,
    dose_noise_rms,
    label_from_ratio,
    match_texture,
    native_noise,
)

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


def test_label_anchors_and_monotone_in_added_noise():
    assert label_from_ratio(0.0, 12.0) == 4.0
    for dose, label in ((0.5, 3.557), (0.25, 2.346), (0.2, 1.976), (0.1, 1.141), (0.05, 0.685), (0.02, 0.383)):
        assert label_from_ratio(dose_noise_rms(12.0, dose), 12.0) == pytest.approx(label, abs=2e-3)
    # Dose-relative: the same dose gives the same label whatever the image's own noise (kernel).
    assert label_from_ratio(dose_noise_rms(40.0, 0.25), 40.0) == pytest.approx(label_from_ratio(dose_noise_rms(9.0, 0.25), 9.0))
    values = [label_from_ratio(s, 12.0) for s in np.linspace(0, 200, 40)]
    assert all(a >= b for a, b in zip(values, values[1:]))


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
    assert labels[0] == 4.0 and rms[0] == 0.0
    assert labels == sorted(labels, reverse=True)
    assert rms[3] == pytest.approx(prepared[0].sigma * 3.0, rel=0.02)  # sqrt(1/0.1 - 1) = 3
    _, streak_label, _ = sim.degrade(hu, prepared, 1.0, 90)
    assert streak_label < 4.0
