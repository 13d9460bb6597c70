"""The HTML report escapes everything a DICOM header can carry: a description is text, never markup."""

from __future__ import annotations

import pydicom

from tfkt_edge.backends import create_backend
from tfkt_edge.examples import EXAMPLES
from tfkt_edge.pipeline.run import score_paths
from tfkt_edge.render.html import render
from tfkt_edge.verdict.policy import AlertPolicy


def test_header_text_is_escaped_in_the_report(tmp_path):
    ds = pydicom.dcmread(EXAMPLES / "degraded" / "abdomen_degraded.dcm")
    ds.SeriesDescription = '<script>alert("x")</script>'
    ds.PatientName = "O'Brien^<b>Bold</b>"
    ds.save_as(tmp_path / "slice.dcm")
    (tmp_path / "<img src=x onerror=alert(1)>.txt").write_text("not DICOM")
    run = score_paths([tmp_path], create_backend("onnxruntime"), AlertPolicy())
    page = render(run, AlertPolicy(), profiles=[b"png"])
    assert "<script>" not in page and "<b>Bold</b>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page and "&lt;b&gt;Bold&lt;/b&gt;" in page
    assert "RESCAN ALERT" in page and "Skipped (1)" in page


def test_a_report_on_slices_at_absurd_positions_is_drawn_by_slice_number(tmp_path):
    """ImagePositionPatient 1e308 mm is a valid DS a sender can write: the profile falls back to slice order."""
    from pydicom.uid import generate_uid
    from typer.testing import CliRunner

    from tfkt_edge.cli.main import app

    for i, z in enumerate((1e308, -1e308)):
        ds = pydicom.dcmread(EXAMPLES / "clinical" / "abdomen.dcm")
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [0, 0, z]
        ds.save_as(tmp_path / f"s{i}.dcm")
    result = CliRunner().invoke(app, ["report", str(tmp_path), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output  # before: a traceback from matplotlib, exit 1 (the alert code)
    assert "<img class=\"profile\"" in (tmp_path / "r.html").read_text()


def test_the_report_opens_with_every_series_alerts_first(tmp_path):
    """A clinical series and a degraded one (real CT): the summary table lists the alert first, each row linking to
    its section; the policy text follows the table."""
    import re

    for name in ("clinical/abdomen.dcm", "degraded/abdomen_degraded.dcm"):
        (tmp_path / name.split("/")[1]).write_bytes((EXAMPLES / name).read_bytes())
    run = score_paths([tmp_path], create_backend("onnxruntime"), AlertPolicy())
    page = render(run, AlertPolicy(), profiles=[b"png"] * len(run.results))
    summary = page[page.index('<table class="summary">'):page.index("</table>")]
    states = re.findall(r'<td class="(alert|pass|outside-domain)">', summary)
    assert states == ["alert", "pass"]
    for number in re.findall(r'<a href="#series-(\d+)">', summary):
        assert f'id="series-{number}"' in page
    assert page.index('<table class="summary">') < page.index("a series alerts when its")
