"""GPU throughput of the torch backend (CUDA graphs), the edge model beside the TFKT V2 reference.

    python benchmarks/gpu_throughput.py [--duration 3] [--repeats 3] [--slices 600] [--out benchmarks/results]

Model-only: one real preprocessed CT slice repeated into host-resident numpy
batches; each timed call includes the host-to-device copy and the score's
way back, as a scanner-side figure must. The copy alone is timed too and
reported as ``h2d_ms``. Runs are sized by duration after a warm-up (which
also captures the CUDA graphs), repeated; slices/s is the median over
repeats with min and max, latencies are per batch over all repeats.

End to end (edge model, FP16): a series of N real CT files written to a
temporary folder, uncompressed and JPEG 2000, scored through
``tfkt_edge.pipeline.run.score_paths`` (the function behind ``tfkt-edge score``)
with decoding threads and with decoding processes (for JPEG 2000 also with
nvImageCodec decoding on the GPU in the processes, where it is installed), beside the decode-only
rate of the same files and workers (header scan, decode and preprocessing, no
inference), which bounds it.

The reference TFKT V2 (209 M parameters) has random weights here: it is timed,
not scored. Runs as is on any machine with a CUDA GPU and PyTorch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from tfkt_edge.bench.benchmark import Timing, h2d_ms, time_batches, write_series
from tfkt_edge.bench.benchmark import machine as shared_machine
from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.dicom.gpu_decoding import SWITCH, enable_gpu_decoding
from tfkt_edge.model.model_file import ModelInfo
from tfkt_edge.model.preprocess import LDCTIQAC, preprocess
from tfkt_edge.pipeline.decode import decode_slice, decoder_pool
from tfkt_edge.pipeline.run import score_paths
from tfkt_edge.verdict.policy import AlertPolicy

# torch is imported inside the functions: decoding processes are spawned, and a spawned
# process imports this module again; at the top, every worker would pay for importing torch.

EXAMPLE = Path(__file__).resolve().parents[1] / "tfkt_edge" / "examples" / "clinical" / "abdomen.dcm"


def edge_backend(precision: str):
    from tfkt_edge.backends.pytorch import TorchBackend

    return TorchBackend(device="cuda", precision=precision)


def reference_backend(precision: str):
    import torch

    from tfkt_edge.backends.pytorch import TorchBackend
    from tfkt_edge.model.network import create_model

    torch.manual_seed(0)
    info = ModelInfo(Path("tfkt_v2 (random weights)"), "tfkt_v2", LDCTIQAC, {})
    return TorchBackend.from_module(create_model("tfkt_v2"), info, device="cuda", precision=precision)


def model_only(image: np.ndarray, batch_sizes: list[int], duration: float, repeats: int, emit) -> None:
    for model, open_backend in (("tfkt_edge_s", edge_backend), ("tfkt_v2", reference_backend)):
        for precision in ("fp16", "fp32"):
            backend = open_backend(precision)
            for bs in batch_sizes:
                batch = np.repeat(image[None, None], bs, axis=0)
                emit({"backend": "torch", "model": model, "mode": "model-only", "precision": precision, "batch_size": bs,
                      **time_batches(backend.infer, batch, Timing(duration, repeats, warmup=5)), "h2d_ms": h2d_ms(batch)})
            backend.close()


def decode_only(folder: Path, workers: int, decoders: str) -> float:
    """Slices/s of header scan, decode and preprocessing alone, with the scoring pipeline's workers."""
    started = time.perf_counter()
    refs = [s for series in scan([folder]).series for s in series.slices]
    with decoder_pool(workers, decoders) as pool:
        list(pool.map(decode_slice, refs, [LDCTIQAC] * len(refs), chunksize=8))
    return len(refs) / (time.perf_counter() - started)


