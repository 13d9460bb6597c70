"""The part of one file's header the slice reader uses: its values as pydicom converts them, read once.

A `Header` is made either from the raw elements of one walk over the file (`walk.walk_header`, the common
case) or from a data set pydicom read whole (`Header.of_dataset`: Enhanced CT, DICOMDIR, deflated and
unusual files). Either way every value is pydicom's conversion of the element's bytes, so the two agree
(tests/test_walk.py holds them to it on every real file at hand).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

# The top-level elements the slice reader reads (tests/test_walk.py checks the list against slices.py).
KEPT = ("SpecificCharacterSet", "ImageType", "SOPClassUID", "SOPInstanceUID", "StudyDate", "StudyTime",
        "AccessionNumber", "Modality", "Manufacturer", "ReferringPhysicianName", "StationName", "StudyDescription",
        "SeriesDescription", "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "BodyPartExamined",
        "SliceThickness", "ProtocolName", "ConvolutionKernel", "CTDIvol", "StudyInstanceUID", "SeriesInstanceUID",
        "StudyID", "InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient", "SamplesPerPixel",
        "PhotometricInterpretation", "NumberOfFrames", "Rows", "Columns", "PixelSpacing", "BitsAllocated",
        "BitsStored", "PixelRepresentation", "RescaleIntercept", "RescaleSlope")
META_KEPT = ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID")
PIXEL_KEYWORDS = ("FloatPixelData", "DoubleFloatPixelData", "PixelData")
Kept = tuple[int, "str | None", bytes]  # an element as the walk keeps it: tag, VR (None: implicit), value bytes


class Header:
    """Values by keyword (`get`, ``in``), the file meta's UIDs (`meta`), whether the file holds pixel data
    (`has_pixels`) and, for integer pixel data, its element with the value left on disk (`pixel_element`:
    its length and offset). ``dataset`` is the data set pydicom read whole, where it did (an Enhanced CT's
    functional groups are read from it); ``directory`` says the file holds DICOMDIR records."""

    __slots__ = ("dataset", "directory", "has_pixels", "meta", "pixel_element", "values")

    def __init__(self, values: dict[str, Any], meta: dict[str, str], has_pixels: bool,
                 pixel_element: RawDataElement | DataElement | None, dataset: Dataset | None = None,
                 directory: bool = False):
        self.values, self.meta, self.has_pixels = values, meta, has_pixels
        self.pixel_element, self.dataset, self.directory = pixel_element, dataset, directory

    def get(self, keyword: str, default: Any = None) -> Any:
        return self.values.get(keyword, default)

    def __contains__(self, keyword: str) -> bool:
        return keyword in self.values

    @classmethod
    def of_dataset(cls, ds: Dataset) -> Header:
        """The header of a data set pydicom read whole (its pixel data deferred)."""
        values = {keyword: ds.get(keyword) for keyword in KEPT if keyword in ds}
        file_meta = getattr(ds, "file_meta", None)
        meta = {keyword: str(getattr(file_meta, keyword, "") or "") for keyword in META_KEPT}
        return cls(values, meta, any(keyword in ds for keyword in PIXEL_KEYWORDS),
                   ds.get_item("PixelData", keep_deferred=True) if "PixelData" in ds else None, ds,
                   "DirectoryRecordSequence" in ds)

    @classmethod
    def of_elements(cls, elements: dict[str, Kept], meta: dict[str, RawDataElement], encoding: str | list[str],
                    implicit: bool, pixels: dict[str, RawDataElement]) -> Header:
        """The header of elements by keyword, each converted as pydicom converts the raw element its reader
        would have made of it; text in ``encoding`` (the Specific Character Set's Python codecs)."""
        codecs = encoding if isinstance(encoding, str) else tuple(encoding)
        values = {keyword: converted_value(tag, vr, value, codecs, implicit) for keyword, (tag, vr, value) in elements.items()}
        meta_values = {keyword: str(converted_value(raw.tag, raw.VR, raw.value, default_encoding, False) or "")
                       for keyword, raw in meta.items()}
        return cls(values, {keyword: meta_values.get(keyword, "") for keyword in META_KEPT}, bool(pixels),
                   pixels.get("PixelData"))


# The slices of a series repeat most of their header bytes (patient, study, kernel, matrix, orientation,
# rescale): each distinct value is converted once. Values are shared between headers, so they are read, never
# changed. Only short values are remembered (every kept element of a real CT header is), so a stream of files
# with large forged values cannot grow the cache past about 4096 x CACHED_BYTES.
CACHED_BYTES = 256


def converted_value(tag: int, vr: str | None, value: bytes | None, codecs: str | tuple[str, ...], implicit: bool) -> Any:
    """pydicom's value of an element's bytes (``codecs``: the Specific Character Set's Python codecs)."""
    if value is not None and len(value) > CACHED_BYTES:
        return _converted(tag, vr, value, codecs, implicit)
    return _remembered(tag, vr, value, codecs, implicit)


def _converted(tag: int, vr: str | None, value: bytes | None, codecs: str | tuple[str, ...], implicit: bool) -> Any:
    raw = RawDataElement(BaseTag(tag), vr, 0 if value is None else len(value), value, 0, implicit, True)
    return convert_raw_data_element(raw, encoding=codecs if isinstance(codecs, str) else list(codecs)).value


_remembered = lru_cache(maxsize=4096)(_converted)
