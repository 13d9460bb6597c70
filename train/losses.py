"""Training losses. Each takes (predicted, target, rank_weight) and returns a scalar tensor."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def mse(predicted: torch.Tensor, target: torch.Tensor, rank_weight: float = 0.0) -> torch.Tensor:
    return F.mse_loss(predicted, target)


def pairwise_rank(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over ordered pairs of how far the predicted gap falls short of the label gap.

    For every pair with target_i > target_j the model is asked for
    predicted_i - predicted_j >= target_i - target_j; a pair ranked the wrong way
    round, or separated too little, costs the shortfall. Correlation metrics
    (SROCC, KROCC) reward exactly this ordering; MSE alone does not.
    """
    gap_true = target[:, None] - target[None, :]
    gap_pred = predicted[:, None] - predicted[None, :]
    pairs = gap_true > 0
    if not bool(pairs.any()):
        return predicted.sum() * 0.0
    return F.relu(gap_true - gap_pred)[pairs].mean()


def mse_rank(predicted: torch.Tensor, target: torch.Tensor, rank_weight: float = 1.0) -> torch.Tensor:
    return F.mse_loss(predicted, target) + rank_weight * pairwise_rank(predicted, target)


LOSSES = {"mse": mse, "mse+rank": mse_rank}
