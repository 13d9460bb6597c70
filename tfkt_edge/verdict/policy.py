"""The rescan alert policy: when a series is not of diagnostic quality.

A series raises an alert when
  * its median slice score is below the threshold (the series as a whole is
    not diagnostic), or
  * at least ``min_run`` consecutive slices, in anatomical order, score below
    the threshold (a contiguous region is not diagnostic, even if the rest is), or
  * at least ``max_share`` of its slices (and two or more) score below the threshold,
    wherever they lie: an order that interleaves bad slices with good ones cannot hide them.
The threshold defaults to 2.0, the "fair: limited clinical interpretation"
point of the LDCTIQAC 0-4 scale.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tfkt_edge.verdict.baselines import Baselines


@dataclass(frozen=True)
class AlertPolicy:
    threshold: float = 2.0
    min_run: int = 3
    baselines: Baselines | None = None  # per-protocol alert lines (tfkt-edge calibrate)
    noise_check: bool = True  # also alert on noise above the ceiling for the series' kernel class and size
    max_share: float = 0.25  # this share of slices below the threshold (or above the noise ceiling) alerts


PASS, ALERT, OUTSIDE = "pass", "alert", "outside-domain"
# How each status reads on a console, in a report and in an SR.
STATUS_TEXT = {PASS: "pass", ALERT: "RESCAN ALERT", OUTSIDE: "OUTSIDE DOMAIN"}


@dataclass(frozen=True)
class Verdict:
    alert: bool
    reason: str
    status: str = ""  # PASS, ALERT or OUTSIDE; derived from ``alert`` when not given

    def __post_init__(self) -> None:
        if not self.status:
            object.__setattr__(self, "status", ALERT if self.alert else PASS)


def overall_status(verdicts: Iterable[Verdict]) -> str:
    """One status for several series: an alert wins, then outside-domain, else pass."""
    statuses = {v.status for v in verdicts}
    return ALERT if ALERT in statuses else OUTSIDE if OUTSIDE in statuses else PASS


def outside_domain(reasons: Sequence[str], median: float | None) -> Verdict:
    """The verdict for a series the model was not validated on: never an alert on an uncalibrated score."""
    score = f"; median score {median:.2f} not judged" if median is not None else ""
    return Verdict(False, f"outside the validated domain: {'; '.join(reasons)}{score}", OUTSIDE)


def _runs_below(scores: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(start, stop) index pairs of maximal runs of scores below threshold."""
    runs, start = [], None
    for i, low in enumerate(scores < threshold):
        if low and start is None:
            start = i
        elif not low and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(scores)))
    return runs


def alerting_runs(scores: Sequence[float] | np.ndarray, policy: AlertPolicy) -> list[tuple[int, int]]:
    """(start, stop) of every run of at least ``policy.min_run`` consecutive slices below the threshold."""
    values = np.asarray(scores, dtype=float)
    return [run for run in _runs_below(values, policy.threshold) if run[1] - run[0] >= policy.min_run]


def _name_slices(start: int, stop: int, labels: list[str]) -> str:
    if stop - start == 1:
        return f"slice {start + 1} ({labels[start]})"
    return f"slices {start + 1}-{stop} ({labels[start]} to {labels[stop - 1]})"


def evaluate(scores: Sequence[float] | np.ndarray, labels: list[str], policy: AlertPolicy = AlertPolicy()) -> Verdict:
    """Apply the policy to one series' scores, given in anatomical order.

    Args:
        scores: per-slice scores.
        labels: a short name per slice (e.g. "instance 12") used in the reason.
    """
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        return Verdict(False, "no scored slices")
    median = float(np.median(values))
    runs = alerting_runs(values, policy)
    low = np.flatnonzero(values < policy.threshold)
    t = f"{policy.threshold:.2f}"
    if median < policy.threshold:
        worst = int(np.argmin(values))
        return Verdict(True, f"median score {median:.2f} < {t} ({len(low)} of {len(values)} slices below; "
                             f"worst {_name_slices(worst, worst + 1, labels)} at {values[worst]:.2f})")
    if runs:
        start, stop = max(runs, key=lambda r: r[1] - r[0])
        return Verdict(True, f"{stop - start} consecutive slices below {t}: {_name_slices(start, stop, labels)}"
                             f" (median {median:.2f})")
    if len(low) >= 2 and len(low) >= policy.max_share * len(values):
        names = ", ".join(str(i + 1) for i in low[:8]) + (", ..." if len(low) > 8 else "")
        return Verdict(True, f"{len(low)} of {len(values)} slices below {t} (at least {100 * policy.max_share:.0f}% "
                             f"alerts, scattered or not): slices {names} (median {median:.2f})")
    return Verdict(False, f"median score {median:.2f} >= {t}; {len(low)} of {len(values)} slices below, "
                          f"no run of {policy.min_run}")
