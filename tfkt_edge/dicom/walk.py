"""One walk over a plain file's header, keeping only the elements the slice reader uses.

pydicom's reader parses every element of a header and every sequence of undefined length in it (private
sequences, referenced images, dose and contrast modules), and its data set then looks each value up through
several layers: 1.1 ms a file for the slice reader on the real CT files at hand, on a 2-core CPU, a third of
the model's time for the slice. The slice reader (`slices.read_slices`) looks at about forty top-level
elements. Here one pass over the bytes skips everything else, sequences included, and keeps of those elements
the tag, VR and bytes pydicom's own reader would have kept, converted as pydicom converts them
(`header.Header.of_elements`; without importing pydicom, for plain values).

Only the plain case is walked: a Part 10 file (preamble and "DICM") in Implicit or Explicit VR Little Endian,
or an encapsulated (compressed) syntax, with valid VRs, ascending tags and no Enhanced CT functional groups
or directory records. Anything else returns None and pydicom reads the file, as it always did.
"""

from __future__ import annotations

import struct
from pathlib import Path

from tfkt_edge.dicom.header import (
    ENCAPSULATED,
    EXPLICIT_LE,
    IMPLICIT_LE,
    KEPT_TAGS,
    META_TAGS,
    PIXEL_TAGS,
    Header,
    Kept,
    PixelElement,
    converted_value,
)

_KEPT = {tag: keyword for tag, (keyword, _) in KEPT_TAGS.items()}
_META_KEPT = {tag: keyword for tag, (keyword, _) in META_TAGS.items()}
_HANDED_BACK = frozenset((0x52009229, 0x52009230, 0x00041220))  # Shared and Per-frame Functional Groups, Directory Records
_PIXELS = min(PIXEL_TAGS)  # Float, Double Float and Pixel Data (7FE0,0008-0010): the walk ends at the first
_FIRST_READ = 1 << 16  # most CT headers end within it; a longer one is read whole
_MAX_HEADER = 1 << 26  # a header that does not end within 64 MiB is pydicom's to judge
_MAX_DEPTH = 12  # nested sequences deeper than this are pydicom's
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD

# Explicit VRs with a 2-byte length, and with a reserved field and a 4-byte length (PS3.5 7.1.2).
_SHORT = frozenset(vr.encode() for vr in ("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN",
                                          "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US"))
