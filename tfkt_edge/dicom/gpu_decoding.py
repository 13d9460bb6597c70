"""Lossless JPEG 2000, HTJ2K and JPEG decoding on the GPU with nvImageCodec, where it is installed and works.

nvImageCodec (`pip install nvidia-nvimgcodec-cu12[all]`, or -cu13 for CUDA 13, which brings its
nvJPEG2000 and nvJPEG wheels) ships a pydicom decoding plugin. Enabling it registers that plugin
for the lossless syntaxes only, so the stored values cannot differ from the CPU
decoders' (a lossless decode has one right answer), and `pixels.load_stored` asks for
it by name for those syntaxes (`preferred_plugin`), falling back to pydicom's own plugins
(pylibjpeg's OpenJPEG or libjpeg) for any frame it fails on.

Only decoding processes (``--decoders processes``, the choice for compressed series on
GPU hosts) enable it, each as it starts. Before registering, the plugin must decode the bundled JPEG 2000 example bit for bit
as the CPU does; otherwise it stays off and the reason says why. Set
``TFKT_EDGE_GPU_DECODING=off`` to keep decoding on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import tfkt_edge.dicom.reasons as reasons
from tfkt_edge.dicom.lazy import import_pydicom

# JPEG 2000 lossless, HTJ2K lossless and lossless RPCL, JPEG lossless and lossless SV1: the syntaxes of
# pydicom's lossless decoders (`_lossless_decoders`; tests/test_gpu_decoding.py checks the two agree).
LOSSLESS_SYNTAXES = frozenset(("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                               "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"))
NVIMGCODEC_LABEL = "nvimgcodec"
NVIMGCODEC_PLUGIN = ("nvidia.nvimgcodec.tools.dicom.pydicom_plugin", "_decode_frame")
SWITCH = "TFKT_EDGE_GPU_DECODING"


@dataclass(frozen=True)
class DecodingPlugin:
    """Whether a decoding plugin serves the lossless syntaxes in this process, and why (not)."""

    enabled: bool
    detail: str


def _example() -> Path:
    from tfkt_edge.examples import EXAMPLES

    return EXAMPLES / "clinical" / "abdomen.dcm"  # JPEG 2000 lossless, 512x512, 16 bits


_preferred = ""  # the plugin load_stored asks for first in this process ("" for pydicom's own order)


def _lossless_decoders() -> tuple[Any, ...]:
    """pydicom's decoders of the lossless syntaxes (pydicom is imported only where a plugin is tried)."""
    import_pydicom()
    from pydicom.pixels.decoders import (
        HTJ2KLosslessDecoder,
        HTJ2KLosslessRPCLDecoder,
        JPEG2000LosslessDecoder,
        JPEGLosslessDecoder,
        JPEGLosslessSV1Decoder,
    )

    return (JPEG2000LosslessDecoder, HTJ2KLosslessDecoder, HTJ2KLosslessRPCLDecoder, JPEGLosslessDecoder,
            JPEGLosslessSV1Decoder)


def preferred_plugin(transfer_syntax: str) -> str:
    """The plugin to ask first for pixel data of ``transfer_syntax``; "" for pydicom's own order."""
    return _preferred if transfer_syntax in LOSSLESS_SYNTAXES else ""


def enable_plugin(label: str, import_path: tuple[str, str], name: str) -> DecodingPlugin:
    """Register a pydicom decoding plugin for the lossless syntaxes and make it the one decoding asks for
    first, once it has decoded the bundled JPEG 2000 example exactly as pydicom's own plugins do. Never
    raises: a plugin that cannot be imported, fails or differs stays off, with the reason."""
    global _preferred
    decoders = _lossless_decoders()
    from pydicom.pixels import pixel_array

    if label in decoders[0].available_plugins:
        _preferred = label
        return DecodingPlugin(True, name)
    example = _example()
    try:
        reference = pixel_array(example)
        for decoder in decoders:
            decoder.add_plugin(label, import_path)
    except Exception as exc:  # not installed, or its import fails (missing CUDA libraries)
        _remove(label)
        return DecodingPlugin(False, f"{name} is not usable: {reasons.one_line(exc)}")
    try:
        decoded = pixel_array(example, decoding_plugin=label)
    except Exception as exc:  # no GPU, no driver, a library missing
        _remove(label)
        return DecodingPlugin(False, f"{name} failed on the bundled JPEG 2000 example: {reasons.one_line(exc)}")
    if decoded.shape != reference.shape or not np.array_equal(decoded, reference):
        _remove(label)
        return DecodingPlugin(False, f"{name} decoded the bundled JPEG 2000 example differently from the CPU "
                                     "decoders: not used")
    _preferred = label
    return DecodingPlugin(True, name)


def _remove(label: str) -> None:
    global _preferred
    if _preferred == label:
        _preferred = ""
    for decoder in _lossless_decoders():
        if label in decoder.available_plugins or label in getattr(decoder, "_unavailable", {}):
            decoder.remove_plugin(label)


_status: DecodingPlugin | None = None  # this process's outcome, once tried


def enable_gpu_decoding() -> DecodingPlugin:
    """nvImageCodec for the lossless syntaxes in this process, where installed and exact (see the module
    docstring). Each decoding process calls it as it starts; decoding threads never use it (whether one
    nvImageCodec decoder may serve several threads at once is not documented)."""
    global _status
    if _status is None:
        _status = _try_nvimgcodec()
    return _status


def _try_nvimgcodec() -> DecodingPlugin:
    if os.environ.get(SWITCH, "").strip().lower() in ("0", "off", "no", "false"):
        return DecodingPlugin(False, f"turned off ({SWITCH})")
    try:
        from nvidia import nvimgcodec
    except ImportError:
        return DecodingPlugin(False, "nvImageCodec is not installed (pip install 'nvidia-nvimgcodec-cu12[all]', or -cu13 for CUDA 13)")
    except Exception as exc:  # installed, but its libraries fail to load
        return DecodingPlugin(False, f"nvImageCodec does not load: {reasons.one_line(exc)}")
    return enable_plugin(NVIMGCODEC_LABEL, NVIMGCODEC_PLUGIN, f"nvImageCodec {getattr(nvimgcodec, '__version__', '')}"
                         .strip())
