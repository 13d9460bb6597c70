"""DICOM ingestion on real CT files: transfer syntaxes, Enhanced CT, grouping, ordering, skips."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless, SecondaryCaptureImageStorage

from tfkt_edge.dicom import load_hu, reasons, scan
from tfkt_edge.model.preprocess import LDCTIQAC, preprocess
from tfkt_edge.pipeline.decode import decode_slice

from .conftest import PYDICOM_FILES, write_series


def only_slice(path: Path):
    result = scan([path])
    assert not result.skipped, result.skipped
    assert len(result.series) == 1 and len(result.series[0].slices) == 1
    return result.series[0].slices[0]


def test_uncompressed_slice_gives_hounsfield_units(real):
    hu = load_hu(only_slice(real["explicit_le"]))
    assert hu.shape == (512, 512) and hu.dtype == np.float32
    ds = pydicom.dcmread(real["explicit_le"])
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(hu, expected.astype(np.float32))
    assert hu.min() < -900  # air outside the patient


@pytest.mark.parametrize("kind", ["j2k_lossless", "rle"])
def test_lossless_syntaxes_decode_to_the_same_hu(real, tmp_path, kind):
    reference = load_hu(only_slice(real["explicit_le"]))
    path = real["j2k_lossless"]
    if kind == "rle":  # pydicom encodes RLE itself: a real RLE Lossless file of the same slice
        ds = pydicom.dcmread(real["explicit_le"])
        ds.compress(RLELossless)
        path = tmp_path / "rle.dcm"
        ds.save_as(path)
        assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == RLELossless
    np.testing.assert_array_equal(load_hu(only_slice(path)), reference)


def test_lossy_jpeg2000_decodes_close_to_original(real):
    reference = load_hu(only_slice(real["explicit_le"]))
    lossy = load_hu(only_slice(real["j2k_lossy"]))
    assert lossy.shape == reference.shape
    # a 3.5 kB file: heavily compressed, yet the same anatomy
    assert np.corrcoef(lossy.ravel(), reference.ravel())[0, 1] > 0.98


def test_jpeg_lossless_process14_decodes(real):
    hu = load_hu(only_slice(real["jpeg_lossless"]))
    assert hu.shape == (512, 512) and -1100 < hu.min() < hu.max() < 3100


def test_enhanced_ct_frames_are_slices_ordered_by_position(real):
    result = scan([real["enhanced_ct"]])
    (series,) = result.series
    assert [s.frame for s in series.slices] == [1, 0]  # frame 2 lies at 149 mm, frame 1 at 159 mm
    positions = [s.position for s in series.slices]
    assert positions == sorted(positions)
    for ref in series.slices:
        hu = load_hu(ref)
        assert hu.shape == (512, 512)


def test_ct_small_is_resampled_to_model_size(real):
    ref = only_slice(real["ct_small"])
    hu = load_hu(ref)
    assert hu.shape == (128, 128)
    image = preprocess(hu)
    assert image.shape == (512, 512) and 0.0 <= image.min() <= image.max() <= 1.0


def test_series_ordered_along_oblique_normal_not_instance_number(real, tmp_path):
    oblique = [1.0, 0.0, 0.0, 0.0, 0.9272, -0.3746]
    positions = [30.0, -10.0, 20.0, 0.0, 10.0]
    write_series(real["explicit_le"], tmp_path / "s", positions, [1, 2, 3, 4, 5], oblique)
    (series,) = scan([tmp_path]).series
    assert [s.instance_number for s in series.slices] == [2, 4, 5, 3, 1]


def test_series_falls_back_to_instance_number_without_positions(real, tmp_path):
    write_series(real["explicit_le"], tmp_path / "s", [None] * 4, [3, 1, 4, 2])
    (series,) = scan([tmp_path]).series
    assert [s.instance_number for s in series.slices] == [1, 2, 3, 4]


def test_files_group_by_series_uid(real, tmp_path):
    write_series(real["explicit_le"], tmp_path / "a", [0.0, 5.0], [1, 2])
    write_series(real["explicit_le"], tmp_path / "b", [0.0, 5.0, 10.0], [1, 2, 3])
    result = scan([tmp_path])
    assert sorted(len(s.slices) for s in result.series) == [2, 3]


@pytest.fixture
def media(real, tmp_path):
    """A real DICOM file-set (DICOMDIR plus files in its own folder tree) of two CT slices."""
    from pydicom.fileset import FileSet

    write_series(real["explicit_le"], tmp_path / "src", [0.0, 5.0], [1, 2])
    fileset = FileSet()
    for path in sorted((tmp_path / "src").iterdir()):
        ds = pydicom.dcmread(path)
        # the anonymised test slice leaves blank what DICOMDIR records require
        ds.StudyDate, ds.StudyTime = ds.get("StudyDate") or "20240101", ds.get("StudyTime") or "120000"
        ds.StudyID, ds.PatientID = ds.get("StudyID") or "1", ds.get("PatientID") or "ANON"
        ds.PatientName = ds.get("PatientName") or "ANON"
        fileset.add(ds)
    fileset.write(tmp_path / "media")
    return tmp_path / "media" / "DICOMDIR"


def test_dicomdir_given_by_name_reads_the_files_it_references(media):
    result = scan([media])
    (series,) = result.series
    assert [s.instance_number for s in series.slices] == [1, 2]
    assert all(media.parent in s.path.parents and s.path.name != "DICOMDIR" for s in series.slices)
    assert not result.skipped


def test_folder_with_dicomdir_skips_the_index_itself(media):
    result = scan([media.parent])
    assert result.n_slices == 2
    assert [(k.path.name, k.reason) for k in result.skipped] == [("DICOMDIR", reasons.DICOMDIR)]


def test_pydicom_dicomdir_set_is_followed_and_every_reference_accounted_for(real):
    result = scan([real["dicomdir"]])
    read = [k for k in result.skipped]
    assert len(read) > 10 and all(PYDICOM_FILES / "dicomdirtests" in k.path.parents for k in read)
    assert {reasons.LOCALIZER} <= {k.reason for k in read}


def skip_reason(path: Path) -> str:
    result = scan([path])
    if result.series:  # a file that passes the header check may still fail to decode
        outcome = decode_slice(result.series[0].slices[0], LDCTIQAC)
        assert not isinstance(outcome, np.ndarray), f"{path} unexpectedly decoded"
        return outcome.reason
    assert len(result.skipped) == 1, result.skipped
    return result.skipped[0].reason


def modified(source: Path, target: Path, **changes) -> Path:
    ds = pydicom.dcmread(source)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)
    return target


def test_skip_reasons_for_malformed_corpus(real, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "random.bin").write_bytes(os.urandom(4096))
    (bad / "notes.txt").write_text("not an image\n")
    (bad / "empty.dcm").write_bytes(b"")
    data = real["explicit_le"].read_bytes()
    (bad / "truncated_pixels.dcm").write_bytes(data[: len(data) // 2])
    (bad / "truncated_header.dcm").write_bytes(data[:200])
    source = real["explicit_le"]
    cases = {
        bad / "random.bin": reasons.NOT_DICOM,
        bad / "notes.txt": reasons.NOT_DICOM,
        bad / "empty.dcm": reasons.NOT_DICOM,
        real["mr"]: reasons.NOT_CT.format(modality="MR"),
        real["rgb"]: reasons.NOT_CT.format(modality="OT"),
        modified(source, bad / "dose_screen.dcm", SOPClassUID=SecondaryCaptureImageStorage): reasons.SECONDARY_CAPTURE,
        modified(source, bad / "scout.dcm", ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"]): reasons.LOCALIZER,
        modified(source, bad / "scout_one_value.dcm", ImageType="LOCALIZER"): reasons.LOCALIZER,
        modified(source, bad / "no_pixels.dcm", PixelData=None): reasons.NO_PIXELS,
        PYDICOM_FILES / "dicomdirtests" / "77654033" / "CT2" / "17106": reasons.TOO_SMALL.format(rows=16, columns=16, minimum=64),
        modified(source, bad / "rgb_ct.dcm", SamplesPerPixel=3, PhotometricInterpretation="RGB"):
            reasons.NOT_GREYSCALE.format(detail="RGB, 3 samples per pixel"),
        modified(source, bad / "rtimage.dcm", SOPClassUID="1.2.840.10008.5.1.4.1.1.481.1"):
            reasons.UNSUPPORTED_SOP.format(sop="RT Image Storage"),
    }
    for path, expected in cases.items():
        assert skip_reason(path) == expected, path
    assert skip_reason(bad / "truncated_pixels.dcm").startswith(reasons.PIXELS_UNREADABLE.split("(")[0])
    assert skip_reason(bad / "truncated_header.dcm").startswith(("unreadable", "pixel data could not", reasons.NO_PIXELS))


def test_the_same_instance_twice_is_read_once(real, copy_to):
    first = copy_to(real["explicit_le"], "a.dcm")
    second = copy_to(real["explicit_le"], "b.dcm")
    result = scan([first, second, first])
    assert result.n_slices == 1
    (skip,) = result.skipped
    assert skip.path == second and skip.reason.startswith("duplicate of SOP Instance")


def test_missing_path_is_a_skip(tmp_path):
    result = scan([tmp_path / "nope"])
    assert result.skipped[0].reason == "no such file or folder"


def test_whole_pydicom_corpus_is_accounted_for():
    """Every file in pydicom's test corpus (hundreds of odd files) is a slice or a skip."""
    result = scan([PYDICOM_FILES])
    files = {p.resolve() for p in PYDICOM_FILES.rglob("*") if p.is_file()}
    accounted = {s.path.resolve() for series in result.series for s in series.slices} | {k.path.resolve() for k in result.skipped}
    assert files <= accounted
    assert all(k.reason for k in result.skipped)


