"""The CT degradation simulator and its labels."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skimage")

from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.train.ctsim import Degradation, SliceSimulator, label_from_noise
from tfkt_edge.train.phantoms import PHANTOMS

from .conftest import data_store_files


def test_label_mapping_is_documented_and_monotone():
    assert label_from_noise(0) == 4.0 and label_from_noise(10) == pytest.approx(3.0)
    assert label_from_noise(30) == pytest.approx(2.0) and label_from_noise(150) == pytest.approx(0.0)
    values = [label_from_noise(s) for s in np.linspace(0, 300, 50)]
    assert all(a >= b for a, b in zip(values, values[1:]))


@pytest.fixture(scope="module")
def simulator():
    path = data_store_files() / "explicit_VR-UN.dcm"
    ref = scan([path]).series[0].slices[0]
    assert ref.pixel_spacing == 0.859375
    return SliceSimulator(load_hu(ref), pixel_mm=ref.pixel_spacing)


def test_noise_grows_as_dose_falls_and_views_thin(simulator):
    rng = np.random.default_rng(0)
    by_dose = [simulator.degrade(Degradation(d), rng)[1] for d in (1.0, 0.5, 0.25, 0.1, 0.05)]
    assert by_dose[0] == 0.0 and all(a < b for a, b in zip(by_dose, by_dose[1:]))
    by_views = [simulator.degrade(Degradation(1.0, v), rng)[1] for v in (360, 180, 90, 45)]
    assert all(a < b for a, b in zip(by_views, by_views[1:]))


def test_quarter_dose_noise_is_clinically_plausible(simulator):
    _, sigma = simulator.degrade(Degradation(0.25), np.random.default_rng(1))
    assert 10 < sigma < 40  # HU added in the abdomen; see docs/simulator.md


def test_degradation_is_deterministic_with_a_seed(simulator):
    a, _ = simulator.degrade(Degradation(0.1, 120), np.random.default_rng(3))
    b, _ = simulator.degrade(Degradation(0.1, 120), np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("family", sorted(PHANTOMS))
def test_phantoms_are_deterministic_and_anatomical(family):
    a = PHANTOMS[family](np.random.default_rng(5))
    b = PHANTOMS[family](np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (512, 512) and a.min() < -900 and a.max() > 300
