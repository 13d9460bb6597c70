"""Deflated Explicit VR Little Endian files, inflated within a bound.

pydicom inflates a deflated data set whole and without a limit while it reads the header, so a few
megabytes of crafted zeros become gigabytes of memory (a deflate bomb). Here the file meta is read
as is, the deflated remainder is inflated at most ``limit`` bytes, and the result is parsed as the
Explicit VR Little Endian data set it is. A stream that would inflate past the limit is refused
with its reason before the memory is spent. The limit follows the file: a CT data set deflates a
few times at most (air outside the field of view compresses best), so ``RATIO`` times the file's
size plus ``FLOOR`` bytes is generous for any real image and bounds a bomb. Inflation goes a step at a
time, so memory stays within a step of the bound.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset, FileDataset
from pydicom.filereader import read_dataset as parse_dataset
from pydicom.filereader import read_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian

RATIO = 20
FLOOR = 8 * 2**20
STEP = 2**20  # inflated a megabyte at a time, so a bomb is stopped within a step of its bound
CEILING = 2**30
PROBE = 4096  # the file meta lies in the first bytes: its transfer syntax is found there without parsing


class InflateLimitError(ValueError):
    """A deflated data set that would inflate past its bound."""


def is_deflated(path: Path) -> bool:
    """Whether the file meta at the start of ``path`` names the Deflated Explicit VR transfer syntax."""
    with open(path, "rb") as fh:
        head = fh.read(PROBE)
    return DeflatedExplicitVRLittleEndian.encode() in head


def read_dataset(path: Path, **dcmread_options: Any) -> Dataset:
    """``pydicom.dcmread(path, **dcmread_options)``, except that a deflated file is inflated within its bound
    (`inflate`, whole: its deflated stream cannot be read in part). Raises what they raise."""
    if is_deflated(path):
        return inflate(path)
    return pydicom.dcmread(path, **dcmread_options)


def limit_for(path: Path) -> int:
    return min(CEILING, RATIO * path.stat().st_size + FLOOR)


def inflate(path: Path, limit: int | None = None) -> Dataset:
    """The data set of a deflated file, parsed from at most ``limit`` inflated bytes (default `limit_for`).

    Raises:
        InflateLimitError: the stream inflates past the limit.
        Exception: a malformed meta or stream (callers turn it into a skip reason).
    """
    limit = limit_for(path) if limit is None else limit
    meta = read_file_meta_info(path)
    with open(path, "rb") as fh:
        fh.seek(128 + 4)  # preamble and "DICM"
        tag, vr, length = struct.unpack("<I2sH", fh.read(8))
        if tag != 0x00000002 or vr != b"UL" or length != 4:  # (0002,0000) UL, little endian group/element
            raise ValueError("the file meta does not start with its group length")
        (group_length,) = struct.unpack("<I", fh.read(4))
        fh.seek(128 + 4 + 12 + group_length)
        stream = fh.read()
    inflater, body, pending = zlib.decompressobj(-zlib.MAX_WBITS), io.BytesIO(), stream
    while pending:
        body.write(inflater.decompress(pending, STEP))
        pending = inflater.unconsumed_tail
        if body.tell() > limit:
            raise InflateLimitError(f"the deflated data set inflates past {limit / 2**20:.0f} MB "
                                    f"({path.stat().st_size / 2**20:.1f} MB on disk): refused as a deflate bomb")
    body.write(inflater.flush())  # what the last step left in the inflater: at most its 32 KB window
    body.seek(0)
    dataset = parse_dataset(body, is_implicit_VR=False, is_little_endian=True)
    out = FileDataset(str(path), dataset, file_meta=meta, preamble=b"\0" * 128)
    out.set_original_encoding(False, True, None)
    return out
