"""The Python API: score CT from Python without shelling out.

    import tfkt_edge

    run = tfkt_edge.score("exam/")                      # one call: the shipped model on the CPU
    for series in run.results:
        print(series.series.description, series.verdict.status, series.verdict.reason)

    with tfkt_edge.Scorer(threshold=2.0) as scorer:     # repeated use: the model is loaded once
        for folder in folders:
            run = scorer.score(folder)

A run is the same `ScoringRun` that `tfkt-edge score` renders: per series the slices with their scores
(`learned`, `bound`, `score`), the verdict (`alert`, `status`, `reason`), the domain check, the noise finding
and the physics (water-equivalent diameter, SSDE); `tfkt_edge.document(run)` is the JSON document of
`score --format json`. Errors a caller can fix raise `tfkt_edge.TfktEdgeError` with a one-line message.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tfkt_edge.backends import BackendOptions, create_backend
from tfkt_edge.errors import InputError
from tfkt_edge.pipeline.run import ScoringRun, score_paths
from tfkt_edge.render.document import document as _document
from tfkt_edge.verdict.baselines import load as load_baselines
from tfkt_edge.verdict.policy import AlertPolicy

PathLike = str | os.PathLike


class Scorer:
    """A loaded model and an alert policy, for scoring many exams in one process.

    Args:
        model: an exported ONNX model (or TensorRT engine for ``backend="tensorrt"``); the shipped model if None.
        backend: "onnxruntime" (the CPU default), "tensorrt", "torch" or "triton".
        threshold, min_run, noise_check: the alert policy, as `tfkt-edge score`'s options.
        baselines: a per-protocol baselines file from `tfkt-edge calibrate`.
        batch_size, workers, decoders: as `tfkt-edge score`'s options (batch_size None: the backend's preferred).
        url: the Triton server for ``backend="triton"``.
    Raises:
        TfktEdgeError: a bad model, backend or baselines file.
    """

    def __init__(self, model: PathLike | None = None, backend: str = "onnxruntime", *, threshold: float = 2.0,
                 min_run: int = 3, noise_check: bool = True, baselines: PathLike | None = None, batch_size: int | None = None,
                 workers: int = 2, decoders: str = "threads", url: str | None = None):
        if (batch_size is not None and batch_size < 1) or workers < 1 or min_run < 1:
            raise InputError("batch_size, workers and min_run must be at least 1")
        self.policy = AlertPolicy(threshold, min_run, load_baselines(Path(baselines)) if baselines is not None else None,
                                  noise_check)
        self.batch_size, self.workers, self.decoders = batch_size, workers, decoders
        self.backend = create_backend(backend, Path(model) if model is not None else None, BackendOptions(url))

    @property
    def model(self):
        """The model's name, contract, card and checks (`model_file.ModelInfo`)."""
        return self.backend.model

    def score(self, *paths: PathLike | Iterable[PathLike]) -> ScoringRun:
        """Find, read, score and judge every CT series under ``paths`` (files, folders, DICOMDIRs).

        Raises:
            TfktEdgeError: nothing given, or a path that does not exist.
        """
        flat: list[Path] = []
        for item in paths:
            flat += [Path(p) for p in item] if not isinstance(item, (str, os.PathLike)) else [Path(item)]
        if not flat:
            raise InputError("give at least one DICOM file, folder or DICOMDIR")
        missing = [str(p) for p in flat if not p.exists()]
        if missing:
            raise InputError(f"no such file or folder: {missing[0]}")
        return score_paths(flat, self.backend, self.policy, self.batch_size, self.workers, decoders=self.decoders)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def score(*paths: PathLike | Iterable[PathLike], model: PathLike | None = None, backend: str = "onnxruntime",
          **options) -> ScoringRun:
    """Score ``paths`` once with a fresh `Scorer` (``options``: its keyword arguments) and close it."""
    with Scorer(model, backend, **options) as scorer:
        return scorer.score(*paths)


def document(run: ScoringRun, threshold: float = 2.0) -> dict:
    """The JSON document of `tfkt-edge score --format json` for ``run``."""
    return _document(run.model, run.results, run.skipped, threshold)
