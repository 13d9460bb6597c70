"""Headers that lie, values that poison, files that never end: a clear skip each, never a hang or a wrong pass."""

from __future__ import annotations

import json
import math
import os

import pydicom
import pytest
from typer.testing import CliRunner

from tfkt_edge.cli.main import app
from tfkt_edge.dicom import reasons, scan
from tfkt_edge.examples import EXAMPLES

runner = CliRunner()


def _strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def _copy(source, path, **changes):
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path


@pytest.mark.parametrize("frames", [999999999, -3, 0])
def test_an_impossible_frame_count_is_skipped_and_the_good_slice_beside_it_scored(real, tmp_path, frames):
    bad = _copy(real["enhanced_ct"], tmp_path / "in" / "enhanced.dcm")
    ds = pydicom.dcmread(bad)
    ds.NumberOfFrames = frames
    ds.save_as(bad)
    _copy(EXAMPLES / "clinical" / "abdomen.dcm", tmp_path / "in" / "good.dcm")
    found = scan([tmp_path / "in"])
    assert [s.reason.split(" (")[0] for s in found.skipped] == [f"NumberOfFrames {frames} does not match the file"]
    result = runner.invoke(app, ["score", str(tmp_path / "in"), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert len(_strict_json(result.stdout)["series"]) == 1


@pytest.mark.parametrize("slope, intercept", [("NaN", "-1024"), ("inf", "-1024"), ("1e308", "-1024"), ("0", "-1024"),
                                              ("1", "nan"), ("1", "-1e300")])
def test_poisoned_rescale_values_never_let_a_bad_series_pass(tmp_path, slope, intercept):
    """Four degraded slices and one with a poisoned rescale: the series still alerts, and the JSON is valid."""
    degraded = EXAMPLES / "degraded" / "abdomen_degraded.dcm"
    uid = pydicom.uid.generate_uid()
    for i in range(4):
        _copy(degraded, tmp_path / "s" / f"{i}.dcm", SeriesInstanceUID=uid, InstanceNumber=i + 1)
    poisoned = _copy(degraded, tmp_path / "s" / "poisoned.dcm", SeriesInstanceUID=uid, InstanceNumber=9)
    ds = pydicom.dcmread(poisoned)
    ds["RescaleSlope"].value, ds["RescaleIntercept"].value = slope, intercept
    ds.save_as(poisoned)
    result = runner.invoke(app, ["score", str(tmp_path / "s"), "--format", "json"])
    assert result.exit_code == 1, result.output
    doc = _strict_json(result.stdout)
    assert doc["series"][0]["alert"] is True and doc["series"][0]["n_slices"] == 4
    (skip,) = doc["skipped"]
    assert skip["reason"].startswith("RescaleSlope/RescaleIntercept not usable")
    assert all(math.isfinite(s["score"]) for s in doc["series"][0]["slices"])


def test_pixel_data_of_the_wrong_size_is_skipped(real, tmp_path):
    source = real["explicit_le"]  # uncompressed 512x512
    wrong = _copy(source, tmp_path / "rows.dcm", Rows=256)
    (skip,) = scan([wrong]).skipped
    assert skip.reason == reasons.PIXEL_SIZE.format(actual=512 * 512 * 2, expected=256 * 512 * 2)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
def test_pipes_and_links_to_devices_are_skipped_not_read(tmp_path):
    folder = tmp_path / "in"
    _copy(EXAMPLES / "clinical" / "abdomen.dcm", folder / "good.dcm")
    os.mkfifo(folder / "pipe.dcm")
    (folder / "zero.dcm").symlink_to("/dev/zero")
    found = scan([folder])
    assert found.n_slices == 1
    assert sorted(s.reason for s in found.skipped) == [reasons.NOT_REGULAR.format(kind="a character device"),
                                                        reasons.NOT_REGULAR.format(kind="a named pipe")]
    assert [s.reason for s in scan([folder / "pipe.dcm"]).skipped] == [reasons.NOT_REGULAR.format(kind="a named pipe")]


@pytest.mark.parametrize("command", ["score", "calibrate"])
def test_a_symlink_loop_and_a_non_utf8_name_are_walked_without_a_traceback(tmp_path, command):
    """A folder that links back to its parent, and a real slice whose name holds a Latin-1 byte: scored once each,
    CSV written, no traceback (exit 0 for score's pass; calibrate learns from the one series)."""
    import os
    import subprocess
    import sys

    from tfkt_edge.examples import EXAMPLES

    folder = tmp_path / "exam"
    (folder / "a").mkdir(parents=True)
    data = (EXAMPLES / "clinical" / "abdomen.dcm").read_bytes()
    (folder / "a" / "slice.dcm").write_bytes(data)
    os.symlink(folder, folder / "a" / "back")  # a loop
    odd = tmp_path / "odd"
    odd.mkdir()
    with open(os.path.join(os.fsencode(odd), b"caf\xe9.dcm"), "wb") as handle:
        handle.write(data)
    args = {"score": ["score", str(folder), str(odd), "--format", "csv"],
            "calibrate": ["calibrate", str(folder), "--min-series", "1", "-o", str(tmp_path / "b.json")]}[command]
    done = subprocess.run([sys.executable, "-m", "tfkt_edge", *args], capture_output=True, timeout=300)
    assert b"Traceback" not in done.stderr and done.returncode == 0, done.stderr.decode(errors="replace")
    if command == "score":
        rows = done.stdout.decode("utf-8", errors="replace").strip().splitlines()
        assert len(rows) == 3 and rows[0].startswith("series_instance_uid,")  # header, the slice, the odd-named copy
