"""Simulated dose taken from the routine dose, not only from each original's own: the held-out ladders' reference.

The two held-out originals of the ladders that are far quieter than routine scans of their kind (the GE lumbar
spine at 2.5 mm, the skull base at 5 mm) reach "10% dose" with the noise of a routine scan at 25-40%, when the dose
is a fraction of their own: the verdict passes them, rightly for what they show. As fractions of the routine dose
for their kernel, thickness and size (how LDCTIQAC made its doses: one photon count for every patient) they alert.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

pytest.importorskip("scipy")

from tfkt_edge.backends import create_backend
from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.model.model_file import DEFAULT_MODEL
from tfkt_edge.model.preprocess import pad_square
from tfkt_edge.pipeline.run import score_paths
from tfkt_edge.train.ctnoise import TexturedSimulator, dose_noise_rms
from tfkt_edge.train.ctsim import FULL_VIEWS
from tfkt_edge.train.ladders import _write_copy
from tfkt_edge.train.routine import routine_ratio
from tfkt_edge.verdict.policy import ALERT, PASS

from .conftest import PYDICOM_FILES


def test_the_reference_never_takes_less_noise_than_the_originals_own_dose():
    assert dose_noise_rms(10.0, 0.1) == pytest.approx(30.0)  # sqrt(1/0.1 - 1) = 3
    assert dose_noise_rms(10.0, 0.1, reference=0.5) == pytest.approx(30.0)  # a noisy original: its own dose
    assert dose_noise_rms(10.0, 0.1, reference=2.0) == pytest.approx(10.0 * np.sqrt(39.0))
    assert dose_noise_rms(10.0, 1.0, reference=2.0) == pytest.approx(10.0 * np.sqrt(3.0))


@pytest.fixture(scope="module")
def backend():
    backend = create_backend("onnxruntime", DEFAULT_MODEL)
    yield backend
    backend.close()


@pytest.mark.parametrize("name", ["spine", "skull base"])
def test_a_quiet_original_at_a_tenth_of_routine_dose_alerts(name, realct, backend, tmp_path):
    path = {"spine": realct / "fo-dicom" / "GH1308.dcm", "skull base": PYDICOM_FILES / "J2K_pixelrep_mismatch.dcm"}[name]
    (series,) = scan([path]).series
    ref = series.slices[0]
    hu = load_hu(ref)
    ratio = routine_ratio(ref, hu)
    assert ratio > 1.4, ratio  # measured: 2.0 (spine), 1.5 (skull base)
    square = pad_square(hu, -1000.0)
    top, left = (square.shape[0] - hu.shape[0]) // 2, (square.shape[1] - hu.shape[1]) // 2
    sim = TexturedSimulator(square, ref.pixel_spacing or 0.7, np.random.default_rng(11))
    prepared = sim.prepare(square)
    verdicts = {}
    for reference, scale in (("own", 1.0), ("routine", ratio)):
        image = sim.degrade(square, prepared, 0.1, FULL_VIEWS, reference=scale)[0]
        out = tmp_path / reference / "0000.dcm"
        _write_copy(ref.path, image[top : top + hu.shape[0], left : left + hu.shape[1]], out,
                    pydicom.uid.generate_uid(), 0.1)
        (result,) = score_paths([out.parent], backend).results
        assert result.domain.inside, result.domain.reasons
        verdicts[reference] = result.verdict
    assert verdicts["own"].status == PASS, verdicts["own"].reason  # why the reference matters
    assert verdicts["routine"].status == ALERT, verdicts["routine"].reason
