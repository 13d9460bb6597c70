"""`tfkt-edge env`: what a bug report needs, in one place (like `yolo checks`)."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
from enum import Enum
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer
from rich.table import Table

from tfkt_edge.cli.console import StdoutConsole

PACKAGES = ("tfkt-edge", "numpy", "pydicom", "pylibjpeg", "pylibjpeg-openjpeg", "pylibjpeg-libjpeg", "pylibjpeg-rle",
            "onnxruntime", "onnxruntime-gpu", "pynetdicom", "typer", "rich", "matplotlib", "jinja2", "torch", "onnx",
            "tensorrt", "pycuda", "tritonclient", "nvidia-nvimgcodec-cu12", "nvidia-nvimgcodec-cu13")


class EnvFormat(str, Enum):
    table = "table"
    json = "json"


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _model() -> dict:
    """The shipped model: name, version, the checks it carries, read from its card (nothing is opened)."""
    from tfkt_edge.model.model_file import DEFAULT_MODEL, STORED_MODEL

    # The CPU runs the stored-input twin (same weights and card); the GPU backends build from the image-input file.
    cpu = {"cpu_default": str(STORED_MODEL) if STORED_MODEL.is_file() else str(DEFAULT_MODEL)}
    try:
        card = json.loads(DEFAULT_MODEL.with_suffix(".card.json").read_text())
    except (OSError, ValueError) as exc:
        return {"path": str(DEFAULT_MODEL), **cpu, "card": f"unreadable ({exc})"}
    return {"path": str(DEFAULT_MODEL), **cpu, "name": card.get("name"), "version": card.get("version"),
            "checks": card.get("checks", "none recorded"), "bytes": DEFAULT_MODEL.stat().st_size}


def _onnxruntime() -> dict:
    try:
        import onnxruntime

        return {"version": onnxruntime.__version__, "providers": onnxruntime.get_available_providers()}
    except Exception as exc:  # an import that fails for a missing shared library is reported, not raised
        return {"error": f"{type(exc).__name__}: {exc}"}


def _cuda() -> dict:
    """What a GPU path would find: torch's CUDA, a driver through pycuda, TensorRT's module."""
    out: dict[str, object] = {"nvidia-smi": shutil.which("nvidia-smi") or "not found"}
    if importlib.util.find_spec("torch") is not None:
        try:
            import torch

            out["torch_cuda"] = torch.cuda.is_available()
            if torch.cuda.is_available():
                out["gpu"] = torch.cuda.get_device_name(0)
        except Exception as exc:
            out["torch_cuda"] = f"error: {exc}"
    out["tensorrt"] = importlib.util.find_spec("tensorrt") is not None
    out["tritonserver"] = shutil.which("tritonserver") or "not on PATH"
    return out


def collect() -> dict:
    return {
        "python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(),
        "cpu_cores": os.cpu_count(), "packages": {name: _version(name) for name in PACKAGES},
        "model": _model(), "onnxruntime": _onnxruntime(), "gpu": _cuda(),
        "decoders": {"dcmtk storescu": shutil.which("storescu") or "not on PATH",
                     "gdcm": importlib.util.find_spec("gdcm") is not None},
    }


def env(format: Annotated[EnvFormat, typer.Option("--format", "-f", help="table for people; json for a bug report.")] = EnvFormat.table) -> None:
    """Print versions, the shipped model and its checks, ONNX Runtime's providers, CUDA, TensorRT and Triton
    availability, decoders and the CPU: what a bug report needs.

    Example: tfkt-edge env --format json > env.json
    """
    facts = collect()
    if format is EnvFormat.json:
        typer.echo(json.dumps(facts, indent=1))
        return
    table = Table(title="tfkt-edge environment", show_header=False)
    table.add_column("", no_wrap=True)
    table.add_column("")
    for key in ("python", "platform", "machine", "cpu_cores"):
        table.add_row(key, str(facts[key]))
    for name, value in facts["packages"].items():
        if value != "not installed":
            table.add_row(name, value)
    for group in ("model", "onnxruntime", "gpu", "decoders"):
        for key, value in facts[group].items():
            table.add_row(f"{group}: {key}", str(value))
    StdoutConsole().print(table)
