"""Lossless JPEG 2000 and JPEG on the GPU (nvImageCodec) only where it decodes exactly as the CPU does."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.pixels.decoders import JPEG2000LosslessDecoder, JPEGLosslessDecoder

from tfkt_edge.dicom import read_slices
from tfkt_edge.dicom.gpu_decoding import SWITCH, _remove, _try_nvimgcodec, enable_plugin, preferred_plugin
from tfkt_edge.dicom.pixels import load_stored
from tfkt_edge.examples import EXAMPLES

from . import decoding_plugins

EXAMPLE = EXAMPLES / "clinical" / "abdomen.dcm"


@pytest.fixture
def plugin_label():
    label = "0.0+test"
    yield label
    _remove(label)


def test_a_plugin_that_decodes_exactly_is_asked_first_for_the_lossless_syntaxes(plugin_label, real):
    cpu = load_stored(read_slices(EXAMPLE)[0])
    status = enable_plugin(plugin_label, ("tests.decoding_plugins", "exact"), "the test plugin")
    assert status.enabled, status.detail
    assert preferred_plugin(str(JPEG2000LosslessDecoder.UID)) == plugin_label
    assert plugin_label in JPEG2000LosslessDecoder.available_plugins and plugin_label in JPEGLosslessDecoder.available_plugins
    before = decoding_plugins.frames["exact"]
    assert np.array_equal(load_stored(read_slices(EXAMPLE)[0]), cpu)
    load_stored(read_slices(real["jpeg_lossless"])[0])
    assert decoding_plugins.frames["exact"] == before + 2  # the J2K example and the JPEG lossless slice
    rle = read_slices(EXAMPLES / "degraded" / "abdomen_degraded.dcm")[0]  # RLE: not the plugin's, decoded by pydicom's
    assert preferred_plugin(rle.transfer_syntax) == ""
    assert load_stored(rle).shape == (rle.rows, rle.columns)
    assert decoding_plugins.frames["exact"] == before + 2


def test_a_plugin_that_decodes_differently_is_refused_and_the_cpu_decodes(plugin_label):
    cpu = load_stored(read_slices(EXAMPLE)[0])
    status = enable_plugin(plugin_label, ("tests.decoding_plugins", "off_by_one"), "the test plugin")
    assert not status.enabled
    assert status.detail == ("the test plugin decoded the bundled JPEG 2000 example differently from the CPU "
                             "decoders: not used")
    assert plugin_label not in JPEG2000LosslessDecoder.available_plugins
    assert preferred_plugin(str(JPEG2000LosslessDecoder.UID)) == ""
    before = decoding_plugins.frames["off_by_one"]
    assert np.array_equal(load_stored(read_slices(EXAMPLE)[0]), cpu)
    assert decoding_plugins.frames["off_by_one"] == before


def test_a_plugin_that_cannot_be_imported_stays_off(plugin_label):
    status = enable_plugin(plugin_label, ("tests.no_such_module", "decode"), "the missing plugin")
    assert not status.enabled and status.detail.startswith("the missing plugin is not usable: ")
    assert plugin_label not in JPEG2000LosslessDecoder.available_plugins


def test_gpu_decoding_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(SWITCH, "off")
    assert _try_nvimgcodec().detail == f"turned off ({SWITCH})"


def test_without_nvimagecodec_the_reason_says_how_to_install_it():
    try:
        import nvidia.nvimgcodec  # noqa: F401
    except ImportError:
        status = _try_nvimgcodec()
        assert not status.enabled and "pip install 'nvidia-nvimgcodec-cu12[all]'" in status.detail
    else:
        pytest.skip("nvImageCodec is installed here")


@pytest.mark.nvimgcodec
def test_nvimagecodec_decodes_the_example_on_the_gpu_and_scores_do_not_change(tmp_path):
    from tfkt_edge.backends import create_backend
    from tfkt_edge.bench.benchmark import write_series
    from tfkt_edge.pipeline.run import score_paths

    status = _try_nvimgcodec()
    assert status.enabled, status.detail
    write_series(tmp_path, 8, decompress=False)  # JPEG 2000 lossless copies
    backend = create_backend("onnxruntime")
    gpu = score_paths([tmp_path], backend, workers=2, decoders="processes")  # each process enables nvImageCodec
    cpu = score_paths([tmp_path], backend, workers=2, decoders="threads")
    np.testing.assert_array_equal(gpu.results[0].scores, cpu.results[0].scores)


@pytest.mark.nvimgcodec
def test_nvimagecodec_decodes_every_real_lossless_file_exactly_as_the_cpu():
    """The bundled example, pydicom's own test files and, where present, the shared real CT folder."""
    from pydicom import dcmread
    from pydicom.pixels import pixel_array
    from pydicom.uid import JPEG2000Lossless, JPEGLossless, JPEGLosslessSV1

    from tfkt_edge.dicom.gpu_decoding import NVIMGCODEC_LABEL
    from tfkt_edge.train.realct import realct_folder

    from .conftest import PYDICOM_FILES

    status = _try_nvimgcodec()
    assert status.enabled, status.detail
    shared = realct_folder()
    candidates = [EXAMPLE, *sorted(PYDICOM_FILES.glob("*.dcm")), *(sorted(shared.rglob("*.dcm")) if shared else [])]
    lossless = []
    for path in candidates:
        try:
            header = dcmread(path, stop_before_pixels=True)
            syntax, photometric = header.file_meta.TransferSyntaxUID, str(header.get("PhotometricInterpretation", ""))
        except Exception:
            continue
        if syntax in (JPEG2000Lossless, JPEGLossless, JPEGLosslessSV1) and photometric.startswith("MONOCHROME"):
            lossless.append(path)  # greyscale, as CT is
    assert len(lossless) > 1
    try:
        for path in lossless:
            try:
                cpu = pixel_array(path, index=0)
            except Exception:  # a file pydicom's own decoders refuse is no test of the GPU's
                continue
            np.testing.assert_array_equal(pixel_array(path, index=0, decoding_plugin=NVIMGCODEC_LABEL), cpu, err_msg=str(path))
    finally:
        _remove(NVIMGCODEC_LABEL)
