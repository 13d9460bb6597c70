"""The LDCTIQAC 2023 challenge metric, in numpy: |PLCC| + |SROCC| + |KROCC|.

Written without scipy so the runtime's `evaluate` needs nothing beyond numpy;
the tests check every figure against scipy.stats (pearsonr, spearmanr,
kendalltau with its default tau-b, which handles ties).
"""

from __future__ import annotations

import numpy as np


def plcc(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    xc, yc = x - x.mean(), y - y.mean()
    denominator = np.sqrt((xc * xc).sum() * (yc * yc).sum())
    return float((xc * yc).sum() / denominator) if denominator > 0 else float("nan")


def rankdata(values) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank."""
    values = np.asarray(values, float)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return ranks


def srocc(x, y) -> float:
    return plcc(rankdata(x), rankdata(y))


def krocc(x, y, block: int = 2048) -> float:
    """Kendall's tau-b, over all pairs in blocks so memory stays bounded."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    concordance = ties_x = ties_y = 0.0
    n = len(x)
    for start in range(0, n, block):
        dx = np.sign(x[start : start + block, None] - x[None, :])
        dy = np.sign(y[start : start + block, None] - y[None, :])
        concordance += float((dx * dy).sum())
        ties_x += float((dx == 0).sum()) - min(block, n - start)  # drop the diagonal
        ties_y += float((dy == 0).sum()) - min(block, n - start)
    pairs = n * (n - 1)
    denominator = np.sqrt((pairs - ties_x) * (pairs - ties_y))
    return float(concordance / denominator) if denominator > 0 else float("nan")


def correlation_report(predicted, labels) -> dict[str, float]:
    """PLCC, SROCC, KROCC, their absolute sum ("overall") and n."""
    p, y = np.asarray(predicted, float), np.asarray(labels, float)
    if len(p) != len(y) or len(p) < 2:
        raise ValueError(f"need two equally long series of at least 2 values, got {len(p)} and {len(y)}")
    figures = {"plcc": plcc(p, y), "srocc": srocc(p, y), "krocc": krocc(p, y)}
    figures["overall"] = sum(abs(v) for v in figures.values())
    return {**figures, "n": len(p)}
