"""The one-pass header walk (dicom/walk.py) reads what pydicom reads, or hands the file back to it."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import keyword_dict
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

import tfkt_edge.dicom.slices as slices
from tfkt_edge.dicom.header import KEPT, META_KEPT, PIXEL_KEYWORDS
from tfkt_edge.dicom.slices import Skip, read_slices
from tfkt_edge.dicom.walk import walk_header

from .conftest import PYDICOM_FILES, data_store_files

# Keywords slices.py reads only from the data set pydicom read whole: Enhanced CT functional groups.
ENHANCED_ONLY = {"SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence", "PlaneOrientationSequence",
                 "PixelValueTransformationSequence", "PlanePositionSequence", "PixelMeasuresSequence",
                 "DirectoryRecordSequence"}


def _by_pydicom(path: Path, monkeypatch) -> list | Skip:
    with monkeypatch.context() as patch:
        patch.setattr(slices, "walk_header", lambda _: None)
        return read_slices(path)


def test_every_keyword_the_slice_reader_reads_is_kept():
    tree = ast.parse(Path(slices.__file__).read_text())
    used = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value and node.value in keyword_dict}
    assert used - ENHANCED_ONLY <= set(KEPT) | set(META_KEPT) | set(PIXEL_KEYWORDS)


def test_real_ct_reads_the_same_through_the_walk(realct, monkeypatch):
    files = sorted(realct.rglob("*.dcm"))
    assert len(files) == 113
    for path in files:
        assert walk_header(path) is not None, path  # every real CT file at hand is the plain case
        assert read_slices(path) == _by_pydicom(path, monkeypatch), path


def test_library_files_read_the_same_or_are_skipped_either_way(monkeypatch):
    """pydicom's and pydicom-data's files: odd encodings, private sequences, UN elements, Enhanced CT, DICOMDIR."""
    files = sorted(p for folder in (PYDICOM_FILES, data_store_files()) for p in folder.rglob("*") if p.is_file())
    walked = 0
    for path in files:
        walked += walk_header(path) is not None
        ours, theirs = read_slices(path), _by_pydicom(path, monkeypatch)
        if isinstance(ours, Skip) and isinstance(theirs, Skip):
            continue  # a damaged file may be skipped for another reason (the walk stops at the pixel data)
        assert ours == theirs, path
    assert walked > len(files) // 2


def _resaved(source: Path, folder: Path, name: str, change=None, syntax=None) -> Path:
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    if change is not None:
        change(ds)
    if syntax is not None:
        ds.file_meta.TransferSyntaxUID = syntax
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    return path


def test_the_files_it_hands_back_to_pydicom(real, tmp_path, monkeypatch):
    """Enhanced CT, DICOMDIR, deflated, no preamble: pydicom reads them, and they read as before."""
    deflated = _resaved(real["ct_small"], tmp_path, "deflated.dcm", syntax=DeflatedExplicitVRLittleEndian)
    bare = tmp_path / "bare.dcm"
    pydicom.dcmread(real["ct_small"]).save_as(bare, enforce_file_format=False)  # no preamble, no file meta
    bare.write_bytes(bare.read_bytes()[132:] if bare.read_bytes()[128:132] == b"DICM" else bare.read_bytes())
    for path in (real["enhanced_ct"], real["dicomdir"], deflated, bare):
        assert walk_header(path) is None, path
        assert read_slices(path) == _by_pydicom(path, monkeypatch), path
    assert len(read_slices(real["enhanced_ct"])) == 2  # its frames, from the functional groups


def test_nested_and_un_sequences_and_a_long_header(real, tmp_path, monkeypatch):
    """Undefined-length sequences nested three deep, an undefined-length UN element holding one (implicit VR
    inside, PS3.5 6.2.2), and a 200 kB private element before the pixel data: walked, and read as pydicom reads."""
    def change(ds):
        inner = pydicom.Dataset()
        inner.CodeValue, inner.CodingSchemeDesignator = "113691", "DCM"
        middle = pydicom.Dataset()
        middle.ConceptNameCodeSequence = Sequence([inner])
        outer = pydicom.Dataset()
        outer.ContentSequence = Sequence([middle, middle])
        ds.ReferencedImageSequence = Sequence([outer])
        for element in (ds["ReferencedImageSequence"], outer["ContentSequence"], middle["ConceptNameCodeSequence"]):
            element.is_undefined_length = True
        for item in (inner, outer):
            item.is_undefined_length_sequence_item = True
        ds.add_new(0x00291010, "OB", b"\x01" * 200_000)  # a private block like Siemens' CSA header
        ds.SliceThickness = "2.5"

    path = _resaved(real["ct_small"], tmp_path, "nested.dcm", change)
    assert walk_header(path) is not None
    assert read_slices(path) == _by_pydicom(path, monkeypatch)
    assert read_slices(path)[0].thickness == 2.5  # an element after the sequences

    implicit = _resaved(real["ct_small"], tmp_path, "implicit.dcm", change, ImplicitVRLittleEndian)
    assert pydicom.dcmread(implicit).file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert walk_header(implicit) is not None
    assert read_slices(implicit) == _by_pydicom(implicit, monkeypatch)

    # An undefined-length UN element whose content is an implicit-VR sequence, before Patient Name.
    raw = path.read_bytes()
    item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + b"\x08\x00\x00\x01\x06\x00\x00\x00113691" + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
    un = b"\x0b\x00\x10\x10UN\x00\x00\xff\xff\xff\xff" + item + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    patient_name = raw.index(b"\x10\x00\x10\x00PN")
    with_un = tmp_path / "un.dcm"
    with_un.write_bytes(raw[:patient_name] + un + raw[patient_name:])
    assert pydicom.dcmread(with_un)[0x000B1010].VR in ("SQ", "UN")
    assert walk_header(with_un) is not None
    assert read_slices(with_un) == _by_pydicom(with_un, monkeypatch)


def test_nesting_past_the_bound_goes_to_pydicom(real, tmp_path):
    def change(ds):
        node = ds
        for _ in range(20):
            child = pydicom.Dataset()
            child.is_undefined_length_sequence_item = True  # an item's length is known only by walking it
            node.ReferencedImageSequence = Sequence([child])
            node["ReferencedImageSequence"].is_undefined_length = True
            node = child

    path = _resaved(real["ct_small"], tmp_path, "deep.dcm", change)
    assert walk_header(path) is None
    assert not isinstance(read_slices(path), Skip)


def test_tags_out_of_order_go_to_pydicom(real, tmp_path, monkeypatch):
    raw = real["explicit_le"].read_bytes()
    modality = raw.index(b"\x08\x00\x60\x00CS")
    length = int.from_bytes(raw[modality + 6:modality + 8], "little")
    element = raw[modality:modality + 8 + length]
    moved = raw[:modality] + raw[modality + len(element):]
    pixels = moved.index(b"\xe0\x7f\x10\x00")
    path = tmp_path / "disordered.dcm"
    path.write_bytes(moved[:pixels] + element + moved[pixels:])  # Modality after everything else
    assert walk_header(path) is None
    assert read_slices(path) == _by_pydicom(path, monkeypatch)


def test_cut_anywhere_in_the_header_it_reads_as_pydicom_does(real, tmp_path, monkeypatch):
    """A file cut short at any point before its pixels: never a traceback, and the same slices or skip."""
    raw = real["explicit_le"].read_bytes()
    end = raw.index(b"\xe0\x7f\x10\x00") + 12
    path = tmp_path / "cut.dcm"
    for cut in sorted(set(random.Random(7).sample(range(1, end), 120)) | {131, 132, end - 1, end}):
        path.write_bytes(raw[:cut])
        ours, theirs = read_slices(path), _by_pydicom(path, monkeypatch)
        assert ours == theirs or (isinstance(ours, Skip) and isinstance(theirs, Skip)), cut


def test_flipped_bytes_never_raise(real, tmp_path):
    raw = bytearray(real["explicit_le"].read_bytes())
    end = raw.index(b"\xe0\x7f\x10\x00") + 12
    rng = random.Random(11)
    path = tmp_path / "flipped.dcm"
    for _ in range(150):
        mutant = bytearray(raw)
        for position in rng.sample(range(132, end), 4):
            mutant[position] = rng.randrange(256)
        path.write_bytes(bytes(mutant))
        result = read_slices(path)  # a skip with a reason or slices; never an exception
        assert isinstance(result, Skip) or all(ref.rows > 0 for ref in result)


@pytest.mark.parametrize("charset, name", [("ISO_IR 100", "Müller^Jörg"), ("ISO_IR 192", "山田^太郎")])
def test_text_is_decoded_in_the_file_character_set(real, tmp_path, monkeypatch, charset, name):
    def change(ds):
        ds.SpecificCharacterSet = charset
        ds.PatientName = name
        ds.add(DataElement(0x00081030, "LO", "Abdomen"))

    path = _resaved(real["ct_small"], tmp_path, "charset.dcm", change)
    assert walk_header(path) is not None
    (ref,) = read_slices(path)
    assert ref.patient_name == name
    assert [ref] == _by_pydicom(path, monkeypatch)


def test_large_forged_values_are_converted_but_not_remembered(real, tmp_path, monkeypatch):
    """Values are converted once per distinct value, but only short ones are kept for reuse: a stream of files
    with large forged text cannot grow the cache."""
    from tfkt_edge.dicom.header import CACHED_BYTES, _remembered, converted_value

    def change(ds):
        ds.StudyDescription = "X" * (CACHED_BYTES * 4)

    path = _resaved(real["ct_small"], tmp_path, "large.dcm", change)
    _remembered.cache_clear()  # far from full, whatever ran before
    (ref,) = read_slices(path)
    assert [ref] == _by_pydicom(path, monkeypatch)
    size = _remembered.cache_info().currsize
    for k in range(5):
        assert converted_value(0x00081030, "LO", b"%d" % k * CACHED_BYTES * 2, None, False) == str(k) * CACHED_BYTES * 2
    assert _remembered.cache_info().currsize == size
    converted_value(0x00081030, "LO", b"short and new " + bytes(str(tmp_path), "ascii")[-20:], None, False)
    assert _remembered.cache_info().currsize == size + 1
