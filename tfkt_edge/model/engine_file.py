"""A TensorRT engine's sidecar: what it was built with, and whether this machine may run it.

A serialized engine runs only on the TensorRT version and GPU it was built
for (TensorRT's developer guide: engines are not portable across versions and GPU
architectures unless built hardware- or version-compatible), and it carries no preprocessing contract of its own.
The builder therefore writes ``model.engine.json`` beside ``model.engine``;
the runtime reads it first and refuses a mismatch with a message that says to
rebuild, instead of failing inside TensorRT.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tfkt_edge.errors import ModelError
from tfkt_edge.model.model_file import ModelInfo
from tfkt_edge.model.preprocess import PreprocessContract

SIDECAR_VERSION = 1


@dataclass(frozen=True)
class GpuIdentity:
    name: str
    compute_capability: str  # "9.0"


@dataclass(frozen=True)
class EngineSidecar:
    tensorrt_version: str
    gpu: GpuIdentity
    precision: str
    profile: dict[str, list[int]]  # min / opt / max input shapes
    onnx_sha256: str
    engine_sha256: str
    preprocess: str  # PreprocessContract JSON, byte-identical to the ONNX metadata
    model: str
    card: dict = field(default_factory=dict)
    layer_precisions: dict[str, int] = field(default_factory=dict)
    build: dict = field(default_factory=dict)  # builder settings: workspace, timing cache, strongly typed, seconds
    sidecar_version: int = SIDECAR_VERSION

    @property
    def max_batch(self) -> int:
        return int(self.profile["max"][0])

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> EngineSidecar:
        data = json.loads(text)
        data["gpu"] = GpuIdentity(**data["gpu"])
        return cls(**data)

    def model_info(self, engine: Path) -> ModelInfo:
        return ModelInfo(engine, self.model, PreprocessContract.from_json(self.preprocess), self.card)


def sidecar_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_sidecar(engine: Path) -> EngineSidecar:
    """Read and validate ``engine``'s sidecar; the engine bytes must be the ones it describes.

    Raises:
        ModelError: engine or sidecar missing, unreadable, or not describing this engine.
    """
    if not engine.is_file():
        raise ModelError(f"engine not found: {engine}")
    path = sidecar_path(engine)
    if not path.is_file():
        raise ModelError(f"{engine} has no sidecar {path.name}: build engines with tfkt-edge export tensorrt")
    try:
        sidecar = EngineSidecar.from_json(path.read_text())
        PreprocessContract.from_json(sidecar.preprocess)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{path} is not a tfkt-edge engine sidecar ({type(exc).__name__}: {exc})") from None
    if sidecar.sidecar_version != SIDECAR_VERSION:
        raise ModelError(f"{path} has sidecar version {sidecar.sidecar_version}, this tfkt-edge reads {SIDECAR_VERSION}: rebuild the engine")
    if sha256(engine) != sidecar.engine_sha256:
        raise ModelError(f"{engine} is not the engine its sidecar {path.name} describes (sha256 differs): rebuild it")
    return sidecar


def check_compatible(sidecar: EngineSidecar, engine: Path, tensorrt_version: str, gpu: GpuIdentity) -> None:
    """Refuse an engine built for another TensorRT version or GPU.

    Raises:
        ModelError: naming what differs and the command that rebuilds the engine.
    """
    differences = []
    if sidecar.tensorrt_version != tensorrt_version:
        differences.append(f"TensorRT {sidecar.tensorrt_version}, this machine has {tensorrt_version}")
    if sidecar.gpu != gpu:
        differences.append(f"{sidecar.gpu.name} (sm {sidecar.gpu.compute_capability}), "
                           f"this machine has {gpu.name} (sm {gpu.compute_capability})")
    if differences:
        raise ModelError(f"{engine} was built for {'; and for '.join(differences)}: rebuild it here with "
                         f"tfkt-edge export tensorrt --onnx MODEL.onnx --output {engine}")
