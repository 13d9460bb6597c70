"""ONNX Runtime on the CPU: the embedded default backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfkt_edge.backends.base import BACKENDS
from tfkt_edge.errors import ModelError
from tfkt_edge.model.model_file import DEFAULT_MODEL, INPUT_NAME, STORED_INPUTS, STORED_MODEL, ModelInfo, read_metadata
from tfkt_edge.model.preprocess import whole_hu_batch


@BACKENDS.register("onnxruntime")
class OnnxRuntimeBackend:
    name = "onnxruntime"
    summary = "the CPU, the default; .onnx"
    model_format = "onnx"  # the file it opens
    # Batches of 8 run at 3.2 ms a slice on the 2-core CPU, batches of 16 at 3.4-3.5 (their activations no
    # longer stay in its cache), and a run starts sooner: 8 is a run's default here (benchmarks/README.md).
    preferred_batch = 8

    def __init__(self, model_path: Path | None = None, threads: int = 0, spinning: bool = False):
        import onnxruntime as ort

        if model_path is None:  # the shipped model, as the CPU runs it best: stored pixels in, statistics out
            model_path = STORED_MODEL if STORED_MODEL.is_file() else DEFAULT_MODEL
        model_path = Path(model_path)
        if not model_path.is_file():
            raise ModelError(f"model file not found: {model_path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per physical core
        options.log_severity_level = 3
        # Idle intra-op threads sleep instead of spinning (by default): on a scanner console the cores between
        # batches belong to the console's own software. Throughput was the same either way on the 2-core CPU
        # (benchmarks/pipeline_ab.py, benchmarks/README.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        # No memory pattern: with one, the second batch of a shape plans one block anew (80 ms against 53 for a
        # batch of 16 on the 2-core CPU), and so does each new batch size; the arena's reuse alone holds the
        # steady batch time (benchmarks/README.md).
        options.enable_mem_pattern = False
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"{model_path} is not a loadable ONNX model: {str(exc).splitlines()[0][:200]}") from None
        meta = self._session.get_modelmeta().custom_metadata_map
        self.model: ModelInfo = read_metadata(model_path, meta)
        inputs = tuple(i.name for i in self._session.get_inputs())
        # A model with its preprocessing and statistics in the graph (export/in_graph.py) takes stored pixels.
        self.takes_stored = inputs == STORED_INPUTS
        if inputs != (INPUT_NAME,) and not self.takes_stored:
            raise ModelError(f"{model_path} must have one input named {INPUT_NAME!r}, or the inputs "
                             f"{', '.join(STORED_INPUTS)} of a stored-input model")

    def max_batch(self) -> int | None:
        return None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self.takes_stored:  # preprocessed slices, as whole HU of the window
            return self.infer_stored(*whole_hu_batch(batch, self.model.contract))[0]
        scores = self._session.run(None, {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        return np.asarray(scores, dtype=np.float32).reshape(len(batch))

    def infer_stored(self, stored: np.ndarray, rescale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 1, S, S) int16 stored pixels and (N, 2) slope, intercept -> (N,) scores and (N, len(STATS_OUTPUT))
        statistics (NaN: none), for a stored-input model."""
        scores, stats = self._session.run(None, {STORED_INPUTS[0]: np.ascontiguousarray(stored, dtype=np.int16),
                                                  STORED_INPUTS[1]: np.ascontiguousarray(rescale, dtype=np.float32)})
        return np.asarray(scores, dtype=np.float32).reshape(len(stored)), np.asarray(stats, dtype=np.float32)

    def close(self) -> None:
        self._session = None
