"""A shared NVIDIA Triton Inference Server, over gRPC, with local ONNX Runtime as the fallback.

Many scanner nodes score on one GPU server: each node still reads and decodes
its own slices (the contract comes from the local model file, which must be
the model the server serves) and sends batches to Triton: for a stored-input
model (the CPU default, export/in_graph.py) int16 pixels with their slope and
intercept, half the bytes of the preprocessed float32 slices an image-input
model takes, and the server returns the statistics with the scores. When the server cannot be reached, or answers with an
error, the node says so once and scores the batch locally with the same ONNX
model, so no slice is lost; it tries the server again every RETRY_S seconds
and says so when it is back.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from tfkt_edge.backends.base import BACKENDS
from tfkt_edge.backends.onnxruntime import OnnxRuntimeBackend
from tfkt_edge.errors import BackendUnavailable, InputError, ModelError
from tfkt_edge.model.model_file import INPUT_NAME, OUTPUT_NAME, STATS_NAME, STATS_OUTPUT, STORED_INPUTS
from tfkt_edge.model.preprocess import whole_hu_batch

log = logging.getLogger("tfkt_edge.triton")
RETRY_S = 30.0
TIMEOUT_S = 10.0  # per request: a stalled server falls back instead of holding the series


def variant_names(model_name: str) -> list[str]:
    """The served names `tfkt-edge export triton` writes, in the order a node prefers them."""
    return [f"{model_name}-trt", model_name, f"{model_name}-python"]


@BACKENDS.register("triton")
class TritonBackend:
    """Scores on a Triton server (``url``: host:port of its gRPC endpoint); falls back to local ONNX Runtime."""

    name = "triton"
    summary = "a shared Triton server: --url"
    model_format = "onnx"  # the file it opens (the local fallback; the server has its own)
    options_used = ("url", "triton_model")

    def __init__(self, model_path: Path | None = None, url: str | None = None, triton_model: str | None = None):
        try:
            import tritonclient.grpc as grpcclient
        except ImportError:
            raise BackendUnavailable("the triton backend needs tritonclient: pip install 'tfkt-edge[triton]'") from None
        if not url:
            raise InputError("the triton backend needs --url host:port (the server's gRPC endpoint, usually port 8001)")
        self._grpc = grpcclient
        self.url = url.removeprefix("grpc://")
        self.local = OnnxRuntimeBackend(model_path)  # the contract, the card and the fallback
        self.model = self.local.model
        self._wanted = triton_model
        self._client = None
        self._served: str | None = None
        self._max_batch: int | None = None
        self._down_since: float | None = None
        self.remote_batches = 0
        self.local_batches = 0
        self.bytes_sent = 0  # input tensors sent to the server
        self._connect()

    @property
    def takes_stored(self) -> bool:
        """Whether the model (local, and so the served one) takes stored pixels (`pipeline.stored`)."""
        return self.local.takes_stored

    def _connect(self) -> bool:
        """Find the served model and check it against the local contract; False (logged) when not possible."""
        try:
            client = self._grpc.InferenceServerClient(self.url)
            candidates = [self._wanted] if self._wanted else variant_names(self.model.name)
            ready = next((name for name in candidates if client.is_model_ready(name, client_timeout=TIMEOUT_S)), None)
            if ready is None:
                raise ModelError(f"none of {', '.join(candidates)} is ready on the server")
            config = client.get_model_config(ready, as_json=True, client_timeout=TIMEOUT_S)["config"]
            self._check(ready, config)
        except ModelError as exc:
            self._fall_back(str(exc))
            return False
        except Exception as exc:  # unreachable, refused, timed out
            self._fall_back(_one_line(exc))
            return False
        if self._down_since is not None:
            log.warning("Triton at %s is back: scoring there again (model %s)", self.url, ready)
        else:
            log.info("scoring on Triton at %s (model %s)", self.url, ready)
        self._client, self._served, self._down_since = client, ready, None
        self._max_batch = int(config.get("max_batch_size") or 0) or None
        return True

    def _check(self, served: str, config: dict) -> None:
        inputs = config.get("input", [])
        size = self.model.contract.size
        found = [(i.get("name"), [int(d) for d in i.get("dims", [])]) for i in inputs]
        wanted = [(STORED_INPUTS[0], [1, size, size]), (STORED_INPUTS[1], [2])] if self.takes_stored \
            else [(INPUT_NAME, [1, size, size])]
        if found != wanted:
            raise ModelError(f"served model {served} does not take {', '.join(f'{n} of {d}' for n, d in wanted)} "
                             f"(the local model's inputs and contract): {inputs}")
        outputs = [o.get("name") for o in config.get("output", [])]
        for name in [OUTPUT_NAME, STATS_NAME] if self.takes_stored else [OUTPUT_NAME]:
            if name not in outputs:
                raise ModelError(f"served model {served} has no output {name!r}")

    def _fall_back(self, why: str) -> None:
        if self._down_since is None:
            log.warning("Triton at %s is not usable (%s): scoring locally with %s, retrying every %.0f s",
                        self.url, why, self.model.path, RETRY_S)
        self._down_since = time.monotonic()
        self._client = None

    def max_batch(self) -> int | None:
        return self._max_batch

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self.takes_stored:  # preprocessed slices, as whole HU of the window
            return self.infer_stored(*whole_hu_batch(batch, self.model.contract))[0]
        return self._score((np.ascontiguousarray(batch, dtype=np.float32),), lambda: self.local.infer(batch))

    def infer_stored(self, stored: np.ndarray, rescale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A stored-input model's scores and statistics (`OnnxRuntimeBackend.infer_stored`), from the server."""
        arrays = (np.ascontiguousarray(stored, dtype=np.int16), np.ascontiguousarray(rescale, dtype=np.float32))
        return self._score(arrays, lambda: self.local.infer_stored(stored, rescale))

    def _score(self, arrays, local):
        if self._client is None and self._down_since is not None and time.monotonic() - self._down_since >= RETRY_S:
            self._connect()
        if self._client is not None:
            try:
                out = self._remote(arrays)
                self.remote_batches += 1
                return out
            except Exception as exc:
                self._fall_back(_one_line(exc))
        self.local_batches += 1
        return local()

    def _remote(self, arrays: tuple[np.ndarray, ...]):
        """The server's outputs for ``arrays`` (the model's inputs, in order), in chunks of its largest batch."""
        grpc, client = self._grpc, self._client
        if client is None:
            raise ConnectionError("not connected")
        names = STORED_INPUTS if self.takes_stored else (INPUT_NAME,)
        outputs = [OUTPUT_NAME, STATS_NAME] if self.takes_stored else [OUTPUT_NAME]
        n = len(arrays[0])
        limit = self._max_batch or n
        scores, stats = [], []
        for start in range(0, n, limit):
            requests = []
            for name, array in zip(names, arrays):
                chunk = array[start:start + limit]
                request = grpc.InferInput(name, list(chunk.shape), "INT16" if chunk.dtype == np.int16 else "FP32")
                request.set_data_from_numpy(chunk)
                requests.append(request)
                self.bytes_sent += chunk.nbytes
            result = client.infer(self._served, requests, outputs=[grpc.InferRequestedOutput(o) for o in outputs],
                                  client_timeout=TIMEOUT_S)
            part = np.asarray(result.as_numpy(OUTPUT_NAME), dtype=np.float32).reshape(-1)
            sent = min(limit, n - start)
            if len(part) != sent:
                raise ModelError(f"the server returned {len(part)} scores for {sent} slices")
            scores.append(part)
            if self.takes_stored:
                stats.append(np.asarray(result.as_numpy(STATS_NAME), dtype=np.float32).reshape(len(part), len(STATS_OUTPUT)))
        score = np.concatenate(scores) if scores else np.empty(0, dtype=np.float32)
        if not self.takes_stored:
            return score
        return score, (np.concatenate(stats) if stats else np.empty((0, len(STATS_OUTPUT)), dtype=np.float32))

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
            self._client = None
        self.local.close()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
