"""Alert latency and load of `tfkt-edge serve`: a real server process, real C-STORE traffic.

    python benchmarks/service_latency.py [--slices 300] [--repeats 10] [--series-timeout 2] [--concurrent 4]

Latency, released: one association sends a series of N real CT instances (the
bundled clinical slice, decompressed, with new UIDs and positions) as fast as
the network allows and is released; the clock starts when the last C-STORE
response arrives and stops when the series' result line appears in the
server's JSON-lines event log (polled every 5 ms). The service judges such a
series when its association is released, without waiting for the timeout.
Latency, instance by instance: a short series (``--per-instance-slices``)
sent one association per instance, as some scanners do; such a series is
judged once quiet for the series timeout, so the part the service adds is
the latency minus the timeout. Reported: p50 and p95 over the repeats. Load: ``--concurrent``
associations each send their own N-instance series at once; afterwards every
instance must be in the store, the database and the scores, and every series
must have exactly one result.
"""

from __future__ import annotations

import argparse
import copy
import json
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from tfkt_edge.bench.benchmark import machine

EXAMPLE = Path(__file__).resolve().parents[1] / "tfkt_edge" / "examples" / "clinical" / "abdomen.dcm"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def series(template: pydicom.Dataset, n: int) -> list[pydicom.Dataset]:
    uid = generate_uid()
    out = []
    for i in range(n):
        ds = copy.deepcopy(template)  # Dataset.copy() is shallow: the copies would share their elements
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        out.append(ds)
    return out


def send_each(port: int, datasets: list[pydicom.Dataset]) -> float:
    """Send each instance over its own association; return the time the last response arrived."""
    return max(send(port, [ds]) for ds in datasets)


def send(port: int, datasets: list[pydicom.Dataset], ae_title: str = "BENCH") -> float:
    """Send over one association; return the time the last response arrived."""
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="TFKT")
    if not assoc.is_established:
        raise RuntimeError("association refused")
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            if status.Status != 0:
                raise RuntimeError(f"C-STORE failed: 0x{status.Status:04X}")
        return time.time()
    finally:
        assoc.release()


def wait_for(events: Path, series_uid: str, limit: float = 300) -> float:
    deadline = time.time() + limit
    offset = 0
    while time.time() < deadline:
        if events.exists():
            with open(events) as f:
                f.seek(offset)
                chunk = f.read()
            complete = chunk[: chunk.rfind("\n") + 1]
            offset += len(complete)
            for line in complete.splitlines():
                if json.loads(line).get("series_instance_uid") == series_uid:
                    return time.time()
        time.sleep(0.005)
    raise RuntimeError(f"no result for {series_uid} within {limit} s")


def start_server(root: Path, port: int, timeout: float, workers: int) -> subprocess.Popen:
    log = open(root / "server.log", "w")  # noqa: SIM115 (the server process writes it until it ends)
    process = subprocess.Popen([sys.executable, "-m", "tfkt_edge", "serve", "--port", str(port), "--store", str(root / "store"),
                                "--db", str(root / "results.sqlite"), "--series-timeout", str(timeout),
                                "--workers", str(workers)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while "listening as" not in (root / "server.log").read_text():
        if process.poll() is not None or time.time() > deadline:
            raise RuntimeError((root / "server.log").read_text())
        time.sleep(0.1)
    return process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--series-timeout", type=float, default=2.0)
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--per-instance-slices", type=int, default=5, help="series size of the instance-by-instance case")
    parser.add_argument("--workers", type=int, default=2, help="the server's decoding workers")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    template = pydicom.dcmread(EXAMPLE)
    template.decompress()  # uncompressed, as most scanners send
    result = {"machine": machine(), "slices_per_series": args.slices, "series_timeout_s": args.series_timeout,
              "server_workers": args.workers,
              "command": "python benchmarks/service_latency.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        port = free_port()
        server = start_server(root, port, args.series_timeout, args.workers)
        events = root / "results.sqlite.events.jsonl"
        try:
            latencies, send_seconds = [], []
            for i in range(args.repeats):
                datasets = series(template, args.slices)
                started = time.time()
                last = send(port, datasets)
                seen = wait_for(events, datasets[0].SeriesInstanceUID)
                latencies.append(seen - last)
                send_seconds.append(last - started)
                print(f"series {i + 1}: sent in {last - started:.2f} s, result {seen - last:.2f} s after the last response",
                      flush=True)
            result["latency_released"] = {
                "repeats": args.repeats, "send_s_median": round(statistics.median(send_seconds), 2),
                "p50_s": round(float(np.percentile(latencies, 50)), 3), "p95_s": round(float(np.percentile(latencies, 95)), 3),
                "all_s": [round(x, 3) for x in latencies]}
            singles = []
            for i in range(args.repeats):
                datasets = series(template, args.per_instance_slices)
                last = send_each(port, datasets)
                singles.append(wait_for(events, datasets[0].SeriesInstanceUID) - last)
                print(f"instance-by-instance series {i + 1}: result {singles[-1]:.2f} s after the last response", flush=True)
            beyond = [x - args.series_timeout for x in singles]
            result["latency_instance_by_instance"] = {
                "repeats": args.repeats, "slices_per_series": args.per_instance_slices,
                "p50_s": round(float(np.percentile(singles, 50)), 3), "p95_s": round(float(np.percentile(singles, 95)), 3),
                "p50_beyond_timeout_s": round(float(np.percentile(beyond, 50)), 3),
                "p95_beyond_timeout_s": round(float(np.percentile(beyond, 95)), 3), "all_s": [round(x, 3) for x in singles]}

            loads = [series(template, args.slices) for _ in range(args.concurrent)]
            finished: dict[int, float] = {}
            started = time.time()
            threads = [threading.Thread(target=lambda k=k: finished.__setitem__(k, send(port, loads[k], f"SCANNER{k}")))
                       for k in range(args.concurrent)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            results_at = [wait_for(events, load[0].SeriesInstanceUID) for load in loads]
            total = args.concurrent * args.slices
            time.sleep(1.0)
        finally:
            server.terminate()
            server.wait(timeout=60)
        db = sqlite3.connect(str(root / "results.sqlite"))
        uids = [load[0].SeriesInstanceUID for load in loads]
        marks = ",".join("?" * len(uids))
        stored = sum(1 for _ in (root / "store").rglob("*.dcm"))
        in_db = db.execute(f"SELECT COUNT(*) FROM instances WHERE series_instance_uid IN ({marks})", uids).fetchone()[0]
        scored = db.execute(f"SELECT COUNT(*) FROM slices WHERE series_instance_uid IN ({marks})", uids).fetchone()[0]
        results = db.execute(f"SELECT COUNT(*) FROM events WHERE series_instance_uid IN ({marks})", uids).fetchone()[0]
        lines = [json.loads(x) for x in events.read_text().splitlines()]
        result["load"] = {
            "associations": args.concurrent, "instances_sent": total,
            "stored_files_total": stored, "instances_in_db": in_db, "slices_scored": scored, "results": results,
            "result_lines_in_event_log": sum(1 for x in lines if x["series_instance_uid"] in uids),
            "all_accounted_for": in_db == scored == total and results == args.concurrent,
            "send_s": round(max(finished.values()) - started, 2),
            "last_result_after_last_response_s": round(max(results_at) - max(finished.values()), 2),
            "received_per_s": round(total / (max(finished.values()) - started), 1)}
    print(json.dumps(result, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "service_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["load"]["all_accounted_for"] else 1


if __name__ == "__main__":
    sys.exit(main())
