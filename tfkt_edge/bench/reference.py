"""The TFKT V2 reference architecture, opened on any backend, so benchmarks time it beside the edge model.

It has random weights (seed 0): it is timed, never scored. Each backend reads
its own kind of model file (``model_format``); the reference is written once in
that format into the cache (``$TFKT_EDGE_CACHE``, default ``~/.cache/tfkt-edge``;
about 840 MB, a minute or two on 2 cores, needs torch) unless one is given with
``--reference-model``. A TensorRT engine of it must be built with
``tfkt-edge export tensorrt`` from the cached ONNX and given with ``--reference-model``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tfkt_edge.backends import BACKENDS, Backend
from tfkt_edge.errors import BackendUnavailable, ModelError
from tfkt_edge.model.preprocess import LDCTIQAC

NAME = "tfkt_v2"


def cache_dir() -> Path:
    return Path(os.environ.get("TFKT_EDGE_CACHE") or Path.home() / ".cache" / "tfkt-edge")


def _needs_torch():
    try:
        import torch

        from tfkt_edge.model.network import create_model
    except ImportError:
        raise BackendUnavailable("the TFKT V2 reference needs torch once, to write its model file: pip install "
                                 "'tfkt-edge[train]', or pass --reference-model FILE") from None
    torch.manual_seed(0)
    return create_model(NAME).eval()


def _cached(name: str, write: Callable[[Path], None], log: Callable[[str], None]) -> Path:
    path = cache_dir() / name
    if path.is_file():
        return path
    log(f"writing the TFKT V2 reference (random weights) to {path} once; this takes a minute or two")
    partial = path.with_name(f"{path.stem}.partial{path.suffix}")
    partial.parent.mkdir(parents=True, exist_ok=True)
    write(partial)
    os.replace(partial, path)
    return path


def reference_onnx(log: Callable[[str], None] = lambda _: None) -> Path:
    """The cached reference ONNX, exported on first use (needs torch)."""

    def write(path: Path) -> None:
        from tfkt_edge.export.onnx import export_onnx

        export_onnx(_needs_torch(), NAME, LDCTIQAC, CARD, path)

    return _cached("tfkt_v2-random-seed0.onnx", write, log)


def reference_checkpoint(log: Callable[[str], None] = lambda _: None) -> Path:
    """The cached reference torch checkpoint, written on first use."""

    def write(path: Path) -> None:
        from tfkt_edge.model.checkpoint import save_checkpoint

        save_checkpoint(_needs_torch(), {"model": NAME}, path, CARD)

    return _cached("tfkt_v2-random-seed0.pt", write, log)


CARD = {"labels": "random weights: for timing only, never scores"}
REFERENCE_FILES: dict[str, Callable[[Callable[[str], None]], Path]] = {"onnx": reference_onnx, "checkpoint": reference_checkpoint}


def reference_backend(backend: str, open_model: Callable[[Path], Backend], model: Path | None = None,
                      log: Callable[[str], None] = lambda _: None) -> Backend:
    """TFKT V2 on ``backend``, opened by ``open_model`` (the caller's options: precision) from ``model`` or
    the cached file in the backend's format.

    Raises:
        BackendUnavailable: what it needs is missing (torch, a GPU).
        ModelError: the backend needs a file that cannot be made here (a TensorRT engine).
    """
    if model is None:
        model_format = getattr(BACKENDS.get(backend), "model_format", "onnx")
        if model_format not in REFERENCE_FILES:
            raise ModelError(f"the TFKT V2 reference on {backend} needs a {model_format}: build one from the reference "
                             f"ONNX ({cache_dir() / 'tfkt_v2-random-seed0.onnx'}) and pass --reference-model")
        model = REFERENCE_FILES[model_format](log)
    return open_model(model)
