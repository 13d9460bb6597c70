"""Deflated Explicit VR Little Endian: real CT in that syntax scores as its original; a deflate bomb is refused
with its reason, in bounded memory."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib

import pydicom
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian
from typer.testing import CliRunner

from tfkt_edge.cli.main import app

runner = CliRunner()
BOMB_BYTES = 600 * 2**20  # inflated; about 0.6 MB on disk


def _deflated_copy(source, target):
    ds = pydicom.dcmread(source)
    ds.decompress() if ds.file_meta.TransferSyntaxUID.is_compressed else None
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(target, enforce_file_format=True)
    return target


def _bomb(source, target):
    """A real CT header whose deflated body holds a private OB element of BOMB_BYTES zeros (a few hundred KB
    on disk), then the real pixel data."""
    ds = pydicom.dcmread(source)
    pixels = ds.PixelData
    del ds.PixelData
    head = DicomBytesIO()
    head.is_little_endian, head.is_implicit_VR = True, False
    write_dataset(head, ds)
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [packer.compress(head.getvalue())]
    # (0029,1010) OB, explicit VR long form: tag, "OB", 2 reserved bytes, 4-byte length.
    parts.append(packer.compress(struct.pack("<HH2sHI", 0x0029, 0x1010, b"OB", 0, BOMB_BYTES)))
    chunk = bytes(16 * 2**20)
    for _ in range(BOMB_BYTES // len(chunk)):
        parts.append(packer.compress(chunk))
    parts.append(packer.compress(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, len(pixels)) + pixels))
    parts.append(packer.flush())
    target.write_bytes(b"\0" * 128 + b"DICM" + meta.getvalue() + b"".join(parts))
    return target


def _scores(*paths) -> dict:
    result = runner.invoke(app, ["score", *map(str, paths), "--format", "json"])
    assert result.exit_code in (0, 1, 3), result.output
    return json.loads(result.stdout)


def test_a_real_deflated_slice_scores_as_its_original(real, tmp_path):
    original = real["explicit_le"]
    deflated = _deflated_copy(original, tmp_path / "deflated.dcm")
    assert deflated.stat().st_size < original.stat().st_size
    (a,), (b,) = _scores(original)["series"], _scores(deflated)["series"]
    assert b["slices"][0]["score"] == a["slices"][0]["score"] and b["status"] == a["status"]
    assert not _scores(deflated)["skipped"]


def test_a_deflate_bomb_is_refused_with_its_reason_in_bounded_memory(real, tmp_path):
    bomb = _bomb(real["explicit_le"], tmp_path / "bomb.dcm")
    assert bomb.stat().st_size < 4 * 2**20
    (skip,) = _scores(bomb, real["explicit_le"])["skipped"]
    assert skip["path"].endswith("bomb.dcm") and "deflate bomb" in skip["reason"]
    # In a process of its own: reading the bomb's header peaks far below what inflating it would take.
    # The peak of Python's own allocations (tracemalloc), where inflated bytes land: the process's RSS peak is no
    # measure here, as a child forked from a large pytest process can report the parent's.
    probe = ("import sys, tracemalloc; from pathlib import Path; from tfkt_edge.dicom.slices import read_slices; "
             "tracemalloc.start(); r = read_slices(Path(sys.argv[1])); print(getattr(r, 'reason', r)); "
             "print(tracemalloc.get_traced_memory()[1] // 1024)")
    out = subprocess.run([sys.executable, "-c", probe, str(bomb)], capture_output=True, text=True, timeout=120)
    reason, peak_kb = out.stdout.strip().splitlines()
    assert "deflate bomb" in reason and int(peak_kb) * 1024 < BOMB_BYTES / 2, (reason, peak_kb)
