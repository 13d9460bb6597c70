"""The INT8 CPU variant: made from the shipped model without torch, loadable with its contract and card, close to FP32."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from tfkt_edge.backends import create_backend
from tfkt_edge.cli.main import app
from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.examples import EXAMPLES
from tfkt_edge.model.preprocess import preprocess

pytest.importorskip("onnx", reason="export int8 needs the onnx package (the [train] extra)")


def test_export_int8_writes_a_quantized_model_that_keeps_the_contract_and_the_demo_verdicts(tmp_path):
    output = tmp_path / "model.int8.onnx"
    result = CliRunner().invoke(app, ["export", "int8", "-o", str(output)])
    assert result.exit_code == 0, result.output
    fp32, int8 = create_backend("onnxruntime"), create_backend("onnxruntime", output)
    assert int8.model.contract == fp32.model.contract and int8.model.name == fp32.model.name
    assert int8.model.card["precision"]["weights"] == "int8 per channel"
    import onnx

    operators = {node.op_type for node in onnx.load(str(output)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= operators
    slices = [s for series in scan([EXAMPLES / "clinical", EXAMPLES / "degraded"]).series for s in series.slices]
    batch = np.stack([preprocess(load_hu(s), fp32.model.contract) for s in slices])[:, None]
    a, b = fp32.infer(batch), int8.infer(batch)
    assert np.abs(a - b).max() < 0.5  # measured drift on held-out ladders: benchmarks/results/int8_cpu.json
    assert list(a < 2.0) == list(b < 2.0)  # the clinical slice passes and the degraded copy alerts with either
    scored = CliRunner().invoke(app, ["score", str(EXAMPLES / "clinical"), str(EXAMPLES / "degraded"), "--model", str(output)])
    assert scored.exit_code == 1


def test_export_int8_refuses_a_file_that_is_not_a_model(tmp_path):
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not onnx")
    result = CliRunner().invoke(app, ["export", "int8", "--onnx", str(bogus), "-o", str(tmp_path / "out.onnx")])
    assert result.exit_code == 2 and result.stderr.startswith("error:")
    assert not (tmp_path / "out.onnx").exists()
