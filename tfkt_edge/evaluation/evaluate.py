"""Evaluate a model on a labelled folder in the LDCTIQAC layout: the challenge metric,
a predicted-vs-label scatter plot and per-image predictions, and beside them the same
metric of the global noise index on the same images (`tfkt_edge.verdict.noise.measure`, lower
noise read as better): a learned score that does not beat it has not earned its place.

Three figures per folder: the score the verdict uses (the learned score capped by the noise bound,
`tfkt_edge.verdict.bound`; the folders hold header-less slices, read as a soft kernel), the learned score
alone, and the noise index."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from tfkt_edge.backends.base import Backend
from tfkt_edge.evaluation.ldctiqac import LabelledFolder, model_input
from tfkt_edge.evaluation.metrics import correlation_report
from tfkt_edge.verdict.bound import capped
from tfkt_edge.verdict.noise import measure


@dataclass(frozen=True)
class Evaluation:
    folder: LabelledFolder
    model: str
    names: list[str]
    labels: np.ndarray
    predictions: np.ndarray  # the score the verdict uses: the learned score capped by the noise bound
    noise_hu: np.ndarray  # the global noise index of each image (NaN where too little soft tissue)
    learned: np.ndarray  # the learned score alone

    @cached_property
    def figures(self) -> dict:
        return correlation_report(self.predictions, self.labels)

    @cached_property
    def learned_figures(self) -> dict:
        return correlation_report(self.learned, self.labels)

    @cached_property
    def noise_index_figures(self) -> dict | None:
        """The challenge metric of the noise index (negated: less noise, better) on the images it measured."""
        measured = np.isfinite(self.noise_hu)
        if measured.sum() < 3 or np.ptp(self.labels[measured]) == 0:
            return None
        return correlation_report(-self.noise_hu[measured], self.labels[measured])

    def document(self) -> dict:
        return {"model": self.model, "data": str(self.folder.root), "labels_file": self.folder.labels_file.name,
                "figures": _rounded(self.figures), "learned_figures": _rounded(self.learned_figures),
                "noise_index_figures": None if self.noise_index_figures is None else _rounded(self.noise_index_figures),
                "predictions": [{"image": n, "label": float(y), "prediction": round(float(p), 6),
                                 "learned": round(float(g), 6), "noise_hu": None if not np.isfinite(h) else round(float(h), 3)}
                                for n, y, p, g, h in zip(self.names, self.labels, self.predictions, self.learned,
                                                         self.noise_hu)]}


def _rounded(figures: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in figures.items()}


def evaluate(folder: LabelledFolder, backend: Backend, batch_size: int = 16,
             on_image: Callable[[], None] | None = None) -> Evaluation:
    """Score every labelled image with ``backend`` through the shared preprocessing."""
    limit = backend.max_batch()
    batch_size = min(batch_size, limit) if limit else batch_size
    names, paths = list(folder.labels), folder.paths
    predictions, noise = [], []
    for start in range(0, len(paths), batch_size):
        batch = np.stack([model_input(p, backend.model.contract) for p in paths[start : start + batch_size]])
        predictions.append(backend.infer(batch[:, None]))
        noise += [np.nan if (n := measure(image, backend.model.contract)[0]) is None else n for image in batch]
        if on_image is not None:
            for _ in range(len(batch)):
                on_image()
    learned = np.concatenate(predictions).astype(np.float32)
    bound = backend.model.score_bound
    scores = [capped(bound, float(g), h, "soft", backend.model.contract) for g, h in zip(learned, noise)]
    return Evaluation(folder, backend.model.name, names, np.array([folder.labels[n] for n in names], np.float32),
                      np.array(scores, np.float32), np.array(noise, np.float64), learned)


def write_evaluation(result: Evaluation, out_dir: Path) -> tuple[Path, Path]:
    """predictions.json and scatter.png in ``out_dir``."""
    from tfkt_edge.render.plots import scatter

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "predictions.json"
    json_path.write_text(json.dumps(result.document(), indent=1) + "\n")
    f = result.figures
    title = (f"{result.model} on {result.folder.root.name} (n={f['n']})\nPLCC {f['plcc']:.3f}  SROCC {f['srocc']:.3f}  "
             f"KROCC {f['krocc']:.3f}  overall {f['overall']:.3f}")
    return json_path, scatter(result.predictions, result.labels, out_dir / "scatter.png", title)
