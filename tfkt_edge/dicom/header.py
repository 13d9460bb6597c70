"""The part of one file's header the slice reader uses: its values as pydicom converts them, read once.

A `Header` is made either from the raw elements of one walk over the file (`walk.walk_header`, the common
case) or from a data set pydicom read whole (`Header.of_dataset`: Enhanced CT, DICOMDIR, deflated and
unusual files). Either way every value is what pydicom makes of the element's bytes, so the two agree
(tests/test_walk.py holds them to it on every real file at hand, and on forged values of every kind).

The walk's plain values (`plain_value`: printable ASCII text, decimal and integer strings as written,
binary numbers; every value of the real CT headers at hand) are converted here, as pydicom converts them,
without importing pydicom: its import costs about 90 ms of a one-file score's 0.3 s on a 2-core CPU. Any
other value (another character set, control characters, a number written oddly, an unexpected VR) is
pydicom's to convert, which is imported then (`dicom.lazy`).
"""

from __future__ import annotations

import math
import re
import struct
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

from tfkt_edge.dicom.lazy import import_pydicom

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

# The top-level elements the slice reader reads, by tag: keyword and the data dictionary's VR (an Implicit VR
# file's elements carry none). tests/test_walk.py checks the keywords against slices.py, and the tags and VRs
# against pydicom's data dictionary.
KEPT_TAGS = {
    0x00080005: ("SpecificCharacterSet", "CS"), 0x00080008: ("ImageType", "CS"), 0x00080016: ("SOPClassUID", "UI"),
    0x00080018: ("SOPInstanceUID", "UI"), 0x00080020: ("StudyDate", "DA"), 0x00080030: ("StudyTime", "TM"),
    0x00080050: ("AccessionNumber", "SH"), 0x00080060: ("Modality", "CS"), 0x00080070: ("Manufacturer", "LO"),
    0x00080090: ("ReferringPhysicianName", "PN"), 0x00081010: ("StationName", "SH"),
    0x00081030: ("StudyDescription", "LO"), 0x0008103E: ("SeriesDescription", "LO"), 0x00100010: ("PatientName", "PN"),
    0x00100020: ("PatientID", "LO"), 0x00100030: ("PatientBirthDate", "DA"), 0x00100040: ("PatientSex", "CS"),
    0x00180015: ("BodyPartExamined", "CS"), 0x00180050: ("SliceThickness", "DS"), 0x00181030: ("ProtocolName", "LO"),
    0x00181210: ("ConvolutionKernel", "SH"), 0x00189345: ("CTDIvol", "FD"), 0x0020000D: ("StudyInstanceUID", "UI"),
    0x0020000E: ("SeriesInstanceUID", "UI"), 0x00200010: ("StudyID", "SH"), 0x00200013: ("InstanceNumber", "IS"),
    0x00200032: ("ImagePositionPatient", "DS"), 0x00200037: ("ImageOrientationPatient", "DS"),
    0x00280002: ("SamplesPerPixel", "US"), 0x00280004: ("PhotometricInterpretation", "CS"),
    0x00280008: ("NumberOfFrames", "IS"), 0x00280010: ("Rows", "US"), 0x00280011: ("Columns", "US"),
    0x00280030: ("PixelSpacing", "DS"), 0x00280100: ("BitsAllocated", "US"), 0x00280101: ("BitsStored", "US"),
    0x00280103: ("PixelRepresentation", "US"), 0x00281052: ("RescaleIntercept", "DS"),
    0x00281053: ("RescaleSlope", "DS"),
}
META_TAGS = {0x00020002: ("MediaStorageSOPClassUID", "UI"), 0x00020003: ("MediaStorageSOPInstanceUID", "UI"),
             0x00020010: ("TransferSyntaxUID", "UI")}