_LONG = frozenset(vr.encode() for vr in ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"))
_VR_TEXT = {vr: vr.decode() for vr in _SHORT | _LONG}
_EXPLICIT = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHL")
_LENGTH = struct.Struct("<L")


class _Unwalked(Exception):
    """The file is not the plain case; pydicom reads it."""


class _Short(Exception):
    """The header runs past the bytes read so far."""


class _Walker:
    """Elements from a buffer: explicit or implicit VR, little endian."""

    def __init__(self, data: bytes, whole: bool):
        self.data, self.end, self.whole = data, len(data), whole  # whole: the buffer is the whole file

    def element(self, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
        """(tag, VR or None, value length, value offset) of the element at ``pos``."""
        if pos + 8 > self.end:
            raise _Short
        if implicit:
            group, elem, length = _IMPLICIT.unpack_from(self.data, pos)
            return group << 16 | elem, None, length, pos + 8
        group, elem, vr, length = _EXPLICIT.unpack_from(self.data, pos)
        tag = group << 16 | elem
        if vr in _SHORT:
            return tag, vr, length, pos + 8
        if vr in _LONG:
            if pos + 12 > self.end:
                raise _Short
            return tag, vr, _LENGTH.unpack_from(self.data, pos + 8)[0], pos + 12
        if group == 0xFFFE:  # item and delimiter tags carry no VR in either encoding
            return tag, None, _LENGTH.unpack_from(self.data, pos + 4)[0], pos + 8
        raise _Unwalked(f"unknown VR {vr!r}")

    def skip_items(self, pos: int, implicit: bool, depth: int) -> int:
        """Past an undefined-length value (sequence items or encapsulated fragments) starting at ``pos``."""
        if depth > _MAX_DEPTH:
            raise _Unwalked("sequences nested too deep")
        while True:
            if pos + 8 > self.end:
                raise _Short
            group, elem, length = _IMPLICIT.unpack_from(self.data, pos)
            tag, pos = group << 16 | elem, pos + 8
            if tag == _SEQUENCE_END:
                return pos
            if tag != _ITEM:
                raise _Unwalked(f"({group:04X},{elem:04X}) where an item was expected")
            pos = pos + length if length != _UNDEFINED else self.skip_dataset(pos, implicit, depth + 1)

    def skip_dataset(self, pos: int, implicit: bool, depth: int) -> int:
        """Past an undefined-length item's data set, to after its delimiter. An item of an explicit-VR
        file may be written in implicit VR (PS3.5 6.2.2; pydicom reads it so too)."""
        implicit = implicit or not _looks_explicit(self.data, pos)
        while True:
            tag, vr, length, pos = self.element(pos, implicit)
            if tag == _ITEM_END:
                return pos
            if length != _UNDEFINED:
                pos += length
            else:  # a sequence, or UN holding one (its content is Implicit VR: PS3.5 6.2.2)
                pos = self.skip_items(pos, implicit or vr == b"UN", depth)


def _meta(walker: _Walker) -> tuple[dict[str, Kept], int]:
    """The kept file meta elements (group 2, always Explicit VR Little Endian) and where the data set starts."""
    elements: dict[str, Kept] = {}
    pos = 132
    while True:
        if pos + 8 > walker.end:
            raise _Short
        if int.from_bytes(walker.data[pos:pos + 2], "little") != 0x0002:
            return elements, pos
        tag, vr, length, start = walker.element(pos, implicit=False)
        if vr is None or length == _UNDEFINED:
            raise _Unwalked("a file meta element without a VR or with undefined length")
        if start + length > walker.end:
            raise _Short
        if tag in _META_KEPT:
            elements[_META_KEPT[tag]] = (tag, _VR_TEXT[vr], walker.data[start:start + length])
        pos = start + length


def _dataset(walker: _Walker, pos: int, implicit: bool) -> tuple[dict[str, Kept], dict[str, PixelElement]]:
    """The kept top-level elements, and the pixel data element that ends the walk (its value left on disk)."""
    elements: dict[str, Kept] = {}
    previous = -1
    while True:
        if pos == walker.end and walker.whole:
            return elements, {}  # a data set without pixel data ends with the file
        tag, vr, length, start = walker.element(pos, implicit)
        if tag <= previous:
            raise _Unwalked("tags out of order")
        previous = tag
        if tag in _HANDED_BACK:
            raise _Unwalked("Enhanced CT functional groups or DICOMDIR records")
        if tag >= _PIXELS:
            pixels = {PIXEL_TAGS[tag]: PixelElement(length, start)} if tag in PIXEL_TAGS else {}
            return elements, pixels
        if length == _UNDEFINED:
            pos = walker.skip_items(start, implicit or vr == b"UN", 1)
            continue
        if tag in _KEPT:
            if start + length > walker.end:
                raise _Short
            elements[_KEPT[tag]] = (tag, None if vr is None else _VR_TEXT[vr], walker.data[start:start + length])
        pos = start + length


def _looks_explicit(data: bytes, pos: int) -> bool:
    """pydicom's test of the first element: are bytes 4-5 two capital letters (a VR)?"""
    return pos + 6 <= len(data) and 0x40 < data[pos + 4] < 0x5B and 0x40 < data[pos + 5] < 0x5B


def _parse(data: bytes, whole: bool) -> Header:
    if len(data) < 132 or data[128:132] != b"DICM":
        raise _Unwalked("no Part 10 preamble")
    walker = _Walker(data, whole)
    meta, start = _meta(walker)
    if "TransferSyntaxUID" not in meta:
        raise _Unwalked("no transfer syntax")
    syntax_element = meta["TransferSyntaxUID"]  # converted once: `Header.of_elements` finds it remembered
    syntax = str(converted_value(*syntax_element, None, False))
    if syntax not in (IMPLICIT_LE, EXPLICIT_LE) and syntax not in ENCAPSULATED:
        raise _Unwalked("deflated, big endian, or a syntax the walk does not know")
    implicit = syntax == IMPLICIT_LE
    if implicit == _looks_explicit(data, start):  # pydicom would switch encodings here: it reads the file
        raise _Unwalked("the data set's encoding differs from its transfer syntax")
    elements, pixels = _dataset(walker, start, implicit)
    charset = elements.get("SpecificCharacterSet")
    return Header.of_elements(elements, meta, None if charset is None else converted_value(*charset, None, implicit),
                              implicit, pixels)


def walk_header(path: Path) -> Header | None:
    """The `Header` of ``path`` from one walk over its bytes; None when the file is not the plain case, or
    cannot be read (pydicom then reads it and says why)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_FIRST_READ)
            try:
                return _parse(data, whole=len(data) < _FIRST_READ)
            except _Short:
                if len(data) < _FIRST_READ:
                    return None  # the file ends inside its header: pydicom says how
                data += handle.read(_MAX_HEADER - len(data))
            return _parse(data, whole=len(data) < _MAX_HEADER)
    except (_Unwalked, _Short, OSError, ValueError, struct.error):
        return None
