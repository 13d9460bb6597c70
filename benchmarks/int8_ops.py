"""Where an INT8 batch spends its time, operator by operator, against FP32: why INT8 stays an option on the CPU.

    python benchmarks/int8_ops.py [--runs 20] [--json benchmarks/results/int8_ops_cpu.json]

Three QDQ quantizations of the shipped image-input model (`tfkt_edge/assets/tfkt_edge_s.onnx`), calibrated
as `tfkt-edge export int8` calibrates (MinMax on 63 preprocessed real CT slices; weights int8 per channel,
activations uint8 per tensor): every operator the quantizer takes (the shipped option), convolutions and
matrix products only, and convolutions only. Each model and the FP32 one score a batch of 16 slices
``--runs`` times with ONNX Runtime's profiler on; the table is the kernel time by operator type per batch
and the batch's wall time. Needs onnx (the quantizer), not torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

VARIANTS = {"all operators (the shipped option)": None, "Conv and MatMul": ["Conv", "MatMul"], "Conv": ["Conv"]}


def quantized(source: Path, folder: Path, ops: list[str] | None, images: np.ndarray) -> Path:
    from tfkt_edge.export.int8 import quantize_int8

    return quantize_int8(source, folder / f"int8_{'_'.join(ops or ['all'])}.onnx", images, op_types=ops)


def profiled(model: Path, batch: np.ndarray, runs: int, folder: Path) -> dict:
    """Median wall ms of a batch, and kernel ms per batch by operator type (ONNX Runtime's profiler)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling, options.profile_file_prefix = True, str(folder / "profile")
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the product runs it
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for _ in range(3):
        session.run(None, {name: batch})
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, {name: batch})
        walls.append((time.perf_counter() - started) * 1000)
    events = json.loads(Path(session.end_profiling()).read_text())
    by_op: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"] / 1000 / (runs + 3)
    return {"batch_ms": round(float(np.median(walls)), 2), "slices_per_s": round(len(batch) * 1000 / float(np.median(walls)), 1),
            "kernel_ms_by_op": {op: round(ms, 2) for op, ms in sorted(by_op.items(), key=lambda kv: -kv[1])}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    from tfkt_edge.bench.machine import host
    from tfkt_edge.export.int8 import calibration_images
    from tfkt_edge.model.model_file import DEFAULT_MODEL
    from tfkt_edge.model.preprocess import LDCTIQAC

    images = calibration_images(LDCTIQAC)
    batch = np.ascontiguousarray(np.resize(images, (16, *images.shape[1:])), dtype=np.float32)  # real slices
    result: dict = {"command": "python benchmarks/int8_ops.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "model": DEFAULT_MODEL.name, "batch_size": 16, "threads": os.cpu_count(), "machine": host(),
                    "models": {}}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        result["models"]["fp32"] = profiled(DEFAULT_MODEL, batch, args.runs, folder)
        for label, ops in VARIANTS.items():
            result["models"][f"int8: {label}"] = profiled(quantized(DEFAULT_MODEL, folder, ops, images), batch,
                                                          args.runs, folder)
    for label, row in result["models"].items():
        top = ", ".join(f"{op} {ms}" for op, ms in list(row["kernel_ms_by_op"].items())[:6])
        print(f"{label}: {row['slices_per_s']} slices/s, {row['batch_ms']} ms a batch; {top}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
