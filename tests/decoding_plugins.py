"""Two pydicom decoding plugins for tests of tfkt_edge.dicom.gpu_decoding: one that decodes as pydicom's
pylibjpeg plugin does (and counts its frames), one that returns every value one higher."""

from __future__ import annotations

import numpy as np
from pydicom.pixels.decoders import pylibjpeg

DECODER_DEPENDENCIES = pylibjpeg.DECODER_DEPENDENCIES
is_available = pylibjpeg.is_available
frames = {"exact": 0, "off_by_one": 0}


def exact(src, runner):
    frames["exact"] += 1
    return pylibjpeg._decode_frame(src, runner)


def off_by_one(src, runner):
    frames["off_by_one"] += 1
    decoded = pylibjpeg._decode_frame(src, runner)
    dtype = np.dtype(f"<{'iu'[runner.pixel_representation == 0]}{runner.bits_allocated // 8}")
    return (np.frombuffer(decoded, dtype=dtype) + 1).astype(dtype).tobytes()
