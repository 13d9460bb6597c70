"""TensorRT engines on an NVIDIA GPU, with pycuda for memory and streams.

The engine's sidecar (tfkt_edge.model.engine_file) is read and checked before
anything touches the GPU, so an engine built for another TensorRT version or
GPU is refused with a message that says to rebuild it. All CUDA work happens
on one thread that owns the device's primary context; ``infer`` hands batches
to it. Input and output live in pinned host buffers sized for the profile's
largest batch, copied asynchronously on one stream around
``execute_async_v3``, while the scoring pipeline's decoder threads go on
reading the next slices.

Written against the TensorRT 10/11 Python API (num_io_tensors,
set_tensor_address, execute_async_v3); TensorRT cannot be installed where
tfkt-edge is developed, so this module is exercised only by the tests marked
``tensorrt`` on a machine that has it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tfkt_edge.backends.base import BACKENDS
from tfkt_edge.errors import BackendUnavailable, ModelError
from tfkt_edge.model.engine_file import EngineSidecar, check_compatible, read_sidecar
from tfkt_edge.model.model_file import INPUT_NAME, OUTPUT_NAME
from tfkt_edge.model.preprocess import PreprocessContract

NEEDS_ENGINE = "--backend tensorrt needs --model MODEL.engine: build one on this GPU with tfkt-edge export tensorrt"


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable("TensorRT is not installed: pip install 'tfkt-edge[gpu]' on a machine with an NVIDIA GPU and driver") from None
    return trt


def check(ok: bool, call: str) -> None:
    """TensorRT's execution calls report failure by returning False; turn that into an error."""
    if not ok:
        raise RuntimeError(f"TensorRT {call} failed (see the TensorRT log above)")


class _Engine:
    """Everything that lives on the GPU; created, used and freed on the CUDA thread only."""

    def __init__(self, trt, engine_bytes: bytes, sidecar: EngineSidecar, device: int):
        import pycuda.driver as cuda

        self._cuda = cuda
        cuda.init()
        self._context_owner = cuda.Device(device).retain_primary_context()
        self._context_owner.push()
        try:
            logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(logger)
            self._engine = self._runtime.deserialize_cuda_engine(engine_bytes)
            if self._engine is None:
                raise ModelError("TensorRT could not deserialize the engine: rebuild it with tfkt-edge export tensorrt")
            names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
            if sorted(names) != sorted([INPUT_NAME, OUTPUT_NAME]):
                raise ModelError(f"engine tensors are {names}, expected {INPUT_NAME!r} and {OUTPUT_NAME!r}")
            self._context = self._engine.create_execution_context()
            self.max_batch = int(self._engine.get_tensor_profile_shape(INPUT_NAME, 0)[2][0])
            size = PreprocessContract.from_json(sidecar.preprocess).size
            in_type = trt.nptype(self._engine.get_tensor_dtype(INPUT_NAME))
            out_type = trt.nptype(self._engine.get_tensor_dtype(OUTPUT_NAME))
            self._host_in = cuda.pagelocked_empty((self.max_batch, 1, size, size), in_type)
            self._host_out = cuda.pagelocked_empty((self.max_batch,), out_type)
            self._device_in = cuda.mem_alloc(self._host_in.nbytes)
            self._device_out = cuda.mem_alloc(self._host_out.nbytes)
            check(self._context.set_tensor_address(INPUT_NAME, int(self._device_in)), "set_tensor_address")
            check(self._context.set_tensor_address(OUTPUT_NAME, int(self._device_out)), "set_tensor_address")
            self._stream = cuda.Stream()
            self._size = size
        except BaseException:
            self._context_owner.pop()
            self._context_owner.detach()
            raise

    def infer(self, batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        cuda = self._cuda
        np.copyto(self._host_in[:n], batch, casting="same_kind")
        check(self._context.set_input_shape(INPUT_NAME, (n, 1, self._size, self._size)), "set_input_shape")
        cuda.memcpy_htod_async(self._device_in, self._host_in[:n], self._stream)
        check(self._context.execute_async_v3(stream_handle=self._stream.handle), "execute_async_v3")
        cuda.memcpy_dtoh_async(self._host_out[:n], self._device_out, self._stream)
        self._stream.synchronize()
        return np.array(self._host_out[:n], dtype=np.float32)

    def free(self) -> None:
        self._device_in.free()
        self._device_out.free()
        del self._context, self._engine, self._runtime
        self._context_owner.pop()
        self._context_owner.detach()


@BACKENDS.register("tensorrt")
class TensorRTBackend:
    name = "tensorrt"
    summary = "an NVIDIA GPU, FP16 engine built here; .engine"
    model_format = "engine"  # the file it opens

    def __init__(self, model_path: Path | None = None, device: int = 0):
        if model_path is None:
            raise ModelError(NEEDS_ENGINE)
        engine_path = Path(model_path)
        if engine_path.suffix.lower() == ".onnx":
            raise ModelError(f"{engine_path.name} is an ONNX model; {NEEDS_ENGINE}")
        sidecar = read_sidecar(engine_path)  # file problems first: they need no GPU to report
        trt = import_tensorrt()
        from tfkt_edge.backends.gpu import current_gpu

        check_compatible(sidecar, engine_path, trt.__version__, current_gpu(device))
        self.model = sidecar.model_info(engine_path)
        self.sidecar = sidecar
        self._thread: ThreadPoolExecutor | None = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cuda")
        try:
            self._engine = self._thread.submit(_Engine, trt, engine_path.read_bytes(), sidecar, device).result()
        except BaseException:
            self._thread.shutdown()
            raise

    def max_batch(self) -> int | None:
        return self._engine.max_batch

    def infer(self, batch: np.ndarray) -> np.ndarray:
        limit = self._engine.max_batch
        if self._thread is None:
            raise BackendUnavailable("the TensorRT backend was closed")
        parts = [self._thread.submit(self._engine.infer, batch[i:i + limit]).result() for i in range(0, len(batch), limit)]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.submit(self._engine.free).result()
            self._thread.shutdown()
            self._thread = None
