"""The Basic Text SR is built from the result alone: the scored files may be gone by the time it is sent."""

from __future__ import annotations

import json
import shutil

import pydicom
from typer.testing import CliRunner

from tfkt_edge.cli.main import app
from tfkt_edge.examples import EXAMPLES
from tfkt_edge.service.report_sr import build_sr


def test_the_sr_joins_the_study_from_the_result_after_the_scored_file_is_deleted(tmp_path):
    source = EXAMPLES / "degraded" / "abdomen_degraded.dcm"
    copy = tmp_path / "in" / "slice.dcm"
    copy.parent.mkdir()
    shutil.copyfile(source, copy)
    result = CliRunner().invoke(app, ["score", str(copy), "--format", "json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    copy.unlink()  # a watched folder cleaned up by the scanner before the archive was reachable
    sr = build_sr(7, payload)
    original = pydicom.dcmread(source, stop_before_pixels=True)
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
                    "PatientBirthDate", "PatientSex", "ReferringPhysicianName"):
        assert keyword in sr, keyword  # Type 1 or 2: present, even when empty
        assert str(sr[keyword].value or "") == str(original.get(keyword, "") or ""), keyword
    assert sr.ReferencedPerformedProcedureStepSequence == [] and sr.PerformedProcedureCodeSequence == []
    (evidence,) = sr.CurrentRequestedProcedureEvidenceSequence
    (scanned,) = evidence.ReferencedSeriesSequence
    assert scanned.ReferencedSOPSequence[0].ReferencedSOPClassUID == original.SOPClassUID
    assert scanned.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == original.SOPInstanceUID
    assert build_sr(7, payload).SOPInstanceUID == sr.SOPInstanceUID  # a retried send is the same instance


def test_the_sr_passes_dciodvfy_without_errors(tmp_path):
    """dicom3tools' IOD verifier (Debian package dicom3tools; `make test` installs it where it can)."""
    import subprocess

    import pytest

    if shutil.which("dciodvfy") is None:
        pytest.skip("needs dciodvfy (apt-get install dicom3tools)")
    result = CliRunner().invoke(app, ["score", str(EXAMPLES / "degraded"), "--format", "json"])
    sr = build_sr(3, json.loads(result.stdout))
    sr.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    checked = subprocess.run(["dciodvfy", str(tmp_path / "sr.dcm")], capture_output=True, text=True, timeout=60)
    report = checked.stdout + checked.stderr
    assert "BasicTextSR" in report
    assert not [line for line in report.splitlines() if line.startswith("Error")], report
