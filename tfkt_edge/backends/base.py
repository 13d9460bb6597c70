"""The one small interface every inference backend implements, and their registry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from tfkt_edge.model_file import ModelInfo
from tfkt_edge.registry import Registry


class Backend(Protocol):
    """Scores preprocessed batches. Backends live in their own modules."""

    name: str
    model: ModelInfo

    def max_batch(self) -> int | None:
        """The largest batch the backend accepts, or None when unbounded."""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(N, 1, S, S) float32 in [0, 1] -> (N,) float32 scores in [0, 4]."""

    def close(self) -> None:
        """Release threads, device memory and contexts; the backend is unusable afterwards."""


# A factory takes the model path, or None for the backend's own default model.
BackendFactory = Callable[[Path | None], Backend]
BACKENDS: Registry[BackendFactory] = Registry("backend")


def create_backend(name: str, model_path: Path | None = None) -> Backend:
    """Open ``model_path`` (None: the backend's default model) with the backend registered as ``name``.

    Raises:
        UnknownNameError: no backend of that name.
        BackendUnavailable: its libraries or GPU are missing here.
        ModelError: the model cannot be used by it.
    """
    return BACKENDS.get(name)(model_path)
