"""INT8 against FP32 on the CPU, in one run on one machine: speed, score drift and verdicts on held-out real series.

    python benchmarks/int8_cpu.py --ladders /scratch/ladders [--int8 model.int8.onnx] [--duration 10]

The ladders are the held-out real CT series and their simulated dose copies
(`python -m tfkt_edge.train.ladders --output DIR`; derived from images under
other licences, so kept out of this repository). Without --int8 the INT8
model is made from the shipped one (`tfkt-edge export int8`). Reported:
model-only slices/s of both (batch 16, preprocessed batches in memory, timed
by duration after a warm-up), the max and mean |INT8 - FP32| and the SROCC
between them over every held-out ladder slice, and every held-out series
whose verdict differs. Written to benchmarks/results/int8_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from tfkt_edge.backends import create_backend
from tfkt_edge.bench.benchmark import machine
from tfkt_edge.evaluation.series import evaluate_series, summarise
from tfkt_edge.export.int8 import calibration_images, quantize_int8
from tfkt_edge.model.model_file import DEFAULT_MODEL


def slices_per_s(backend, batch: np.ndarray, duration: float) -> float:
    for _ in range(3):
        backend.infer(batch)
    rates, end = [], time.perf_counter() + duration
    while time.perf_counter() < end:
        start = time.perf_counter()
        backend.infer(batch)
        rates.append(len(batch) / (time.perf_counter() - start))
    return round(statistics.median(rates), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ladders", type=Path, required=True)
    parser.add_argument("--int8", type=Path, default=None)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    fp32 = create_backend("onnxruntime", DEFAULT_MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        int8_path = args.int8
        if int8_path is None:
            int8_path = quantize_int8(DEFAULT_MODEL, Path(tmp) / "int8.onnx", calibration_images(fp32.model.contract))
        int8 = create_backend("onnxruntime", int8_path)
        batch = calibration_images(fp32.model.contract, limit=16, seed=1)
        speed = {"fp32": slices_per_s(fp32, batch, args.duration), "int8": slices_per_s(int8, batch, args.duration)}
        print(f"model-only, batch 16: fp32 {speed['fp32']} slices/s, int8 {speed['int8']} slices/s", flush=True)
        outcomes = {name: evaluate_series(args.ladders, backend) for name, backend in (("fp32", fp32), ("int8", int8))}
        size_mb = round(int8_path.stat().st_size / 2**20, 2)
    a = np.array([s for o in outcomes["fp32"] for s in o.slice_scores])
    b = np.array([s for o in outcomes["int8"] for s in o.slice_scores])
    changed = [{"ladder": x.ladder, "dose": x.dose, "fp32": x.status, "int8": y.status,
                "fp32_median": x.median, "int8_median": y.median}
               for x, y in zip(outcomes["fp32"], outcomes["int8"]) if x.status != y.status]
    result = {
        "machine": machine(), "backend": "onnxruntime (CPU execution provider)", "batch_size": 16,
        "command": "python benchmarks/int8_cpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model_only_slices_per_s": speed, "speedup": round(speed["int8"] / speed["fp32"], 2), "int8_file_mb": size_mb,
        "heldout_slices": len(a), "max_abs_diff": round(float(np.abs(a - b).max()), 4),
        "mean_abs_diff": round(float(np.abs(a - b).mean()), 4), "srocc_vs_fp32": round(float(spearmanr(a, b)[0]), 5),
        "heldout_series": len(outcomes["fp32"]), "verdict_changes": changed,
        "fp32_summary": summarise(outcomes["fp32"])["all"], "int8_summary": summarise(outcomes["int8"])["all"],
        "default": "no: the default needs SROCC >= 0.995 and no verdict change on the held-out series",
    }
    if result["srocc_vs_fp32"] >= 0.995 and not changed:
        result["default"] = "eligible: SROCC >= 0.995 and no verdict change"
    print(json.dumps(result, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