PIXEL_TAGS = {0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData", 0x7FE00010: "PixelData"}
KEPT = tuple(keyword for keyword, _ in KEPT_TAGS.values())
META_KEPT = tuple(keyword for keyword, _ in META_TAGS.values())
PIXEL_KEYWORDS = tuple(PIXEL_TAGS.values())
Kept = tuple[int, "str | None", bytes]  # an element as the walk keeps it: tag, VR (None: implicit), value bytes

IMPLICIT_LE, EXPLICIT_LE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian
UNCOMPRESSED = (IMPLICIT_LE, EXPLICIT_LE, "1.2.840.10008.1.2.2", DEFLATED)  # and Explicit VR Big Endian
# Image compression syntaxes, all little endian: JPEG, JPEG-LS, JPEG 2000, HTJ2K, JPEG XL, RLE.
ENCAPSULATED = frozenset({*(f"1.2.840.10008.1.2.4.{n}" for n in (50, 51, 57, 70, 80, 81, 90, 91, 110, 111, 112, 201,
                                                                 202, 203)), "1.2.840.10008.1.2.5"})


def is_compressed(syntax: str) -> bool:
    """Whether pixel data in ``syntax`` is compressed (pydicom's UID.is_compressed, which also raises for a UID
    that is not a transfer syntax)."""
    if syntax in ENCAPSULATED or syntax in UNCOMPRESSED:
        return syntax in ENCAPSULATED
    import_pydicom()
    from pydicom.uid import UID

    return UID(syntax).is_compressed


class PixelElement(NamedTuple):
    """The pixel data element, its value left on disk: its length, and its offset in the file where the
    header reader knows it (None: pydicom read the value)."""

    length: int | None
    value_tell: int | None


class Header:
    """Values by keyword (`get`, ``in``), the file meta's UIDs (`meta`), whether the file holds pixel data
    (`has_pixels`) and, for integer pixel data, its element (`pixel_element`). ``dataset`` is the data set
    pydicom read whole, where it did (an Enhanced CT's functional groups are read from it); ``directory``
    says the file holds DICOMDIR records."""

    __slots__ = ("dataset", "directory", "has_pixels", "meta", "pixel_element", "values")

    def __init__(self, values: dict[str, Any], meta: dict[str, str], has_pixels: bool,
                 pixel_element: PixelElement | None, dataset: Dataset | None = None, directory: bool = False):
        self.values, self.meta, self.has_pixels = values, meta, has_pixels
        self.pixel_element, self.dataset, self.directory = pixel_element, dataset, directory

    def get(self, keyword: str, default: Any = None) -> Any:
        return self.values.get(keyword, default)

    def __contains__(self, keyword: str) -> bool:
        return keyword in self.values

    @classmethod
    def of_dataset(cls, ds: Dataset) -> Header:
        """The header of a data set pydicom read whole (its pixel data deferred)."""
        from pydicom.dataelem import RawDataElement

        values = {keyword: ds.get(keyword) for keyword in KEPT if keyword in ds}
        file_meta = getattr(ds, "file_meta", None)
        meta = {keyword: str(getattr(file_meta, keyword, "") or "") for keyword in META_KEPT}
        pixels = ds.get_item("PixelData", keep_deferred=True) if "PixelData" in ds else None
        element = None if pixels is None else \
            PixelElement(getattr(pixels, "length", None), pixels.value_tell if isinstance(pixels, RawDataElement) else None)
        return cls(values, meta, any(keyword in ds for keyword in PIXEL_KEYWORDS), element, ds,
                   "DirectoryRecordSequence" in ds)

    @classmethod
    def of_elements(cls, elements: dict[str, Kept], meta: dict[str, Kept], charset: Any, implicit: bool,
                    pixels: dict[str, PixelElement]) -> Header:
        """The header of elements by keyword, each converted as pydicom converts the raw element its reader
        would have made of it; ``charset``: the Specific Character Set's value (None: none)."""
        values = {keyword: converted_value(tag, vr, value, charset, implicit) for keyword, (tag, vr, value) in elements.items()}
        meta_values = {keyword: str(converted_value(tag, vr, value, None, False) or "") for keyword, (tag, vr, value) in meta.items()}
        return cls(values, {keyword: meta_values.get(keyword, "") for keyword in META_KEPT}, bool(pixels),
                   pixels.get("PixelData"))


# Plain values, converted here as pydicom converts them (pydicom.values): numbers in binary, and text whose
# bytes are printable ASCII, read alike in every character set below.
_NUMBERS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}
_SPLIT_THEN_STRIP = ("SH", "LO")  # pydicom strips each value of these; of the others, the whole
_TEXT = ("CS", "UI", "DA", "TM", "AS", "PN", "DS", "IS", *_SPLIT_THEN_STRIP)
_IN_CHARSET = ("SH", "LO", "PN")  # decoded in the file's character set; the others always as ISO 8859-1
# Character sets whose codec reads printable ASCII as ASCII; pydicom decodes text without escape sequences in
# the first of a file's character sets (pydicom.charset.decode_bytes), so only the first must be one of these.
ASCII_CHARSETS = ("", "ISO_IR 192", "GB18030", "GBK",
                  *(f"{prefix} {n}" for prefix in ("ISO_IR", "ISO 2022 IR")
                    for n in (6, 100, 101, 109, 110, 126, 127, 138, 144, 148, 166, 203)))