def test_a_truncated_copy_never_hides_the_whole_instance(real, tmp_path):
    """Duplicates are settled by size: the truncated copy that sorts first is the one skipped."""
    whole = real["explicit_le"]
    data = whole.read_bytes()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_truncated.dcm").write_bytes(data[: len(data) // 2])
    (folder / "b_whole.dcm").write_bytes(data)
    result = scan([folder])
    assert [ref.path.name for s in result.series for ref in s.slices] == ["b_whole.dcm"]
    (skip,) = result.skipped
    assert skip.path.name == "a_truncated.dcm" and skip.reason.startswith("duplicate of SOP Instance")


def _fileset(real, folder: Path, positions: list[float]) -> Path:
    """A real file-set of CT slices written into ``folder``; returns its DICOMDIR."""
    from pydicom.fileset import FileSet

    write_series(real["explicit_le"], folder.with_name(folder.name + "-src"), positions, list(range(1, len(positions) + 1)))
    fileset = FileSet()
    for path in sorted(folder.with_name(folder.name + "-src").iterdir()):
        ds = pydicom.dcmread(path)
        ds.StudyDate, ds.StudyTime, ds.StudyID = "20240101", "120000", "1"
        ds.PatientID = ds.PatientName = folder.name
        fileset.add(ds)
    fileset.write(folder)
    return folder / "DICOMDIR"


