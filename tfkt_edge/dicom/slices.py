"""Header reading: one DICOM file -> the CT slices (frames) it holds, or a skip reason."""

from __future__ import annotations

import math
import re
from collections.abc import MutableSequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import tfkt_edge.dicom.reasons as reasons
from tfkt_edge.dicom.header import EXPLICIT_LE, IMPLICIT_LE, Header, PixelElement, is_compressed
from tfkt_edge.dicom.lazy import import_pydicom
from tfkt_edge.dicom.walk import walk_header

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
# Large elements (pixel data above all) are left on disk while headers are read.
_DEFER = 4096
# Below this a slice holds too little anatomy and noise texture to judge (CT is 256-1024).
MIN_MATRIX = 64
# Beyond these a header is not a CT image but an error or an attack (a 999999999-frame claim).
MAX_MATRIX = 4096
MAX_FRAMES = 20000
MAX_RESCALE = 1e6


@dataclass(frozen=True)
class SliceRef:
    """One scorable 2-D image: a single-frame CT file or one frame of an Enhanced CT."""

    path: Path
    frame: int | None
    sop_instance_uid: str
    series_instance_uid: str
    series_description: str
    modality: str
    instance_number: int | None
    position: float | None  # along the slice normal, mm
    slope: float
    intercept: float
    rows: int
    columns: int
    kernel: str
    pixel_spacing: float | None  # row spacing, mm
    # Acquisition facts for the domain check and per-protocol baselines (defaults: not recorded).
    thickness: float | None = None  # SliceThickness, mm
    body_part: str = ""
    manufacturer: str = ""
    station: str = ""
    phantom_header: bool = False  # a phantom or QA word in the patient, study, series or protocol text
    ctdi_vol: float | None = None  # CTDIvol (0018,9345), mGy, where the scanner writes it
    axial: bool | None = None  # the slice normal lies along the patient axis (None: no orientation in the header)
    # Who and what the series belongs to, so an alert can be placed on the console and in the archive.
    study_instance_uid: str = ""
    patient_id: str = ""
    patient_name: str = ""
    accession_number: str = ""
    study_date: str = ""
    # The rest of the patient and study modules, for the DICOM SR that joins the study.
    study_time: str = ""
    study_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    referring_physician_name: str = ""
    # Where the stored values of uncompressed little-endian pixel data lie in the file, so decoding is one
    # read instead of a second parse of the header (None: decode through pydicom).
    pixel_offset: int | None = None
    pixel_dtype: str = ""  # numpy dtype of the stored values, e.g. "<i2"
    bits_stored: int = 0
    file_stamp: tuple[int, int] = (0, 0)  # size and mtime (ns) when the header was read: the offset holds for that file only
    transfer_syntax: str = ""  # the file meta's TransferSyntaxUID: which decoders can read its pixels


@dataclass(frozen=True)
class Skip:
    path: Path
    reason: str
    series_uid: str = ""  # the file's series, where its header was read (`reasons.loses_slice`: is the series short of it?)


def _read(path: Path) -> Header | Skip:
    walked = walk_header(path)  # the plain case in one pass over the header (dicom/walk.py)
    if walked is not None:
        return walked
    import_pydicom()
    import pydicom
    from pydicom.errors import InvalidDicomError

    from tfkt_edge.dicom.deflated import read_dataset

    try:  # a deflated file within a bound: never a deflate bomb whole
        return Header.of_dataset(read_dataset(path, defer_size=_DEFER))
    except InvalidDicomError:
        pass
    except Exception as exc:  # a truncated or corrupt header: never a traceback
        return Skip(path, reasons.UNREADABLE.format(detail=reasons.one_line(exc)))
    # Old files sometimes lack the 128-byte preamble; accept them only if they
    # parse into something that is recognisably an image object.
    try:
        ds = pydicom.dcmread(path, defer_size=_DEFER, force=True)
        if "SOPClassUID" in ds and "Modality" in ds:
            return Header.of_dataset(ds)
    except Exception:
        pass
    return Skip(path, reasons.NOT_DICOM)


def _first(ds: Dataset, *keywords: str) -> Dataset | None:
    """Follow a chain of sequences, taking the first item of each."""
    node: Dataset | None = ds
    for keyword in keywords:
        seq = node.get(keyword) if node is not None else None
        if not seq:
            return None
        node = seq[0]
    return node


