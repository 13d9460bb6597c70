"""The verdict on one series: the learned score where the model is validated, physics everywhere."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from tfkt_edge.dicom import Series, Skip, reasons
from tfkt_edge.model.model_file import ModelInfo
from tfkt_edge.verdict.domain import Domain, check_series, kernel_class
from tfkt_edge.verdict.noise import PHYSICS_DEFAULTS, NoiseLimits, assess_noise, region_of
from tfkt_edge.verdict.physics import series_physics
from tfkt_edge.verdict.policy import AlertPolicy, Finding, Verdict, outside_domain, score_finding
from tfkt_edge.verdict.result import SeriesResult, SliceScore


def lost_slices(series: Series, scored: Sequence[SliceScore], skipped: Iterable[Skip] = ()) -> list[str]:
    """Why slices of ``series`` could not be judged: its slices that were not scored (pixels unreadable,
    non-finite) and skipped files of the series (a refused header, no pixel data)."""
    done = {(s.ref.path, s.ref.frame) for s in scored}
    lost = [f"{ref.path.name}: could not be scored" for ref in series.slices if (ref.path, ref.frame) not in done]
    uid = series.slices[0].series_instance_uid if series.slices else ""
    lost += [f"{skip.path.name}: {skip.reason}" for skip in skipped
             if uid and skip.series_uid == uid and reasons.loses_slice(skip.reason)]
    return lost


def judge(series: Series, scored: Iterable[SliceScore], policy: AlertPolicy, domain: Domain | None = None,
          noise_limits: NoiseLimits = PHYSICS_DEFAULTS, lost: Sequence[str] = (), size: int = 512) -> SeriesResult:
    """The verdict on one series: the learned score where the model is validated, physics everywhere.

    * The domain check says only whether the learned score is validated for this series.
    * Physics judges every series, inside the domain or not: noise above the ceiling for its header's kernel
      class and its patient's size (`tfkt_edge.verdict.noise`), or a share of slices above it, is an alert.
    * Inside the domain, the alert policy judges the slice scores (given in anatomical order).
    * A series with slices that could not be judged (``lost``) never passes: it says so and alerts.
    """
    slices = tuple(scored)
    refs = [s.ref for s in slices]
    stats = [s.stats for s in slices]
    status = check_series(refs, stats, domain)
    region = region_of(refs[0].body_part) if refs else "body"
    physics = series_physics(refs, [x.water_diameter_px if x else None for x in stats], size, region,
                             [x.streak_index if x else None for x in stats],
                             [x.nps_mean_frequency if x else None for x in stats])
    baseline = policy.baselines.lookup(series) if policy.baselines is not None and slices else None
    noise = assess_noise(refs, [x.noise_hu if x else None for x in stats], [x.noise_texture if x else None for x in stats],
                         kernel_class(refs[0].kernel or "") if refs else "unknown", noise_limits, physics.water_diameter_cm)
    if noise is not None and baseline is not None and baseline.noise_hu is not None and baseline.noise_ceiling_hu:
        noise = noise.for_protocol(baseline.noise_hu, baseline.noise_ceiling_hu)
    findings: list[Finding] = []
    if policy.noise_check and noise is not None:
        if noise.above:
            findings.append(Finding("noise", True, noise.reason, noise.to_dict()))
        elif noise.slices_above >= 2 and noise.share_above >= policy.max_share:
            findings.append(Finding("noise-share", True, noise.share_reason,
                                    {"slices_above": noise.slices_above, "slices_measured": noise.slices_measured,
                                     "ceiling_hu": noise.ceiling_hu}))
    if lost:
        n = len(lost) + len(slices)
        findings.append(Finding("incomplete", True, f"{len(lost)} of {n} slices could not be judged ({lost[0]}"
                                                    f"{'; ...' if len(lost) > 1 else ''}): the series is incomplete",
                                {"lost": len(lost), "slices": n, "first": lost[0]}))
    if slices and not status.inside:
        findings.insert(0, outside_domain(status.reasons, float(np.median([s.score for s in slices]))))
        return SeriesResult(series, slices, Verdict.of(findings), status, noise, physics)
    own = policy if baseline is None else replace(policy, threshold=baseline.low)
    findings.insert(0, score_finding([s.score for s in slices], [s.label for s in slices], own))
    if baseline is not None:
        findings.insert(1, Finding("baseline", False, f"protocol baseline: accepted series score {baseline.median:.2f} "
                                                      f"(n={baseline.n_series}); alert line {baseline.low:.2f} instead of "
                                                      f"{policy.threshold:.2f}",
                                   {"median": baseline.median, "n_series": baseline.n_series, "alert_line": baseline.low}))
    return SeriesResult(series, slices, Verdict.of(findings), status, noise, physics)


class Judge:
    """One judge for a run: the alert policy (with its baselines) and the model's validated domain, noise figures and
    input size, put together once; called once per series."""

    def __init__(self, policy: AlertPolicy, model: ModelInfo):
        self.policy, self.model = policy, model

    def __call__(self, series: Series, scored: Iterable[SliceScore], lost: Sequence[str] = ()) -> SeriesResult:
        return judge(series, scored, self.policy, self.model.domain, self.model.noise_limits, lost, self.model.contract.size)
