"""`tfkt-edge models`: the registered model variants with their measured size and cost."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Literal

import typer
from rich.table import Table

from tfkt_edge.cli.console import StdoutConsole
from tfkt_edge.cli.training_extra import require_training_extra


class ListFormat(str, Enum):
    table = "table"
    json = "json"


def models(format: Annotated[ListFormat, typer.Option("--format", "-f", help="table for people; json for machines.")] = ListFormat.table) -> None:
    """List the model variants: parameters and GFLOPs per 512x512 slice (2 FLOPs per multiply-add), measured now.

    Example: tfkt-edge models --format json
    """
    require_training_extra()
    from tfkt_edge.train.flops import measure_all

    costs = measure_all()
    if format is ListFormat.json:
        typer.echo(json.dumps([{k: v for k, v in c.as_dict().items() if k != "summary"} for c in costs], indent=1))
        return
    table = Table(title="tfkt-edge model variants (input 1x512x512)")
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (("name", "left"), ("params", "right"), ("GFLOPs", "right"),
                                                                 ("description", "left"))
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for c in costs:
        table.add_row(c.name, f"{c.params:,}", f"{c.gflops:.2f}", c.summary)
    StdoutConsole().print(table)
