"""Option aliases shared by the CLI command groups."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from tfkt_edge.backends import BACKENDS


class Decoders(str, Enum):
    threads = "threads"
    processes = "processes"


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


ModelOpt = Annotated[Optional[Path], typer.Option("--model", help="Model file for the backend: .onnx (onnxruntime), .engine with its sidecar (tensorrt), model.pt (torch). Default: the shipped model.")]
ThresholdOpt = Annotated[float, typer.Option("--threshold", min=0.0, max=4.0, help="Alert when the series median, or a run of slices, falls below this score.")]
MinRunOpt = Annotated[int, typer.Option("--min-run", min=1, help="Consecutive slices below the threshold that raise an alert.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, max=1024, help="Slices per inference batch.")]
# A one-off run's batch: the backend's own by default (backends.base.default_batch).
RunBatchOpt = Annotated[Optional[int], typer.Option("--batch-size", min=1, max=1024, help="Slices per inference batch (default: 8 on the CPU backend, where a batch of 8 stays in the cache; 16 on the others).")]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, max=64, help="Decoding workers feeding the batches (threads or processes: --decoders).")]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="table for people; json or csv for machines.")]
ReportOpt = Annotated[Optional[Path], typer.Option("--report", help="Also write the visual HTML report (profiles, worst slices) here.")]
OutputOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the result here instead of standard output.")]
BACKEND_HELP = "Inference backend: " + "; ".join(f"{name} ({getattr(BACKENDS.get(name), 'summary', name)})" for name in BACKENDS.names()) + "."
BackendOpt = Annotated[str, typer.Option("--backend", help=BACKEND_HELP)]
UrlOpt = Annotated[Optional[str], typer.Option("--url", help="triton backend: the server's gRPC endpoint, host:port (usually port 8001). Unreachable: scored locally.")]
TritonModelOpt = Annotated[Optional[str], typer.Option("--triton-model", help="triton backend: the served model's name (default: the first ready of NAME-trt, NAME, NAME-python).")]
NoiseCheckOpt = Annotated[bool, typer.Option("--noise-check/--no-noise-check", help="Also alert when a series' measured noise exceeds its region's ceiling from the model file (twice the routine noise of the training slices; sharp kernels exempt).")]
BaselinesOpt = Annotated[Optional[Path], typer.Option("--baselines", help="Per-protocol baselines from tfkt-edge calibrate: a series of a calibrated protocol is judged against that protocol's normal range.")]
DecodersOpt = Annotated[Decoders, typer.Option("--decoders", help="Decode with threads, or with processes (which read the headers too): faster on hosts with spare cores, such as GPU hosts, above all for compressed (JPEG 2000) series.")]