_PRINTABLE = re.compile(rb"[\x20-\x7e]*")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")  # at most 16 characters: DS
_INTEGER = re.compile(r"0|-?[1-9][0-9]{0,9}")  # written as Python writes it: IS
NOT_PLAIN = object()  # plain_value's answer for a value that is pydicom's to convert


class DSValue(float):
    """A DS value: a float that prints as the file wrote it, as pydicom's DSfloat does."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> DSValue:
        value = super().__new__(cls, text)
        value.text = text
        return value

    def __str__(self) -> str:
        return self.text


def _in_ascii_charset(charset: Any) -> bool:
    first = charset if charset is None or isinstance(charset, str) else (list(charset) or [None])[0]
    return first is None or first in ASCII_CHARSETS


def plain_value(vr: str, value: bytes, charset: Any) -> Any:
    """pydicom's value of a plain element's bytes; NOT_PLAIN for any other element."""
    if not value:
        return "" if vr in _TEXT and vr not in ("DS", "IS") else None if vr in _TEXT or vr in _NUMBERS else NOT_PLAIN
    if vr in _NUMBERS:
        size = struct.calcsize(_NUMBERS[vr])
        if len(value) % size:
            return NOT_PLAIN
        numbers = struct.unpack(f"<{len(value) // size}{_NUMBERS[vr]}", value)
        return numbers[0] if len(numbers) == 1 else list(numbers)
    if vr not in _TEXT or (vr in _IN_CHARSET and not _in_ascii_charset(charset)):
        return NOT_PLAIN
    stripped = value.rstrip(b"\0 ")
    if not _PRINTABLE.fullmatch(stripped):
        return NOT_PLAIN
    parts: list[Any] = stripped.decode("ascii").split("\\")
    if vr in _SPLIT_THEN_STRIP:
        parts = [part.rstrip(" ") for part in parts]
    elif vr == "DS":  # each value read as float() reads it, and printed without its spaces (DSfloat)
        parts = [part.strip(" ") for part in parts]
        if not all(len(part) <= 16 and _DECIMAL.fullmatch(part) and math.isfinite(float(part)) for part in parts):
            return NOT_PLAIN
        parts = [DSValue(part) for part in parts]
    elif vr == "IS":
        parts = [part.strip(" ") for part in parts]
        if not all(_INTEGER.fullmatch(part) and -(2**31) <= int(part) < 2**31 for part in parts):
            return NOT_PLAIN
        parts = [int(part) for part in parts]
    return parts[0] if len(parts) == 1 else parts


# The slices of a series repeat most of their header bytes (patient, study, kernel, matrix, orientation,
# rescale): each distinct value is converted once. Values are shared between headers, so they are read, never
# changed. Only short values are remembered (every kept element of a real CT header is), so a stream of files
# with large forged values cannot grow the cache past about 4096 x CACHED_BYTES.
CACHED_BYTES = 256


def converted_value(tag: int, vr: str | None, value: bytes | None, charset: Any, implicit: bool) -> Any:
    """pydicom's value of an element's bytes (``charset``: the Specific Character Set's value, None: none)."""
    if isinstance(charset, list):
        charset = tuple(charset)  # remembered by value
    if value is not None and len(value) > CACHED_BYTES:
        return _converted(tag, vr, value, charset, implicit)
    return _remembered(tag, vr, value, charset, implicit)


def _converted(tag: int, vr: str | None, value: bytes | None, charset: Any, implicit: bool) -> Any:
    known = KEPT_TAGS.get(tag) or META_TAGS.get(tag)
    plain = NOT_PLAIN if vr is None and known is None else plain_value(vr or known[1], value or b"", charset)  # type: ignore[index]
    return plain if plain is not NOT_PLAIN else _by_pydicom(tag, vr, value, charset, implicit)


def _by_pydicom(tag: int, vr: str | None, value: bytes | None, charset: Any, implicit: bool) -> Any:
    import_pydicom()
    from pydicom.charset import convert_encodings, default_encoding
    from pydicom.dataelem import RawDataElement, convert_raw_data_element
    from pydicom.tag import BaseTag

    encodings = [default_encoding] if charset is None else convert_encodings(list(charset) if isinstance(charset, tuple) else charset)
    raw = RawDataElement(BaseTag(tag), vr, 0 if value is None else len(value), value, 0, implicit, True)
    return convert_raw_data_element(raw, encoding=encodings).value


_remembered = lru_cache(maxsize=4096)(_converted)
