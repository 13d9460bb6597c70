"""The one preprocessing function and its contract."""

from __future__ import annotations

import numpy as np
import pytest

from tfkt_edge.model.preprocess import LDCTIQAC, PreprocessContract, _resample, _resample_matrix, preprocess


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


@pytest.mark.parametrize("side", [2, 64, 500, 511, 513, 568, 616, 1024, 1031])
def test_the_banded_resample_is_the_filter_matrix(side):
    """The resize rule's band (rows, then columns) gives the full matrix product's values, shrinking and
    enlarging, on a random image and on the constant one."""
    image = np.random.default_rng(side).random((side, side), dtype=np.float32)
    matrix = _resample_matrix(side, 512)
    np.testing.assert_allclose(_resample(image, 512), matrix @ image @ matrix.T, rtol=0, atol=1e-6)
    np.testing.assert_allclose(_resample(np.full((side, side), 0.75, np.float32), 512), 0.75, rtol=0, atol=1e-6)


def test_contract_roundtrips_and_rejects_nonsense():
    assert PreprocessContract.from_json(LDCTIQAC.to_json()) == LDCTIQAC
    with pytest.raises(ValueError):
        PreprocessContract.from_json('{"hu_min": 400, "hu_max": -1000, "size": 512, "resize": "pad-to-square-with-air-then-bilinear"}')
    with pytest.raises(ValueError):
        preprocess(np.zeros((4, 4, 4)))


def test_training_and_runtime_prepare_a_dicom_slice_identically(real):
    """The corpus builder and the scoring pipeline go through the same function."""
    from tfkt_edge.pipeline.decode import decode_slice
    from tfkt_edge.train import corpus

    source = corpus.Source("abdomen", "train", "real", 0, 1, str(real["abdomen_j2k"]))
    hu, _ = corpus._source_image(source)
    training = corpus.preprocess(hu, corpus.LDCTIQAC)
    from tfkt_edge.backends import create_backend
    from tfkt_edge.dicom import scan
    from tfkt_edge.model.model_file import DEFAULT_MODEL

    backend = create_backend("onnxruntime", DEFAULT_MODEL)
    assert backend.model.contract == corpus.LDCTIQAC
    runtime = decode_slice(scan([real["abdomen_j2k"]]).series[0].slices[0], backend.model.contract)
    np.testing.assert_array_equal(training, runtime)


def test_the_reading_view_of_a_sharp_kernel_lowers_its_fine_noise_only():
    import json

    from tfkt_edge.model.preprocess import SHARP_VIEW, SHARP_VIEW_HEAD, PreprocessContract, reading_view

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:512, :512]
    anatomy = np.where((yy - 256) ** 2 + (xx - 256) ** 2 < 200**2, 0.72, 0.0).astype(np.float32)
    image = np.clip(anatomy + rng.normal(0, 0.04, anatomy.shape).astype(np.float32), 0, 1)
    contract = PreprocessContract()
    assert reading_view(image, "soft", False, contract) is image and reading_view(image, "unknown", True, contract) is image
    inside = (yy - 256) ** 2 + (xx - 256) ** 2 < 150**2
    for head, view in ((False, SHARP_VIEW), (True, SHARP_VIEW_HEAD)):
        viewed = reading_view(image, "sharp", head, contract)
        assert viewed.dtype == np.float32 and viewed.shape == image.shape
        assert abs(float(viewed[inside].mean()) - 0.72) < 0.005  # anatomy's level kept
        # White noise keeps about a quarter of its SD below the split (sigma 1 px); the rest is scaled by the view.
        assert float(viewed[inside].std()) < (0.3 + view) * float(image[inside].std())
    # A model file written before the view was trained without it: its contract keeps none.
    legacy = json.loads(contract.to_json())
    for key in ("sharp_view", "sharp_view_head", "sharp_sigma"):
        legacy.pop(key)
    old = PreprocessContract.from_json(json.dumps(legacy))
    assert old.sharp_view == old.sharp_view_head == 1.0 and reading_view(image, "sharp", False, old) is image
