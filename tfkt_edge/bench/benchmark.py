"""Throughput measurements behind `tfkt-edge benchmark`: model-only, end to end, decode-only.

Every rate is measured the same way: warm-up calls, then ``repeats`` timed
runs of ``duration`` seconds each; slices/s is the median over the runs (with
min and max), latency percentiles are per batch over all runs. Model-only
batches are preprocessed real CT resident in host memory, so a GPU backend's
time includes its host-to-device copy (also timed alone where the backend can).
End to end runs DICOM files from disk through ``score_paths``, the function
behind ``tfkt-edge score``; decode-only runs the same files through header
scan, decoding and preprocessing without inference, which bounds end to end.
"""

from __future__ import annotations

import importlib
import platform
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfkt_edge.backends import Backend
from tfkt_edge.bench.machine import host
from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.model.preprocess import LDCTIQAC, PreprocessContract, preprocess, whole_hu_batch
from tfkt_edge.pipeline.decode import decode_slice, decoder_pool
from tfkt_edge.pipeline.run import score_paths
from tfkt_edge.verdict.policy import AlertPolicy

ROW_KEYS = ("backend", "model", "mode", "batch_size", "precision", "slices_per_s", "p50_ms", "p95_ms", "p99_ms")


@dataclass(frozen=True)
class Timing:
    duration: float = 3.0
    repeats: int = 3
    warmup: int = 3


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def time_batches(infer: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, timing: Timing) -> dict:
    """Slices/s (median, min, max over repeats) and per-batch latency percentiles of ``infer(batch)``."""
    for _ in range(timing.warmup):
        infer(batch)
    rates, latencies = [], []
    for _ in range(timing.repeats):
        count, started = 0, time.perf_counter()
        while count == 0 or time.perf_counter() - started < timing.duration:
            t = time.perf_counter()
            infer(batch)
            latencies.append((time.perf_counter() - t) * 1000)
            count += 1
        rates.append(count * len(batch) / (time.perf_counter() - started))
    return {"slices_per_s": round(statistics.median(rates), 2), "min_slices_per_s": round(min(rates), 2),
            "max_slices_per_s": round(max(rates), 2), "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95), "p99_ms": percentile(latencies, 99), "batches": len(latencies),
            "repeats": timing.repeats}


def h2d_ms(batch: np.ndarray) -> float | None:
    """Median time to copy ``batch`` from pinned host memory to a CUDA GPU; None without one."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    pinned = torch.from_numpy(np.ascontiguousarray(batch)).pin_memory()
    device = torch.empty(batch.shape, device="cuda")
    times = []
    for _ in range(20):
        torch.cuda.synchronize()
        t = time.perf_counter()
        device.copy_(pinned, non_blocking=True)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 3)


def probe_image(contract: PreprocessContract) -> np.ndarray:
    """One real preprocessed CT slice: the bundled clinical example."""
    from tfkt_edge.examples import EXAMPLES

    return preprocess(load_hu(scan([EXAMPLES / "clinical"]).series[0].slices[0]), contract)


def _scores_of_stored(backend: Backend, rescale: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A stored-input model's scores of int16 batches with this slope and intercept (its statistics computed too)."""
    run = backend.infer_stored  # type: ignore[attr-defined]
    return lambda stored: run(stored, rescale)[0]


def model_only(backend: Backend, label: dict, batch_sizes: list[int], timing: Timing,
               on_row: Callable[[dict], None] = lambda row: None) -> list[dict]:
    image = probe_image(backend.model.contract)
    limit = backend.max_batch()
    rows = []
    for size in batch_sizes:
        if limit and size > limit:
            row = {**label, "mode": "model-only", "batch_size": size,
                   "skipped": f"batch {size} is above the backend's maximum {limit}"}
        else:
            batch = np.repeat(image[None, None], size, axis=0)
            infer: Callable[[np.ndarray], np.ndarray] = backend.infer
            if getattr(backend, "takes_stored", False):  # what the pipeline hands it: int16 pixels and their LUT
                batch, rescale = whole_hu_batch(batch, backend.model.contract)
                infer = _scores_of_stored(backend, rescale)
            row = {**label, "mode": "model-only", "batch_size": size, **time_batches(infer, batch, timing)}
            if label["backend"] in ("torch", "tensorrt"):
                row["h2d_ms"] = h2d_ms(batch)
        rows.append(row)
        on_row(row)
    return rows