# Plain floats: numpy's cross product and norm cost 50 us a slice on three-element vectors.
def _normal(orientation) -> tuple[float, float, float] | None:
    if orientation is None or len(orientation) != 6:
        return None
    rx, ry, rz, cx, cy, cz = (float(v) for v in orientation)
    normal = (ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx)
    norm = math.sqrt(sum(v * v for v in normal))
    return (normal[0] / norm, normal[1] / norm, normal[2] / norm) if norm > 1e-6 else None


def _is_axial(normal: tuple[float, float, float] | None) -> bool | None:
    return None if normal is None else abs(normal[2]) > 0.8


def _project(position, normal: tuple[float, float, float] | None) -> float | None:
    if position is None or normal is None or len(position) != 3:
        return None
    return sum(float(p) * n for p, n in zip(position, normal))


def _text(value) -> str:
    """A possibly multi-valued string element as one string."""
    if value is None:
        return ""
    if isinstance(value, (MutableSequence, tuple)):  # pydicom's MultiValue, or a list
        return "\\".join(str(v) for v in value)
    return str(value)  # str, PersonName (which iterates by character), numbers


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _classify(ds: Header) -> str | None:
    """The skip reason for a header, or None when it holds CT images to score."""
    media_sop = ds.meta["MediaStorageSOPClassUID"]
    sop = _sop_class(ds)
    if MEDIA_DIRECTORY in (sop, media_sop) or ds.directory:
        return reasons.DICOMDIR
    if not sop:
        return reasons.UNREADABLE.format(detail="no SOP Class UID: truncated, or not an image object")
    modality = str(ds.get("Modality", "") or "missing")
    if modality != "CT":
        return reasons.NOT_CT.format(modality=modality)
    if sop.startswith(SECONDARY_CAPTURE_PREFIX):
        return reasons.SECONDARY_CAPTURE
    if sop not in (CT_IMAGE, ENHANCED_CT_IMAGE):
        return reasons.UNSUPPORTED_SOP.format(sop=_uid_name(sop) if sop else "missing")
    image_type = [v.strip().upper() for v in _text(ds.get("ImageType")).split("\\")]
    if "LOCALIZER" in image_type:
        return reasons.LOCALIZER
    if not ds.has_pixels:
        return reasons.NO_PIXELS
    rows, columns = _int_or_none(ds.get("Rows")) or 0, _int_or_none(ds.get("Columns")) or 0
    if min(rows, columns) < MIN_MATRIX:
        return reasons.TOO_SMALL.format(rows=rows, columns=columns, minimum=MIN_MATRIX)
    if max(rows, columns) > MAX_MATRIX:
        return reasons.UNREADABLE.format(detail=f"{rows}x{columns} exceeds {MAX_MATRIX}x{MAX_MATRIX}")
    samples = _int_or_none(ds.get("SamplesPerPixel")) or 1
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if samples != 1 or not photometric.startswith("MONOCHROME"):
        return reasons.NOT_GREYSCALE.format(detail=f"{photometric}, {samples} samples per pixel")
    return None


def _uid_name(uid: str) -> str:
    """The UID's name in pydicom's dictionary (the UID itself where it has none)."""
    import_pydicom()
    from pydicom.uid import UID

    return UID(uid).name


class _Refused(ValueError):
    """A header value that makes the file unusable; its message is the whole skip reason."""


def _sop_class(ds: Header) -> str:
    """SOPClassUID, else the file meta's MediaStorageSOPClassUID (some anonymisers blank the former)."""
    own = str(ds.get("SOPClassUID", "") or "")
    if own or "Modality" not in ds:  # a header cut short before Modality is unreadable, not anonymised
        return own
    return ds.meta["MediaStorageSOPClassUID"]


def _sop_instance(ds: Header) -> str:
    return str(ds.get("SOPInstanceUID", "") or "") or ds.meta["MediaStorageSOPInstanceUID"]


# Phantom and QA words, matched as whole words (or phrases of whole words): "QA" names a QA scan, the
# patient KHAN^FAIQA does not; "ACR" the ACR phantom, a protocol "PELVIS SACR 3MM" does not.
PHANTOM_WORDS = ("PHANTOM", "CATPHAN", "QA", "QC", "QUALITY ASSURANCE", "QUALITY CONTROL", "WATER CYLINDER", "WATER CYL",
                 "CALIBRATION", "ACR", "NPS PHANTOM")
_PHANTOM = re.compile(r"(?<![A-Z0-9])(?:" + "|".join(re.escape(w) for w in PHANTOM_WORDS) + r")(?![A-Z0-9])")


