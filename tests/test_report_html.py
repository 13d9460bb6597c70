"""The HTML report escapes everything a DICOM header can carry: a description is text, never markup."""

from __future__ import annotations

import pydicom

from tfkt_edge.backends import create_backend
from tfkt_edge.examples import EXAMPLES
from tfkt_edge.policy import AlertPolicy
from tfkt_edge.report_html import render
from tfkt_edge.scoring import score_paths


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
