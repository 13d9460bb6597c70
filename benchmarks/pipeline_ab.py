"""End to end against model-only on this machine, with the pipeline's two choices switched: ONNX Runtime's idle
threads spinning or sleeping, and headers read before scoring (serial) or alongside it (overlapped).

    python benchmarks/pipeline_ab.py --slices 300 --rounds 4 --json benchmarks/results/pipeline_ab_cpu.json

With --noise-ab, one more arm runs the overlapped pipeline with the noise check's per-slice measurement
(`tfkt_edge.verdict.noise.measure`) replaced by one that measures nothing: what the measurement costs end to end.

The configurations run interleaved, round after round, so a change in the machine's load touches all of them;
each figure is the median over the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tfkt_edge.backends.onnxruntime import OnnxRuntimeBackend
from tfkt_edge.bench.benchmark import machine, write_series
from tfkt_edge.dicom import scan
from tfkt_edge.pipeline.decode import decoder_pool
from tfkt_edge.pipeline.run import score_paths, score_series
from tfkt_edge.verdict import domain
from tfkt_edge.verdict.policy import AlertPolicy


def serial(folder: Path, backend, batch: int, workers: int) -> None:
    """Every header first, then each series: the pipeline before headers were read alongside scoring."""
    found = scan([folder])
    with decoder_pool(workers) as pool:
        for series in found.series:
            score_series(series, backend, AlertPolicy(), batch, workers, None, pool)


def overlapped(folder: Path, backend, batch: int, workers: int) -> None:
    score_paths([folder], backend, AlertPolicy(), batch, workers)


@contextmanager
def noise_unmeasured():
    """The pipeline without the noise check's measurement (for its cost only; verdicts are not compared)."""
    original = domain.noise.measure
    domain.noise.measure = lambda image, contract=None: (None, None)  # type: ignore[assignment]
    try:
        yield
    finally:
        domain.noise.measure = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="model-only run length per round")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--noise-ab", action="store_true", help="add the arm without the noise measurement")
    args = parser.parse_args()
    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="tfkt-ab-") as tmp:
        folder = Path(tmp)
        write_series(folder, args.slices)
        for _ in range(args.rounds):
            for spinning in (True, False):
                backend = OnnxRuntimeBackend(spinning=spinning)
                batch = np.random.default_rng(0).random((args.batch, 1, 512, 512), dtype=np.float32)
                backend.infer(batch)
                started, n = time.perf_counter(), 0
                while time.perf_counter() - started < args.seconds:
                    backend.infer(batch)
                    n += args.batch
                tag = "spinning" if spinning else "sleeping"
                rates.setdefault(f"model-only, {tag}", []).append(n / (time.perf_counter() - started))
                for name, run in (("serial headers", serial), ("overlapped headers", overlapped)):
                    run(folder, backend, args.batch, args.workers)  # warm the page cache and the pool
                    started = time.perf_counter()
                    run(folder, backend, args.batch, args.workers)
                    rates.setdefault(f"end to end, {name}, {tag}", []).append(args.slices / (time.perf_counter() - started))
                if args.noise_ab and not spinning:
                    with noise_unmeasured():
                        started = time.perf_counter()
                        overlapped(folder, backend, args.batch, args.workers)
                        rates.setdefault("end to end, overlapped headers, sleeping, no noise measurement", []).append(
                            args.slices / (time.perf_counter() - started))
                print({k: round(v[-1], 1) for k, v in rates.items()}, flush=True)
    summary = {k: {"median": round(statistics.median(v), 1), "rounds": [round(x, 1) for x in v]} for k, v in rates.items()}
    for key, value in summary.items():
        print(f"{key:45s} {value['median']:7.1f} slices/s  {value['rounds']}")
    if args.json:
        flags = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
                         for k, v in vars(args).items() if v not in (None, False))
        args.json.write_text(json.dumps({"command": f"python benchmarks/pipeline_ab.py {flags}", "machine": machine(),
                                         "batch": args.batch, "workers": args.workers, "slices": args.slices,
                                         "slices_per_s": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
