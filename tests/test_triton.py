"""Scoring on a shared NVIDIA Triton Inference Server: a real `tritonserver` on loopback, real gRPC clients.

The server is the one bundled in nvidia-pytriton, started by `tfkt-edge
triton-serve` from its own environment (`make triton-env` makes
`.venv-triton`; `TFKT_TRITON_ENV` points elsewhere). Without it, or without
tritonclient, these tests skip and say why.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tfkt_edge.backends import BackendOptions, create_backend
from tfkt_edge.errors import InputError
from tfkt_edge.examples import EXAMPLES
from tfkt_edge.model.model_file import DEFAULT_MODEL, STORED_MODEL
from tfkt_edge.model.preprocess import LDCTIQAC
from tfkt_edge.verdict.policy import AlertPolicy

from .conftest import write_series
from .node import free_port

ROOT = Path(__file__).resolve().parents[1]
SERVER_ENV = Path(os.environ.get("TFKT_TRITON_ENV", ROOT / ".venv-triton"))
grpc_client = pytest.importorskip("tritonclient.grpc", reason="needs tritonclient (the [triton] extra)")
needs_server = pytest.mark.skipif(not (SERVER_ENV / "bin" / "python").exists(),
                                  reason=f"needs the Triton server environment at {SERVER_ENV} (make triton-env)")


def _real_batch(real) -> np.ndarray:
    """Preprocessed real CT slices: clinical, degraded and held-out."""
    from tfkt_edge.dicom import load_hu, scan
    from tfkt_edge.model.preprocess import preprocess

    paths = [EXAMPLES / "clinical", EXAMPLES / "degraded", real["explicit_le"], real["abdomen_j2k"], real["skull_base_heldout"]]
    slices = [s for series in scan(paths).series for s in series.slices]
    return np.stack([preprocess(load_hu(s), LDCTIQAC) for s in slices])[:, None].astype(np.float32)


class TritonServe:
    """`python -m tfkt_edge triton-serve` as a process on free loopback ports."""

    def __init__(self, repository: Path, log: Path):
        self.grpc, self.http, self.metrics = free_port(), free_port(), free_port()
        self.log = log
        with open(log, "w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tfkt_edge", "triton-serve", str(repository), "--server-env", str(SERVER_ENV),
                 "--grpc-port", str(self.grpc), "--http-port", str(self.http), "--metrics-port", str(self.metrics)],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "400"})
        deadline = time.monotonic() + 180
        while "Triton serving" not in log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"triton-serve did not start:\n{log.read_text()}")
            time.sleep(0.2)
        self.server_pid = int(re.search(r"tritonserver pid (\d+)", log.read_text()).group(1))

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc}"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=60)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split(")")[-1].split()[0] == "Z"


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    from tfkt_edge.export.triton import write_repository

    folder = tmp_path_factory.mktemp("triton") / "models"
    write_repository(None, folder)
    return folder


@pytest.fixture(scope="module")
def served(repository, tmp_path_factory):
    server = TritonServe(repository, tmp_path_factory.mktemp("triton-log") / "serve.log")
    yield server
    assert server.stop() == 0
    assert _gone(server.server_pid), "tritonserver outlived triton-serve"


def _parse(path: Path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_the_generated_configs_parse_and_match_the_onnx_model(repository, tmp_path):
    """The default repository serves the stored-input twin (int16 pixels in: half the bytes a node sends); one
    written from the image-input model serves float32 images."""
    import onnxruntime as ort
    from tritonclient.grpc import model_config_pb2

    from tfkt_edge.export.triton import write_repository

    image_repository = tmp_path / "image"
    write_repository(DEFAULT_MODEL, image_repository)
    for folder, model, types in ((repository, STORED_MODEL, ["TYPE_INT16", "TYPE_FP32"]),
                                 (image_repository, DEFAULT_MODEL, ["TYPE_FP32"])):
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        names = sorted(p.name for p in folder.iterdir())
        assert names == ["tfkt_edge_s", "tfkt_edge_s-python"]
        for name in names:
            config = _parse(folder / name / "config.pbtxt")
            assert config.name == name and config.max_batch_size == 64
            assert [i.name for i in config.input] == [i.name for i in session.get_inputs()]
            assert [list(i.dims) for i in config.input] == [i.shape[1:] for i in session.get_inputs()]
            assert [model_config_pb2.DataType.Name(i.data_type) for i in config.input] == types
            assert [o.name for o in config.output] == [o.name for o in session.get_outputs()]
            assert list(config.dynamic_batching.preferred_batch_size) == [16, 32]
            assert (folder / name / "1" / "model.onnx").read_bytes() == model.read_bytes()
        assert _parse(folder / "tfkt_edge_s" / "config.pbtxt").platform == "onnxruntime_onnx"
        assert (folder / "tfkt_edge_s-python" / "1" / "model.py").is_file()


def test_a_plan_adds_a_tensorrt_variant_and_bad_settings_are_refused(tmp_path):
    from tfkt_edge.errors import ExportError
    from tfkt_edge.export.triton import BatchingSettings, write_repository

    plan = tmp_path / "model.engine"
    plan.write_bytes(b"an engine built on the serving GPU")
    folders = write_repository(None, tmp_path / "repo", plan=plan)  # a plan takes images: the image-input model
    assert [f.name for f in folders] == ["tfkt_edge_s", "tfkt_edge_s-python", "tfkt_edge_s-trt"]
    assert 'platform: "tensorrt_plan"' in (tmp_path / "repo" / "tfkt_edge_s-trt" / "config.pbtxt").read_text()
    assert (tmp_path / "repo" / "tfkt_edge_s" / "1" / "model.onnx").read_bytes() == DEFAULT_MODEL.read_bytes()
    with pytest.raises(ExportError, match="TensorRT plan takes images"):
        write_repository(STORED_MODEL, tmp_path / "stored", plan=plan)
    with pytest.raises(ExportError):
        write_repository(None, tmp_path / "other", BatchingSettings(max_batch=0))
    with pytest.raises(ExportError):
        write_repository(None, tmp_path / "other", plan=tmp_path / "missing.engine")


@needs_server
def test_four_concurrent_nodes_get_the_scores_of_onnxruntime_over_grpc(served, real):
    batch = _real_batch(real)
    expected = create_backend("onnxruntime").infer(batch)
    results: dict[int, np.ndarray] = {}
    backends = [create_backend("triton", options=BackendOptions(url=served.url)) for _ in range(4)]

    def node(k: int) -> None:
        results[k] = np.concatenate([backends[k].infer(batch[i:i + 3]) for i in range(0, len(batch), 3)])

    threads = [threading.Thread(target=node, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for k, backend in enumerate(backends):
        assert backend.remote_batches > 0 and backend.local_batches == 0  # really served, not the fallback
        assert np.abs(results[k] - expected).max() <= 1e-5
        # int16 pixels and two floats of rescale per slice: half the bytes of float32 images
        assert backend.bytes_sent == len(batch) * (512 * 512 * 2 + 2 * 4)
        backend.close()


@needs_server
def test_the_server_returns_the_statistics_the_local_model_measures(served, real):
    """A stored-input batch scored on the server: the scores and the verdict's statistics of the local twin."""
    from tfkt_edge.dicom import scan
    from tfkt_edge.pipeline.stored import as_stored

    refs = [s for series in scan([EXAMPLES / "clinical", EXAMPLES / "degraded", real["explicit_le"]]).series
            for s in series.slices]
    rows = [as_stored(ref, LDCTIQAC) for ref in refs]
    stored = np.stack([r[0] for r in rows if r is not None])[:, None]
    rescale = np.array([r[1] for r in rows if r is not None], dtype=np.float32)
    local = create_backend("onnxruntime")
    remote = create_backend("triton", options=BackendOptions(url=served.url))
    (a, a_stats), (b, b_stats) = local.infer_stored(stored, rescale), remote.infer_stored(stored, rescale)
    assert remote.remote_batches == 1 and len(a) == len(stored) >= 2
    assert np.abs(a - b).max() <= 1e-5
    np.testing.assert_allclose(a_stats, b_stats, rtol=1e-5, equal_nan=True)
    remote.close()


