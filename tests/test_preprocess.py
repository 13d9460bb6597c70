"""The one preprocessing function and its contract."""

from __future__ import annotations

import numpy as np
import pytest

from tfkt_edge.preprocess import LDCTIQAC, PreprocessContract, preprocess


def test_ldctiqac_window_maps_hu_linearly():
    hu = np.full((512, 512), -300.0)
    hu[0, :4] = [-2000, -1000, 400, 3000]
    image = preprocess(hu)
    assert image.dtype == np.float32 and image.shape == (512, 512)
    np.testing.assert_allclose(image[0, :4], [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(image[1, 1], 0.5, atol=1e-6)


def test_smaller_images_are_resampled_and_constants_kept():
    image = preprocess(np.full((128, 128), 50.0))
    assert image.shape == (512, 512)
    np.testing.assert_allclose(image, (50 + 1000) / 1400, atol=1e-5)


def test_non_square_images_are_padded_with_air_first():
    image = preprocess(np.full((256, 512), 400.0))
    assert image.shape == (512, 512)
    assert image[0, 256] == pytest.approx(0.0) and image[256, 256] == pytest.approx(1.0)


def test_contract_roundtrips_and_rejects_nonsense():
    assert PreprocessContract.from_json(LDCTIQAC.to_json()) == LDCTIQAC
    with pytest.raises(ValueError):
        PreprocessContract.from_json('{"hu_min": 400, "hu_max": -1000, "size": 512, "resize": "pad-to-square-with-air-then-bilinear"}')
    with pytest.raises(ValueError):
        preprocess(np.zeros((4, 4, 4)))


def test_training_and_runtime_prepare_a_dicom_slice_identically(real):
    """The corpus builder and the scoring pipeline go through the same function."""
    from tfkt_edge.scoring import decode_slice
    from tfkt_edge.train import corpus

    source = corpus.Source("abdomen", "train", "real", 0, 1, str(real["abdomen_j2k"]))
    hu, _ = corpus._source_image(source)
    training = corpus.preprocess(hu, corpus.LDCTIQAC)
    from tfkt_edge.backends import create_backend
    from tfkt_edge.dicom import scan
    from tfkt_edge.model_file import DEFAULT_MODEL

    backend = create_backend("onnxruntime", DEFAULT_MODEL)
    assert backend.model.contract == corpus.LDCTIQAC
    runtime = decode_slice(scan([real["abdomen_j2k"]]).series[0].slices[0], backend.model.contract)
    np.testing.assert_array_equal(training, runtime)
