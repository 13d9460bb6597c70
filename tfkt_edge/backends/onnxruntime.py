"""ONNX Runtime on the CPU: the embedded default backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfkt_edge.backends.base import BACKENDS
from tfkt_edge.errors import ModelError
from tfkt_edge.model.model_file import DEFAULT_MODEL, INPUT_NAME, ModelInfo, read_metadata


@BACKENDS.register("onnxruntime")
class OnnxRuntimeBackend:
    name = "onnxruntime"
    summary = "the CPU, the default; .onnx"
    model_format = "onnx"  # the file it opens

    def __init__(self, model_path: Path | None = None, threads: int = 0, spinning: bool = False):
        import onnxruntime as ort

        model_path = Path(model_path) if model_path is not None else DEFAULT_MODEL
        if not model_path.is_file():
            raise ModelError(f"model file not found: {model_path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per physical core
        options.log_severity_level = 3
        # Idle intra-op threads sleep instead of spinning (by default): on a scanner console the cores between
        # batches belong to the console's own software. Throughput was the same either way on the 2-core CPU
        # (benchmarks/pipeline_ab.py, benchmarks/README.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"{model_path} is not a loadable ONNX model: {str(exc).splitlines()[0][:200]}") from None
        meta = self._session.get_modelmeta().custom_metadata_map
        self.model: ModelInfo = read_metadata(model_path, meta)
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            raise ModelError(f"{model_path} must have one input named {INPUT_NAME!r}")

    def max_batch(self) -> int | None:
        return None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        scores = self._session.run(None, {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        return np.asarray(scores, dtype=np.float32).reshape(len(batch))

    def close(self) -> None:
        self._session = None