@needs_server
def test_score_on_the_command_line_through_triton(served):
    result = subprocess.run([sys.executable, "-m", "tfkt_edge", "score", str(EXAMPLES / "clinical"), str(EXAMPLES / "degraded"),
                             "--backend", "triton", "--url", served.url, "--format", "json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr  # the degraded copy alerts
    assert "not usable" not in result.stderr
    assert '"status": "alert"' in result.stdout and '"status": "pass"' in result.stdout


@needs_server
def test_a_server_killed_mid_series_leaves_the_node_to_finish_it_locally(repository, real, tmp_path, caplog):
    from tfkt_edge.pipeline.run import score_paths

    server = TritonServe(repository, tmp_path / "serve.log")
    try:
        paths = write_series(real["explicit_le"], tmp_path / "series", [float(i) for i in range(6)], list(range(1, 7)))
        backend = create_backend("triton", options=BackendOptions(url=server.url))
        seen = []

        def after_slice() -> None:
            seen.append(1)
            if len(seen) == 2:
                os.kill(server.server_pid, signal.SIGKILL)  # the shared server dies between batches

        with caplog.at_level(logging.WARNING, logger="tfkt_edge.triton"):
            run = score_paths(paths, backend, AlertPolicy(), batch_size=1, workers=1, on_slice=after_slice)
        (result,) = run.results
        assert len(result.slices) == 6 and not run.skipped
        assert backend.remote_batches >= 1 and backend.local_batches >= 1
        local = score_paths(paths, create_backend("onnxruntime"), AlertPolicy(), batch_size=1, workers=1).results[0]
        assert np.abs(result.scores - local.scores).max() <= 1e-5
        assert sum("not usable" in r.getMessage() for r in caplog.records) == 1  # said once
        backend.close()
    finally:
        server.stop()
    assert _gone(server.server_pid)


def test_an_unreachable_server_is_said_once_and_scoring_goes_on_locally(real, caplog):
    batch = _real_batch(real)[:4]
    with caplog.at_level(logging.WARNING, logger="tfkt_edge.triton"):
        backend = create_backend("triton", options=BackendOptions(url=f"127.0.0.1:{free_port()}"))
        scores = np.concatenate([backend.infer(batch[:2]), backend.infer(batch[2:])])
    assert np.abs(scores - create_backend("onnxruntime").infer(batch)).max() <= 1e-6
    assert backend.local_batches == 2 and backend.remote_batches == 0
    assert sum("not usable" in r.getMessage() for r in caplog.records) == 1


def test_triton_options_on_another_backend_are_an_error():
    with pytest.raises(InputError, match="--url does not apply to the onnxruntime backend"):
        create_backend("onnxruntime", options=BackendOptions(url="127.0.0.1:8001"))
    with pytest.raises(InputError, match="needs --url"):
        create_backend("triton")
