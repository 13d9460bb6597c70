"""The LDCTIQAC 2023 protocol re-created on real slices, and the fit of the label rule to its readers.

    python -m tfkt_edge.train.label_fit [--split train]

LDCTIQAC's organisers made each test slice in 10 of 4 x 3 versions (doses 100/50/25/10% of full dose;
720/360/180 views), and its readers' scores, sorted per slice and averaged over the 30 test slices, are
3.84, 3.36, 2.96, 2.67, 2.26, 1.97, 1.62, 1.23, 0.93, 0.48 (FIELD.md). Here each real abdominal slice
(axial, soft kernel) is made in the same 12 cells: dose noise in the image's own texture at its own level
(quantum noise ~ 1/sqrt(dose)), sparse-view streaks by forward projection and filtered back-projection.
As in LDCTIQAC, noise is inserted even at 100%: the organisers added Poisson noise at each dose level to
projections of images that already held their own full-dose noise, so a version at dose d holds about
sigma^2 (1 + 1/d) of noise variance.
The simulator's 360 views over 180 degrees of parallel beam are LDCTIQAC's 720 over 360 degrees, so its
180 and 90 views are LDCTIQAC's 360 and 180. The 12 sorted values of a slice are read at 10 evenly spaced
ranks (which 10 cells each test slice had is not public). `fit` finds the rule's D_HALF, SHAPE and
STREAK_WEIGHT (`ctnoise`) that bring the sorted means closest to the readers'.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

PUBLIC_SORTED_MEANS = (3.84, 3.36, 2.96, 2.67, 2.26, 1.97, 1.62, 1.23, 0.93, 0.48)
DOSES = (1.0, 0.5, 0.25, 0.1)
VIEWS = (360, 180, 90)  # the simulator's views over 180 degrees: LDCTIQAC's 720, 360, 180 over 360
ABDOMINAL_WORDS = ("ABD", "PELV", "BACINO", "CHEST_TO_PELVIS", "PANCREAS", "LIVER")
# Sources whose header names no region but whose README places them in the abdomen.
ABDOMINAL_GROUPS = ("totalsegmentator",)  # upper abdomen at liver level (realct README)


@dataclass(frozen=True)
class SliceCells:
    """A slice's own noise and its sparse-view streak RMS (HU over soft tissue) per number of views."""

    name: str
    split: str
    sigma: float
    streaks: dict[int, float]


def ten_of_twelve(values: Sequence[float]) -> np.ndarray:
    """A slice's 12 cell values, sorted high to low, read at 10 evenly spaced ranks."""
    ordered = np.sort(np.asarray(values, dtype=float))[::-1]
    return np.interp(np.linspace(0, len(ordered) - 1, len(PUBLIC_SORTED_MEANS)), np.arange(len(ordered)), ordered)


def cell_labels(cells: SliceCells, d_half: float, shape: float, weight: float) -> list[float]:
    """The label rule (`ctnoise.label_from_visible` of `ctnoise.visible_degradation`, soft-tissue window) with
    these constants, at every dose x views cell."""
    from tfkt_edge.train.ctnoise import label_from_visible, visible_degradation

    noise = {dose: cells.sigma * float(np.sqrt(1.0 + 1.0 / dose)) for dose in DOSES}
    return [label_from_visible(visible_degradation(noise[dose], cells.streaks.get(views, 0.0), streak_weight=weight),
                               d_half, shape) for dose in DOSES for views in VIEWS]


def sorted_means(per_slice: Sequence[Sequence[float]]) -> np.ndarray:
    """The per-version sorted means over slices, as FIELD gives LDCTIQAC's."""
    return np.mean([ten_of_twelve(v) for v in per_slice], axis=0)


def is_abdominal(body_part: str, plane: str, kernel: str, group: str = "") -> bool:
    from tfkt_edge.verdict.domain import kernel_class

    region = any(w in body_part.upper() for w in ABDOMINAL_WORDS) or group in ABDOMINAL_GROUPS
    return plane == "axial" and kernel_class(kernel) != "sharp" and region


def measure_cells(split: str | None = None, progress=None) -> list[SliceCells]:
    """SliceCells of every real abdominal slice (of ``split``, or all): seconds per slice (a sinogram)."""
    from tfkt_edge.dicom import load_hu, scan
    from tfkt_edge.model.preprocess import pad_square
    from tfkt_edge.train.ctnoise import SOFT_HU, native_noise
    from tfkt_edge.train.ctsim import Degradation, SliceSimulator
    from tfkt_edge.train.realct import training_slices

    out = []
    for s in training_slices():
        if (split and s.split != split) or not is_abdominal(s.body_part, s.plane, s.kernel, s.group):
            continue
        ref = scan([s.path]).series[0].slices[0]
        hu = pad_square(load_hu(ref), -1000.0)
        soft = (hu > SOFT_HU[0]) & (hu < SOFT_HU[1])
        sim, rng = SliceSimulator(hu, ref.pixel_spacing or 0.7), np.random.default_rng(0)
        streaks = {v: float(np.sqrt(np.mean(sim.delta_hu(Degradation(1.0, v), rng)[soft] ** 2))) for v in VIEWS[1:]}
        out.append(SliceCells(f"{s.group}/{s.path.name}", s.split, native_noise(hu).sigma, streaks))
        if progress is not None:
            progress(out[-1])
    return out


def fit(cells: Sequence[SliceCells]) -> tuple[dict, np.ndarray]:
    """(D_HALF, SHAPE, STREAK_WEIGHT) closest to the readers' sorted means, and the sorted means they give."""
    from scipy.optimize import minimize

    target = np.array(PUBLIC_SORTED_MEANS)

    def loss(p: np.ndarray) -> float:
        if min(p) <= 0:
            return 1e9
        return float(np.sum((sorted_means([cell_labels(c, *p) for c in cells]) - target) ** 2))

    best = min((minimize(loss, x0, method="Nelder-Mead") for x0 in ([40, 3, 1], [55, 2, 0.5], [45, 4, 0.2])),
               key=lambda r: r.fun)
    params = dict(zip(("d_half", "shape", "streak_weight"), (float(v) for v in best.x)))
    return params, sorted_means([cell_labels(c, *best.x) for c in cells])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="train", help="fit on this split's abdominal slices ('' for all)")
    args = parser.parse_args(argv)
    cells = measure_cells(args.split or None, progress=lambda c: print(f"  {c.name}: {c.sigma:.1f} HU", flush=True))
    params, means = fit(cells)
    print(json.dumps({"slices": len(cells), "fit": params, "sorted_means": [round(float(m), 2) for m in means],
                      "public": list(PUBLIC_SORTED_MEANS), "cells": [asdict(c) for c in cells]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
