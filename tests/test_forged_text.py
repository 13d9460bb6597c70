"""Header text can hold control characters; no human-facing output obeys them (console, table, HTML, SR)."""

from __future__ import annotations

import io
import json

import pydicom
from rich.console import Console
from typer.testing import CliRunner

from tfkt_edge.cli.main import app
from tfkt_edge.examples import EXAMPLES
from tfkt_edge.render.shown import visible
from tfkt_edge.service.report_sr import build_sr
from tfkt_edge.service.sinks import ConsoleSink

runner = CliRunner()
# Erase the line, go up one, print a green pass in its place; then a right-to-left override.
FORGED = "\x1b[2K\x1b[1A\x1b[32mpass: HEAD ROUTINE\x1b[0m\u202e"


def _forged_degraded(tmp_path):
    ds = pydicom.dcmread(EXAMPLES / "degraded" / "abdomen_degraded.dcm")
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the sender can write any character
    ds.SeriesDescription = FORGED
    ds.PatientName = "DOE^JOHN\x1b]0;owned\x07"
    ds.BodyPartExamined = "BREAST\x1b[2K"  # outside the domain: the region is quoted in the reason
    path = tmp_path / "forged.dcm"
    ds.save_as(path)
    return path


def test_visible_escapes_control_and_format_characters_only():
    assert visible("ABD 3MM [x]") == "ABD 3MM [x]"
    assert visible("a\x1b[2Kb\u202e\n") == "a\\x1b[2Kb\\u202e\\x0a"
    assert visible("a\nb", "\n") == "a\nb"


def test_the_table_and_the_json_of_a_forged_description(tmp_path):
    path = _forged_degraded(tmp_path)
    table = runner.invoke(app, ["score", str(path)])
    assert table.exit_code == 1 and "\x1b" not in table.stdout and "\u202e" not in table.stdout
    assert "RESCAN ALERT" in table.stdout and "\\x1b" in table.stdout
    doc = json.loads(runner.invoke(app, ["score", str(path), "--format", "json"]).stdout)
    assert doc["series"][0]["description"] == FORGED  # kept as sent where a program reads it


def test_the_console_line_html_report_and_sr_of_a_forged_description(tmp_path):
    path = _forged_degraded(tmp_path)
    payload = json.loads(runner.invoke(app, ["score", str(path), "--format", "json"]).stdout)
    buffer = io.StringIO()
    ConsoleSink(Console(file=buffer, force_terminal=True, width=200)).deliver(1, payload)
    line = buffer.getvalue()
    assert "RESCAN ALERT" in line and "\x1b[2K" not in line and "\x1b[1A" not in line and "\u202e" not in line
    report = tmp_path / "r.html"
    assert runner.invoke(app, ["report", str(path), "-o", str(report)]).exit_code == 1
    html = report.read_text()
    assert "\x1b" not in html and "\u202e" not in html and "\\x1b[2K" in html
    sr = build_sr(1, payload)
    texts = [item.TextValue for item in sr.ContentSequence]
    assert all("\x1b" not in t for t in texts) and any("\\x1b" in t for t in texts)
