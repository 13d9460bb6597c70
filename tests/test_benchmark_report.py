"""`tfkt-edge benchmark` (a tiny real run) and the visual report (`report`, `score --report`)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tfkt_edge.cli.main import app
from tfkt_edge.examples import EXAMPLES

runner = CliRunner()
REQUIRED = {"backend", "model", "mode", "batch_size", "precision", "slices_per_s", "p50_ms", "p95_ms", "p99_ms"}


pytestmark = pytest.mark.slow  # a real benchmark run and a headless browser


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    """Edge model and TFKT V2 reference on the torch backend (CPU), kept short: batch 1, one 0.05 s run each."""
    pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("bench")
    result = runner.invoke(app, ["benchmark", "--backend", "torch", "--reference", "--batch-sizes", "1", "--duration", "0.05",
                                 "--repeats", "2", "--slices", "4", "--e2e-batch", "2", "--json", str(folder / "b.json"),
                                 "--markdown", str(folder / "b.md"), "--plot", str(folder / "b.png")],
                           env={"TFKT_EDGE_CACHE": str(folder / "cache")})
    assert result.exit_code == 0, result.output
    assert (folder / "cache" / "tfkt_v2-random-seed0.pt").is_file()  # the torch backend reads the reference as a checkpoint
    return folder, json.loads((folder / "b.json").read_text())


def test_benchmark_rows_follow_the_schema_and_make_sense(tiny_benchmark):
    _, result = tiny_benchmark
    rows = result["rows"]
    assert all(set(row) >= REQUIRED for row in rows)
    assert {(r["model"], r["mode"]) for r in rows} >= {("tfkt_edge_s", "model-only"), ("tfkt_v2", "model-only"),
                                                      ("tfkt_edge_s", "end-to-end"), ("-", "decode-only")}
    for row in rows:
        assert row["slices_per_s"] > 0 and row["min_slices_per_s"] <= row["slices_per_s"] <= row["max_slices_per_s"]
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    speed = {r["model"]: r["slices_per_s"] for r in rows if r["mode"] == "model-only"}
    assert speed["tfkt_edge_s"] > speed["tfkt_v2"]  # 0.5 against 130 GFLOPs per slice
    assert result["machine"]["cores"] >= 1 and "torch" in result["machine"]["libraries"] and result["peak_rss_mb"] > 0


def test_benchmark_writes_markdown_and_plot(tiny_benchmark):
    folder, _ = tiny_benchmark
    text = (folder / "b.md").read_text()
    assert text.count("\n| torch | tfkt_") == 3 and "| none | - | decode-only |" in text
    # The notes say what was measured: latency units, the end-to-end input, peak memory.
    assert "- latency: model-only, one batch" in text and "- peak resident memory of the run:" in text
    assert "- end-to-end input: 4 uncompressed copies of one real 512x512 slice" in text
    import torch

    assert ("h2d ms" in text) == torch.cuda.is_available()  # an empty column is left out
    plot = Image.open(folder / "b.png")
    assert plot.size == (700, 420) and np.asarray(plot.convert("L")).std() > 10


def test_benchmark_refuses_bad_options(tmp_path):
    bad = runner.invoke(app, ["benchmark", "--batch-sizes", "1,x"])
    assert bad.exit_code == 2
    fp16 = runner.invoke(app, ["benchmark", "--precision", "fp16", "--modes", "model-only", "--no-reference",
                               "--duration", "0"])
    assert fp16.exit_code == 2 and "runs fp32 only" in fp16.stderr
    modes = runner.invoke(app, ["benchmark", "--modes", "fast"])
    assert modes.exit_code == 2 and "--modes" in modes.stderr


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    result = runner.invoke(app, ["report", str(EXAMPLES), "--output", str(folder / "r.html"), "--profiles", str(folder / "p")])
    assert result.exit_code == 1, result.output  # the degraded example alerts
    return folder


def test_report_is_self_contained_with_every_image_embedded(report):
    text = (report / "r.html").read_text()
    assert "RESCAN ALERT" in text and "PASS" in text and "tfkt_edge_s" in text and "NOT radiologist scores" in text
    assert not re.search(r'(src|href)="(?!data:|#)', text)  # nothing fetched from outside the file (#: links within it)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 4  # per series: the profile and one thumbnail (each series has one slice)
    for data in images:
        assert Image.open(__import__("io").BytesIO(base64.b64decode(data))).size[0] >= 128
    profiles = sorted((report / "p").glob("*.png"))
    assert len(profiles) == 2 and Image.open(profiles[0]).size == (800, 280)


def test_score_writes_the_report_too(tmp_path):
    """With its table on the console, `score --report` still takes the texture figures the report shows."""
    result = runner.invoke(app, ["score", str(EXAMPLES / "clinical"), "--report", str(tmp_path / "r.html")])
    text = (tmp_path / "r.html").read_text()
    assert result.exit_code == 0 and "PASS" in text and "streak index" in text and "NPS mean frequency" in text


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(chromium() is None, reason="needs headless Chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1100,1400", (report / "r.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    red = (pixels[..., 0] > 170) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)  # the alert banner and border
    green = (pixels[..., 1] > 100) & (pixels[..., 0] < 80) & (pixels[..., 2] < 80)  # the pass banner and border
    dark = pixels.sum(axis=-1) < 60  # the CT thumbnails' black background
    assert red.sum() > 500 and green.sum() > 500 and dark.sum() > 5000
