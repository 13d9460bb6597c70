"""More series than a box table holds well: the table of `tfkt-edge score` becomes one aligned line per series."""

from __future__ import annotations

import pydicom
from pydicom.uid import generate_uid
from rich.cells import cell_len
from typer.testing import CliRunner

from tfkt_edge.cli.main import app
from tfkt_edge.examples import EXAMPLES
from tfkt_edge.render.table import LISTED_ABOVE

FORGED = "\x1b[2KVERY LONG SERIES DESCRIPTION " * 2  # 60 characters: LO holds 64


def _one_slice_series(folder, count):
    """``count`` one-slice series: copies of the bundled real slices, each its own series; the last is the degraded
    copy (an alert); the first has a long description with control characters in it."""
    folder.mkdir()
    clinical = pydicom.dcmread(next((EXAMPLES / "clinical").glob("*.dcm")))
    degraded = pydicom.dcmread(next((EXAMPLES / "degraded").glob("*.dcm")))
    for i in range(count):
        ds = degraded if i == count - 1 else clinical
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesDescription = FORGED if i == 0 else f"AXIAL {i}"
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.save_as(folder / f"{i:03d}.dcm")


def test_many_series_are_listed_a_line_each_within_the_console(tmp_path):
    count = LISTED_ABOVE + 2
    _one_slice_series(tmp_path / "in", count)
    result = CliRunner().invoke(app, ["score", str(tmp_path / "in")], env={"COLUMNS": "90"})
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    header = next(k for k, line in enumerate(lines) if line.split()[:3] == ["#", "verdict", "series"])
    rows = lines[header + 1: header + 1 + count]
    assert [int(row.split()[0]) for row in rows] == list(range(1, count + 1))
    assert all(cell_len(line) <= 90 for line in [lines[header], *rows])
    assert "┃" not in result.stdout  # no box table
    alerts = [row for row in rows if "RESCAN ALERT" in row]
    assert len(alerts) == 1 and sum(" pass " in row for row in rows) == count - 1
    (first,) = [row for row in rows if "VERY LONG" in row]
    assert "…" in first and "\x1b" not in result.stdout and "\\x1b[2KVERY LONG" in first
    verdict_at = lines[header].index("verdict")  # columns line up under their headers
    assert all(row[verdict_at:].startswith(("pass", "RESCAN ALERT")) for row in rows)
    assert f"#{count} " in result.stdout and "#1 " in result.stdout  # each series' reason follows
