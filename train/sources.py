"""Real clinical CT slices that ship inside installed packages (no download)."""

from __future__ import annotations

from pathlib import Path


def _pydicom_files() -> Path:
    import pydicom

    return Path(pydicom.__file__).parent / "data" / "test_files"


def _pydicom_data_files() -> Path:
    import data_store  # the pydicom-data package

    return Path(data_store.__file__).parent / "data"


def real_ct_slices() -> dict[str, Path]:
    """Distinct 512x512 (and one 128x128) clinical CT slices, by anatomy."""
    return {
        "head-693": _pydicom_data_files() / "693_UNCR.dcm",
        "neck-spine": _pydicom_data_files() / "bad_sequence.dcm",
        "abdomen-pancreas": _pydicom_data_files() / "explicit_VR-UN.dcm",
        "skull-base": _pydicom_files() / "J2K_pixelrep_mismatch.dcm",
        "chest-small": _pydicom_files() / "CT_small.dcm",
    }
