"""Parameter count and FLOPs of a registered variant at 512x512, measured without allocating it.

The model is built on torch's meta device and one forward pass runs under
torch.utils.flop_counter.FlopCounterMode, which counts every matrix multiply
and convolution (attention's Q.K^T and A.V included). FLOPs here are floating
point operations, two per multiply-accumulate; papers that quote "FLOPs" for
EfficientNet or Swin usually mean multiply-accumulates, half this figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from tfkt_edge.model.network import IMAGE_SIZE, MODELS, create_model


@dataclass(frozen=True)
class ModelCost:
    name: str
    params: int
    gflops: float  # per 512x512 slice, 2 x multiply-accumulates
    summary: str

    def as_dict(self) -> dict:
        return {"name": self.name, "params": self.params, "gflops": round(self.gflops, 3), "summary": self.summary}


def measure(name: str, size: int = IMAGE_SIZE) -> ModelCost:
    with torch.device("meta"):
        model = create_model(name).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.empty(1, 1, size, size))
    summary = (MODELS.get(name).__doc__ or "").strip().splitlines()[0]
    return ModelCost(name, sum(p.numel() for p in model.parameters()), counter.get_total_flops() / 1e9, summary)


def measure_all() -> list[ModelCost]:
    return [measure(name) for name in MODELS.names()]
