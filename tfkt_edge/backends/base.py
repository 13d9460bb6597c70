"""The one small interface every inference backend implements, and their registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

import numpy as np

from tfkt_edge.errors import InputError
from tfkt_edge.model.model_file import ModelInfo
from tfkt_edge.registry import Registry


class Backend(Protocol):
    """Scores preprocessed batches. Backends live in their own modules. A backend may also offer
    ``submit(batch)`` and ``staging(size)``, for overlapping copies and compute (see the functions below),
    and ``pin(array)``, which page-locks memory that batches will be taken from and returns its undoing."""

    name: str
    model: ModelInfo

    def max_batch(self) -> int | None:
        """The largest batch the backend accepts, or None when unbounded."""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(N, 1, S, S) float32 in [0, 1] -> (N,) float32 scores in [0, 4]."""

    def close(self) -> None:
        """Release threads, device memory and contexts; the backend is unusable afterwards."""


DEFAULT_BATCH = 16  # slices per inference batch, where neither the caller nor the backend says otherwise


def default_batch(backend: Backend) -> int:
    """The batch size a run uses when its caller names none: the backend's ``preferred_batch`` where it has one."""
    return int(getattr(backend, "preferred_batch", DEFAULT_BATCH))


@dataclass(frozen=True)
class BackendOptions:
    """Settings some backends take besides the model file; each backend names the ones it uses
    (``options_used``), and giving one to a backend that does not use it is an error."""

    url: str | None = None  # triton: the server's gRPC endpoint, host:port
    triton_model: str | None = None  # triton: the served model's name (default: the first ready variant)
    precision: str | None = None  # torch: fp32 or fp16 (default: fp16 on CUDA, fp32 on the CPU)

    def given(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def submit(backend: Backend, batch: np.ndarray) -> Callable[[], np.ndarray]:
    """Start scoring ``batch``; the function returned waits for its scores. A backend with a ``submit``
    of its own (the torch backend on CUDA) returns at once, so the caller assembles the next batch while
    the GPU computes; the caller must not change ``batch`` before it has the scores. Other backends
    score before returning."""
    own = getattr(backend, "submit", None)
    if own is not None:
        return own(batch)
    scores = backend.infer(batch)
    return lambda: scores


def staging(backend: Backend, size: int) -> np.ndarray:
    """An empty (size, 1, S, S) float32 batch for ``backend``: page-locked host memory where the backend
    offers it (``staging``; the GPU copies from it without a host copy first), plain memory otherwise."""
    own = getattr(backend, "staging", None)
    if own is not None:
        return own(size)
    side = backend.model.contract.size
    return np.empty((size, 1, side, side), dtype=np.float32)


def pin(backend: Backend, array: np.ndarray) -> Callable[[], None]:
    """Page-lock ``array``, memory that batches will be taken from, where the backend offers it (``pin``);
    returns the function that undoes it (which does nothing otherwise)."""
    own = getattr(backend, "pin", None)
    return own(array) if own is not None else (lambda: None)


# A factory takes the model path (None: the backend's own default model) and the options it names.
BackendFactory = Callable[..., Backend]
BACKENDS: Registry[BackendFactory] = Registry("backend")


def create_backend(name: str, model_path: Path | None = None, options: BackendOptions | None = None) -> Backend:
    """Open ``model_path`` (None: the backend's default model) with the backend registered as ``name``.

    Raises:
        UnknownNameError: no backend of that name.
        BackendUnavailable: its libraries or GPU are missing here.
        ModelError: the model cannot be used by it.
    """
    factory = BACKENDS.get(name)
    given = (options or BackendOptions()).given()
    unused = sorted(set(given) - set(getattr(factory, "options_used", ())))
    if unused:
        flags = ", ".join("--" + option.replace("_", "-") for option in unused)
        users = [n for n in BACKENDS.names() if set(unused) <= set(getattr(BACKENDS.get(n), "options_used", ()))]
        raise InputError(f"{flags} does not apply to the {name} backend" + (f" (only to: {', '.join(users)})" if users else ""))
    return factory(model_path, **given)
