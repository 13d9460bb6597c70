"""TFKT-style hybrid CNN-transformer quality models, in plain torch.

Blocks first, then the model, then the builder, then the registered variants.
The hybrid is built by composition: a convolutional backbone turns the 512x512
slice into a coarse feature map (the CNN part of TFKT learns local texture:
noise grain, streaks); a linear bridge projects it to tokens; a transformer
relates regions across the whole slice; a head regresses one score in [0, 4].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tfkt_edge.registry import Registry

MODELS: Registry = Registry("model")
SCORE_MAX = 4.0


class ConvNormAct(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        padding = 0 if kernel == stride else kernel // 2
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        if act:
            layers.append(nn.GELU())
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """Depthwise 3x3 then a pointwise expand/project pair, with a residual."""

    def __init__(self, channels: int, expansion: int = 2):
        super().__init__()
        hidden = channels * expansion
        self.body = nn.Sequential(
            ConvNormAct(channels, channels, 3, groups=channels),
            ConvNormAct(channels, hidden, 1),
            ConvNormAct(hidden, channels, 1, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ConvBackbone(nn.Module):
    """Patchify stem, then stages of inverted residuals joined by strided convs."""

    def __init__(self, widths: tuple[int, ...], depths: tuple[int, ...], stem_stride: int = 4):
        super().__init__()
        layers: list[nn.Module] = [ConvNormAct(1, widths[0], stem_stride, stem_stride)]
        for i, (width, depth) in enumerate(zip(widths, depths)):
            if i > 0:
                layers.append(ConvNormAct(widths[i - 1], width, 2, 2))
            layers.extend(InvertedResidual(width) for _ in range(depth))
        self.body = nn.Sequential(*layers)
        self.out_channels = widths[-1]
        self.reduction = stem_stride * 2 ** (len(widths) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Attention(nn.Module):
    """Multi-head self-attention written out, so the ONNX graph is plain MatMul/Softmax."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class HybridIQA(nn.Module):
    """CNN backbone -> linear bridge to tokens -> transformer -> quality head.

    Positions enter through a depthwise convolution on the token grid (a
    conditional position encoding), so the model is not tied to one input size
    and training on crops is possible.
    """

    def __init__(self, backbone: ConvBackbone, embed_dim: int, depth: int, heads: int, mlp_ratio: float = 2.0):
        super().__init__()
        self.backbone = backbone
        self.bridge = nn.Conv2d(backbone.out_channels, embed_dim, 2, 2)
        self.pos = nn.Conv2d(embed_dim, embed_dim, 3, padding=1, groups=embed_dim)
        self.blocks = nn.Sequential(*(TransformerBlock(embed_dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, 1)
        self.embed_dim = embed_dim

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) image in [0, 1] -> (B, D) pooled quality features."""
        grid = self.bridge(self.backbone(x))
        grid = grid + self.pos(grid)
        tokens = self.blocks(grid.flatten(2).transpose(1, 2))
        return self.norm(tokens).mean(dim=1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D) features -> (B,) scores in [0, 4], higher is better."""
        return SCORE_MAX * torch.sigmoid(self.head(features).squeeze(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@dataclass(frozen=True)
class HybridConfig:
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    embed_dim: int
    depth: int
    heads: int
    mlp_ratio: float = 2.0
    stem_stride: int = 4


def build_hybrid(config: HybridConfig) -> HybridIQA:
    backbone = ConvBackbone(config.widths, config.depths, config.stem_stride)
    return HybridIQA(backbone, config.embed_dim, config.depth, config.heads, config.mlp_ratio)


@MODELS.register("tfkt_edge_s")
def tfkt_edge_s() -> HybridIQA:
    """The shipped default: 0.43 M parameters, 0.63 GFLOPs at 512x512, sized for a 2-core CPU."""
    return build_hybrid(HybridConfig(widths=(24, 48, 96), depths=(1, 1, 2), embed_dim=128, depth=2, heads=4))


@MODELS.register("tfkt_edge_m")
def tfkt_edge_m() -> HybridIQA:
    """A wider, deeper edge variant for consoles with a GPU."""
    return build_hybrid(HybridConfig(widths=(32, 64, 128), depths=(1, 2, 3), embed_dim=192, depth=4, heads=6))


def create_model(name: str) -> HybridIQA:
    """Build a registered variant by name; raises UnknownNameError with the choices."""
    return MODELS.get(name)()
