"""Inference backends, chosen by name; each registers itself when the package is imported.

Their heavy libraries (onnxruntime, TensorRT, torch, tritonclient) are imported only when a backend is opened.
"""

from tfkt_edge.backends import onnxruntime, pytorch, tensorrt, triton  # noqa: F401  (registration)
from tfkt_edge.backends.base import BACKENDS, Backend, BackendOptions, create_backend

__all__ = ["BACKENDS", "Backend", "BackendOptions", "create_backend"]
