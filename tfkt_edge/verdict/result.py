"""What scoring produces: one slice's learned score with its statistics and noise bound, and one series' result."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tfkt_edge.dicom import Series, SliceRef
from tfkt_edge.model.model_file import ModelInfo
from tfkt_edge.verdict.bound import bounded
from tfkt_edge.verdict.domain import DomainStatus, ImageStats, kernel_class
from tfkt_edge.verdict.noise import NoiseFinding
from tfkt_edge.verdict.physics import SeriesPhysics
from tfkt_edge.verdict.policy import Verdict


@dataclass(frozen=True)
class SliceScore:
    """One slice's learned score, its image statistics and the noise bound on its score (`score_bound`)."""

    ref: SliceRef
    learned: float
    stats: ImageStats | None = None
    bound: float | None = None  # the best score its measured noise allows; None: not measured

    @property
    def score(self) -> float:
        """The score the verdict uses: the learned score, capped by the noise bound."""
        return bounded(self.learned, self.bound)

    @property
    def label(self) -> str:
        name = f"instance {self.ref.instance_number}" if self.ref.instance_number is not None else self.ref.path.name
        return name if self.ref.frame is None else f"{name} frame {self.ref.frame + 1}"


@dataclass(frozen=True)
class SeriesResult:
    series: Series
    slices: tuple[SliceScore, ...]
    verdict: Verdict
    domain: DomainStatus = field(default_factory=lambda: DomainStatus(True))
    noise: NoiseFinding | None = None  # the noise check (None: no slice had soft tissue to measure)
    physics: SeriesPhysics | None = None  # water-equivalent diameter, CTDIvol, SSDE

    @property
    def scores(self) -> np.ndarray:
        return np.array([s.score for s in self.slices], dtype=float)


def slice_score(ref: SliceRef, learned: float, stats: ImageStats | None, model: ModelInfo) -> SliceScore:
    """A slice's learned score with the noise bound of ``model`` (`tfkt_edge.verdict.bound`) on it."""
    noise = stats.noise_hu if stats is not None else None
    return SliceScore(ref, learned, stats, model.score_bound.of_noise(noise, kernel_class(ref.kernel or ""), model.contract))
