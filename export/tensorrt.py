"""ONNX model file -> TensorRT FP16 engine, its sidecar, and the checks that follow the build.

FP16 is asked for the way the installed TensorRT understands it:
- TensorRT 10: the FP32 ONNX is parsed and BuilderFlag.FP16 lets the builder
  choose FP16 tactics;
- TensorRT 11 (strongly typed, no FP16 flag): an FP16 ONNX is made from the
  FP32 one first (export/fp16.py, calibrated on real CT, FP32 inputs and
  outputs) and parsed instead.
Either way the built engine is then inspected layer by layer, and the build
fails rather than report FP16 when the layers are not. Finally the engine
scores real CT slices beside ONNX Runtime's FP32 and must agree within 0.02.

Written against the TensorRT 10/11 Python API; TensorRT cannot be installed
where tfkt-edge is developed, so this module runs only on machines that have it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from tfkt_edge.errors import ExportError
from tfkt_edge.export.calibration import real_ct_slices
from tfkt_edge.export.engine_precision import PrecisionSummary, summarize
from tfkt_edge.export.tensorrt_ops import check_operators
from tfkt_edge.model.engine_file import EngineSidecar, sha256, sidecar_path
from tfkt_edge.model.model_file import INPUT_NAME, read_metadata

FP16_LIMIT = 0.02  # largest |FP16 engine - FP32 ONNX| score on real CT


@dataclass(frozen=True)
class BuildSettings:
    min_batch: int = 1
    opt_batch: int = 16
    max_batch: int = 64
    workspace_mb: int | None = None
    timing_cache: Path | None = None
    calibration: tuple[Path, ...] = ()

    def validate(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ExportError(f"batch sizes must satisfy 1 <= min ({self.min_batch}) <= opt ({self.opt_batch}) "
                              f"<= max ({self.max_batch})")


@dataclass(frozen=True)
class EngineBuild:
    engine: Path
    sidecar: EngineSidecar
    precisions: PrecisionSummary
    max_difference: float
    seconds: float


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def build_engine(onnx_path: Path, output: Path, settings: BuildSettings = BuildSettings(),
                 log: Callable[[str], None] = print) -> EngineBuild:
    """Build, inspect, verify and describe an FP16 engine for this machine's GPU.

    Raises:
        ExportError: the ONNX is not a tfkt-edge model or TensorRT cannot parse
            it, the build fails, the layers are not FP16, or FP16 scores drift
            from FP32 by more than FP16_LIMIT.
        BackendUnavailable: TensorRT or pycuda is missing.
    """
    from tfkt_edge.backends.gpu import current_gpu
    from tfkt_edge.backends.tensorrt import import_tensorrt

    settings.validate()
    trt = import_tensorrt()
    gpu = current_gpu()
    model = onnx.load(str(onnx_path))
    info = read_metadata(onnx_path, {p.key: p.value for p in model.metadata_props})
    operators = check_operators(model)
    if not operators.ok:
        raise ExportError(f"{onnx_path}: TensorRT's ONNX parser would refuse it: {'; '.join(operators.problems[:3])}")
    strongly_typed = int(trt.__version__.split(".")[0]) >= 11
    calibration = real_ct_slices(info.contract, list(settings.calibration) or None)
    parse_path = onnx_path
    if strongly_typed:
        from tfkt_edge.export.fp16 import convert_to_fp16

        fp16 = convert_to_fp16(model, calibration)
        parse_path = output.with_suffix(".fp16.onnx")
        onnx.save(fp16.model, str(parse_path))
        log(f"  fp16 onnx      {parse_path} ({fp16.fp16_nodes} nodes FP16, {len(fp16.fp32_nodes)} kept FP32)")

    started = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network() if strongly_typed else builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(parse_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"{parse_path}: TensorRT's ONNX parser failed: {errors[:500]}")
    config = builder.create_builder_config()
    if not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
    if settings.workspace_mb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mb << 20)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    size = info.contract.size
    shapes = {key: [batch, 1, size, size] for key, batch in
              (("min", settings.min_batch), ("opt", settings.opt_batch), ("max", settings.max_batch))}
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    cache_bytes = settings.timing_cache.read_bytes() if settings.timing_cache and settings.timing_cache.is_file() else b""
    if not config.set_timing_cache(config.create_timing_cache(cache_bytes), False):
        log(f"  timing cache   {settings.timing_cache} was made by another TensorRT or GPU: starting a new one")
        config.set_timing_cache(config.create_timing_cache(b""), False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build an engine from {parse_path} (see the TensorRT log above)")
    seconds = time.perf_counter() - started
    if settings.timing_cache:
        _atomic_write(settings.timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    engine_bytes = bytes(memoryview(serialized))

    precisions = inspect_precisions(trt, engine_bytes, shapes["opt"])
    if not precisions.is_fp16:
        raise ExportError(f"the built engine is not FP16: compute layers by precision {precisions.counts} "
                          f"({precisions.fp16_share:.0%} FP16); nothing was written")
    _atomic_write(output, engine_bytes)
    sidecar = EngineSidecar(
        tensorrt_version=trt.__version__, gpu=gpu, precision="fp16", profile=shapes,
        onnx_sha256=sha256(onnx_path), engine_sha256=sha256(output), preprocess=info.contract.to_json(),
        model=info.name, card=info.card, layer_precisions=precisions.counts,
        build={"strongly_typed": strongly_typed, "workspace_mb": settings.workspace_mb,
               "timing_cache": str(settings.timing_cache) if settings.timing_cache else None,
               "seconds": round(seconds, 1), "source_onnx": onnx_path.name},
    )
    sidecar_path(output).write_text(sidecar.to_json())
    difference = fp16_difference(onnx_path, output, calibration)
    if difference > FP16_LIMIT:
        output.unlink()
        sidecar_path(output).unlink()
        raise ExportError(f"FP16 engine scores differ from FP32 ONNX by {difference:.3f} on real CT "
                          f"(limit {FP16_LIMIT}); the engine was removed")
    return EngineBuild(output, sidecar, precisions, difference, seconds)


def inspect_precisions(trt, engine_bytes: bytes, shape: list[int]) -> PrecisionSummary:
    """Per-layer precisions of a serialized engine, with the input shape set so formats are resolved."""
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(engine_bytes)
    context = engine.create_execution_context()
    context.set_input_shape(INPUT_NAME, shape)
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context  # otherwise dynamic shapes read "N/A due to dynamic shapes"
    try:
        return summarize(json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON)))
    except ValueError as exc:
        raise ExportError(f"cannot verify the engine's precision: {exc}") from None


def fp16_difference(onnx_path: Path, engine: Path, images: np.ndarray) -> float:
    """Largest |engine - ONNX Runtime FP32| score over preprocessed ``images``."""
    from tfkt_edge.backends import create_backend

    reference = create_backend("onnxruntime", onnx_path)
    candidate = create_backend("tensorrt", engine)
    try:
        batch = images[:, None].astype(np.float32)
        return float(np.max(np.abs(reference.infer(batch) - candidate.infer(batch))))
    finally:
        candidate.close()
