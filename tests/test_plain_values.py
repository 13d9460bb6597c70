"""Header values converted without pydicom (dicom/header.py) are pydicom's values, and plain files are read
without importing it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import MutableSequence

import pytest
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.uid import UID

from tfkt_edge.dicom.gpu_decoding import LOSSLESS_SYNTAXES, _lossless_decoders
from tfkt_edge.dicom.header import (
    ASCII_CHARSETS,
    ENCAPSULATED,
    KEPT_TAGS,
    META_TAGS,
    NOT_PLAIN,
    PIXEL_TAGS,
    UNCOMPRESSED,
    _by_pydicom,
    converted_value,
    is_compressed,
    plain_value,
)

VALUES = {
    "DS": [b"2.5", b"2.50 ", b" -1024", b"1", b"+1.5", b"1e3", b"-1.5E-02", b".5", b"5.", b"007", b"-0",
           b"0.675781\\0.675781", b" 1.000000\\0.000000\\0.000000\\0.000000\\1.000000\\-0.000000 ",
           b"1.5 \\ 2", b"1\\\\2", b"  ", b"", b"nan", b"inf", b"1e400", b"12345678901234567", b"1,5", b"abc",
           b"1.5\x00", b"\x1b[2K1"],
    "IS": [b"12", b"12 ", b" 12", b"007", b"-0", b"+5", b"12.0", b"2147483647", b"2147483648", b"-2147483648",
           b"1\\2", b"1\\\\2", b"", b"  ", b"x"],
    "CS": [b"ORIGINAL\\PRIMARY\\AXIAL", b"CT", b"CT ", b" CT", b"A\\ B \\", b"", b"\\", b"ISO_IR 100", b"CT\x00",
           b"C\x00T", b"\xc3\x9c", b"\x1b$B"],
    "LO": [b"Siemens Healthineers", b"ABD 3MM ", b" lead", b"A \\B  ", b"A\\", b"", b"  ", b"ABD\x00", b"A\x00\\B",
           b"M\xfcller", b"\xe5\xb1\xb1", b"\x1b[2KX", b"tab\there"],
    "SH": [b"Br36f ", b"B30f", b"FC07\\AIDR 3D", b"\x7f"],
    "PN": [b"DOE^JOHN", b"DOE^JOHN ", b"DOE^JOHN\\SMITH^J ", b"", b"=^^", b"M\xfcller^J\xf6rg"],
    "UI": [b"1.2.840.10008.5.1.4.1.1.2\x00", b"1.2.3 ", b"1.2\\3.4", b"", b"1.2.3\xff"],
    "DA": [b"20250101", b"20250101 ", b""], "TM": [b"101010.123 ", b"10", b""],
    "US": [b"\x00\x02", b"\x00\x02\x00\x01", b"\x00", b""], "FD": [b"\x00" * 8, b"\x00\x00\x00\x00\x00\x00\xf8\x7f", b"\x00" * 7],
}
TAG_OF_VR = {"DS": 0x00281053, "IS": 0x00200013, "CS": 0x00080008, "LO": 0x0008103E, "SH": 0x00181210,
             "PN": 0x00100010, "UI": 0x0020000E, "DA": 0x00080020, "TM": 0x00080030, "US": 0x00280010,
             "FD": 0x00189345}


def _seen(value):
    """What the slice reader can tell of a value: each item's text, and number (the reader calls str(), float() and
    int(); a PersonName and a str alike are text)."""
    if isinstance(value, MutableSequence):
        return ["many", *(_seen(item) for item in value)]
    if value is None:
        return None
    number = repr(float(value)) if isinstance(value, (int, float)) else None  # repr: nan equals nan
    return ("text" if number is None else "number", str(value), number)


@pytest.mark.parametrize("vr", sorted(VALUES))
@pytest.mark.parametrize("charset", [None, "ISO_IR 100", ("ISO 2022 IR 100", "ISO 2022 IR 126"), "ISO_IR 192",
                                     "ISO 2022 IR 87", ("", "ISO 2022 IR 87"), "ISO_IR 13", "GB18030"])
def test_plain_values_are_pydicoms_and_the_rest_is_left_to_it(vr, charset):
    tag = TAG_OF_VR[vr]
    plain_seen = 0
    for value in VALUES[vr]:
        for implicit in (False, True):
            theirs = _outcome(_by_pydicom, tag, None if implicit else vr, value, charset, implicit)
            ours = _outcome(converted_value, tag, None if implicit else vr, value, charset, implicit)
            assert ours == theirs, (vr, value, charset)
            plain_seen += plain_value(vr, value, charset) is not NOT_PLAIN
    first = charset if charset is None or isinstance(charset, str) else charset[0]
    assert plain_seen > 0 or (vr in ("LO", "SH", "PN") and first not in ASCII_CHARSETS)


def _outcome(convert, *args):
    try:
        return _seen(convert(*args))
    except Exception as exc:  # a value pydicom refuses (a binary value of the wrong length) is refused alike
        return ("raises", type(exc).__name__)


def test_every_ascii_character_set_reads_printable_ascii_as_pydicom_does():
    printable = bytes(range(0x20, 0x7F)).replace(b"\\", b"")
    for term in ASCII_CHARSETS:
        for charset in (term, (term, "ISO 2022 IR 87")):
            for vr, tag in (("LO", 0x0008103E), ("PN", 0x00100010), ("SH", 0x00181210)):
                assert plain_value(vr, printable, charset) == str(_by_pydicom(tag, vr, printable, charset, False)), term


def test_the_tables_agree_with_pydicoms_dictionaries():
    for tag, (keyword, vr) in {**KEPT_TAGS, **META_TAGS}.items():
        assert (keyword_for_tag(tag), dictionary_VR(tag)) == (keyword, vr)
    assert all(keyword_for_tag(tag) == keyword for tag, keyword in PIXEL_TAGS.items())
    for syntax in (*UNCOMPRESSED, *ENCAPSULATED):
        assert is_compressed(syntax) == UID(syntax).is_compressed, syntax
    assert all(UID(syntax).is_little_endian for syntax in ENCAPSULATED)
    assert {str(decoder.UID) for decoder in _lossless_decoders()} == LOSSLESS_SYNTAXES


def test_a_plain_file_is_scored_without_importing_pydicom(realct):
    """An uncompressed real slice: its header walked, its values converted, its pixels read, all without pydicom;
    a JPEG 2000 one needs it, and imports it."""
    program = ("import sys\nfrom tfkt_edge.cli.main import main\nsys.argv = ['tfkt-edge', 'score', sys.argv[1], '-q']\n"
               "try:\n    main()\nexcept SystemExit as end:\n    print('exit', end.code, 'pydicom' in sys.modules)\n")
    for path, imported in ((realct / "fo-dicom" / "GH1308.dcm", False),
                           (next((realct / "totalsegmentator").glob("*.dcm")), True)):
        done = subprocess.run([sys.executable, "-c", program, str(path)], capture_output=True, text=True, timeout=120)
        assert done.stdout.splitlines()[-1] == f"exit 0 {imported}", done.stdout + done.stderr
