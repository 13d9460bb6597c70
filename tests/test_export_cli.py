"""`tfkt-edge export onnx`: a real training checkpoint to a model file the runtime scores with."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tfkt_edge.cli.main import app

torch = pytest.importorskip("torch")

runner = CliRunner()


def test_checkpoint_exports_with_contract_card_and_parity(tmp_path):
    from tfkt_edge.backends import create_backend
    from tfkt_edge.examples import EXAMPLES
    from tfkt_edge.model.preprocess import LDCTIQAC
    from tfkt_edge.pipeline.run import score_paths
    from tfkt_edge.train.trainer import TrainConfig, train
    from tfkt_edge.verdict.policy import AlertPolicy

    from .test_training import tiny_set

    train(TrainConfig(epochs=1, batch_size=2), tiny_set(2), None, tmp_path / "run")
    output, twin = tmp_path / "out" / "model.onnx", tmp_path / "out" / "model_stored.onnx"
    result = runner.invoke(app, ["export", "onnx", "--checkpoint", str(tmp_path / "run" / "model.pt"), "--output", str(output),
                                 "--stored-input", str(twin)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "onnx.checker   ok" in result.stdout and "tensorrt ops   ok" in result.stdout and "on real CT" in result.stdout
    backend = create_backend("onnxruntime", output)
    assert backend.model.contract == LDCTIQAC and backend.model.name == "tfkt_edge_s"
    assert "NOT radiologist scores" in backend.model.card["labels"]  # trained on the simulator corpus
    assert json.loads(json.dumps(backend.model.card))["training"]["epochs"] == 1
    run = score_paths([EXAMPLES], backend, AlertPolicy(), 4, 1)
    assert len(run.results) == 2
    # The stored-input twin: the same card, the same verdicts and scores through the pipeline.
    assert "onnx (stored input)" in result.stdout
    stored = create_backend("onnxruntime", twin)
    assert stored.takes_stored and stored.model.card == backend.model.card
    again = score_paths([EXAMPLES], stored, AlertPolicy(), 4, 1)
    assert [r.verdict.status for r in again.results] == [r.verdict.status for r in run.results]
    assert max(abs(a.scores - b.scores).max() for a, b in zip(again.results, run.results)) < 1e-3


def test_bad_checkpoint_is_one_line(tmp_path):
    bogus = tmp_path / "model.pt"
    bogus.write_text("not a checkpoint")
    result = runner.invoke(app, ["export", "onnx", "--checkpoint", str(bogus), "--output", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2 and "not a tfkt-edge training checkpoint" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2
    missing = runner.invoke(app, ["export", "onnx", "--checkpoint", str(tmp_path / "none.pt"), "--output", str(tmp_path / "m.onnx")])
    assert missing.exit_code == 2 and "no such file" in missing.output
