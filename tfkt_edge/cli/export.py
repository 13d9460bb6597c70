"""`tfkt-edge export onnx`: turn a training checkpoint into the model file the runtime scores with."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..errors import TfktEdgeError
from .training_extra import require_training_extra

app = typer.Typer(help="Export trained checkpoints to deployable model files.", no_args_is_help=True)


@app.command()
def onnx(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="model.pt of a training run.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="ONNX file to write.", show_default=False)],
) -> None:
    """ONNX with a dynamic batch, the preprocessing contract and model card inside; checked with
    onnx.checker and against torch on real CT slices (fails above 1e-3)."""
    require_training_extra()
    from tfkt_edge.export.onnx import export_checkpoint

    err = Console(stderr=True)
    if not checkpoint.is_file():
        err.print(f"[red]error:[/] --checkpoint {checkpoint}: no such file", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    try:
        exported, difference = export_checkpoint(checkpoint, output)
    except (TfktEdgeError, OSError) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"onnx: {exported.path}")
    out.print(f"  simplified     {exported.nodes_exported} -> {exported.nodes_simplified} nodes (constants folded)")
    out.print("  onnx.checker   ok")
    out.print(f"  tensorrt ops   ok ({len(exported.operators.counts)} operator types, opset {exported.operators.opset})")
    out.print(f"  parity         ok (max |torch - onnxruntime| {difference:.1e} on real CT, limit 1e-03)")
