"""The LDCTIQAC challenge metric: |PLCC| + |SROCC| + |KROCC|."""

from __future__ import annotations

import numpy as np
from scipy import stats


def correlation_report(predicted, labels) -> dict[str, float]:
    """PLCC, SROCC, KROCC and their absolute sum ("overall") as floats."""
    p, y = np.asarray(predicted, float), np.asarray(labels, float)
    plcc = float(stats.pearsonr(p, y)[0])
    srocc = float(stats.spearmanr(p, y)[0])
    krocc = float(stats.kendalltau(p, y)[0])
    return {"plcc": plcc, "srocc": srocc, "krocc": krocc, "overall": abs(plcc) + abs(srocc) + abs(krocc), "n": int(len(p))}