def write_series(folder: Path, n: int, source: Path | list[Path] | None = None, decompress: bool = True) -> list[Path]:
    """n copies of real CT slices (default: the bundled clinical example; several sources are used in turn) as
    one new series, with new UIDs and positions 0..n-1 mm; uncompressed (as most scanners send) unless
    ``decompress`` is False. Every benchmark script and test writes its series with this."""
    import pydicom
    from pydicom.uid import generate_uid

    from tfkt_edge.examples import EXAMPLES

    folder.mkdir(parents=True, exist_ok=True)
    sources = source if isinstance(source, list) else [source or EXAMPLES / "clinical" / "abdomen.dcm"]
    templates = [pydicom.dcmread(p) for p in sources]
    series_uid = generate_uid()
    paths = []
    for i in range(n):
        ds = templates[i % len(templates)]
        if decompress and ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        paths.append(folder / f"{i:05d}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


class SeriesOnDisk:
    """The end-to-end input: ``data`` as given, or a temporary series of ``n`` real CT files."""

    def __init__(self, data: Path | None, n: int):
        self._tmp = None if data else tempfile.TemporaryDirectory(prefix="tfkt-bench-")
        self.folder = data if data is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        if data is None:
            write_series(self.folder, n)
        self.n_slices = scan([self.folder]).n_slices
        # What the end-to-end figures were measured on, said with them: copies of one slice decode alike, which a
        # real exam's varied (and often compressed) slices do not.
        self.description = (f"{self.n_slices} slices from {data}" if data is not None else
                            f"{self.n_slices} uncompressed copies of one real 512x512 slice (the bundled example; "
                            "--data DIR measures real, varied series)")

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def timed_decode(ref, contract: PreprocessContract) -> float:
    """Decode and preprocess one slice in a worker; return the milliseconds it took."""
    started = time.perf_counter()
    decode_slice(ref, contract)
    return (time.perf_counter() - started) * 1000


def decode_only(files: SeriesOnDisk, workers: int, decoders: str, timing: Timing) -> dict:
    """Header scan, decode and preprocessing of the files with the scoring pipeline's workers; latencies per slice."""
    rates, latencies = [], []
    for _ in range(timing.repeats):
        started = time.perf_counter()
        refs = [s for series in scan([files.folder]).series for s in series.slices]
        with decoder_pool(workers, decoders) as pool:
            latencies += list(pool.map(timed_decode, refs, [LDCTIQAC] * len(refs)))
        rates.append(len(refs) / (time.perf_counter() - started))
    return {"backend": "none", "model": "-", "mode": "decode-only", "batch_size": None, "precision": "-",
            "workers": workers, "decoders": decoders, "n_slices": files.n_slices, **rate_summary(rates),
            "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95), "p99_ms": percentile(latencies, 99),
            "latency_of": "one slice's decode and preprocessing"}


class TimedBackend:
    """Passes batches to a backend and records how long each inference call took."""

    def __init__(self, backend: Backend):
        self.backend, self.name, self.model = backend, backend.name, backend.model
        self.latencies: list[float] = []

    def max_batch(self) -> int | None:
        return self.backend.max_batch()

    @property
    def takes_stored(self) -> bool:
        return getattr(self.backend, "takes_stored", False)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        scores = self.backend.infer(batch)
        self.latencies.append((time.perf_counter() - started) * 1000)
        return scores

    def infer_stored(self, stored: np.ndarray, rescale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        started = time.perf_counter()
        out = self.backend.infer_stored(stored, rescale)  # type: ignore[attr-defined]
        self.latencies.append((time.perf_counter() - started) * 1000)
        return out

    def close(self) -> None:
        pass  # the wrapped backend belongs to the caller


def end_to_end(backend: Backend, label: dict, files: SeriesOnDisk, batch_size: int, workers: int, decoders: str,
               timing: Timing) -> dict:
    """Files on disk to verdicts through ``score_paths``; latencies are the inference calls inside the runs."""
    score_paths([files.folder], backend, AlertPolicy(), batch_size, workers, decoders=decoders)  # warm-up
    timed = TimedBackend(backend)
    rates = []
    for _ in range(timing.repeats):
        started = time.perf_counter()
        run = score_paths([files.folder], timed, AlertPolicy(), batch_size, workers, decoders=decoders)
        elapsed = time.perf_counter() - started
        scored = sum(len(r.slices) for r in run.results)
        if scored != files.n_slices:
            raise RuntimeError(f"end to end scored {scored} of {files.n_slices} slices")
        rates.append(scored / elapsed)
    return {**label, "mode": "end-to-end", "batch_size": batch_size, "workers": workers, "decoders": decoders,
            "n_slices": files.n_slices, **rate_summary(rates), "p50_ms": percentile(timed.latencies, 50),
            "p95_ms": percentile(timed.latencies, 95), "p99_ms": percentile(timed.latencies, 99),
            "latency_of": "one inference call inside the pipeline"}


def rate_summary(rates: list[float]) -> dict:
    return {"slices_per_s": round(statistics.median(rates), 2), "min_slices_per_s": round(min(rates), 2),
            "max_slices_per_s": round(max(rates), 2), "repeats": len(rates)}


def _version(module: str) -> str | None:
    try:
        return importlib.import_module(module).__version__
    except Exception:
        return None


def machine() -> dict:
    """CPU, GPU (name and driver, via nvidia-smi), and the versions of the libraries that matter."""
    info = {**host(), "os": platform.platform()}
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10).stdout.strip().splitlines()
            if out:
                info["gpu"], info["driver"] = (x.strip() for x in out[0].split(",", 1))
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    info["libraries"] = {name: v for name in ("numpy", "onnxruntime", "pydicom", "torch", "tensorrt")
                         if (v := _version(name))}
    return info


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
