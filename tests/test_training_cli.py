"""`models`, `evaluate` and `train` through Typer's CliRunner, on real data in real layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tfkt_edge.backends import create_backend
from tfkt_edge.cli.main import app
from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.evaluation.metrics import correlation_report

from . import iqa_fixtures

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.fixture
def labelled_ct(tmp_path, real):
    """Real CT slices (two anatomies) with graded added noise, labelled by noise level, in the challenge layout."""
    slices, labels = [], []
    for key in ("abdomen_j2k", "explicit_le"):
        hu = load_hu(scan([real[key]]).series[0].slices[0])
        sigmas = (0.0, 15.0, 40.0, 90.0)
        slices += iqa_fixtures.noisy_ct_slices(hu, sigmas)
        labels += [4.0, 3.2, 2.0, 0.8]
    return iqa_fixtures.ldctiqac(tmp_path / "LDCTIQAC_test", slices, labels, test_layout=True)


def test_models_json_lists_every_variant_with_measured_cost():
    pytest.importorskip("torch")
    result = invoke("models", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"tfkt_v2", "tfkt_edge_s", "tfkt_edge_m"}
    assert all(set(r) == {"name", "params", "gflops"} for r in rows.values())
    assert 205e6 < rows["tfkt_v2"]["params"] < 213e6  # the published ~209 M
    assert rows["tfkt_edge_s"]["gflops"] < rows["tfkt_edge_m"]["gflops"] < rows["tfkt_v2"]["gflops"] / 10


def test_evaluate_end_to_end(tmp_path, labelled_ct):
    out = tmp_path / "eval"
    result = invoke("evaluate", "--data", labelled_ct, "--output", out)
    assert result.exit_code == 0, result.output
    assert "overall" in result.stdout
    doc = json.loads((out / "predictions.json").read_text())
    assert (out / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    predictions = np.array([p["prediction"] for p in doc["predictions"]])
    labels = np.array([p["label"] for p in doc["predictions"]])
    assert [p["image"] for p in doc["predictions"]] == [f"test{i:03d}.tiff" for i in range(8)]
    figures = correlation_report(predictions, labels)
    assert doc["figures"]["overall"] == pytest.approx(figures["overall"], abs=1e-5) and doc["figures"]["n"] == 8
    # The same images straight through the backend give the same scores.
    from tfkt_edge.evaluation.ldctiqac import find_labelled_folder, model_input

    folder = find_labelled_folder(labelled_ct)
    direct = create_backend("onnxruntime").infer(np.stack([model_input(p) for p in folder.paths])[:, None])
    learned = np.array([p["learned"] for p in doc["predictions"]])
    np.testing.assert_allclose(learned, direct, atol=1e-5)
    # The verdict score is the learned score capped by the noise bound: never above it, lower only where noisy.
    assert np.all(predictions <= learned + 1e-6)
    noise = np.array([p["noise_hu"] if p["noise_hu"] is not None else 0.0 for p in doc["predictions"]])
    assert all(n > 25.0 for n in noise[predictions < learned - 1e-3])
    # Added noise lowers every anatomy's score.
    for anatomy in (predictions[:4], predictions[4:]):
        assert anatomy[0] > anatomy[-1]


def test_evaluate_bad_layout_is_one_line(tmp_path):
    result = invoke("evaluate", "--data", tmp_path)
    assert result.exit_code == 2
    assert "expected image/*.tif with train.json" in result.output and "Traceback" not in result.output


def test_train_finetune_then_refuse_to_overwrite(tmp_path, labelled_ct):
    pytest.importorskip("torch")
    run_dir = tmp_path / "run"
    args = ("train", "finetune", "--dataset", "ldctiqac", "--data", labelled_ct, "--mode", "scratch", "--epochs", "1",
            "--batch-size", "4", "--val-fraction", "0.25", "--run-dir", run_dir, "--loss", "mse+rank")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["loss"] == "mse+rank" and config["train_images"] + config["val_images"] == 8
    assert config["val_images"] == 2
    assert (run_dir / "loss.png").read_bytes()[:4] == b"\x89PNG" and (run_dir / "model.pt").exists()
    again = invoke(*args)
    assert again.exit_code == 2 and "already holds a run" in again.output


def test_train_pretrain_on_a_kadid_layout(tmp_path):
    pytest.importorskip("torch")
    root = iqa_fixtures.kadid10k(tmp_path / "kadid10k")
    result = invoke("train", "pretrain", "--dataset", "kadid10k", "--data", root, "--epochs", "1", "--batch-size", "2",
                    "--run-dir", tmp_path / "pre", "--val-fraction", "0.0")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "pre" / "config.json").read_text())
    assert config["train_images"] == 3  # the colour-saturation image is not CT-like
    missing = invoke("train", "pretrain", "--dataset", "kadid10k", "--data", tmp_path / "nowhere", "--run-dir", tmp_path / "p2")
    assert missing.exit_code == 2 and "dmos.csv" in missing.output and "expected layout" in missing.output
    init_missing = invoke("train", "finetune", "--mode", "transfer", "--run-dir", tmp_path / "f")
    assert init_missing.exit_code == 2 and "needs --init" in init_missing.output
