"""`tfkt-edge benchmark`: slices/s of the edge model beside the TFKT V2 reference, per backend."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tfkt_edge.cli.console import quiet, require_writable
from tfkt_edge.cli.options import Decoders, DecodersOpt, WorkersOpt
from tfkt_edge.errors import InputError, TfktEdgeError

MODES = ("model-only", "end-to-end")
FIXED_PRECISION = {"onnxruntime": "fp32", "tensorrt": "fp16"}  # torch runs either


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers like 1,8,32, not {text!r}") from None
    if not sizes or min(sizes) < 1 or max(sizes) > 1024:
        raise typer.BadParameter("batch sizes must be between 1 and 1024")
    return sorted(set(sizes))


def open_edge(backend: str, model: Path | None, precision: str | None):
    """The edge model on ``backend`` at ``precision`` (None: the backend's own)."""
    from tfkt_edge.backends import BackendOptions, create_backend

    only = FIXED_PRECISION.get(backend)
    if precision is not None and only is not None and precision != only:
        raise TfktEdgeError(f"the {backend} backend runs {only} only")
    return create_backend(backend, model, BackendOptions(precision=precision if only is None else None))


# The end-to-end series: as long as a routine series (an abdomen at 1.25 mm is 250-400 slices), so the figure is
# the pipeline's rate, not its start (the first batch waits for 16 headers and decodes: benchmarks/README.md).
E2E_SLICES = 256


def precision_of(backend) -> str:
    return getattr(backend, "precision", None) or FIXED_PRECISION.get(backend.name, "fp32")


def benchmark(
    backends: Annotated[Optional[list[str]], typer.Option("--backend", help="Backend to measure; repeat for several (default: onnxruntime).")] = None,
    model: Annotated[Optional[Path], typer.Option("--model", help="Edge model file for the backend (default: the backend's shipped model).")] = None,
    full: Annotated[bool, typer.Option("--full", help="The complete table: batches 1,8,32, 3 runs of 3 s, and the TFKT V2 reference.")] = False,
    reference: Annotated[Optional[bool], typer.Option("--reference/--no-reference", help="Also time the TFKT V2 reference (209 M parameters; exported once, about 840 MB, then reused). Default: only with --full.")] = None,
    reference_model: Annotated[Optional[Path], typer.Option("--reference-model", help="TFKT V2 file for the backend (ONNX, engine or checkpoint); default: built or cached.")] = None,
    batch_sizes: Annotated[Optional[str], typer.Option("--batch-sizes", help="Comma-separated model-only batch sizes (default 1,8,16: 8 is the CPU backend's default batch, 16 the end-to-end run's; --full: 1,8,32).")] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="fp32 or fp16 (default: the backend's: fp32 on onnxruntime and the CPU, fp16 on CUDA and TensorRT).")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="DICOM folder for end to end (default: a temporary series of --slices real CT files).")] = None,
    slices: Annotated[Optional[int], typer.Option("--slices", min=1, help="Files in the temporary end-to-end series (default 256, a routine series' length; --full: 256).")] = None,
    modes: Annotated[str, typer.Option("--modes", help="model-only, end-to-end, or both comma-separated.")] = "model-only,end-to-end",
    duration: Annotated[Optional[float], typer.Option("--duration", min=0.0, help="Seconds per timed run, at least one batch each (default 1; --full: 3).")] = None,
    repeats: Annotated[Optional[int], typer.Option("--repeats", min=1, help="Timed runs per measurement (default 2; --full: 3).")] = None,
    e2e_batch: Annotated[int, typer.Option("--e2e-batch", min=1, help="Scoring batch end to end.")] = 16,
    workers: WorkersOpt = 2,
    decoders: DecodersOpt = Decoders.threads,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the result as JSON here.")] = None,
    markdown_path: Annotated[Optional[Path], typer.Option("--markdown", help="Write a Markdown table here.")] = None,
    plot_path: Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG of slices/s by batch size here.")] = None,
) -> None:
    """Measure slices/s model-only (in-memory batches) and end to end (DICOM on disk), with latency percentiles,
    the decode-only bound, peak memory and the machine. Quick by default (well under a minute on a 2-core CPU);
    --full adds batch sizes, longer runs and the TFKT V2 reference.

    Example: tfkt-edge benchmark --json bench.json; tfkt-edge benchmark --full --backend torch --markdown bench.md
    """
    from tfkt_edge.bench import benchmark as bench
    from tfkt_edge.bench.output import markdown, plot, table

    err, out = Console(stderr=True, highlight=False, soft_wrap=True), Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=160)  # a file or pipe gets the whole table
    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    if not wanted or set(wanted) - set(MODES):
        raise InputError(f"--modes takes {', '.join(MODES)}, not {modes!r}")
    if precision not in (None, "fp32", "fp16"):
        raise InputError(f"--precision must be fp32 or fp16, not {precision!r}")
    if data is not None and not data.is_dir():
        raise InputError(f"--data {data}: not a folder")
    require_writable(json_path, markdown_path, plot_path)
    reference = full if reference is None else reference
    sizes = parse_sizes(batch_sizes or ("1,8,32" if full else "1,8,16"))
    slices = slices or E2E_SLICES
    timing = bench.Timing(duration if duration is not None else (3.0 if full else 1.0), repeats or (3 if full else 2))
    names = backends or ["onnxruntime"]
    planned = (("end-to-end" in wanted) * (1 + len(names)) +
               ("model-only" in wanted) * len(names) * len(sizes) * (2 if reference else 1))
    progress = Progress(TextColumn("measuring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                        transient=True, disable=not err.is_terminal or quiet())
    task = progress.add_task("rows", total=planned)
    # The command line as typed (console script or python -m tfkt_edge); empty when called in-process (tests).
    argv = sys.argv[1:] if sys.argv and Path(sys.argv[0]).name in ("tfkt-edge", "__main__.py") else []
    rows: list[dict] = []
    result: dict[str, object] = {"machine": bench.machine(), "rows": rows, "command": "tfkt-edge " + " ".join(argv)}

    def note(row: dict) -> None:
        rows.append(row)
        progress.advance(task)
        rate = f"{row['slices_per_s']:.1f} slices/s" if "slices_per_s" in row else f"skipped: {row['skipped']}"
        err.print(f"  {row['model']} {row['backend']} {row['mode']} batch {row.get('batch_size') or '-'}: {rate}")

    files = None
    progress.start()
    try:
        if "end-to-end" in wanted:
            files = bench.SeriesOnDisk(data, slices)
            if files.n_slices == 0:
                raise TfktEdgeError(f"no CT slices in {data}")
            note(bench.decode_only(files, workers, decoders.value, timing))
        for name in names:
            edge = open_edge(name, model, precision)
            label = {"backend": name, "model": edge.model.name, "precision": precision_of(edge)}
            if getattr(edge, "takes_stored", False):
                result["model_input"] = (f"{edge.model.path.name} takes int16 stored pixels: its model-only figures "
                                         "include the window and the verdict's per-slice statistics (export/in_graph.py)")
            try:
                if "model-only" in wanted:
                    bench.model_only(edge, label, sizes, timing, note)
                if files is not None:
                    note(bench.end_to_end(edge, label, files, e2e_batch, workers, decoders.value, timing))
            finally:
                edge.close()
            if reference and "model-only" in wanted:
                from tfkt_edge.bench.reference import NAME, reference_backend

                try:
                    ref = reference_backend(name, functools.partial(open_edge, name, precision=precision), reference_model, log=err.print)
                except TfktEdgeError as exc:
                    note({"backend": name, "model": NAME, "mode": "model-only", "precision": label["precision"],
                          "batch_size": None, "skipped": str(exc)})
                    continue
                try:
                    bench.model_only(ref, {**label, "model": NAME}, sizes, timing, note)
                finally:
                    ref.close()
    except RuntimeError as exc:  # a backend's runtime failure mid-run (TfktEdgeError and OSError reach the boundary)
        raise InputError(str(exc)) from None
    finally:
        progress.stop()
        if files is not None:
            files.close()
    result["peak_rss_mb"] = bench.peak_rss_mb()
    if files is not None:
        result["end_to_end_input"] = files.description
    out.print(table(result))
    if json_path:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    if markdown_path:
        markdown_path.write_text(markdown(result))
    if plot_path:
        plot(result, plot_path)
