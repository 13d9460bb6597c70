"""The backend registry and the GPU backends' behaviour on a machine without a GPU or TensorRT."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tfkt_edge.backends import BACKENDS, create_backend
from tfkt_edge.cli.main import app
from tfkt_edge.errors import InputError, ModelError, UnknownNameError
from tfkt_edge.examples import EXAMPLES
from tfkt_edge.model.model_file import DEFAULT_MODEL

runner = CliRunner()


def test_every_backend_is_registered_by_name():
    create_backend("onnxruntime").close()
    assert BACKENDS.names() == ["onnxruntime", "tensorrt", "torch", "triton"]
    with pytest.raises(UnknownNameError, match="choose one of: onnxruntime, tensorrt, torch, triton"):
        create_backend("openvino")


def test_torch_backend_on_the_cpu_scores_like_the_shipped_onnx():
    pytest.importorskip("torch")
    from tfkt_edge.backends.pytorch import TorchBackend
    from tfkt_edge.dicom import load_hu, scan
    from tfkt_edge.model.preprocess import preprocess

    reference = create_backend("onnxruntime")
    backend = TorchBackend(device="cpu")
    assert backend.precision == "fp32" and backend.max_batch() is None
    assert backend.model.contract == reference.model.contract and backend.model.path.name == "tfkt_edge_s.pt"
    refs = [s for series in scan([EXAMPLES]).series for s in series.slices]
    batch = np.stack([preprocess(load_hu(r), reference.model.contract) for r in refs])[:, None]
    np.testing.assert_allclose(backend.infer(batch), reference.infer(batch), atol=1e-4)


def test_torch_backend_refuses_what_it_cannot_run(tmp_path):
    pytest.importorskip("torch")
    from tfkt_edge.backends.pytorch import TorchBackend

    with pytest.raises(InputError, match="FP16 scoring with the torch backend needs a CUDA GPU"):
        TorchBackend(device="cpu", precision="fp16")
    with pytest.raises(ModelError, match="runs training checkpoints"):
        create_backend("torch", DEFAULT_MODEL)
    bogus = tmp_path / "model.pt"
    bogus.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a tfkt-edge training checkpoint"):
        create_backend("torch", bogus)


def test_score_cli_with_the_torch_backend():
    pytest.importorskip("torch")
    result = runner.invoke(app, ["score", str(EXAMPLES), "--backend", "torch", "--format", "json"])
    assert result.exit_code == 1, result.output  # the degraded example alerts
    document = json.loads(result.stdout)
    assert [s["alert"] for s in document["series"]] == [False, True]
    assert document["model"]["path"].endswith("tfkt_edge_s.pt")


def test_score_cli_tensorrt_errors_are_one_line():
    result = runner.invoke(app, ["score", str(EXAMPLES), "--backend", "tensorrt"], env={"COLUMNS": "60"})
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "tfkt-edge export tensorrt" in result.stderr


def test_export_tensorrt_without_tensorrt_names_the_gpu_extra(tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    result = runner.invoke(app, ["export", "tensorrt", "--onnx", str(DEFAULT_MODEL), "--output", str(tmp_path / "m.engine")])
    assert result.exit_code == 2 and "tfkt-edge[gpu]" in result.stderr
    assert not (tmp_path / "m.engine").exists()
    missing = runner.invoke(app, ["export", "tensorrt", "--onnx", str(tmp_path / "none.onnx"), "--output", str(tmp_path / "m.engine")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr
