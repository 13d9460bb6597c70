"""A whole `tfkt-edge score` process, start-up included: one file, and 280 uncompressed real slices.

    python benchmarks/start_up.py [--realct ../shared/realct] [--runs 7] [--json benchmarks/results/start_up_cpu.json]

Each figure is the wall time of a fresh `tfkt-edge score PATH -q` process (the console script, as a user runs
it), median and minimum over ``--runs`` runs, after one untimed warm-up run (the file cache); the files are
written and synced to disk first. Two sets of 280 uncompressed real slices, written in a temporary folder that
is deleted afterwards (derived pixels of licensed images never stay on disk), each pass of the sources a new
series (new UIDs, Explicit VR Little Endian): ``slices_280``, the 88 uncompressed clinical files of the shared
real-CT folder in turn (most of them single slices: about 220 series of one slice, the worst case for
per-series work); and ``slices_280_in_series``, its one 20-slice series (Siemens, abdomen; stored as JPEG
2000, written uncompressed) 14 times: 14 series of 20. Each set is timed twice: as ``score`` prints its table,
and with ``--format json`` (``*_json``), the document that also carries the texture figures (streak index, NPS
mean frequency) a table run leaves out. With ``--importtime`` the script also prints the modules that cost
most of a one-file run's start (``python -X importtime``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

UNCOMPRESSED = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")
ONE_FILE = "fo-dicom/GH1308.dcm"  # a GE lumbar spine slice, 512x512, Explicit VR Little Endian


def console_script() -> str:
    found = shutil.which("tfkt-edge", path=str(Path(sys.executable).parent)) or shutil.which("tfkt-edge")
    if found is None:
        sys.exit("tfkt-edge is not installed in this environment (pip install -e .)")
    return found


def uncompressed_clinical(realct: Path) -> list[Path]:
    with open(realct / "MANIFEST.csv", newline="") as handle:
        return [realct / row["file"] for row in csv.DictReader(handle)
                if row["kind"] == "clinical" and row["transfer_syntax"] in UNCOMPRESSED]


def write_slices(sources: list[Path], count: int, folder: Path) -> None:
    """``count`` slices: the sources in turn, each pass a new series of new instances."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    series: dict[tuple[int, str], str] = {}
    for i in range(count):
        round_, source = divmod(i, len(sources))
        ds = pydicom.dcmread(sources[source])
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress()  # written uncompressed, like the rest
        key = (round_, str(ds.SeriesInstanceUID))
        ds.SeriesInstanceUID = series.setdefault(key, generate_uid())
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(folder / f"{i:04d}.dcm", enforce_file_format=True)


def timed(command: list[str], runs: int) -> dict:
    subprocess.run(command, capture_output=True, check=False)  # warm-up: the file cache
    walls, codes = [], set()
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=False)
        walls.append(time.perf_counter() - start)
        codes.add(done.returncode)
    return {"median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3),
            "runs": runs, "exit_codes": sorted(codes)}


def import_costs(command: list[str], top: int = 12) -> list[dict]:
    """The top-level packages whose own import time is largest in one run (python -X importtime)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           "import sys; from tfkt_edge.cli.main import main; sys.argv = sys.argv[1:]; main()",
                           "tfkt-edge", *command[1:]], capture_output=True, text=True, check=False)
    own: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            own[match.group(2).split(".")[0]] += int(match.group(1))
    return [{"package": name, "ms": round(us / 1000, 1)} for name, us in own.most_common(top)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realct", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "realct")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--slices", type=int, default=280)
    parser.add_argument("--importtime", action="store_true", help="also list the costliest imports of a one-file run")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not (args.realct / "MANIFEST.csv").is_file():
        sys.exit(f"{args.realct}: no MANIFEST.csv (the shared real-CT folder; --realct)")
    script = console_script()
    one = [script, "score", str(args.realct / ONE_FILE), "-q"]
    result = {"command": "python benchmarks/start_up.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "python_c_pass": timed([sys.executable, "-c", "pass"], args.runs),
              "one_file": timed(one, args.runs)}
    sources = uncompressed_clinical(args.realct)
    series = sorted((args.realct / "totalsegmentator").glob("*.dcm"))  # JPEG 2000 in the folder: decompressed
    for name, chosen in ((f"slices_{args.slices}", sources), (f"slices_{args.slices}_in_series", series)):
        with tempfile.TemporaryDirectory() as scratch:
            write_slices(chosen, args.slices, Path(scratch))
            os.sync()  # the 140 MB just written reach the disk now, not in the kernel's writeback during the timed runs
            result[name] = timed([script, "score", scratch, "-q"], args.runs)
            result[f"{name}_json"] = timed([script, "score", scratch, "-q", "--format", "json"], args.runs)
    if args.importtime:
        result["one_file_imports"] = import_costs(one)
    from tfkt_edge.bench.machine import host

    result["machine"] = host()
    result["environment"] = {"PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", "")}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