def test_a_cd_export_whose_root_dicomdir_points_to_nested_dirfile_indexes_is_read_through(real, tmp_path):
    """Some CD exports hold a root DICOMDIR whose records point to per-patient DIRFILE indexes."""
    from pydicom.dataset import Dataset

    disc = tmp_path / "disc"
    for patient, positions in (("P1", [0.0, 5.0]), ("P2", [0.0, 5.0, 10.0])):
        _fileset(real, disc / patient, positions).rename(disc / patient / "DIRFILE")
    root = pydicom.dcmread(disc / "P1" / "DIRFILE")
    records = []
    for target in (["P1", "DIRFILE"], ["P2", "DIRFILE"], ["DICOMDIR"]):  # the last one: an index naming itself
        record = Dataset()
        record.OffsetOfTheNextDirectoryRecord = 0
        record.RecordInUseFlag = 0xFFFF
        record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
        record.DirectoryRecordType = "PRIVATE"
        record.ReferencedFileID = target
        records.append(record)
    root.DirectoryRecordSequence = records
    root.save_as(disc / "DICOMDIR", enforce_file_format=True)
    result = scan([disc / "DICOMDIR"])
    assert sorted(len(s.slices) for s in result.series) == [2, 3]
    assert [k.path.name for k in result.skipped] == ["DICOMDIR"] and "loop" in result.skipped[0].reason


def _all_real_ct(realct: Path) -> list[Path]:
    return sorted(p for p in realct.rglob("*") if p.is_file() and p.suffix.lower() in (".dcm", "") and p.name != "MANIFEST.csv")


def test_one_read_pixels_equal_pydicom_on_every_real_file(realct):
    """The header scan's offset path (np.fromfile) against pydicom's decoder on every real CT file it applies to."""
    from pydicom.pixels import pixel_array

    from tfkt_edge.dicom import load_stored

    fast = 0
    for series in scan(_all_real_ct(realct) + sorted(PYDICOM_FILES.rglob("*.dcm"))).series:
        for ref in series.slices:
            if ref.pixel_offset is None:
                continue
            fast += 1
            stored = load_stored(ref)
            expected = pixel_array(ref.path)
            assert stored.dtype == expected.dtype, ref.path
            np.testing.assert_array_equal(stored, expected, err_msg=str(ref.path))
    assert fast >= 40  # most real CT is uncompressed little endian


