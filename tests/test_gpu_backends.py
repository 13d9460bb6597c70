"""GPU backends on a real GPU: torch CUDA FP16 with CUDA graphs, and TensorRT engines.

Marked ``cuda`` / ``tensorrt``: they skip with the reason where PyTorch sees
no CUDA GPU or TensorRT and pycuda are not installed. Only the bundled
example slices are used, so they run on a GPU machine without pydicom-data.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfkt_edge.backends import create_backend
from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.errors import ModelError
from tfkt_edge.examples import EXAMPLES
from tfkt_edge.model.engine_file import sidecar_path
from tfkt_edge.model.model_file import DEFAULT_MODEL
from tfkt_edge.model.preprocess import preprocess


@pytest.fixture(scope="module")
def examples() -> np.ndarray:
    """The bundled clinical and degraded slices, preprocessed: (2, 1, 512, 512)."""
    reference = create_backend("onnxruntime")
    refs = [s for series in scan([EXAMPLES]).series for s in series.slices]
    return np.stack([preprocess(load_hu(r), reference.model.contract) for r in refs])[:, None]


@pytest.fixture(scope="module")
def fp32_scores(examples) -> np.ndarray:
    return create_backend("onnxruntime").infer(examples)


@pytest.mark.cuda
def test_torch_fp16_on_cuda_matches_fp32_onnx(examples, fp32_scores):
    from tfkt_edge.backends.pytorch import TorchBackend

    backend = TorchBackend(device="cuda")
    assert backend.precision == "fp16" and backend.max_batch() == 64
    scores = backend.infer(examples)
    assert np.max(np.abs(scores - fp32_scores)) < 0.02
    assert scores[0] > 2.0 > scores[1]  # clinical passes, degraded alerts
    backend.close()


@pytest.mark.cuda
def test_cuda_graph_padding_and_chunking_keep_every_score(examples):
    """Batches of 3 (padded to a 4-graph) and 70 (64 + 6) give each slice the score it gets alone."""
    from tfkt_edge.backends.pytorch import TorchBackend

    backend = TorchBackend(device="cuda")
    alone = np.concatenate([backend.infer(examples[i:i + 1]) for i in range(2)])
    three = backend.infer(examples[[0, 1, 0]])
    seventy = backend.infer(examples[np.arange(70) % 2])
    assert np.allclose(three, alone[[0, 1, 0]], atol=2e-3)
    assert seventy.shape == (70,) and np.allclose(seventy, alone[np.arange(70) % 2], atol=2e-3)
    assert set(backend._graphs) == {1, 4, 8, 64}
    backend.close()


@pytest.mark.cuda
def test_two_batches_in_flight_from_page_locked_buffers_keep_their_scores(examples):
    """submit returns before the GPU is done; two staging buffers queued back to back score as infer does."""
    import torch

    from tfkt_edge.backends.pytorch import TorchBackend

    backend = TorchBackend(device="cuda")
    alone = backend.infer(examples)
    first, second = backend.staging(16), backend.staging(16)
    assert torch.from_numpy(first).is_pinned()
    first[:] = examples[np.arange(16) % 2]
    second[:] = examples[(np.arange(16) + 1) % 2]
    wait_first, wait_second = backend.submit(first), backend.submit(second)
    assert np.allclose(wait_second(), alone[(np.arange(16) + 1) % 2], atol=2e-3)
    assert np.allclose(wait_first(), alone[np.arange(16) % 2], atol=2e-3)
    backend.close()


@pytest.mark.cuda
def test_decoding_processes_hand_batches_to_the_gpu_from_their_pinned_shared_block(tmp_path):
    """--decoders processes with the torch backend on CUDA: batches are scored where the processes decoded
    them, in the shared block page-locked by TorchBackend.pin; scores as with decoding threads."""
    import torch

    from tfkt_edge.backends.pytorch import TorchBackend
    from tfkt_edge.bench.benchmark import write_series
    from tfkt_edge.pipeline.run import score_paths
    from tfkt_edge.pipeline.slots import SharedSlots

    backend = TorchBackend(device="cuda")
    block = SharedSlots(4, 512)
    unpin = backend.pin(block.array)
    assert torch.from_numpy(block.array[:2, None]).is_pinned()
    unpin()
    block.close()
    write_series(tmp_path, 40)
    processes = score_paths([tmp_path], backend, batch_size=16, workers=4, decoders="processes")
    threads = score_paths([tmp_path], backend, batch_size=16, workers=4, decoders="threads")
    assert np.allclose(processes.results[0].scores, threads.results[0].scores, atol=2e-3)
    backend.close()


@pytest.mark.cuda
def test_score_cli_with_the_torch_backend_on_cuda():
    from typer.testing import CliRunner

    from tfkt_edge.cli.main import app

    result = CliRunner().invoke(app, ["score", str(EXAMPLES), "--backend", "torch", "--format", "json"])
    assert result.exit_code == 1, result.output  # the degraded example raises an alert
    series = json.loads(result.stdout)["series"]
    assert [s["alert"] for s in series] == [False, True]
    assert json.loads(result.stdout)["model"]["path"].endswith("tfkt_edge_s.pt")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from tfkt_edge.export.tensorrt import BuildSettings, build_engine

    path = tmp_path_factory.mktemp("engine") / "model.engine"
    return build_engine(DEFAULT_MODEL, path, BuildSettings(1, 8, 16), log=lambda _: None)


@pytest.mark.tensorrt
def test_tensorrt_engine_is_fp16_and_matches_fp32(engine, examples, fp32_scores):
    side = json.loads(sidecar_path(engine.engine).read_text())
    assert side["precision"] == "fp16" and side["profile"]["max"] == [16, 1, 512, 512]
    assert engine.precisions.is_fp16 and engine.max_difference < 0.02
    backend = create_backend("tensorrt", engine.engine)
    assert backend.max_batch() == 16
    assert np.max(np.abs(backend.infer(examples) - fp32_scores)) < 0.02
    backend.close()


@pytest.mark.tensorrt
def test_tensorrt_refuses_an_engine_from_another_version(engine, tmp_path):
    copy = tmp_path / "model.engine"
    copy.write_bytes(engine.engine.read_bytes())
    side = json.loads(sidecar_path(engine.engine).read_text())
    side["tensorrt_version"] = "9.0.0"
    sidecar_path(copy).write_text(json.dumps(side))
    with pytest.raises(ModelError, match="rebuild it here"):
        create_backend("tensorrt", copy)
