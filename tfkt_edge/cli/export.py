"""`tfkt-edge export onnx|tensorrt|triton|int8`: a training checkpoint into the model files the runtime and its servers score with."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console

from tfkt_edge.cli.boundary import CommandGroup
from tfkt_edge.cli.training_extra import require_training_extra
from tfkt_edge.errors import InputError

app = typer.Typer(help="Export trained checkpoints to deployable model files.", no_args_is_help=True, cls=CommandGroup)


@app.command()
def onnx(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="model.pt of a training run.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="ONNX file to write.", show_default=False)],
    stored_input: Annotated[Path | None, typer.Option(
        "--stored-input", help="Also write its stored-input twin here: int16 pixels and their slope and intercept "
        "in, the window and the verdict's statistics in the graph (the CPU default; not for TensorRT).",
        show_default=False)] = None,
) -> None:
    """ONNX with a dynamic batch, the preprocessing contract and model card inside; checked with
    onnx.checker and against torch on real CT slices (fails above 1e-3).

    Example: tfkt-edge export onnx --checkpoint runs/finetune/model.pt --output model.onnx --stored-input model_stored.onnx
    """
    require_training_extra()
    from tfkt_edge.export.onnx import export_checkpoint

    if not checkpoint.is_file():
        raise InputError(f"--checkpoint {checkpoint}: no such file")
    exported, difference = export_checkpoint(checkpoint, output)
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"onnx: {exported.path}")
    out.print(f"  simplified     {exported.nodes_exported} -> {exported.nodes_simplified} nodes (constants folded)")
    out.print("  onnx.checker   ok")
    out.print(f"  tensorrt ops   ok ({len(exported.operators.counts)} operator types, opset {exported.operators.opset})")
    out.print(f"  parity         ok (max |torch - onnxruntime| {difference:.1e} on real CT, limit 1e-03)")
    if stored_input is not None:
        from tfkt_edge.examples import EXAMPLES
        from tfkt_edge.export.in_graph import write_twin

        differences = write_twin(checkpoint, output, stored_input, [EXAMPLES])
        out.print(f"onnx (stored input): {stored_input}")
        out.print(f"  parity         ok (max |torch - onnxruntime| score {differences['score']:.1e}, statistics "
                  f"{max(v for k, v in differences.items() if k != 'score'):.1e} relative)")


@app.command()
def tensorrt(
    onnx_model: Annotated[Path, typer.Option("--onnx", help="ONNX model file made by tfkt-edge export onnx.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Engine file to write; its sidecar goes beside it as OUTPUT.json.", show_default=False)],
    min_batch: Annotated[int, typer.Option("--min-batch", min=1, help="Smallest batch the engine accepts.")] = 1,
    opt_batch: Annotated[int, typer.Option("--opt-batch", min=1, help="Batch the engine is tuned for (the usual scoring batch).")] = 16,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, max=1024, help="Largest batch the engine accepts.")] = 64,
    timing_cache: Annotated[Optional[Path], typer.Option("--timing-cache", help="Load and update this TensorRT timing cache, so rebuilds are fast.")] = None,
    workspace: Annotated[Optional[int], typer.Option("--workspace", min=16, help="Builder workspace limit in MB (default: TensorRT's).")] = None,
    calibration: Annotated[Optional[list[Path]], typer.Option("--calibration", help="DICOM files or folders of real CT for the FP16 checks (default: the bundled examples).")] = None,
) -> None:
    """TensorRT FP16 engine for this machine's GPU, with a sidecar (TensorRT version, GPU, profile,
    contract); its layers are inspected and its scores checked against FP32 on real CT (limit 0.02).

    Example: tfkt-edge export tensorrt --onnx model.onnx --output model.engine
    """

    if not onnx_model.is_file():
        raise InputError(f"--onnx {onnx_model}: no such file")
    try:
        import tensorrt as _  # noqa: F401
    except ImportError:
        raise InputError("TensorRT is not installed: pip install 'tfkt-edge[gpu]' on a machine with an NVIDIA GPU "
              "and driver (or score with --backend torch or onnxruntime)") from None
    from tfkt_edge.export.tensorrt import BuildSettings, build_engine

    out = Console(highlight=False, soft_wrap=True)
    settings = BuildSettings(min_batch, opt_batch, max_batch, workspace, timing_cache, tuple(calibration or ()))
    built = build_engine(onnx_model, output, settings, log=out.print)
    side = built.sidecar
    out.print(f"tensorrt: {built.engine} (sidecar {built.engine.name}.json)")
    out.print(f"  built          TensorRT {side.tensorrt_version} on {side.gpu.name} (sm {side.gpu.compute_capability}) "
              f"in {built.seconds:.0f} s; batch {min_batch}/{opt_batch}/{max_batch}")
    out.print(f"  precision      ok: FP16 ({built.precisions.fp16_share:.0%} of {built.precisions.layers} compute layers; "
              f"{built.precisions.counts})")
    out.print(f"  fp16 parity    ok (max |engine - fp32 onnx| {built.max_difference:.4f} on real CT, limit 0.02)")


@app.command()
def triton(
    output: Annotated[Path, typer.Option("--output", "-o", help="Model repository folder to write (created; variant folders replaced).", show_default=False)],
    model: Annotated[Optional[Path], typer.Option("--model", help="The exported ONNX model (default: the shipped model).")] = None,
    plan: Annotated[Optional[Path], typer.Option("--plan", help="Also a tensorrt_plan variant from this engine (tfkt-edge export tensorrt, built on the serving GPU).")] = None,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, max=1024, help="max_batch_size of every variant.")] = 64,
    queue_delay_us: Annotated[int, typer.Option("--queue-delay-us", min=0, help="Dynamic batching: how long a request may wait for others (microseconds).")] = 2000,
    instances: Annotated[int, typer.Option("--instances", min=1, help="Model instances per variant (instance_group count).")] = 1,
) -> None:
    """Triton Inference Server model repository: NAME (onnxruntime_onnx, for the official container), NAME-python
    (Python backend, for tfkt-edge triton-serve) and, with --plan, NAME-trt (tensorrt_plan). No torch needed.

    Example: tfkt-edge export triton -o /srv/triton-models
    """
    from tfkt_edge.export.triton import BatchingSettings, write_repository

    settings = BatchingSettings(max_batch=max_batch, queue_delay_us=queue_delay_us, instances=instances)
    folders = write_repository(model, output, settings, plan)  # errors end at the CLI's boundary: one line, exit 2
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"triton: {output}")
    for folder in folders:
        out.print(f"  {folder.name:<24} {(folder / 'config.pbtxt').read_text().splitlines()[1]}")


@app.command()
def int8(
    onnx_model: Annotated[Optional[Path], typer.Option("--onnx", help="FP32 ONNX model from tfkt-edge export onnx (default: the shipped model).")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="INT8 ONNX file to write.")] = Path("tfkt_edge_s.int8.onnx"),
) -> None:
    """INT8 (QDQ) variant for the CPU, calibrated on real CT slices; contract and card carried over. An option,
    not the default: measured faster on the CPU but its scores drift from FP32 (docs/export.md). No torch needed.

    Example: tfkt-edge export int8 -o model.int8.onnx && tfkt-edge score SERIES --model model.int8.onnx
    """
    try:
        import onnx  # noqa: F401  (ONNX Runtime's quantizer edits the graph with it)
    except ImportError:
        raise InputError("export int8 needs the onnx package: pip install onnx (or the [train] extra)") from None
    from tfkt_edge.backends import create_backend
    from tfkt_edge.export.int8 import calibration_images, quantize_int8
    from tfkt_edge.model.model_file import DEFAULT_MODEL

    source = onnx_model or DEFAULT_MODEL
    reference = create_backend("onnxruntime", source)  # a tfkt-edge model file, or one error line
    try:
        images = calibration_images(reference.model.contract)
        quantize_int8(source, output, images)
        quantized = create_backend("onnxruntime", output)
        difference = float(np.abs(quantized.infer(images) - reference.infer(images)).max())
        quantized.close()
    finally:
        reference.close()
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"int8: {output} ({output.stat().st_size / 2**20:.1f} MB, from {source.name})")
    out.print(f"  calibration    {len(images)} preprocessed real CT slices")
    out.print(f"  drift          max |int8 - fp32| {difference:.3f} on those slices (an option, not the default)")