def _acquisition(ds: Header) -> dict:
    """Header facts for the domain check; each may be absent."""
    text = " ".join(_text(ds.get(k)) for k in ("PatientName", "PatientID", "StudyDescription", "SeriesDescription",
                                                "ProtocolName", "BodyPartExamined")).upper() + " "
    thickness = ds.get("SliceThickness")
    try:
        thickness = float(thickness) if thickness not in (None, "") else None
    except (TypeError, ValueError):
        thickness = None
    try:
        ctdi = float(ds.get("CTDIvol")) if ds.get("CTDIvol") not in (None, "") else None
    except (TypeError, ValueError):
        ctdi = None
    return dict(thickness=thickness if thickness is None or np.isfinite(thickness) else None,
                ctdi_vol=ctdi if ctdi is not None and np.isfinite(ctdi) and 0 < ctdi < 1e4 else None,
                body_part=_text(ds.get("BodyPartExamined")).strip().upper(),
                manufacturer=_text(ds.get("Manufacturer")).strip(),
                station=_text(ds.get("StationName")).strip(),
                phantom_header=_PHANTOM.search(text) is not None,
                study_instance_uid=_text(ds.get("StudyInstanceUID")).strip(),
                patient_id=_text(ds.get("PatientID")).strip(),
                patient_name=_text(ds.get("PatientName")).strip(),
                accession_number=_text(ds.get("AccessionNumber")).strip(),
                study_date=_text(ds.get("StudyDate")).strip(),
                study_time=_text(ds.get("StudyTime")).strip(),
                study_id=_text(ds.get("StudyID")).strip(),
                patient_birth_date=_text(ds.get("PatientBirthDate")).strip(),
                patient_sex=_text(ds.get("PatientSex")).strip(),
                referring_physician_name=_text(ds.get("ReferringPhysicianName")).strip())


def _rescale(slope_value, intercept_value) -> tuple[float, float]:
    """Slope and intercept of the modality LUT (1 and 0 when absent); _Refused when unusable."""
    slope = 1.0 if slope_value in (None, "") else float(slope_value)
    intercept = 0.0 if intercept_value in (None, "") else float(intercept_value)
    if not (np.isfinite(slope) and np.isfinite(intercept)) or slope == 0.0 or abs(slope) > MAX_RESCALE \
            or abs(intercept) > MAX_RESCALE:
        raise _Refused(reasons.BAD_RESCALE.format(detail=f"slope {slope_value}, intercept {intercept_value}"))
    return slope, intercept


