"""PyTorch for GPUs without TensorRT: FP16 on CUDA with one CUDA graph per batch size; FP32 on the CPU.

It runs training checkpoints (model.pt, which carry the preprocessing contract
and card like the ONNX file does); the default is the checkpoint the shipped
ONNX model was exported from. Batches are padded up to the next captured size
(1, 2, 4, ..., 64), so a series needs at most seven graphs, each captured on
first use. All CUDA work happens on the thread that calls ``infer`` or ``submit``.
``submit`` queues a batch and returns at once, so the scoring pipeline fills its
next batch (in page-locked memory from ``staging``) while the GPU copies and computes.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from tfkt_edge.backends.base import BACKENDS
from tfkt_edge.errors import BackendUnavailable, InputError, ModelError
from tfkt_edge.model.model_file import ASSETS, ModelInfo
from tfkt_edge.model.preprocess import PreprocessContract

GRAPH_SIZES = (1, 2, 4, 8, 16, 32, 64)
PRECISIONS = ("fp32", "fp16")


def default_checkpoint() -> Path:
    """The shipped training checkpoint, beside the shipped ONNX model."""
    return ASSETS / "tfkt_edge_s.pt"


def _import_torch():
    try:
        import torch
    except ImportError:
        raise BackendUnavailable("the torch backend needs PyTorch: pip install 'tfkt-edge[train]' (with a CUDA build for GPUs)") from None
    return torch


@BACKENDS.register("torch")
class TorchBackend:
    name = "torch"
    summary = "CUDA FP16 with CUDA graphs, else the CPU; model.pt"
    model_format = "checkpoint"  # the file it opens
    options_used = ("precision",)

    def __init__(self, model_path: Path | None = None, device: str | None = None, precision: str | None = None,
                 cuda_graphs: bool = True):
        _import_torch()
        path = Path(model_path) if model_path is not None else default_checkpoint()
        if path.suffix.lower() in (".onnx", ".engine", ".plan"):
            raise ModelError(f"the torch backend runs training checkpoints (model.pt); {path.name} is for "
                             "--backend onnxruntime or tensorrt")
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        from tfkt_edge.model.checkpoint import load_checkpoint  # needs torch: imported once torch is known present

        try:
            net, saved = load_checkpoint(path)
            contract = PreprocessContract.from_json(saved["preprocess"])
        except (OSError, RuntimeError, KeyError, ValueError, pickle.UnpicklingError) as exc:
            raise ModelError(f"{path} is not a tfkt-edge training checkpoint ({type(exc).__name__})") from None
        self._setup(net, ModelInfo(path, saved["model"], contract, dict(saved.get("card") or {})), device, precision,
                    cuda_graphs)

    @classmethod
    def from_module(cls, net, model: ModelInfo, device: str | None = None, precision: str | None = None,
                    cuda_graphs: bool = True) -> TorchBackend:
        """Wrap a model built in code (benchmarks time untrained architectures this way)."""
        backend = cls.__new__(cls)
        backend._setup(net, model, device, precision, cuda_graphs)
        return backend

    def _setup(self, net, model: ModelInfo, device: str | None, precision: str | None, cuda_graphs: bool) -> None:
        torch = _import_torch()
        self.model = model
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("--backend torch on cuda: this PyTorch build sees no CUDA GPU")
        self.precision = precision or ("fp16" if self.device.type == "cuda" else "fp32")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.precision == "fp16" and self.device.type != "cuda":
            raise InputError("FP16 scoring with the torch backend needs a CUDA GPU; use fp32 on the CPU")
        self._torch = torch
        self._net = net.to(self.device).eval()
        self._use_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: dict[int, tuple] = {}
        self._staging: list = []  # page-locked batch buffers handed out by staging()

    def max_batch(self) -> int | None:
        return GRAPH_SIZES[-1] if self._use_graphs else None

    def _autocast(self):
        # cache_enabled=False: cached weight casts would outlive the capture (PyTorch's CUDA graph notes).
        return self._torch.autocast("cuda", dtype=self._torch.float16, enabled=self.precision == "fp16",
                                    cache_enabled=False)

    def _graph(self, size: int) -> tuple:
        """Capture (once) the forward pass for batches of ``size``: device input, graph, device output."""
        if size not in self._graphs:
            torch = self._torch
            s = self.model.contract.size
            static_in = torch.zeros((size, 1, s, s), device=self.device)
            warmup = torch.cuda.Stream()
            warmup.wait_stream(torch.cuda.current_stream())
            with torch.no_grad(), torch.cuda.stream(warmup), self._autocast():
                for _ in range(3):  # lets cuDNN pick its algorithms outside the capture
                    self._net(static_in)
            torch.cuda.current_stream().wait_stream(warmup)
            graph = torch.cuda.CUDAGraph()
            with torch.no_grad(), torch.cuda.graph(graph), self._autocast():
                static_out = self._net(static_in).float()
            self._graphs[size] = (static_in, graph, static_out)
        return self._graphs[size]

    def staging(self, size: int) -> np.ndarray:
        """A batch buffer in page-locked memory on CUDA (``submit`` copies from it straight to the GPU)."""
        side = self.model.contract.size
        if self.device.type != "cuda":
            return np.empty((size, 1, side, side), dtype=np.float32)
        buffer = self._torch.empty((size, 1, side, side), dtype=self._torch.float32, pin_memory=True)
        self._staging.append(buffer)  # the numpy view does not keep the tensor alive
        return buffer.numpy()

    def pin(self, array: np.ndarray):
        """Page-lock ``array`` (the decoding processes' shared block, whose batches are scored where they lie)
        so ``submit`` copies from it without a host copy first; returns the function that undoes it. Where
        CUDA refuses, nothing changes: batches are then copied from pageable memory."""
        if self.device.type != "cuda":
            return lambda: None
        cudart = self._torch.cuda.cudart()
        address = array.ctypes.data
        if int(cudart.cudaHostRegister(address, array.nbytes, 0)) != 0:
            return lambda: None
        return lambda: cudart.cudaHostUnregister(address)

    def submit(self, batch: np.ndarray):
        """Queue the copy in, the forward pass and the copy out of one batch (at most ``max_batch()``) on the
        current CUDA stream and return at once; the function returned waits for the scores. ``batch`` must
        stay unchanged until then. Without CUDA graphs (the CPU) the batch is scored before returning."""
        torch = self._torch
        if not self._use_graphs or len(batch) > GRAPH_SIZES[-1]:
            scores = self.infer(batch)
            return lambda: scores
        n = len(batch)
        static_in, graph, static_out = self._graph(next(g for g in GRAPH_SIZES if g >= n))
        source = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if source.is_pinned():  # a staging buffer: the DMA reads it while the caller goes on
            static_in[:n].copy_(source, non_blocking=True)
        else:  # pageable memory: copied before returning, so the caller may reuse it
            static_in[:n].copy_(source)
        # Padding rows keep old data: eval-mode batch elements are independent, and their scores are dropped.
        graph.replay()
        scores = torch.empty(n, dtype=torch.float32, pin_memory=True)
        scores.copy_(static_out[:n].reshape(n), non_blocking=True)
        done = torch.cuda.Event()
        done.record()

        def wait() -> np.ndarray:
            done.synchronize()
            return scores.numpy().copy()

        return wait

    def infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if not self._use_graphs:
            with torch.no_grad(), self._autocast():
                return self._net(torch.from_numpy(batch).to(self.device)).float().cpu().numpy().reshape(len(batch))
        waits = [self.submit(batch[start:start + GRAPH_SIZES[-1]]) for start in range(0, len(batch), GRAPH_SIZES[-1])]
        return np.concatenate([wait() for wait in waits]).reshape(len(batch)).astype(np.float32)

    def close(self) -> None:
        self._graphs.clear()
        self._staging.clear()
        self._net = None
        if self.device.type == "cuda":
            self._torch.cuda.empty_cache()
