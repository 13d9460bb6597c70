"""The challenge metric against scipy.stats on known inputs."""

from __future__ import annotations

import numpy as np
import pytest

from tfkt_edge.evaluation.metrics import correlation_report, krocc, plcc, rankdata, srocc

stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_figures_match_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = np.round(rng.random(300) * 4 * 5) / 5  # LDCTIQAC-style 0.2 steps: many ties
    predicted = np.round(labels + rng.normal(0, 0.6, 300), 1)
    report = correlation_report(predicted, labels)
    assert report["plcc"] == pytest.approx(stats.pearsonr(predicted, labels)[0], abs=1e-12)
    assert report["srocc"] == pytest.approx(stats.spearmanr(predicted, labels)[0], abs=1e-12)
    assert report["krocc"] == pytest.approx(stats.kendalltau(predicted, labels)[0], abs=1e-12)
    assert krocc(predicted, labels, block=7) == pytest.approx(report["krocc"], abs=1e-12)
    assert report["overall"] == pytest.approx(abs(report["plcc"]) + abs(report["srocc"]) + abs(report["krocc"]))
    np.testing.assert_allclose(rankdata(labels), stats.rankdata(labels))


def test_known_values():
    assert correlation_report([1, 2, 3, 4], [0.5, 1, 2, 3.5])["overall"] == pytest.approx(
        stats.pearsonr([1, 2, 3, 4], [0.5, 1, 2, 3.5])[0] + 2.0)
    assert srocc([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert krocc([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3)
    assert np.isnan(plcc([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        correlation_report([1.0], [2.0])
