"""Slices for a model that takes stored pixels (export/in_graph.py): the window and the statistics are the graph's.

A decoding worker then only reads each slice's stored values (int16), straight into its row of the batch
(`batching.StoredBatcher`), and its slope and intercept; the model returns the statistics the verdict needs
beside the score. Two kinds of slices still take the numpy path
(`decode.decode_with_stats`) and are handed over as their model input in whole HU (slope 1, intercept 0; a
step of 1/1400 of the window), with the statistics numpy took: a slice of another size than the model's
(the resize rule) and a sharp-kernel slice (its reader's view, `preprocess.reading_view`). The reported
texture figures are taken in numpy on the slices a `decode.TextureSampler` picks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tfkt_edge.dicom import Skip, SliceRef, load_stored, reasons
from tfkt_edge.dicom.pixels import read_int16_into, reads_int16
from tfkt_edge.model.model_file import STATS_OUTPUT
from tfkt_edge.model.preprocess import PreprocessContract, preprocess, whole_hu
from tfkt_edge.pipeline.decode import decode_with_stats
from tfkt_edge.verdict.domain import ImageStats, kernel_class
from tfkt_edge.verdict.noise import nps_mean_frequency
from tfkt_edge.verdict.streaks import streak_index

INT16 = (-32768, 32767)


@dataclass(frozen=True)
class StoredSlice:
    """The modality LUT of a slice written into its batch row for a stored-input model, and what numpy measured
    of it."""

    slope: float
    intercept: float
    stats: ImageStats | None = None  # all of them, from numpy (a slice that took the numpy path)
    texture: tuple[float | None, float | None] | None = None  # (streak index, NPS mean frequency), when sampled
    texture_later: bool = False  # sampled and uncompressed: its texture figures taken after the run's inference
    # (`texture_of`), not beside the model


def as_int16(stored: np.ndarray, slope: float, intercept: float) -> tuple[np.ndarray, float, float] | None:
    """Stored values as int16 with the modality LUT that keeps their HU: unsigned values above 32767 are
    shifted down by 32768 (the intercept takes it up); None for values that do not fit 16 bits."""
    if stored.dtype == np.int16:
        return stored, slope, intercept
    if stored.dtype.kind not in "iu" or stored.size == 0:
        return None
    low, high = int(stored.min()), int(stored.max())
    if low >= INT16[0] and high <= INT16[1]:
        return stored.astype(np.int16), slope, intercept
    if low >= 0 and high <= 65535:
        return (stored.astype(np.int32) - 32768).astype(np.int16), slope, intercept + 32768.0 * slope
    return None


def takes_raw(ref: SliceRef, contract: PreprocessContract) -> bool:
    """Whether the graph can take the slice as stored: the model's size, and no reader's view to apply."""
    view = contract.sharp_view < 1.0 and kernel_class(ref.kernel or "") == "sharp"
    return (ref.rows, ref.columns) == (contract.size, contract.size) and not view


def as_stored(ref: SliceRef, contract: PreprocessContract) -> tuple[np.ndarray, tuple[float, float]] | None:
    """(int16 pixels, (slope, intercept)) of a slice the graph takes as stored; None for the others."""
    if not takes_raw(ref, contract):
        return None
    fitted = as_int16(load_stored(ref), ref.slope, ref.intercept)
    return None if fitted is None else (fitted[0], (fitted[1], fitted[2]))


def decode_stored_into(ref: SliceRef, contract: PreprocessContract, pool: int, texture: bool,
                       out: np.ndarray) -> StoredSlice | Skip:
    """In a decoding worker: write the slice into ``out`` (its int16 batch row, contract.size squared) as the
    stored-input model takes it, and say with which modality LUT; or why it cannot be decoded."""
    # A sampled uncompressed slice's texture figures are read again after the run's inference (`texture_of`): a
    # few reads, and no burst of FFTs beside the model.
    later = texture and reads_int16(ref)
    try:
        rescale = read_int16_into(ref, out) if takes_raw(ref, contract) else None
        if rescale is None:
            raw = as_stored(ref, contract)  # compressed or 8-bit: decoded, then fitted to int16
            if raw is not None:
                out[...], rescale = raw
    except Exception as exc:  # truncated or corrupt pixel data: a reason, never a traceback
        return Skip(ref.path, reasons.PIXELS_UNREADABLE.format(detail=reasons.one_line(exc)))
    if rescale is not None:
        return StoredSlice(*rescale, None, _texture(out, rescale, contract) if texture and not later else None, later)
    decoded = decode_with_stats(ref, contract, pool, texture and not later)
    if isinstance(decoded, Skip):
        return decoded
    image, stats = decoded
    out[...] = whole_hu(image, contract)
    return StoredSlice(1.0, 0.0, stats, None, later)


def _texture(stored: np.ndarray, rescale: tuple[float, float], contract: PreprocessContract) -> tuple[float | None, float | None]:
    image = preprocess(stored, contract, *rescale)
    return streak_index(image), nps_mean_frequency(image, contract)


def texture_of(ref: SliceRef, contract: PreprocessContract) -> tuple[float | None, float | None] | None:
    """The reported texture figures (streak index, NPS mean frequency) of an uncompressed slice whose figures
    `decode_stored_into` left for later, read again; None if it cannot be read again (rewritten since)."""
    stored = np.empty((ref.rows, ref.columns), dtype=np.int16)
    try:
        rescale = read_int16_into(ref, stored)
    except ValueError:
        return None
    return None if rescale is None else _texture(stored, rescale, contract)


def graph_stats(row: np.ndarray, texture: tuple[float | None, float | None] | None) -> ImageStats:
    """The ImageStats of one row of the model's statistics output (NaN: none) and the sampled texture figures."""
    values = {name: None if not math.isfinite(float(v)) else float(v) for name, v in zip(STATS_OUTPUT, row)}
    streaks, nps = texture if texture is not None else (None, None)
    return ImageStats(body_fraction=values["body_fraction"] or 0.0, tissue_fraction=values["tissue_fraction"] or 0.0,
                      structure_hu=values["structure_hu"] or 0.0, noise_hu=values["noise_hu"],
                      noise_texture=values["noise_texture"], water_diameter_px=values["water_diameter_px"],
                      streak_index=streaks, nps_mean_frequency=nps)
