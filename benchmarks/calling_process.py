"""How much of one core the calling process spends per slice, end to end, with a backend that does no work.

    python benchmarks/calling_process.py --slices 600 --workers 2 --json benchmarks/results/calling_process_cpu.json

The scoring thread, the header work it does and the pool's bookkeeping share one
interpreter (one GIL), so on a host with enough decoding cores and a fast enough
accelerator end to end cannot exceed 1 / (that CPU time per slice). This script
measures it on whatever machine runs it: the backend returns a constant at once, so
the figure is the pipeline's own, not the model's. With threads the decoding itself
runs in the calling process, so only the processes figure is a bound for many cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from tfkt_edge.backends.onnxruntime import OnnxRuntimeBackend
from tfkt_edge.bench.benchmark import machine, write_series
from tfkt_edge.pipeline.run import score_paths
from tfkt_edge.verdict.policy import AlertPolicy


class NoWork:
    """A backend that scores every slice 3.0 at once: only the pipeline is timed."""

    name = "none"

    def __init__(self):
        real = OnnxRuntimeBackend()  # for the default model's contract and checks only
        self.model = real.model
        real.close()

    def max_batch(self) -> int | None:
        return None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return np.full(len(batch), 3.0, dtype=np.float32)

    def close(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=600)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    backend = NoWork()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tfkt-calling-") as tmp:
        folder = Path(tmp)
        write_series(folder, args.slices)
        for decoders in ("threads", "processes"):
            score_paths([folder], backend, AlertPolicy(), args.batch, args.workers, decoders=decoders)  # warm-up
            rates, cpu = [], []
            for _ in range(args.rounds):
                started, cpu_started = time.perf_counter(), time.process_time()
                run = score_paths([folder], backend, AlertPolicy(), args.batch, args.workers, decoders=decoders)
                scored = sum(len(r.slices) for r in run.results)
                if scored != args.slices:
                    raise RuntimeError(f"scored {scored} of {args.slices} slices")
                rates.append(scored / (time.perf_counter() - started))
                cpu.append((time.process_time() - cpu_started) * 1000 / scored)
            row = {"decoders": decoders, "workers": args.workers, "slices_per_s": round(statistics.median(rates), 1),
                   "calling_process_cpu_ms_per_slice": round(statistics.median(cpu), 3),
                   "bound_slices_per_s": round(1000 / statistics.median(cpu)) if decoders == "processes" else None}
            rows.append(row)
            print(row, flush=True)
    if args.json:
        flags = " ".join(f"--{k} {v}" for k, v in vars(args).items() if v is not None and k != "json")
        args.json.write_text(json.dumps({"command": f"python benchmarks/calling_process.py {flags}",
                                         "machine": machine(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
