"""The GPU this process runs on, as the engine sidecar records it."""

from __future__ import annotations

from tfkt_edge.errors import BackendUnavailable
from tfkt_edge.model.engine_file import GpuIdentity


def current_gpu(index: int = 0) -> GpuIdentity:
    """Name and compute capability of CUDA device ``index``, through pycuda.

    Raises:
        BackendUnavailable: pycuda or a CUDA driver is missing.
    """
    try:
        import pycuda.driver as cuda

        cuda.init()
        device = cuda.Device(index)
    except ImportError:
        raise BackendUnavailable("pycuda is not installed: pip install 'tfkt-edge[gpu]' on a machine with an NVIDIA driver") from None
    except Exception as exc:  # pycuda raises its own types for "no driver" / "no device"
        raise BackendUnavailable(f"no CUDA device {index}: {str(exc).splitlines()[0]}") from None
    major, minor = device.compute_capability()
    return GpuIdentity(device.name(), f"{major}.{minor}")
