"""`tfkt-edge evaluate --series`: false alerts and misses per source on real series and a degraded copy."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from tfkt_edge.cli.main import app
from tfkt_edge.evaluation.series import SeriesOutcome, summarise
from tfkt_edge.examples import EXAMPLES

runner = CliRunner()


def test_series_mode_counts_false_alerts_and_misses(tmp_path, real):
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    (tmp_path / "series.csv").write_text(
        "path,source,ladder,dose,label,expected\n"
        "examples/clinical,abdomen,a,1.0,4.0,pass\n"
        "examples/degraded,abdomen,a,0.05,0.76,alert\n"
        f"{real['skull_base_heldout']},head,h,1.0,4.0,pass\n"
        f"{real['explicit_le']},head,h2,1.0,4.0,either\n")
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--series", str(tmp_path), "-o", str(out)], terminal_width=200)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "series.json").read_text())
    summary = doc["summary"]
    assert summary["all"]["diagnostic_series"] == 2 and summary["all"]["low_dose_series"] == 1
    assert summary["sources"]["abdomen"]["misses"] == 0  # the 5%-dose copy alerts
    statuses = {(s["source"], s["expected"]): s["status"] for s in doc["series"]}
    assert statuses[("abdomen", "alert")] == "alert"
    assert len(doc["series"]) == 4 and "series results" in result.stdout


def test_ladder_srocc_and_rates_from_outcomes():
    rows = [SeriesOutcome("s", "l", d, 4 + 0.75 * __import__("math").log2(d), "pass" if d == 1 else "alert" if d <= 0.1 else "either",
                          status, None, scores)
            for d, status, scores in ((1.0, "pass", [3.9, 3.7]), (0.5, "pass", [3.2, 3.0]), (0.1, "alert", [1.4, 1.6]),
                                      (0.02, "pass", [0.5, 2.5]))]
    figures = summarise(rows)["all"]
    assert figures["false_alerts"] == 0 and figures["misses"] == 1 and figures["miss_rate"] == 0.5
    assert figures["ladder_slices"] == 2 and figures["ladder_srocc_min"] < figures["ladder_srocc_mean"] <= 1.0
    assert figures["undegraded_median_score"] == 3.8


def test_series_mode_refuses_bad_input(tmp_path):
    assert runner.invoke(app, ["evaluate"]).exit_code == 2
    assert runner.invoke(app, ["evaluate", "--series", str(tmp_path)]).exit_code == 2  # no series.csv
    (tmp_path / "series.csv").write_text("path,source,ladder,dose,label,expected\nx,s,l,1,4,maybe\n")
    result = runner.invoke(app, ["evaluate", "--series", str(tmp_path)])
    assert result.exit_code == 2 and "expected in" in result.output
