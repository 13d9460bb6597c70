"""The TFKT V2 reference architecture as a backend, so benchmarks time it beside the edge model.

It has random weights (seed 0): it is timed, never scored. On the torch
backend it is built in memory. On ONNX Runtime it needs an ONNX file: given
with ``--reference-model``, or exported once with torch into the cache
(``$TFKT_EDGE_CACHE``, default ``~/.cache/tfkt-edge``; about 840 MB, about
90 s on 2 cores). A TensorRT engine of it must be built with
``tfkt-edge export tensorrt`` from that ONNX and given with ``--reference-model``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tfkt_edge.backends import Backend, create_backend
from tfkt_edge.errors import BackendUnavailable, ModelError
from tfkt_edge.model_file import ModelInfo
from tfkt_edge.preprocess import LDCTIQAC

NAME = "tfkt_v2"


def cache_dir() -> Path:
    return Path(os.environ.get("TFKT_EDGE_CACHE") or Path.home() / ".cache" / "tfkt-edge")


def reference_onnx(log: Callable[[str], None] = lambda _: None) -> Path:
    """The cached reference ONNX, exported on first use (needs torch)."""
    path = cache_dir() / "tfkt_v2-random-seed0.onnx"
    if path.is_file():
        return path
    try:
        import torch

        from tfkt_edge.export.onnx import export_onnx
        from tfkt_edge.train.models import create_model
    except ImportError:
        raise BackendUnavailable("the TFKT V2 reference needs torch once, to export its ONNX: pip install "
                                 "'tfkt-edge[train]', or pass --reference-model FILE.onnx") from None
    log(f"exporting the TFKT V2 reference (random weights) to {path} once; this takes a minute or two")
    torch.manual_seed(0)
    partial = path.with_suffix(".partial.onnx")
    export_onnx(create_model(NAME).eval(), NAME, LDCTIQAC, {"labels": "random weights: for timing only, never scores"},
                partial)
    os.replace(partial, path)
    return path


def reference_backend(backend: str, precision: str | None, model: Path | None = None,
                      log: Callable[[str], None] = lambda _: None) -> Backend:
    """TFKT V2 on ``backend``.

    Raises:
        BackendUnavailable: what it needs is missing (torch, a GPU, a reference engine).
    """
    if backend == "torch":
        try:
            import torch

            from tfkt_edge.backends.pytorch import TorchBackend
            from tfkt_edge.train.models import create_model
        except ImportError:
            raise BackendUnavailable("the TFKT V2 reference on the torch backend needs torch") from None
        if model is not None:
            return TorchBackend(model, precision=precision)
        torch.manual_seed(0)
        info = ModelInfo(Path(f"{NAME} (random weights)"), NAME, LDCTIQAC, {})
        return TorchBackend.from_module(create_model(NAME), info, precision=precision)
    if backend == "tensorrt" and model is None:
        raise ModelError("the TFKT V2 reference on TensorRT needs an engine: build one from the reference ONNX "
                         f"({cache_dir() / 'tfkt_v2-random-seed0.onnx'}) and pass --reference-model")
    return create_backend(backend, model or reference_onnx(log))
