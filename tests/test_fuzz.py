"""A malformed-input corpus made from real CT files, scored by the real CLI in a process with a memory cap.

Every file is truncated, has bytes flipped, lies about a length, a transfer
syntax, its dimensions or its frame count, or carries non-finite rescale
values. The run must end (a time limit), stay under 3 GiB of address space,
print no traceback, produce strict JSON, account for every file as a scored
slice or a skip with a reason, and still score the intact file beside them.
"""

from __future__ import annotations

import json
import os
import random
import resource
import struct
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

MEMORY_CAP = 3 * 1024**3
PIXEL_TAG_EXPLICIT = b"\xe0\x7f\x10\x00OW\x00\x00"


def _fresh(source: Path) -> pydicom.Dataset:
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return ds


def _header_mutants(source: Path, out: Path) -> list[Path]:
    """Datasets that parse but lie: dimensions, frames, sample layout, transfer syntax, rescale."""
    changes = {
        "rows-huge": {"Rows": 65535, "Columns": 65535},
        "rows-zero": {"Rows": 0},
        "bits-64": {"BitsAllocated": 64, "BitsStored": 64, "HighBit": 63},
        "bits-1": {"BitsAllocated": 1, "BitsStored": 1, "HighBit": 0},
        "samples-3": {"SamplesPerPixel": 3, "PhotometricInterpretation": "RGB", "PlanarConfiguration": 0},
        "frames-max": {"NumberOfFrames": 2**31 - 1},
        "frames-negative": {"NumberOfFrames": -1},
        "slope-inf": {"RescaleSlope": "inf"},
        "intercept-nan": {"RescaleIntercept": "nan"},
        "slope-huge": {"RescaleSlope": "1e308"},
        "spacing-zero": {"PixelSpacing": [0, 0]},
        "spacing-negative": {"PixelSpacing": [-1, 1e30]},
        "photometric-palette": {"PhotometricInterpretation": "PALETTE COLOR"},
    }
    paths = []
    for name, values in changes.items():
        ds = _fresh(source)
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        paths.append(out / f"header-{name}.dcm")
        ds.save_as(paths[-1])
    for name, syntax in (("implicit", ImplicitVRLittleEndian), ("big-endian", ExplicitVRBigEndian),
                         ("jpeg-baseline", JPEGBaseline8Bit), ("deflated", DeflatedExplicitVRLittleEndian)):
        ds = _fresh(source)
        paths.append(out / f"syntax-{name}.dcm")
        ds.save_as(paths[-1])  # written as explicit LE, declared as something else
        data = bytearray(paths[-1].read_bytes())
        old = str(ds.file_meta.TransferSyntaxUID).encode()
        new = str(syntax).encode()
        new += b"\x00" * (len(new) % 2)
        if len(new) <= len(old) + len(old) % 2:
            at = data.index(old)
            data[at:at + len(new)] = new.ljust(len(old) + len(old) % 2, b"\x00")
        else:  # a longer UID: rewrite the meta element in place with its new length (lengths in the group then lie)
            at = data.index(old) - 2
            data[at:at + 2 + len(old) + len(old) % 2] = struct.pack("<H", len(new)) + new
        paths[-1].write_bytes(bytes(data))
    return paths


def _byte_mutants(source: Path, out: Path, rng: random.Random, prefix: str) -> list[Path]:
    """Truncations, byte flips, and lying element lengths of the file as it is on disk."""
    original = source.read_bytes()
    paths = []
    for cut in sorted(rng.sample(range(1, len(original)), 8)) + [128, 132, 140]:
        paths.append(out / f"{prefix}-truncated-{cut}.dcm")
        paths[-1].write_bytes(original[:cut])
    for k in range(8):
        data = bytearray(original)
        region = 2048 if k % 2 == 0 else len(data)  # headers, then anywhere
        for _ in range(24):
            at = rng.randrange(132, min(region, len(data)))
            data[at] ^= 1 << rng.randrange(8)
        paths.append(out / f"{prefix}-flipped-{k}.dcm")
        paths[-1].write_bytes(bytes(data))
    at = original.find(PIXEL_TAG_EXPLICIT)
    if at >= 0:
        for name, length in (("huge", 0xFFFFFFF0), ("odd", 7), ("short", 1024)):
            data = bytearray(original)
            data[at + 8:at + 12] = struct.pack("<I", length)
            paths.append(out / f"{prefix}-pixel-length-{name}.dcm")
            paths[-1].write_bytes(bytes(data))
    return paths


@pytest.fixture(scope="module")
def corpus(real, tmp_path_factory) -> tuple[Path, list[Path], Path]:
    out = tmp_path_factory.mktemp("fuzz")
    rng = random.Random(20261130)
    good = out / "intact.dcm"
    ds = _fresh(real["explicit_le"])
    ds.save_as(good)
    paths = _header_mutants(real["explicit_le"], out)
    (out / "enhanced").mkdir()
    paths += _header_mutants(real["enhanced_ct"], out / "enhanced")
    for name in ("explicit_le", "j2k_lossless", "jpeg_lossless", "enhanced_ct"):
        paths += _byte_mutants(real[name], out, rng, name)
    return out, paths, good


def _capped():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def test_malformed_files_are_each_scored_or_skipped_with_a_reason_and_nothing_else_breaks(corpus):
    folder, mutants, good = corpus
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "tfkt_edge", "score", str(folder), "--format", "json", "--workers", "1"],
                            capture_output=True, text=True, timeout=600, preexec_fn=_capped, env=env)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode in (0, 1, 3), result.stderr[-2000:]

    def refuse(constant):
        raise ValueError(f"invalid JSON constant {constant}")

    document = json.loads(result.stdout, parse_constant=refuse)
    slices = [s for series in document["series"] for s in series["slices"]]
    scored = {Path(s["path"]).resolve() for s in slices}
    skipped = {Path(k["path"]).resolve(): k["reason"] for k in document["skipped"]}
    assert good.resolve() in scored
    print(f"{len(mutants)} malformed files: {len(scored & {p.resolve() for p in mutants})} scored, "
          f"{len(skipped)} skipped; reasons: {sorted(set(skipped.values()))}")
    unaccounted = [p.name for p in mutants if p.resolve() not in scored and p.resolve() not in skipped]
    assert unaccounted == []
    assert all(reason.strip() for reason in skipped.values())
    assert not [r for r in skipped.values() if "MemoryError" in r]  # no header claim was ever allocated
    assert all(0.0 <= s["score"] <= 4.0 for s in slices)
    for series in document["series"]:
        assert series["status"] in ("pass", "alert", "outside-domain")
