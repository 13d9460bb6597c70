"""CPU throughput of the shipped model with ONNX Runtime: model-only and end to end.

    python benchmarks/cpu_throughput.py [--slices 1000] [--duration 10] [--out benchmarks/results]

Model-only: preprocessed batches resident in memory, timed by duration after a
warm-up. End to end: a synthetic series of N real 512x512 CT files written to a
temporary folder (copies of one clinical slice, uncompressed and JPEG 2000, with
new UIDs and positions), scored through `tfkt_edge.pipeline.run.score_paths`, the function behind `tfkt-edge score`
(header scan, decode threads, preprocessing, inference, alert policy). Reports
slices/s, batch latency percentiles and peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from tfkt_edge.backends import create_backend
from tfkt_edge.bench.benchmark import machine, write_series
from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.model.model_file import DEFAULT_MODEL
from tfkt_edge.model.preprocess import preprocess
from tfkt_edge.pipeline.run import score_paths
from tfkt_edge.verdict.policy import AlertPolicy


def _sources() -> list[Path]:
    import data_store

    store = Path(data_store.__file__).parent / "data"
    return [store / "693_UNCR.dcm", store / "explicit_VR-UN.dcm"]  # uncompressed, JPEG 2000 lossless


def model_only(batch_sizes: list[int], duration: float) -> list[dict]:
    backend = create_backend("onnxruntime", DEFAULT_MODEL)
    ref = scan([_sources()[1]]).series[0].slices[0]
    image = preprocess(load_hu(ref), backend.model.contract)
    rows = []
    for bs in batch_sizes:
        batch = np.repeat(image[None, None], bs, axis=0)
        for _ in range(3):
            backend.infer(batch)
        latencies = []
        started = time.perf_counter()
        while time.perf_counter() - started < duration:
            t = time.perf_counter()
            backend.infer(batch)
            latencies.append((time.perf_counter() - t) * 1000)
        total = sum(latencies) / 1000
        rows.append({"mode": "model-only", "batch_size": bs, "slices_per_s": round(bs * len(latencies) / total, 1),
                     "p50_ms": round(float(np.percentile(latencies, 50)), 2), "p95_ms": round(float(np.percentile(latencies, 95)), 2),
                     "p99_ms": round(float(np.percentile(latencies, 99)), 2), "batches": len(latencies)})
    return rows


def end_to_end(n_slices: int, batch_size: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        write_series(Path(tmp), n_slices, _sources(), decompress=False)
        backend = create_backend("onnxruntime", DEFAULT_MODEL)
        score_paths([Path(tmp)], backend, AlertPolicy(), batch_size, 2)  # warm-up: page cache
        rates = []
        for _ in range(repeats):
            started = time.perf_counter()
            run = score_paths([Path(tmp)], backend, AlertPolicy(), batch_size, 2)
            elapsed = time.perf_counter() - started
            assert sum(len(r.slices) for r in run.results) == n_slices
            rates.append(n_slices / elapsed)
    return {"mode": "end-to-end", "batch_size": batch_size, "n_slices": n_slices,
            "slices_per_s": round(statistics.median(rates), 1), "min_slices_per_s": round(min(rates), 1),
            "max_slices_per_s": round(max(rates), 1), "repeats": repeats}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    rows = model_only([1, 8, 16, 32], args.duration)
    rows.append(end_to_end(args.slices, 16, args.repeats))
    result = {"model": DEFAULT_MODEL.name, "backend": "onnxruntime (CPU)", "machine": machine(), "rows": rows,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "command": "python benchmarks/cpu_throughput.py " + " ".join(sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
