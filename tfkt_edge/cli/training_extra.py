"""Commands that build or train models need torch; the runtime does not."""

from __future__ import annotations

import typer

from tfkt_edge.cli.console import error


def require_training_extra() -> None:
    """Exit 2 with a clear message when torch (the [train] extra) is not installed."""
    try:
        import torch  # noqa: F401
    except ImportError:
        error("this command needs torch: pip install 'tfkt-edge[train]' (see the README for the CPU-only wheel)")
        raise typer.Exit(2) from None
