"""Shared fixtures: the real CT files shipped by pydicom and pydicom-data."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _cuda_missing() -> str | None:
    try:
        import torch
    except ImportError:
        return "needs PyTorch"
    return None if torch.cuda.is_available() else "needs a CUDA GPU (none visible to PyTorch)"


def _tensorrt_missing() -> str | None:
    try:
        import pycuda.driver  # noqa: F401
        import tensorrt  # noqa: F401
    except ImportError as exc:
        return f"needs TensorRT and pycuda ({exc.name} is not installed)"
    return _cuda_missing()


def _nvimgcodec_missing() -> str | None:
    try:
        import nvidia.nvimgcodec  # noqa: F401
    except ImportError:
        return "needs nvImageCodec (pip install nvidia-nvimgcodec-cu12[all]) and a CUDA GPU"
    return _cuda_missing()


def pytest_collection_modifyitems(config, items):
    """Tests marked cuda, tensorrt or nvimgcodec skip, saying why, where those are absent."""
    reasons = {"cuda": _cuda_missing, "tensorrt": _tensorrt_missing, "nvimgcodec": _nvimgcodec_missing}
    found: dict[str, str | None] = {}
    for item in items:
        for marker, probe in reasons.items():
            if marker in item.keywords:
                if marker not in found:
                    found[marker] = probe()
                if found[marker]:
                    item.add_marker(pytest.mark.skip(reason=found[marker]))


def data_store_files() -> Path:
    import data_store

    return Path(data_store.__file__).parent / "data"


@pytest.fixture(autouse=True)
def _quiet_pydicom():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="session")
def real() -> dict[str, Path]:
    """Real clinical CT files by what they exercise."""
    store = data_store_files()
    return {
        "explicit_le": store / "693_UNCR.dcm",
        "j2k_lossless": store / "693_J2KR.dcm",
        "j2k_lossy": PYDICOM_FILES / "693_J2KI.dcm",
        "jpeg_lossless": store / "bad_sequence.dcm",
        "abdomen_j2k": store / "explicit_VR-UN.dcm",
        "enhanced_ct": store / "eCT_Supplemental.dcm",
        "ct_small": PYDICOM_FILES / "CT_small.dcm",
        "skull_base_heldout": PYDICOM_FILES / "J2K_pixelrep_mismatch.dcm",  # never seen in training
        "mr": PYDICOM_FILES / "MR_small.dcm",
        "rgb": data_store_files() / "SC_rgb.dcm",
        "dicomdir": PYDICOM_FILES / "dicomdirtests" / "DICOMDIR",
    }


@pytest.fixture
def copy_to(tmp_path):
    """Copy a file into a fresh folder under tmp_path and return the copy's path."""

    def copy(source: Path, name: str | None = None, folder: str = "in") -> Path:
        target = tmp_path / folder / (name or source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target

    return copy


def write_series(source: Path, folder: Path, positions, instances, orientation=None, series_uid=None) -> list[Path]:
    """Copies of a real slice as a series with the given positions and instance numbers."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    ds = pydicom.dcmread(source)
    iop = orientation or [float(v) for v in ds.ImageOrientationPatient]
    normal = np.cross(iop[:3], iop[3:])
    paths = []
    for i, (pos, number) in enumerate(zip(positions, instances)):
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.ImageOrientationPatient = iop
        if pos is None:
            ds.pop("ImagePositionPatient", None)
        else:
            ds.ImagePositionPatient = list(np.array([10.0, -20.0, 0.0]) + pos * normal)
        ds.InstanceNumber = number
        paths.append(folder / f"file{i:02d}.dcm")
        ds.save_as(paths[-1])
    return paths


@pytest.fixture(scope="session")
def realct() -> Path:
    """The shared real multi-vendor CT folder (../shared/realct beside the checkout, or $TFKT_REALCT)."""
    from tfkt_edge.train.realct import realct_folder

    folder = realct_folder()
    if folder is None:
        pytest.skip("needs the shared real CT folder ../shared/realct (or TFKT_REALCT)")
    return folder


from .node import server  # noqa: E402, F401  (the fixture of a real `tfkt-edge serve` process, for every module)
