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
from dataclasses import dataclass, field
from typing import Any

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


# The checks a finding can come from. "scores": the alert policy on the learned scores; "domain": the learned
# score is not validated here; "noise" and "noise-share": physics; "incomplete": slices that could not be
# judged; "baseline": the protocol's own alert line was used.
CHECKS = ("scores", "domain", "noise", "noise-share", "incomplete", "baseline")
PHYSICS_CHECKS = ("noise", "noise-share", "incomplete")


@dataclass(frozen=True)
class Finding:
    """What one check found: whether it calls for a rescan, its sentence, and its figures."""

    check: str
    alert: bool
    text: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "alert": self.alert, "text": self.text, "figures": self.figures}


@dataclass(frozen=True)
class Verdict:
    alert: bool
    reason: str
    status: str = ""  # PASS, ALERT or OUTSIDE; derived from ``alert`` when not given
    findings: tuple[Finding, ...] = ()

    def __post_init__(self) -> None:
        if not self.status:
            object.__setattr__(self, "status", ALERT if self.alert else PASS)

    @classmethod
    def of(cls, findings: Sequence[Finding]) -> Verdict:
        """The verdict of a series' findings: an alert when any finding calls for one, outside the domain when
        the learned score was not validated and nothing alerts; the reason is rendered from the findings."""
        alert = any(f.alert for f in findings)
        outside = any(f.check == "domain" for f in findings)
        return cls(alert, render_reason(findings), ALERT if alert else OUTSIDE if outside else PASS, tuple(findings))

    def fired(self, check: str) -> bool:
        """Whether the check ``check`` called for a rescan."""
        return any(f.check == check and f.alert for f in self.findings)


def render_reason(findings: Sequence[Finding]) -> str:
    """One reason line: physics alerts, then the learned score's finding (or, outside the domain, why it was
    not judged, in brackets); the protocol baseline used, in brackets after the score's finding."""
    physics = "; ".join(f.text for f in findings if f.check in PHYSICS_CHECKS and f.alert)
    domain = next((f for f in findings if f.check == "domain"), None)
    if domain is not None:
        return f"{physics} [{domain.text}]" if physics else domain.text
    scores = next((f for f in findings if f.check == "scores"), None)
    baseline = next((f for f in findings if f.check == "baseline"), None)
    base = (scores.text if scores is not None else "no scored slices") + (f" [{baseline.text}]" if baseline else "")
    if not physics:
        return base
    return f"{base}; {physics}" if scores is not None and scores.alert else f"{physics}; {base}"


def overall_status(verdicts: Iterable[Verdict]) -> str:
    """One status for several series: an alert wins, then outside-domain, else pass."""
    statuses = {v.status for v in verdicts}
    return ALERT if ALERT in statuses else OUTSIDE if OUTSIDE in statuses else PASS


def outside_domain(reasons: Sequence[str], median: float | None) -> Finding:
    """The finding for a series the model was not validated on: never an alert on an uncalibrated score."""
    score = f"; median score {median:.2f} not judged" if median is not None else ""
    return Finding("domain", False, f"outside the validated domain: {'; '.join(reasons)}{score}",
                   {"reasons": list(reasons), "median_score": None if median is None else round(median, 4)})


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


def score_finding(scores: Sequence[float] | np.ndarray, labels: list[str], policy: AlertPolicy = AlertPolicy()) -> Finding:
    """The alert policy on one series' scores, given in anatomical order (``labels``: a short name per slice,
    e.g. "instance 12", used in the sentence)."""
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        return Finding("scores", False, "no scored slices", {"slices": 0})
    median = float(np.median(values))
    runs = alerting_runs(values, policy)
    low = np.flatnonzero(values < policy.threshold)
    t = f"{policy.threshold:.2f}"
    figures: dict[str, Any] = {"median": round(median, 4), "below": len(low), "slices": len(values),
                               "threshold": policy.threshold}
    if median < policy.threshold:
        worst = int(np.argmin(values))
        return Finding("scores", True, f"median score {median:.2f} < {t} ({len(low)} of {len(values)} slices below; "
                                       f"worst {_name_slices(worst, worst + 1, labels)} at {values[worst]:.2f})",
                       {**figures, "rule": "median"})
    if runs:
        start, stop = max(runs, key=lambda r: r[1] - r[0])
        return Finding("scores", True, f"{stop - start} consecutive slices below {t}: {_name_slices(start, stop, labels)}"
                                       f" (median {median:.2f})", {**figures, "rule": "run", "run": [start + 1, stop]})
    if len(low) >= 2 and len(low) >= policy.max_share * len(values):
        names = ", ".join(str(i + 1) for i in low[:8]) + (", ..." if len(low) > 8 else "")
        return Finding("scores", True, f"{len(low)} of {len(values)} slices below {t} (at least {100 * policy.max_share:.0f}% "
                                       f"alerts, scattered or not): slices {names} (median {median:.2f})",
                       {**figures, "rule": "share"})
    return Finding("scores", False, f"median score {median:.2f} >= {t}; {len(low)} of {len(values)} slices below, "
                                    f"no run of {policy.min_run}", figures)


def evaluate(scores: Sequence[float] | np.ndarray, labels: list[str], policy: AlertPolicy = AlertPolicy()) -> Verdict:
    """The verdict of the alert policy alone on one series' scores (`score_finding`)."""
    return Verdict.of([score_finding(scores, labels, policy)])
