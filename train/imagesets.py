"""Labelled image collections for training, independent of where the images live.

An ImageSet is labels plus per-image metadata plus a loader that returns one
model-ready image (512x512 float32 in [0, 1]) by row. In-memory corpora and
folders of files on disk (the public datasets) look the same to the trainer,
and subsets (task-focused selection, train/validation splits) are just rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tfkt_edge.train.distortions import selected


@dataclass(frozen=True)
class ImageSet:
    labels: np.ndarray  # float32, 0..4, higher is better
    groups: tuple[str, ...]  # the pristine reference / source slice / patient each image comes from
    families: tuple[str | None, ...]  # distortion family, None when unknown or authentic
    names: tuple[str, ...]
    loader: Callable[[int], np.ndarray]
    rows: np.ndarray  # rows of the underlying collection, in this set's order

    @classmethod
    def from_array(cls, images: np.ndarray, labels, groups, families, names) -> ImageSet:
        return cls(np.asarray(labels, np.float32), tuple(groups), tuple(families), tuple(names),
                   lambda row: np.asarray(images[row], dtype=np.float32), np.arange(len(labels)))

    @classmethod
    def from_files(cls, paths: list[Path], labels, groups, families, reader: Callable[[Path], np.ndarray]) -> ImageSet:
        paths = list(paths)
        return cls(np.asarray(labels, np.float32), tuple(groups), tuple(families), tuple(p.name for p in paths),
                   lambda row: reader(paths[row]), np.arange(len(paths)))

    def __len__(self) -> int:
        return len(self.rows)

    def images(self, positions) -> np.ndarray:
        """(B, 512, 512) float32 for positions within this set."""
        return np.stack([self.loader(int(self.rows[p])) for p in positions])

    def subset(self, positions) -> ImageSet:
        positions = np.asarray(positions, dtype=int)
        pick = lambda values: tuple(values[p] for p in positions)
        return replace(self, labels=self.labels[positions], groups=pick(self.groups), families=pick(self.families),
                       names=pick(self.names), rows=self.rows[positions])

    def select(self, selection: str) -> ImageSet:
        """Task-focused selection (see distortions.py) or everything."""
        return self.subset([i for i, family in enumerate(self.families) if selected(family, selection)])

    def split_by_group(self, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
        """(train, validation): whole groups go to validation, so no reference is shared."""
        names = sorted(set(self.groups))
        rng = np.random.default_rng(seed)
        n_val = max(1, round(fraction * len(names))) if fraction > 0 and len(names) > 1 else 0
        val_groups = set(rng.permutation(names)[:n_val].tolist())
        is_val = np.array([g in val_groups for g in self.groups], dtype=bool)
        return self.subset(np.flatnonzero(~is_val)), self.subset(np.flatnonzero(is_val))
