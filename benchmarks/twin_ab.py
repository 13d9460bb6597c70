"""The shipped model's two files end to end and model-only, interleaved: image input (numpy window and statistics
in the decoding workers) against the stored-input twin (window and statistics in the graph).

    python benchmarks/twin_ab.py --slices 256 --rounds 5 --json benchmarks/results/twin_ab_cpu.json

Each round scores the same folder with each model through `score_paths` (2 decoding threads, batch 16) and
times each model-only on a batch of 16 as the pipeline hands it over (float32 images; int16 pixels with
their slope and intercept); the arms alternate so a change in the machine's load touches both. Each figure
is the median over the rounds. The folder is ``--slices`` uncompressed copies of the bundled real slice as
one series, or ``--data DIR``.
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
from tfkt_edge.bench.benchmark import machine, probe_image, write_series
from tfkt_edge.dicom import scan
from tfkt_edge.model.model_file import DEFAULT_MODEL, STORED_MODEL
from tfkt_edge.model.preprocess import whole_hu_batch
from tfkt_edge.pipeline.run import score_paths
from tfkt_edge.verdict.policy import AlertPolicy


def model_only(backend: OnnxRuntimeBackend, seconds: float, batch: int = 16) -> float:
    image = np.repeat(probe_image(backend.model.contract)[None, None], batch, axis=0)
    if backend.takes_stored:
        stored, rescale = whole_hu_batch(image, backend.model.contract)
        run = lambda: backend.infer_stored(stored, rescale)
    else:
        run = lambda: backend.infer(image)
    run()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run()
        count += batch
    return count / (time.perf_counter() - started)


def end_to_end(backend: OnnxRuntimeBackend, folder: Path, n: int) -> float:
    started = time.perf_counter()
    run = score_paths([folder], backend, AlertPolicy(), 16, 2)
    elapsed = time.perf_counter() - started
    assert sum(len(r.slices) for r in run.results) == n
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    arms = {"image input": OnnxRuntimeBackend(DEFAULT_MODEL), "stored input (twin)": OnnxRuntimeBackend(STORED_MODEL)}
    figures: dict[str, dict[str, list[float]]] = {name: {"model_only": [], "end_to_end": []} for name in arms}
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.data or Path(scratch)
        if args.data is None:
            write_series(folder, args.slices)
        n = scan([folder]).n_slices
        for backend in arms.values():  # warm-up: the file cache and each session
            end_to_end(backend, folder, n)
        for round_ in range(args.rounds):
            for name, backend in arms.items():
                figures[name]["end_to_end"].append(end_to_end(backend, folder, n))
                figures[name]["model_only"].append(model_only(backend, args.seconds))
            print(f"round {round_ + 1}: " + "; ".join(f"{k} {v['end_to_end'][-1]:.1f} e2e, {v['model_only'][-1]:.1f} "
                                                     "model-only" for k, v in figures.items()), flush=True)
    summary = {}
    for name, values in figures.items():
        e2e, model = statistics.median(values["end_to_end"]), statistics.median(values["model_only"])
        summary[name] = {"end_to_end_slices_per_s": round(e2e, 1), "model_only_slices_per_s": round(model, 1),
                         "end_to_end_share_of_model_only": round(e2e / model, 3),
                         "rounds": {k: [round(x, 1) for x in v] for k, v in values.items()}}
    result = {"command": "python benchmarks/twin_ab.py " + " ".join(argv if argv is not None else []),
              "slices": n, "input": str(args.data) if args.data else f"{n} uncompressed copies of the bundled real slice, one series",
              "machine": machine(), "summary": summary}
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
