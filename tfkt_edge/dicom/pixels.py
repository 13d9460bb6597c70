"""Pixel decoding: a SliceRef -> a 2-D float32 slice in Hounsfield units."""

from __future__ import annotations

import numpy as np
from pydicom.pixels import pixel_array

from tfkt_edge.dicom.slices import SliceRef


def load_hu(ref: SliceRef) -> np.ndarray:
    """Decode one slice (one frame for Enhanced CT) and apply its modality LUT.

    Compressed transfer syntaxes (JPEG lossless, JPEG 2000, RLE) decode through
    the pylibjpeg plugins. Only the requested frame of a multi-frame file is decoded.

    Raises:
        Exception: whatever the decoder raises for truncated or corrupt pixel data;
            callers turn it into a skip reason.
    """
    stored = pixel_array(ref.path, index=ref.frame)
    if stored.ndim != 2:
        raise ValueError(f"expected one 2-D frame, decoded shape {stored.shape}")
    hu = stored.astype(np.float32)
    if ref.slope != 1.0:
        hu *= np.float32(ref.slope)
    if ref.intercept != 0.0:
        hu += np.float32(ref.intercept)
    return hu
