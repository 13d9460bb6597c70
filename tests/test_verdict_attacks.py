"""No header value, skip or slice order turns an alerting series into a pass, and routine scans are judged.

Every test builds its series from real CT slices (pydicom-data's GE head, the shared realct folder's GE
abdomen) written as DICOM files, scores them with the shipped model through `tfkt-edge score`, and reads
the JSON document: the same path a scanner's series takes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

from tfkt_edge.cli.main import app
from tfkt_edge.dicom.slices import read_slices

from .conftest import data_store_files

runner = CliRunner()
HEAD = data_store_files() / "693_UNCR.dcm"  # a real GE head slice, STANDARD, 5 mm


def _abdomen(realct: Path) -> Path:
    return realct / "saltyjoke" / "A058062" / "axial" / "19001231-084.dcm"  # a real GE abdomen, 2.5 mm


def write(source: Path, folder: Path, n: int, noise_hu=None, *, seed: int = 0, grain: float = 1.0, **header) -> list[Path]:
    """``n`` copies of a real slice as one series (positions 5 mm apart), each with header changes ``header``
    and, where ``noise_hu`` gives a value per slice (or one for all), that much Gaussian-textured noise added."""
    folder.mkdir(parents=True, exist_ok=True)
    uid, paths = generate_uid(), []
    levels = noise_hu if isinstance(noise_hu, (list, tuple)) else [noise_hu] * n
    rng = np.random.default_rng(seed)
    for i in range(n):
        ds = pydicom.dcmread(source)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, 5.0 * i]
        if levels[i]:
            pixels = ds.pixel_array.astype(np.float64)
            field = rng.normal(size=pixels.shape)
            if grain:
                field = gaussian_filter(field, grain)
            pixels += field / field.std() * levels[i] / float(ds.get("RescaleSlope", 1) or 1)
            info = np.iinfo(ds.pixel_array.dtype)
            ds.PixelData = np.clip(np.round(pixels), info.min, info.max).astype(info.dtype).tobytes()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        for key, value in header.items():
            setattr(ds, key, value[i] if isinstance(value, list) else value)
        paths.append(folder / f"s{i:02d}.dcm")
        ds.save_as(paths[-1])
    return paths


def score(*paths: Path, extra=()) -> tuple[int, dict]:
    result = runner.invoke(app, ["score", *map(str, paths), "--format", "json", *extra])
    assert result.exit_code in (0, 1, 3), result.output
    return result.exit_code, json.loads(result.stdout)


def only(document: dict) -> dict:
    (series,) = document["series"]
    return series


def test_phantom_words_are_whole_words_of_the_header(tmp_path):
    cases = {("KHAN^FAIQA", "PELVIS SACR 3MM"): False, ("QA^PHYSICS", "HEAD"): True,
             ("ANON", "ACR PHANTOM 5MM"): True, ("ANON", "CATPHAN_600"): True, ("ACRE^QASIM", "ABD"): False}
    for (name, protocol), phantom in cases.items():
        (path,) = write(HEAD, tmp_path / name.replace("^", "_"), 1, PatientName=name, ProtocolName=protocol)
        (ref,) = read_slices(path)
        assert ref.phantom_header is phantom, (name, protocol)


def test_a_noisy_series_of_a_patient_whose_name_holds_qa_alerts(realct, tmp_path):
    paths = write(_abdomen(realct), tmp_path / "s", 4, 150.0, PatientName="KHAN^FAIQA", ProtocolName="PELVIS SACR 3MM")
    code, doc = score(*paths)
    series = only(doc)
    assert code == 1 and series["status"] == "alert" and series["domain"]["status"] == "inside", series["reason"]


def test_a_sequential_head_with_4_and_7_mm_slices_is_judged_and_its_low_dose_copy_alerts(tmp_path):
    widths = ["4.0", "4.0", "7.0", "7.0"]
    clean = write(HEAD, tmp_path / "clean", 4, SliceThickness=widths, BodyPartExamined="HEAD")
    code, doc = score(*clean)
    assert code == 0 and only(doc)["status"] == "pass", only(doc)["reason"]
    # A 6%-dose copy: the head slice's own noise (about 3.5 HU at 5 mm) times sqrt(1/0.06), added as noise.
    low = write(HEAD, tmp_path / "low", 4, 14.0, SliceThickness=widths, BodyPartExamined="HEAD")
    code, doc = score(*low)
    series = only(doc)
    assert code == 1 and series["status"] == "alert" and series["noise"]["above"], series["reason"]


def test_an_8_mm_series_is_inside_the_domain(realct, tmp_path):
    code, doc = score(*write(_abdomen(realct), tmp_path / "s", 3, SliceThickness="8.0"))
    assert code == 0 and only(doc)["domain"]["status"] == "inside", only(doc)["reason"]


def test_outside_the_domain_physics_still_judges(realct, tmp_path):
    """A phantom word in the header makes the learned score unvalidated, never the noise invisible."""
    code, doc = score(*write(_abdomen(realct), tmp_path / "s", 3, 120.0, SeriesDescription="QA PHANTOM"))
    series = only(doc)
    assert series["domain"]["status"] == "outside"
    assert code == 1 and series["status"] == "alert" and "not validated here" not in series["reason"]
    assert "noise" in series["reason"] and "outside the validated domain" in series["reason"]


def test_fine_grained_noise_is_no_exemption(tmp_path):
    """White (unblurred) noise looks like a sharp kernel's texture; the header's kernel decides, so a
    copy with more noise than its original never reads as less noisy or more exempt."""
    (original,) = write(HEAD, tmp_path / "a", 1, BodyPartExamined="HEAD")
    (noisy,) = write(HEAD, tmp_path / "b", 1, 40.0, grain=0.0, BodyPartExamined="HEAD")
    _, a = score(original)
    code, b = score(noisy)
    a, b = only(a), only(b)
    assert b["noise"]["noise_hu"] > 2 * a["noise"]["noise_hu"]
    assert b["noise"]["kernel_class"] == a["noise"]["kernel_class"] == "soft"
    assert b["noise"]["ceiling_hu"] == a["noise"]["ceiling_hu"]
    assert code == 1 and b["status"] == "alert" and b["noise"]["above"]
    assert b["median_score"] <= a["median_score"]


def test_scattered_noisy_slices_alert_whatever_the_slice_order(realct, tmp_path):
    levels = [150.0 if i % 2 else None for i in range(14)][:14]
    levels = [lv if sum(1 for x in levels[: i + 1] if x) <= 6 else None for i, lv in enumerate(levels)]
    assert sum(1 for x in levels if x) == 6
    # Positions interleaved by the header: noisy slices sent at positions far from each other.
    order = [0, 7, 1, 8, 2, 9, 3, 10, 4, 11, 5, 12, 6, 13]
    paths = write(_abdomen(realct), tmp_path / "s", 14, levels, ImagePositionPatient=[[0.0, 0.0, 3.0 * p] for p in order])
    code, doc = score(*paths)
    series = only(doc)
    assert code == 1 and series["status"] == "alert", series["reason"]


def test_slices_that_could_not_be_read_never_let_a_series_pass(realct, tmp_path):
    paths = write(_abdomen(realct), tmp_path / "s", 6)
    ds = pydicom.dcmread(paths[2])
    ds.RescaleSlope = "NaN"
    ds.save_as(paths[2])
    raw = paths[4].read_bytes()
    paths[4].write_bytes(raw[: len(raw) - 4000])  # pixel data cut short: its slice cannot be decoded
    code, doc = score(*paths)
    series = only(doc)
    assert code == 1 and series["status"] == "alert", series["reason"]
    assert "2 of 6 slices could not be judged" in series["reason"] and "incomplete" in series["reason"]


def test_a_series_of_which_two_of_fourteen_slices_were_scorable_alerts(realct, tmp_path):
    paths = write(_abdomen(realct), tmp_path / "s", 14)
    for path in paths[2:]:
        path.write_bytes(path.read_bytes()[:-20000])
    code, doc = score(*paths)
    series = only(doc)
    assert code == 1 and series["status"] == "alert" and "12 of 14 slices could not be judged" in series["reason"]


def test_calibrate_learns_only_from_series_that_passed(realct, tmp_path):
    for i in range(3):
        write(_abdomen(realct), tmp_path / "accepted" / f"noisy{i}", 2, 150.0, seed=i,
              SeriesDescription="ABD", StationName="CT1")
    out = tmp_path / "b.json"
    result = runner.invoke(app, ["calibrate", str(tmp_path / "accepted"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["protocols"] == []
    assert "3 series left out (they alerted" in result.output


@pytest.mark.parametrize("field, value", [("low", -100), ("low", 3.9), ("noise_hu", 1e300), ("noise_hu", -3),
                                          ("median", float("nan"))])
def test_a_hand_edited_baseline_out_of_range_is_one_error_line(realct, tmp_path, field, value):
    accepted = [write(_abdomen(realct), tmp_path / "a" / f"s{i}", 1, SeriesDescription="ABD", StationName="CT1")
                for i in range(3)]
    out = tmp_path / "b.json"
    assert runner.invoke(app, ["calibrate", str(tmp_path / "a"), "-o", str(out)]).exit_code == 0
    data = json.loads(out.read_text())
    data["protocols"][0][field] = value
    out.write_text(json.dumps(data))
    result = runner.invoke(app, ["score", str(accepted[0][0]), "--baselines", str(out)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")


def test_a_baseline_never_loosens_the_noise_ceiling(realct, tmp_path):
    for i in range(3):
        write(_abdomen(realct), tmp_path / "a" / f"s{i}", 1, SeriesDescription="ABD", StationName="CT1")
    out = tmp_path / "b.json"
    assert runner.invoke(app, ["calibrate", str(tmp_path / "a"), "-o", str(out)]).exit_code == 0
    data = json.loads(out.read_text())
    data["protocols"][0]["noise_hu"] = 400.0  # an edited file: a ceiling of 800 HU
    out.write_text(json.dumps(data))
    noisy = write(_abdomen(realct), tmp_path / "n", 2, 150.0, SeriesDescription="ABD", StationName="CT1")
    code, doc = score(*noisy, extra=["--baselines", str(out)])
    series = only(doc)
    assert code == 1 and series["noise"]["above"] and series["noise"]["ceiling_of"] != "protocol"
