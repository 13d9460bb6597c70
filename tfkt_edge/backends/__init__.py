"""Inference backends, chosen by name; each registers itself when the package is imported.

Their heavy libraries (onnxruntime, TensorRT, torch, tritonclient) are imported only when a backend is opened.
"""

import tfkt_edge.backends.onnxruntime
import tfkt_edge.backends.pytorch
import tfkt_edge.backends.tensorrt
import tfkt_edge.backends.triton  # noqa: F401
from tfkt_edge.backends.base import BACKENDS, Backend, BackendOptions, create_backend

__all__ = ["BACKENDS", "Backend", "BackendOptions", "create_backend"]