def end_to_end(sizes: dict[str, int], batch_size: int, workers: int, repeats: int, emit) -> None:
    """``sizes``: files per series for each transfer syntax ("explicit-vr-le", "jpeg2000-lossless")."""
    backend = edge_backend("fp16")
    for syntax, n in sizes.items():
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_series(folder, n, EXAMPLE, decompress=syntax == "explicit-vr-le")
            arms = [("threads", "off"), ("processes", "off")] + [("processes", "auto")] * (syntax != "explicit-vr-le")
            for decoders, gpu_decoding in arms:
                os.environ[SWITCH] = gpu_decoding  # read by each decoding process as it starts
                with decoder_pool(workers, decoders) as pool:
                    decoding = pool.submit(enable_gpu_decoding).result().detail if decoders == "processes" else "CPU"
                decode_only(folder, workers, decoders)  # warm the page cache
                decode = [decode_only(folder, workers, decoders) for _ in range(repeats)]
                emit({"backend": "none", "model": "-", "mode": "decode-only", "precision": "-", "batch_size": None,
                      "transfer_syntax": syntax, "decoders": decoders, "workers": workers, "n_slices": n,
                      "pixel_decoding": decoding, "slices_per_s": round(statistics.median(decode), 1)})
                score_paths([folder], backend, AlertPolicy(), batch_size, workers, decoders=decoders)  # warm-up
                rates = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    run = score_paths([folder], backend, AlertPolicy(), batch_size, workers, decoders=decoders)
                    elapsed = time.perf_counter() - started
                    if sum(len(r.slices) for r in run.results) != n:
                        raise RuntimeError("end-to-end run lost slices")
                    rates.append(n / elapsed)
                emit({"backend": "torch", "model": "tfkt_edge_s", "mode": "end-to-end", "precision": "fp16",
                      "batch_size": batch_size, "transfer_syntax": syntax, "decoders": decoders, "workers": workers,
                      "pixel_decoding": decoding, "n_slices": n, "slices_per_s": round(statistics.median(rates), 1),
                      "min_slices_per_s": round(min(rates), 1), "max_slices_per_s": round(max(rates), 1)})
    os.environ.pop(SWITCH, None)
    backend.close()


def machine() -> dict:
    import torch

    props = torch.cuda.get_device_properties(0)
    return {"gpu": props.name, "gpu_memory_gb": round(props.total_memory / 2**30, 1),
            "compute_capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda, "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version(), **shared_machine()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", default="1,8,16,32,64")
    parser.add_argument("--slices", type=int, default=400, help="files in each end-to-end series")
    parser.add_argument("--j2k-slices", type=int, help="files in the JPEG 2000 series (default: --slices)")
    parser.add_argument("--workers", type=int, default=8, help="decoding workers end to end")
    parser.add_argument("--e2e-batch", type=int, default=64, help="scoring batch end to end")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--skip", action="append", default=[], choices=["model-only", "end-to-end"])
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU visible to PyTorch: nothing to measure", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")
    torch.backends.cudnn.benchmark = True
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    image = preprocess(load_hu(scan([EXAMPLE]).series[0].slices[0]), LDCTIQAC)
    result = {"machine": machine(), "rows": [],
              "command": "python benchmarks/gpu_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    slug = result["machine"]["gpu"].lower().replace("nvidia", "").strip().replace(" ", "_")
    target = args.out / f"gpu_throughput_{slug}.json"

    def emit(row: dict) -> None:  # written after every row, so an interrupted run keeps what it measured
        result["rows"].append(row)
        print(json.dumps(row), flush=True)
        target.write_text(json.dumps(result, indent=2) + "\n")

    if "end-to-end" not in args.skip:
        sizes = {"explicit-vr-le": args.slices, "jpeg2000-lossless": args.j2k_slices or args.slices}
        end_to_end(sizes, args.e2e_batch, args.workers, args.repeats, emit)
    if "model-only" not in args.skip:
        model_only(image, batch_sizes, args.duration, args.repeats, emit)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
