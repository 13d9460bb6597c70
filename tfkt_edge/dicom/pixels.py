"""Pixel decoding: a SliceRef -> its stored values, or a 2-D float32 slice in Hounsfield units."""

from __future__ import annotations

import numpy as np

from tfkt_edge.dicom.gpu_decoding import preferred_plugin
from tfkt_edge.dicom.header import DEFLATED
from tfkt_edge.dicom.lazy import import_pydicom
from tfkt_edge.dicom.slices import SliceRef, file_stamp


def _decode(ref: SliceRef) -> np.ndarray:
    """Through pydicom: the preferred plugin first (nvImageCodec on the GPU, where enabled), then pydicom's own.
    A deflated file is inflated within its bound first (`deflated.inflate`)."""
    import_pydicom()
    from pydicom.pixels import pixel_array

    from tfkt_edge.dicom.deflated import inflate

    if ref.transfer_syntax == DEFLATED:
        return pixel_array(inflate(ref.path), index=ref.frame)
    plugin = preferred_plugin(ref.transfer_syntax)
    if plugin:
        try:
            return pixel_array(ref.path, index=ref.frame, decoding_plugin=plugin)
        except Exception:  # a frame the GPU failed on: the CPU decoders decide
            pass
    return pixel_array(ref.path, index=ref.frame)


def load_stored(ref: SliceRef) -> np.ndarray:
    """The stored values of one slice (one frame for Enhanced CT), before the modality LUT.

    Uncompressed little-endian pixel data found by the header scan is read in one
    ``np.fromfile`` at its offset (no second parse of the header); everything else
    decodes through pydicom (compressed syntaxes through the pylibjpeg plugins, or
    nvImageCodec's where gpu_decoding.py enabled it; only the requested frame of a
    multi-frame file). Either way, bits above Bits Stored are
    ignored, as pydicom does. A file rewritten since its header was read is refused (its
    size or modification time differs), never read at a stale offset.

    Raises:
        Exception: whatever reading or the decoder raises for truncated or corrupt pixel data;
            callers turn it into a skip reason.
    """
    if ref.pixel_offset is None:
        stored = _decode(ref)
        if stored.ndim != 2:
            raise ValueError(f"expected one 2-D frame, decoded shape {stored.shape}")
        return stored
    _check_unchanged(ref)
    count = ref.rows * ref.columns
    stored = np.fromfile(ref.path, dtype=ref.pixel_dtype, count=count, offset=ref.pixel_offset)
    if stored.size != count:
        raise ValueError(f"pixel data ends after {stored.size} of {count} values")
    stored = stored.reshape(ref.rows, ref.columns)
    _drop_unused_bits(stored, ref.bits_stored)
    return stored


def reads_int16(ref: SliceRef) -> bool:
    """Whether the slice's stored values are uncompressed 16-bit little-endian at an offset the header scan
    found: what `read_int16_into` reads (again, at any time, while the file is unchanged)."""
    return ref.pixel_offset is not None and ref.pixel_dtype in ("<i2", "<u2")


def read_int16_into(ref: SliceRef, out: np.ndarray) -> tuple[float, float] | None:
    """Read an uncompressed 16-bit slice's stored values straight into ``out`` (int16, rows x columns, contiguous:
    a row of a batch) and return the (slope, intercept) that keep their HU: 16-bit unsigned values are shifted
    down by 32768 (one XOR) and the intercept takes it up. None, with ``out`` untouched, for any other slice
    (`load_stored` decodes it). Bits above Bits Stored are ignored, as in `load_stored`.

    Raises:
        ValueError: the file changed since its header was read, or its pixel data ends early.
    """
    offset = ref.pixel_offset
    if offset is None or not reads_int16(ref) or out.shape != (ref.rows, ref.columns) or out.dtype != np.int16 \
            or not out.flags.c_contiguous:
        return None
    _check_unchanged(ref)
    with open(ref.path, "rb", buffering=0) as handle:
        handle.seek(offset)
        got = handle.readinto(out.data.cast("B"))
    if got != out.nbytes:
        raise ValueError(f"pixel data ends after {got // 2} of {out.size} values")
    if ref.pixel_dtype == "<i2":
        _drop_unused_bits(out, ref.bits_stored)
        return ref.slope, ref.intercept
    unsigned = out.view(np.uint16)
    _drop_unused_bits(unsigned, ref.bits_stored)
    if ref.bits_stored < 16:  # below 32768: already int16
        return ref.slope, ref.intercept
    np.bitwise_xor(unsigned, np.uint16(0x8000), out=unsigned)  # u - 32768, as int16
    return ref.slope, ref.intercept + 32768.0 * ref.slope


def _check_unchanged(ref: SliceRef) -> None:
    if file_stamp(ref.path) != ref.file_stamp:  # rewritten since its header was read: the offset may be stale
        raise ValueError("the file changed after its header was read")


def _drop_unused_bits(stored: np.ndarray, bits_stored: int) -> None:
    """Bits above Bits Stored, shifted out in place (arithmetic for signed values, so the sign extends)."""
    shift = stored.dtype.itemsize * 8 - bits_stored
    if shift:
        np.left_shift(stored, shift, out=stored)
        np.right_shift(stored, shift, out=stored)


def load_hu(ref: SliceRef) -> np.ndarray:
    """Decode one slice (``load_stored``) and apply its modality LUT: float32 Hounsfield units."""
    hu = load_stored(ref).astype(np.float32)
    if ref.slope != 1.0:
        hu *= np.float32(ref.slope)
    if ref.intercept != 0.0:
        hu += np.float32(ref.intercept)
    return hu
