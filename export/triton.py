"""A Triton Inference Server model repository for an exported model.

Three variants of the same ONNX file, so one repository serves on any Triton:

- ``<name>``: platform ``onnxruntime_onnx``, for the official Triton container
  (CPU or GPU);
- ``<name>-python``: the Python backend running ONNX Runtime, for the
  pip-installed ``tritonserver`` that ships only the Python backend
  (``tfkt-edge triton-serve``);
- ``<name>-trt``: platform ``tensorrt_plan``, written only with ``plan``: an
  engine built on the serving GPU (``tfkt-edge export tensorrt``).

Input and output names, types and dims come from the model file's own
contract and inputs: an image-input model takes ``image`` (FP32, 1 x S x S); a stored-input model
(export/in_graph.py, the CPU default) takes ``stored`` (INT16, 1 x S x S: half the bytes a node sends) and
``rescale`` (FP32, 2) and returns ``stats`` beside ``score``. A TensorRT plan takes images, so a repository
with one is written from the image-input model. The repository needs no torch to write.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tfkt_edge.backends import create_backend
from tfkt_edge.errors import ExportError
from tfkt_edge.model.model_file import (
    DEFAULT_MODEL,
    INPUT_NAME,
    OUTPUT_NAME,
    STATS_NAME,
    STATS_OUTPUT,
    STORED_INPUTS,
    ModelInfo,
)


@dataclass(frozen=True)
class BatchingSettings:
    max_batch: int = 64
    preferred: tuple[int, ...] = (16, 32)
    queue_delay_us: int = 2000  # a node sends its batch at once; this gathers other nodes' batches
    instances: int = 1
    kind: str = "KIND_AUTO"  # the GPU where there is one, else the CPU (the Python variant: the CPU)


PYTHON_MODEL = '''"""Triton Python backend: the tfkt-edge ONNX model on ONNX Runtime (written by tfkt-edge export triton)."""

import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        # Requests gathered by the dynamic batcher are scored as one batch.
        inputs = {{name: [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for r in requests] for name in {inputs}}}
        feed = {{name: np.concatenate(parts) for name, parts in inputs.items()}}
        results = self.session.run({outputs}, feed)
        responses, start = [], 0
        for part in inputs[{inputs}[0]]:
            stop = start + len(part)
            tensors = [pb_utils.Tensor(name, np.asarray(result[start:stop], dtype=np.float32).reshape(len(part), -1))
                       for name, result in zip({outputs}, results)]
            responses.append(pb_utils.InferenceResponse(tensors))
            start = stop
        return responses
'''


def _tensors(info: ModelInfo, stored: bool, reshape: bool) -> tuple[str, str]:
    """The config's input and output lists for an image-input or a stored-input model."""
    size = info.contract.size
    score_shape = "dims: [ 1 ] reshape: { shape: [ ] }" if reshape else "dims: [ 1 ]"
    if not stored:
        return (f'input [ {{ name: "{INPUT_NAME}" data_type: TYPE_FP32 dims: [ 1, {size}, {size} ] }} ]',
                f'output [ {{ name: "{OUTPUT_NAME}" data_type: TYPE_FP32 {score_shape} }} ]')
    pixels, rescale = STORED_INPUTS
    return (f'input [ {{ name: "{pixels}" data_type: TYPE_INT16 dims: [ 1, {size}, {size} ] }}, '
            f'{{ name: "{rescale}" data_type: TYPE_FP32 dims: [ 2 ] }} ]',
            f'output [ {{ name: "{OUTPUT_NAME}" data_type: TYPE_FP32 {score_shape} }}, '
            f'{{ name: "{STATS_NAME}" data_type: TYPE_FP32 dims: [ {len(STATS_OUTPUT)} ] }} ]')


def _config(name: str, info: ModelInfo, settings: BatchingSettings, *, platform: str | None = None,
            backend: str | None = None, kind: str | None = None, reshape: bool = True, stored: bool = False) -> str:
    engine = f'platform: "{platform}"' if platform else f'backend: "{backend}"'
    inputs, outputs = _tensors(info, stored, reshape)
    preferred = ", ".join(str(b) for b in settings.preferred if b <= settings.max_batch) or str(settings.max_batch)
    label = f"{info.name} {info.card.get('version', '')}".strip()
    return "\n".join([
        f'name: "{name}"',
        engine,
        f"max_batch_size: {settings.max_batch}",
        inputs,
        outputs,
        f"dynamic_batching {{ preferred_batch_size: [ {preferred} ] max_queue_delay_microseconds: {settings.queue_delay_us} }}",
        f"instance_group [ {{ count: {settings.instances} kind: {kind or settings.kind} }} ]",
        f'parameters {{ key: "tfkt_edge_model" value: {{ string_value: "{label}" }} }}',
        "",
    ])


def write_repository(model: Path | None, repository: Path, settings: BatchingSettings = BatchingSettings(),
                     plan: Path | None = None) -> list[Path]:
    """Write the variants into ``repository`` (created; existing variant folders are replaced); return their folders.
    Without ``model``: the shipped CPU default (its stored-input twin), or with ``plan`` the image-input model.

    Raises:
        ModelError: the model file is not a tfkt-edge ONNX model.
        ExportError: the batch settings are inconsistent, or ``plan`` is not a file.
    """
    if not 1 <= settings.max_batch <= 1024 or settings.instances < 1 or settings.queue_delay_us < 0:
        raise ExportError("max batch must be 1-1024, instances at least 1 and the queue delay not negative")
    if plan is not None and not plan.is_file():
        raise ExportError(f"--plan {plan}: no such engine file")
    backend = create_backend("onnxruntime", DEFAULT_MODEL if model is None and plan is not None else model)
    try:  # the backend validates the file and reads its contract
        info, stored = backend.model, bool(getattr(backend, "takes_stored", False))
    finally:
        backend.close()
    if stored and plan is not None:
        raise ExportError(f"{info.path} takes stored pixels, a TensorRT plan takes images: write the repository "
                          f"from the image-input model ({DEFAULT_MODEL.name} for the shipped one) with --model")
    repository.mkdir(parents=True, exist_ok=True)
    variants = [(info.name, dict(platform="onnxruntime_onnx"), info.path, "model.onnx"),
                (f"{info.name}-python", dict(backend="python", kind="KIND_CPU", reshape=False), info.path, "model.onnx")]
    if plan is not None:
        variants.append((f"{info.name}-trt", dict(platform="tensorrt_plan", kind="KIND_GPU"), plan, "model.plan"))
    written = []
    for name, options, source, filename in variants:
        folder = repository / name
        if folder.exists():
            shutil.rmtree(folder)
        (folder / "1").mkdir(parents=True)
        shutil.copyfile(source, folder / "1" / filename)
        (folder / "config.pbtxt").write_text(_config(name, info, settings, stored=stored, **options))
        if options.get("backend") == "python":
            names = (list(STORED_INPUTS), [OUTPUT_NAME, STATS_NAME]) if stored else ([INPUT_NAME], [OUTPUT_NAME])
            (folder / "1" / "model.py").write_text(PYTHON_MODEL.format(inputs=repr(names[0]), outputs=repr(names[1])))
        written.append(folder)
    return written
