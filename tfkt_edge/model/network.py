"""TFKT hybrid CNN-transformer quality models, in plain torch.

Blocks first (EfficientNetV2's MBConv and Fused-MBConv, SwinV2's windowed
cosine attention), then the model, then the builder, then the registered
variants. Every variant is the same composition:

    CNN (EfficientNetV2 blocks) -> bridge -> SwinV2 stages -> quality head

`tfkt_v2` is the published TFKT V2 reference (Rifa et al., J. Med. Imaging 2025):
EfficientNetV2-L with a 1-channel stem, its classifier replaced by a linear bridge
Linear(1280 -> 4096) reshaped to a 1x64x64 map, a SwinV2-B on that map, and a
regression head (about 209 M parameters). It is the accuracy reference and the
speed baseline. The edge variants keep the blocks and the order but use a spatial
bridge: the CNN's 16x16 feature map is handed to the transformer as tokens
instead of being pooled into one vector first, which keeps where the noise and
streaks are and costs a fraction of the reference.

Every operator is a plain Conv/MatMul/Softmax/LayerNorm/elementwise op, so the
ONNX graph parses in TensorRT. Window masks and relative-position tables are
fixed at construction for the 512x512 input of the preprocessing contract.

It needs torch. Only the torch backend (once torch is known present), the TFKT V2 benchmark reference and the
training and export stages import it; the scanner-side runtime scores without it (tests/test_without_torch.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

try:
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError as exc:  # the scanner-side runtime never imports this module: it scores ONNX files without torch
    raise ImportError(f"{__name__} (the network code) needs PyTorch: pip install 'tfkt-edge[train]'; only the torch backend, "
                      "the TFKT V2 benchmark reference and the training and export stages use it") from exc

from tfkt_edge.registry import Registry

MODELS: Registry = Registry("model")
SCORE_MAX = 4.0
IMAGE_SIZE = 512


# --- CNN blocks (EfficientNetV2) -------------------------------------------------

class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample while training."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)


class ConvNormAct(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        padding = 0 if kernel == stride else (kernel - 1) // 2
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False),
                                   nn.BatchNorm2d(c_out, eps=1e-3)]
        if act:
            layers.append(nn.SiLU())
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(F.silu(self.fc1(x.mean(dim=(2, 3), keepdim=True))))
        return x * torch.sigmoid(scale)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, squeeze-excite, 1x1 project."""

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int, drop_path: float):
        super().__init__()
        hidden = c_in * expand
        layers: list[nn.Module] = [ConvNormAct(c_in, hidden, 1)] if expand != 1 else []
        layers += [ConvNormAct(hidden, hidden, kernel, stride, groups=hidden),
                   SqueezeExcite(hidden, max(1, c_in // 4)),
                   ConvNormAct(hidden, c_out, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + self.drop_path(out) if self.residual else out


class FusedMBConv(nn.Module):
    """The early-stage block: one full kxk expand conv, then a 1x1 project."""

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int, drop_path: float):
        super().__init__()
        self.block: nn.Module
        if expand == 1:
            self.block = ConvNormAct(c_in, c_out, kernel, stride)
        else:
            hidden = c_in * expand
            self.block = nn.Sequential(ConvNormAct(c_in, hidden, kernel, stride), ConvNormAct(hidden, c_out, 1, act=False))
        self.residual = stride == 1 and c_in == c_out
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + self.drop_path(out) if self.residual else out


@dataclass(frozen=True)
class StageSpec:
    """One CNN stage, as in EfficientNetV2's table: block, expansion, kernel, stride, channels out, layers."""

    fused: bool
    expand: int
    kernel: int
    stride: int
    channels: int
    layers: int


class EfficientNetV2(nn.Module):
    """Stem, stages of (Fused-)MBConv blocks, a final 1x1 conv; returns the feature map."""

    def __init__(self, stem: int, stem_kernel: int, stem_stride: int, stages: tuple[StageSpec, ...],
                 out_channels: int, drop_path: float):
        super().__init__()
        self.stem = ConvNormAct(1, stem, stem_kernel, stem_stride)
        total, index, c_in = sum(s.layers for s in stages), 0, stem
        blocks: list[nn.Module] = []
        for spec in stages:
            block = FusedMBConv if spec.fused else MBConv
            for i in range(spec.layers):
                blocks.append(block(c_in, spec.channels, spec.expand, spec.kernel, spec.stride if i == 0 else 1,
                                    drop_path * index / total))
                c_in, index = spec.channels, index + 1
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvNormAct(c_in, out_channels, 1)
        self.out_channels = out_channels
        self.reduction = stem_stride * math.prod(s.stride for s in stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


# --- Bridges ---------------------------------------------------------------------

class PooledLinearBridge(nn.Module):
    """TFKT V2's bridge: global-pool the CNN map, Linear(C -> S*S), reshape to a 1 x S x S map."""

    def __init__(self, channels: int, map_size: int):
        super().__init__()
        self.fc = nn.Linear(channels, map_size * map_size)
        self.map_size = map_size
        self.out_channels = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3))).view(-1, 1, self.map_size, self.map_size)

    def out_size(self, cnn_size: int) -> int:
        return self.map_size


class SpatialBridge(nn.Module):
    """The edge bridge: hand the CNN feature map on unchanged; SwinV2's 1x1 patch embed makes the tokens."""

    def __init__(self, channels: int):
        super().__init__()
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def out_size(self, cnn_size: int) -> int:
        return cnn_size


# --- Transformer blocks (SwinV2) -------------------------------------------------

def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, window*window, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """``F.normalize(x, dim=-1)`` by broadcasting: F.normalize exports as an Expand of the norms to the whole tensor
    before the division (four Expands of the attention's size in a batch)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


class WindowAttentionV2(nn.Module):
    """Scaled cosine attention with a log-spaced continuous relative position bias (SwinV2)."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.window = heads, window
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(heads, 1, 1)))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(), nn.Linear(512, heads, bias=False))
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)
        coords = torch.arange(-(window - 1), window, dtype=torch.float32)
        table = torch.stack(torch.meshgrid(coords, coords, indexing="ij"), dim=-1) / max(window - 1, 1) * 8
        table = torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)
        self.register_buffer("coords_table", table.reshape(-1, 2), persistent=False)
        grid = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (grid[:, :, None] - grid[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("position_index", (rel[..., 0] * (2 * window - 1) + rel[..., 1]).flatten(), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = _unit(q) @ _unit(k).transpose(-2, -1)
        attn = attn * torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
        position = self.cpb_mlp(self.coords_table)[self.position_index].view(n, n, self.heads).permute(2, 0, 1)
        attn = attn + 16 * torch.sigmoid(position).unsqueeze(0)
        if mask is not None:
            windows = mask.shape[0]
            attn = (attn.view(b // windows, windows, self.heads, n, n) + mask[None, :, None]).view(b, self.heads, n, n)
        out = (torch.softmax(attn, dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class SwinV2Block(nn.Module):
    """(Shifted-)window attention and an MLP, each residual with SwinV2's post-norm."""

    def __init__(self, dim: int, heads: int, resolution: int, window: int, shift: bool, mlp_ratio: float, drop_path: float):
        super().__init__()
        if resolution <= window:  # one window covers the map: no shifting, as in SwinV2
            window, shift = resolution, False
        self.window, self.shift = window, window // 2 if shift else 0
        self.attn = WindowAttentionV2(dim, heads, window)
        self.norm1 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.drop_path = DropPath(drop_path)
        self.register_buffer("mask", self._shift_mask(resolution) if self.shift else None, persistent=False)

    def _shift_mask(self, resolution: int) -> torch.Tensor:
        regions = torch.zeros(1, resolution, resolution, 1)
        cuts = (slice(0, -self.window), slice(-self.window, -self.shift), slice(-self.shift, None))
        label = 0
        for rows in cuts:
            for cols in cuts:
                regions[:, rows, cols, :] = label
                label += 1
        windows = window_partition(regions, self.window).squeeze(-1)
        different = windows[:, None, :] != windows[:, :, None]
        return different.float() * -100.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = x.shape
        shifted = torch.roll(x, (-self.shift, -self.shift), dims=(1, 2)) if self.shift else x
        attended = self.attn(window_partition(shifted, self.window), self.mask)
        attended = window_reverse(attended, self.window, h, w)
        if self.shift:
            attended = torch.roll(attended, (self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(self.norm1(attended))
        return x + self.drop_path(self.norm2(self.mlp(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping patch conv to tokens, channels last, LayerNorm."""

    def __init__(self, c_in: int, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(c_in, dim, patch, patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class PatchMergingV2(nn.Module):
    """2x2 neighbourhood to channels, Linear(4C -> 2C), then LayerNorm (SwinV2 order)."""

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.norm(self.reduction(x))


class SwinV2(nn.Module):
    """Patch embed, stages of SwinV2 blocks with patch merging between them, final norm, mean pool."""

    def __init__(self, c_in: int, map_size: int, patch: int, dim: int, depths: tuple[int, ...], heads: tuple[int, ...],
                 window: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.patch_embed = PatchEmbed(c_in, dim, patch)
        resolution, total, index = map_size // patch, sum(depths), 0
        layers: list[nn.Module] = []
        for stage, (depth, n_heads) in enumerate(zip(depths, heads)):
            for i in range(depth):
                layers.append(SwinV2Block(dim, n_heads, resolution, window, i % 2 == 1, mlp_ratio,
                                          drop_path * index / max(total - 1, 1)))
                index += 1
            if stage < len(depths) - 1:
                layers.append(PatchMergingV2(dim))
                dim, resolution = dim * 2, resolution // 2
        self.layers = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.layers(self.patch_embed(x))).mean(dim=(1, 2))


# --- The model -------------------------------------------------------------------

class HybridIQA(nn.Module):
    """CNN -> bridge -> transformer -> head; scores in [0, 4], higher is better."""

    def __init__(self, cnn: EfficientNetV2, bridge: nn.Module, transformer: SwinV2):
        super().__init__()
        self.cnn, self.bridge, self.transformer = cnn, bridge, transformer
        self.head = nn.Linear(transformer.out_dim, 1)
        self.embed_dim = transformer.out_dim

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 512, 512) image in [0, 1] -> (B, D) pooled quality features."""
        return self.transformer(self.bridge(self.cnn(x)))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D) features -> (B,) scores; 4*sigmoid keeps them on the 0-4 scale."""
        return SCORE_MAX * torch.sigmoid(self.head(features).squeeze(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@dataclass(frozen=True)
class HybridConfig:
    stem: int
    stages: tuple[StageSpec, ...]
    cnn_out: int
    dim: int
    depths: tuple[int, ...]
    heads: tuple[int, ...]
    window: int = 8
    stem_kernel: int = 3
    stem_stride: int = 2
    bridge_map: int | None = None  # None: spatial bridge; an int: pooled linear bridge to a map of that size
    patch: int = 1
    mlp_ratio: float = 4.0
    cnn_drop_path: float = 0.0
    swin_drop_path: float = 0.0


def build_hybrid(config: HybridConfig) -> HybridIQA:
    cnn = EfficientNetV2(config.stem, config.stem_kernel, config.stem_stride, config.stages, config.cnn_out,
                         config.cnn_drop_path)
    bridge: SpatialBridge | PooledLinearBridge
    if config.bridge_map is None:
        bridge = SpatialBridge(cnn.out_channels)
    else:
        bridge = PooledLinearBridge(cnn.out_channels, config.bridge_map)
    map_size = bridge.out_size(IMAGE_SIZE // cnn.reduction)
    transformer = SwinV2(bridge.out_channels, map_size, config.patch, config.dim, config.depths, config.heads,
                         config.window, config.mlp_ratio, config.swin_drop_path)
    return HybridIQA(cnn, bridge, transformer)


# --- Registered variants -----------------------------------------------------------

EFFICIENTNETV2_L = (
    StageSpec(True, 1, 3, 1, 32, 4), StageSpec(True, 4, 3, 2, 64, 7), StageSpec(True, 4, 3, 2, 96, 7),
    StageSpec(False, 4, 3, 2, 192, 10), StageSpec(False, 6, 3, 1, 224, 19), StageSpec(False, 6, 3, 2, 384, 25),
    StageSpec(False, 6, 3, 1, 640, 7),
)


@MODELS.register("tfkt_v2")
def tfkt_v2() -> HybridIQA:
    """The published TFKT V2: EfficientNetV2-L (1-channel) -> Linear(1280, 4096) as 1x64x64 -> SwinV2-B -> head."""
    return build_hybrid(HybridConfig(stem=32, stages=EFFICIENTNETV2_L, cnn_out=1280, bridge_map=64, patch=4, dim=128,
                                     depths=(2, 2, 18, 2), heads=(4, 8, 16, 32), window=8,
                                     cnn_drop_path=0.5, swin_drop_path=0.2))


@MODELS.register("tfkt_edge_s")
def tfkt_edge_s() -> HybridIQA:
    """The shipped default, sized for a 2-core CPU: stride-4 patchify stem, 16x16 spatial bridge, 2 SwinV2 stages."""
    stages = (StageSpec(True, 2, 3, 2, 32, 1), StageSpec(False, 4, 3, 2, 64, 2), StageSpec(False, 4, 3, 2, 96, 2))
    return build_hybrid(HybridConfig(stem=24, stem_kernel=4, stem_stride=4, stages=stages, cnn_out=128,
                                     dim=96, depths=(2, 2), heads=(3, 6), mlp_ratio=2.0))


@MODELS.register("tfkt_edge_m")
def tfkt_edge_m() -> HybridIQA:
    """A wider, deeper edge variant for consoles with a GPU."""
    stages = (StageSpec(True, 2, 3, 2, 48, 2), StageSpec(False, 4, 3, 2, 96, 3), StageSpec(False, 4, 3, 2, 160, 4))
    return build_hybrid(HybridConfig(stem=32, stem_kernel=4, stem_stride=4, stages=stages, cnn_out=256,
                                     dim=128, depths=(2, 4), heads=(4, 8), mlp_ratio=4.0, swin_drop_path=0.1))


def create_model(name: str) -> HybridIQA:
    """Build a registered variant by name; raises UnknownNameError with the choices."""
    return MODELS.get(name)()
