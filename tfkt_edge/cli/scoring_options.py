"""The scoring options every scoring command takes, gathered once into one typed object.

`score`, `report`, `serve`, `watch` and `evaluate` declare the same options (Typer needs each in the
signature); each builds one `ScoringOptions` from them and hands that on, so the policy, the backend
and the decoders are made from the options in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tfkt_edge.backends import Backend, BackendOptions, create_backend
from tfkt_edge.verdict.baselines import load as load_baselines
from tfkt_edge.verdict.policy import AlertPolicy


@dataclass(frozen=True)
class ScoringOptions:
    model: Path | None = None
    backend: str = "onnxruntime"
    url: str | None = None
    triton_model: str | None = None
    batch_size: int | None = None  # None: the backend's preferred (backends.base.default_batch)
    workers: int = 2
    decoders: str = "threads"
    threshold: float = 2.0
    min_run: int = 3
    baselines: Path | None = None
    noise_check: bool = True

    def policy(self) -> AlertPolicy:
        """The alert policy; a bad baselines file raises TfktEdgeError (one line, exit 2)."""
        baselines = load_baselines(self.baselines) if self.baselines is not None else None
        return AlertPolicy(self.threshold, self.min_run, baselines, self.noise_check)

    def backend_options(self) -> BackendOptions:
        return BackendOptions(self.url, self.triton_model)

    def open_backend(self) -> Backend:
        return create_backend(self.backend, self.model, self.backend_options())
