"""tfkt-edge: reference-free CT image quality at the scanner (the Python API is `tfkt_edge.api`).

    import tfkt_edge
    run = tfkt_edge.score("exam/")
"""

from __future__ import annotations

from importlib import import_module

# Loaded on first use, so `import tfkt_edge` stays light for the CLI and for code that only needs a submodule
# (the version too: importlib.metadata alone costs 15 ms of a one-file score's start).
_API = {"score": "tfkt_edge.api", "Scorer": "tfkt_edge.api", "document": "tfkt_edge.api",
        "TfktEdgeError": "tfkt_edge.errors"}
__all__ = ["Scorer", "TfktEdgeError", "__version__", "document", "score"]


NOT_INSTALLED = "0+unknown"  # the version of a source tree that was never installed


def __getattr__(name: str):
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("tfkt-edge")
        except PackageNotFoundError:
            return NOT_INSTALLED
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'tfkt_edge' has no attribute {name!r}")