def _check_pixel_size(ds: Header, frames: int) -> PixelElement | None:
    """For uncompressed pixel data, its length must be what Rows x Columns x frames x bytes needs.

    Returns the pixel data element, still on disk, when its length was checked (None otherwise)."""
    syntax = ds.meta["TransferSyntaxUID"]
    if not syntax or is_compressed(syntax):
        return None
    raw = ds.pixel_element
    actual = None if raw is None else raw.length
    if actual is None or actual == 0xFFFFFFFF:
        return None
    bits = _int_or_none(ds.get("BitsAllocated")) or 16
    expected = int(ds.get("Rows")) * int(ds.get("Columns")) * frames * max(1, bits // 8)
    if not expected <= actual <= expected + 1:  # one pad byte keeps the length even
        raise _Refused(reasons.PIXEL_SIZE.format(actual=actual, expected=expected))
    return raw


def _raw_pixels(ds: Header, path: Path, checked: PixelElement | None) -> dict:
    """File offset, dtype and bits stored of one-sample, little-endian pixel data whose length
    `_check_pixel_size` found to be what the header says (``checked``); {} for anything else (pydicom
    decodes those)."""
    syntax = ds.meta["TransferSyntaxUID"]
    if checked is None or checked.value_tell is None or syntax not in (EXPLICIT_LE, IMPLICIT_LE) \
            or (_int_or_none(ds.get("SamplesPerPixel")) or 1) != 1:
        return {}
    allocated, representation = _int_or_none(ds.get("BitsAllocated")), _int_or_none(ds.get("PixelRepresentation")) or 0
    stored = _int_or_none(ds.get("BitsStored")) or allocated
    if allocated not in (8, 16) or representation not in (0, 1) or stored is None or not 1 <= stored <= allocated:
        return {}
    return dict(pixel_offset=checked.value_tell, pixel_dtype=f"<{'iu'[representation == 0]}{allocated // 8}",
                bits_stored=stored, file_stamp=file_stamp(path))


def file_stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def _spacing(value) -> float | None:
    try:
        return float(value[0]) if value else None
    except (TypeError, ValueError, IndexError):
        return None


def _single_frame(path: Path, ds: Header, common: dict, checked: PixelElement | None) -> list[SliceRef]:
    normal = _normal(ds.get("ImageOrientationPatient"))
    slope, intercept = _rescale(ds.get("RescaleSlope"), ds.get("RescaleIntercept"))
    return [
        SliceRef(
            path=path,
            frame=None,
            pixel_spacing=_spacing(ds.get("PixelSpacing")),
            position=_project(ds.get("ImagePositionPatient"), normal),
            axial=_is_axial(normal),
            slope=slope,
            intercept=intercept,
            **_raw_pixels(ds, path, checked),
            **common,
        )
    ]


def _enhanced_frames(path: Path, ds: Header, common: dict) -> list[SliceRef]:
    """Enhanced CT: rescale, orientation and position per frame, shared groups as default (read from the
    data set pydicom read whole: the walk hands these files back)."""
    whole = ds.dataset
    shared = _first(whole, "SharedFunctionalGroupsSequence") if whole is not None else None
    per_frame = (whole.get("PerFrameFunctionalGroupsSequence") if whole is not None else None) or []
    n_frames = _int_or_none(ds.get("NumberOfFrames"))
    if n_frames is None or not 1 <= n_frames <= MAX_FRAMES or (per_frame and len(per_frame) != n_frames):
        raise _Refused(reasons.BAD_FRAMES.format(
            frames=ds.get("NumberOfFrames"), detail=f"{len(per_frame)} per-frame functional groups, at most {MAX_FRAMES} frames"))
    _check_pixel_size(ds, n_frames)
    refs = []
    for index in range(n_frames):
        frame_groups = per_frame[index] if index < len(per_frame) else None

        def lookup(sequence: str, keyword: str, default=None, frame_groups=frame_groups):
            for groups in (frame_groups, shared):
                item = _first(groups, sequence) if groups is not None else None
                if item is not None and keyword in item:
                    return item.get(keyword)
            return default

        normal = _normal(lookup("PlaneOrientationSequence", "ImageOrientationPatient"))
        slope, intercept = _rescale(lookup("PixelValueTransformationSequence", "RescaleSlope"),
                                    lookup("PixelValueTransformationSequence", "RescaleIntercept"))
        refs.append(
            SliceRef(
                path=path,
                frame=index,
                position=_project(lookup("PlanePositionSequence", "ImagePositionPatient"), normal),
                axial=_is_axial(normal),
                pixel_spacing=_spacing(lookup("PixelMeasuresSequence", "PixelSpacing")),
                slope=slope,
                intercept=intercept,
                **common,
            )
        )
    return refs


def read_slices(path: Path) -> list[SliceRef] | Skip:
    """Read one file's header and return its CT slices, or why it is skipped.

    Never raises for bad input: every failure becomes a Skip with a one-line reason.
    """
    ds = _read(path)
    if isinstance(ds, Skip):
        return ds
    try:
        reason = _classify(ds)
        if reason is not None:
            return Skip(path, reason, _series_uid(ds))
        common = dict(
            sop_instance_uid=_sop_instance(ds),
            series_instance_uid=str(ds.get("SeriesInstanceUID", "") or f"no-series-uid:{path.parent}"),
            series_description=str(ds.get("SeriesDescription", "") or ""),
            modality="CT",
            instance_number=_int_or_none(ds.get("InstanceNumber")),
            rows=int(ds.get("Rows")),
            columns=int(ds.get("Columns")),
            kernel=_text(ds.get("ConvolutionKernel")),
            transfer_syntax=ds.meta["TransferSyntaxUID"],
            **_acquisition(ds),
        )
        if _sop_class(ds) == ENHANCED_CT_IMAGE:
            return _enhanced_frames(path, ds, common)
        frames = ds.get("NumberOfFrames")
        if frames not in (None, "") and _int_or_none(frames) != 1:  # decoding would size its array by the claim
            raise _Refused(reasons.BAD_FRAMES.format(frames=frames, detail="a CT Image Storage instance holds one frame"))
        return _single_frame(path, ds, common, _check_pixel_size(ds, 1))
    except _Refused as exc:
        return Skip(path, str(exc), _series_uid(ds))
    except Exception as exc:  # malformed values (bad VR, missing Rows...): a reason, not a traceback
        return Skip(path, reasons.UNREADABLE.format(detail=reasons.one_line(exc)), _series_uid(ds))


def _series_uid(ds: Header) -> str:
    try:
        return str(ds.get("SeriesInstanceUID", "") or "")
    except Exception:
        return ""
