"""Commands that build or train models need torch; the runtime does not."""

from __future__ import annotations

from tfkt_edge.errors import InputError


def require_training_extra() -> None:
    """Exit 2 with a clear message when torch (the [train] extra) is not installed."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise InputError("this command needs torch: pip install 'tfkt-edge[train]' (see the README for the CPU-only wheel)") from None