@pytest.mark.parametrize(("representation", "garbage"), [(1, 0x7000), (0, 0xF000)])
def test_bits_above_bits_stored_are_ignored_as_pydicom_does(real, tmp_path, representation, garbage):
    from pydicom.pixels import pixel_array

    from tfkt_edge.dicom import load_stored

    ds = pydicom.dcmread(real["explicit_le"])
    values = ds.pixel_array.astype(np.int32)
    values = np.clip(values, -2048 if representation else 0, 2047 if representation else 4095)
    raw = (values & 0x0FFF) | garbage  # 12 bits stored, the high bits set to rubbish
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, representation
    ds.PixelData = raw.astype(np.uint16).tobytes()
    path = tmp_path / "12bit.dcm"
    ds.save_as(path)
    ref = only_slice(path)
    assert ref.pixel_offset is not None and ref.bits_stored == 12
    np.testing.assert_array_equal(load_stored(ref), pixel_array(path))
    np.testing.assert_array_equal(load_stored(ref), values)


def test_stored_values_and_lut_preprocess_like_hounsfield_units(real):
    ref = only_slice(real["explicit_le"])
    from tfkt_edge.dicom import load_stored

    np.testing.assert_allclose(preprocess(load_stored(ref), LDCTIQAC, ref.slope, ref.intercept),
                               preprocess(load_hu(ref), LDCTIQAC), atol=1e-6)


def test_a_file_cut_short_after_the_scan_is_a_skip_not_garbage(real, tmp_path):
    path = tmp_path / "cut.dcm"
    path.write_bytes(real["explicit_le"].read_bytes())
    ref = only_slice(path)
    path.write_bytes(path.read_bytes()[:-1000])
    skip = decode_slice(ref, LDCTIQAC)
    assert not isinstance(skip, np.ndarray) and "changed after its header was read" in skip.reason


def test_a_file_rewritten_after_the_scan_is_a_skip_not_read_at_a_stale_offset(real, tmp_path):
    """Same size, another header length: reading at the old offset would give shifted pixels and a wrong score."""
    path = tmp_path / "slice.dcm"
    path.write_bytes(real["explicit_le"].read_bytes())
    ref = only_slice(path)
    ds = pydicom.dcmread(path)
    ds.SeriesDescription = (ds.get("SeriesDescription", "") or "") + " X" * 8  # the pixel data moves 16 bytes on
    ds.save_as(path)
    skip = decode_slice(ref, LDCTIQAC)
    assert not isinstance(skip, np.ndarray) and "changed after its header was read" in skip.reason
    np.testing.assert_array_equal(load_hu(only_slice(path)), load_hu(only_slice(real["explicit_le"])))


def test_an_instance_uid_reused_by_another_series_evicts_nothing(real, tmp_path):
    """Two real slices of two series that share one SOPInstanceUID (the second file larger): both are scored,
    each in its own series; a true duplicate (same series, same UID) is still read once."""
    from pydicom.uid import generate_uid

    shared = generate_uid()
    for name, source, extra in (("a.dcm", real["explicit_le"], 0), ("b.dcm", real["abdomen_j2k"], 1)):
        ds = pydicom.dcmread(source)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = shared
        ds.SeriesInstanceUID = generate_uid()
        if extra:
            ds.ImageComments = "x" * 20000  # the larger file, read second
        ds.save_as(tmp_path / name)
    found = scan([tmp_path])
    assert len(found.series) == 2 and found.n_slices == 2 and not found.skipped
    (tmp_path / "copy.dcm").write_bytes((tmp_path / "a.dcm").read_bytes())
    found = scan([tmp_path])
    assert len(found.series) == 2 and [s.reason.split(" already")[0] for s in found.skipped] == \
        [f"duplicate of SOP Instance {shared}"]


def test_a_cd_export_whose_nested_indexes_name_files_from_the_root_is_read(real, tmp_path):
    """Laid out as real CD exports are (a Philips export: S21610/DIRFILE names S21610/S3010/...): the nested
    index's Referenced File IDs are relative to the file-set root, the folder of the DICOMDIR the user named."""
    from pydicom.dataset import Dataset

    disc = tmp_path / "disc"
    _fileset(real, disc, [0.0, 5.0, 10.0])  # images under disc/PT000000/..., their IDs relative to disc
    (disc / "S1").mkdir()
    (disc / "DICOMDIR").rename(disc / "S1" / "DIRFILE")  # the index moves; its IDs stay relative to the root
    root = pydicom.dcmread(disc / "S1" / "DIRFILE")
    record = Dataset()
    record.OffsetOfTheNextDirectoryRecord = 0
    record.RecordInUseFlag = 0xFFFF
    record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    record.DirectoryRecordType = "PRIVATE"
    record.ReferencedFileID = ["S1", "DIRFILE"]
    root.DirectoryRecordSequence = [record]
    root.save_as(disc / "DICOMDIR", enforce_file_format=True)
    result = scan([disc / "DICOMDIR"])
    assert [len(s.slices) for s in result.series] == [3] and result.skipped == []
