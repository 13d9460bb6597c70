"""The one small interface every inference backend implements, and their registry."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ..model_file import ModelInfo
from ..registry import Registry


class Backend(Protocol):
    """Scores preprocessed batches. Backends live in their own modules."""

    name: str
    model: ModelInfo

    def max_batch(self) -> int | None:
        """The largest batch the backend accepts, or None when unbounded."""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(N, 1, S, S) float32 in [0, 1] -> (N,) float32 scores in [0, 4]."""


BackendFactory = Callable[[Path], Backend]
BACKENDS: Registry[BackendFactory] = Registry("backend")


def create_backend(name: str, model_path: Path) -> Backend:
    """Open ``model_path`` with the backend registered as ``name``."""
    from . import onnxruntime as _  # noqa: F401  (registers the default backend)

    return BACKENDS.get(name)(model_path)
