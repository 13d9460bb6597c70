"""The preprocessing and the per-slice statistics as graph operations, exported with the network.

A model exported with them (`tfkt-edge export onnx --stored-input`) takes what a DICOM file holds:

* ``stored``: the stored pixel values, int16, N x 1 x size x size (a slice of another size is windowed and
  resized by the runtime, `model.preprocess`, and handed over as whole HU with slope 1 and intercept 0);
* ``rescale``: N x 2, each slice's slope and intercept (its modality LUT);

and returns ``score`` (N) and ``stats`` (N x len(STATS_OUTPUT)): the verdict's statistics of each slice as
`verdict.noise.measure` and `verdict.domain.image_stats` define them, NaN where those give None. The numpy
functions stay the definition, for training and for models without these inputs; tests/test_in_graph.py
holds this graph to them on real CT. The streak index and the NPS mean frequency, reported only and taken
on some slices of a series (`pipeline.decode.TextureSampler`), stay in numpy, and so does the reading view
of a sharp kernel (`preprocess.reading_view`): a 7-tap blur of every slice in the graph doubled the model's
time (ONNX Runtime on the 2-core CPU), while sharp-kernel slices are few. The runtime hands such a slice over
as its reader's view in whole HU, with its statistics taken in numpy before the view.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tfkt_edge.export.onnx import OPSET, finish
from tfkt_edge.model.model_file import STATS_OUTPUT
from tfkt_edge.model.preprocess import PreprocessContract
from tfkt_edge.verdict import domain, noise


def _block_mean(x: torch.Tensor, block: int) -> torch.Tensor:
    return F.avg_pool2d(x, block, block)


def _median_of_first(ordered: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """The median of the first ``count`` values of each row of an ascending ``ordered`` (NaN for count 0)."""
    lo = torch.clamp(torch.div(count - 1, 2, rounding_mode="floor"), min=0)
    hi = torch.div(count, 2, rounding_mode="floor")
    hi = torch.minimum(hi, torch.full_like(hi, ordered.shape[1] - 1))
    middle = (ordered.gather(1, lo[:, None]) + ordered.gather(1, hi[:, None]))[:, 0] * 0.5
    return torch.where(count > 0, middle, torch.full_like(middle, math.nan))


def _inside_along(mask: torch.Tensor, dim: int) -> torch.Tensor:
    """True between the first and the last True of each line along ``dim`` (`domain._filled`)."""
    before = torch.cumsum(mask, dim) > 0
    after = torch.flip(torch.cumsum(torch.flip(mask, [dim]), dim), [dim]) > 0
    return before & after


class Statistics(nn.Module):
    """`noise.measure` and `domain.image_stats` (but the texture figures) of windowed slices N x 1 x S x S."""

    def __init__(self, contract: PreprocessContract, pool: int = domain.POOL):
        super().__init__()
        self.hu_min, self.span, self.pool = contract.hu_min, contract.hu_max - contract.hu_min, pool
        self.centre = (sum(noise.SOFT_HU) / 2 - self.hu_min) / self.span

    def noise(self, moments: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """`noise.measure` from the block moments (`moments`)."""
        pooled, mean, sq = moments
        n = pooled.shape[0]
        sd = torch.sqrt(torch.clamp(sq - mean * mean, min=0.0)).reshape(n, -1)
        hu = (self.hu_min + (mean + self.centre) * self.span).reshape(n, -1)
        soft = (hu > noise.SOFT_HU[0]) & (hu < noise.SOFT_HU[1])
        count = soft.sum(1)
        key = torch.where(soft, sd, torch.full_like(sd, math.inf))
        ordered, order = torch.sort(key, dim=1)
        flat = torch.div(count, 2, rounding_mode="floor")
        level = _median_of_first(ordered, flat)
        # The 2x2-pooled image's blocks of (BLOCK / 2)^2: their mean is the block's mean.
        pooled_var = _block_mean(pooled * pooled, noise.BLOCK // 2) - mean * mean
        pooled_sd = torch.sqrt(torch.clamp(pooled_var, min=0.0))
        ranked = pooled_sd.reshape(n, -1).gather(1, order)
        rank = torch.arange(ranked.shape[1], device=pooled.device)[None, :]
        kept = torch.where(rank < flat[:, None], ranked, torch.full_like(ranked, math.inf))
        texture = _median_of_first(torch.sort(kept, dim=1)[0], flat) / level
        enough = count >= noise.MIN_BLOCKS
        nan = torch.full_like(level, math.nan)
        positive = level > 0
        noise_hu = torch.where(enough, torch.where(positive, level * self.span, torch.zeros_like(level)), nan)
        return noise_hu, torch.where(enough & positive, texture, nan)

    def moments(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """About the middle of the soft-tissue range (float32 keeps a quiet slice's few HU of noise there): the
        2x2-pooled image, and the BLOCK x BLOCK means of the image and of its squares, taken from 2x2 means (two
        passes over the full image instead of four)."""
        shifted = image - self.centre
        pooled = _block_mean(shifted, 2)
        squares = _block_mean(shifted * shifted, 2)
        return pooled, _block_mean(pooled, noise.BLOCK // 2), _block_mean(squares, noise.BLOCK // 2)

    def tissue(self, image: torch.Tensor, pooled: torch.Tensor,
               mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(body fraction, tissue fraction, structure HU, water-equivalent diameter in input pixels)."""
        n = image.shape[0]
        if self.pool == noise.BLOCK:
            block = mean
        elif self.pool % 2 == 0:
            block = _block_mean(pooled, self.pool // 2)
        else:
            block = _block_mean(image, self.pool) - self.centre
        hu = (self.hu_min + (block + self.centre) * self.span)[:, 0]  # N x s x s
        above = (hu > domain.BODY_HU).float()
        body = _inside_along(above, 2) & _inside_along(above, 1)
        inside = body.float()
        cells = inside.sum((1, 2))
        side = hu.shape[-1]
        tissue = inside * ((hu > domain.TISSUE_HU[0]) & (hu < domain.TISSUE_HU[1])).float()
        tissue_count = tissue.sum((1, 2))
        some = torch.clamp(cells, min=1.0)
        mean_inside = (hu * inside).sum((1, 2)) / some
        tissue_mean = (hu * tissue).sum((1, 2)) / torch.clamp(tissue_count, min=1.0)
        tissue_var = (((hu - tissue_mean[:, None, None]) * tissue) ** 2).sum((1, 2)) / torch.clamp(tissue_count, min=1.0)
        structure = torch.where(tissue_count > 8, torch.sqrt(tissue_var), torch.zeros_like(tissue_var))
        edge = torch.cat([inside[:, 0], inside[:, -1], inside[:, :, 0], inside[:, :, -1]], 1).mean(1)
        area = cells * self.pool * self.pool
        water = 2.0 * torch.sqrt(torch.clamp(mean_inside / 1000.0 + 1.0, min=0.0) * area / math.pi)
        water = torch.where(edge <= domain.TRUNCATED_EDGE, water, torch.full_like(water, math.nan))
        empty = cells == 0
        zero = torch.zeros(n, device=image.device)
        return (torch.where(empty, zero, cells / (side * side)), torch.where(empty, zero, tissue_count / some),
                torch.where(empty, zero, structure), torch.where(empty, torch.full_like(water, math.nan), water))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        moments = self.moments(image)
        body, tissue, structure, water = self.tissue(image, moments[0], moments[1])
        noise_hu, texture = self.noise(moments)
        empty = body == 0  # `image_stats` of a slice without a body outline: no noise figures either
        nan = torch.full_like(noise_hu, math.nan)
        noise_hu, texture = torch.where(empty, nan, noise_hu), torch.where(empty, nan, texture)
        columns = {"noise_hu": noise_hu, "noise_texture": texture, "body_fraction": body, "tissue_fraction": tissue,
                   "structure_hu": structure, "water_diameter_px": water}
        return torch.stack([columns[name] for name in STATS_OUTPUT], 1)


class StoredInput(nn.Module):
    """The network behind the window (`preprocess.preprocess`) and beside the statistics of each slice."""

    def __init__(self, network: nn.Module, contract: PreprocessContract, pool: int = domain.POOL):
        super().__init__()
        self.network, self.contract, self.statistics = network, contract, Statistics(contract, pool)

    def window(self, stored: torch.Tensor, rescale: torch.Tensor) -> torch.Tensor:
        width = self.contract.hu_max - self.contract.hu_min
        slope = rescale[:, 0, None, None, None] / width
        offset = (rescale[:, 1, None, None, None] - self.contract.hu_min) / width
        return torch.clamp(stored.to(torch.float32) * slope + offset, 0.0, 1.0)

    def forward(self, stored: torch.Tensor, rescale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.window(stored, rescale)
        return self.network(image), self.statistics(image)


def export_stored(network: nn.Module, name: str, contract: PreprocessContract, card: dict, output: Path,
                  pool: int = domain.POOL) -> int:
    """Export ``network`` behind `StoredInput` to ``output`` with the contract and card in its metadata (dynamic
    batch); return its node count. Not for TensorRT, which has no int16 input: its engines are built from the
    image-input export (`export.onnx.export_onnx`)."""
    import warnings

    import onnx

    from tfkt_edge.model.model_file import OUTPUT_NAME, STATS_NAME, STORED_INPUTS

    wrapped = StoredInput(network.eval(), contract, pool).eval()
    size = contract.size
    example = (torch.randint(-1024, 2000, (2, 1, size, size), dtype=torch.int16), torch.tensor([[1.0, -1024.0]] * 2))
    names = [*STORED_INPUTS, OUTPUT_NAME, STATS_NAME]
    output.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, example, str(output), input_names=list(STORED_INPUTS),
                          output_names=[OUTPUT_NAME, STATS_NAME], dynamic_axes={k: {0: "batch"} for k in names},
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    return len(finish(onnx.load(str(output)), output, contract, card, name).graph.node)


def stored_batch(paths: list[Path], contract: PreprocessContract) -> tuple[np.ndarray, np.ndarray, list]:
    """(stored N x 1 x S x S int16, rescale N x 2, the SliceRefs) of the soft-kernel contract-size slices of
    ``paths``, as the runtime hands them to a stored-input model (`pipeline.stored`)."""
    from tfkt_edge.dicom import scan
    from tfkt_edge.pipeline.stored import as_stored

    refs = [s for series in scan(paths).series for s in series.slices]
    rows = [(ref, as_stored(ref, contract)) for ref in refs]
    rows = [(ref, x) for ref, x in rows if x is not None]
    return (np.stack([x[0] for _, x in rows])[:, None], np.array([x[1] for _, x in rows], dtype=np.float32),
            [ref for ref, _ in rows])


def stored_parity(network: nn.Module, onnx_path: Path, paths: list[Path], contract: PreprocessContract,
                  pool: int = domain.POOL) -> dict[str, float]:
    """Largest |torch - ONNX Runtime| of the score and relative difference of each statistic on real CT."""
    import onnxruntime as ort

    from tfkt_edge.model.model_file import STORED_INPUTS

    stored, rescale, _ = stored_batch(paths, contract)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        reference = [t.numpy() for t in StoredInput(network.eval(), contract, pool).eval()(
            torch.from_numpy(stored), torch.from_numpy(rescale))]
    actual = session.run(None, dict(zip(STORED_INPUTS, (stored, rescale))))
    differences = {"score": float(np.max(np.abs(reference[0] - actual[0])))}
    for k, name in enumerate(STATS_OUTPUT):
        a, b = reference[1][:, k], actual[1][:, k]
        both = np.isfinite(a) & np.isfinite(b)
        if not np.array_equal(np.isfinite(a), np.isfinite(b)):
            differences[name] = math.inf
            continue
        differences[name] = float(np.max(np.abs(a[both] - b[both]) / np.maximum(np.abs(a[both]), 1e-6))) if both.any() else 0.0
    return differences


STATS_LIMITS = {"noise_hu": 1e-2, "noise_texture": 2e-2}  # relative; every other statistic 1e-4
SCORE_LIMIT = 1e-3


def write_twin(checkpoint: Path, image_model: Path, output: Path, data: list[Path]) -> dict[str, float]:
    """Write the stored-input twin of ``image_model`` (its card, the weights of ``checkpoint``) and check it
    against torch on the real CT under ``data``; return the differences (ExportError above the limits)."""
    import onnx

    from tfkt_edge.errors import ExportError
    from tfkt_edge.model.checkpoint import load_checkpoint
    from tfkt_edge.model.model_file import read_metadata

    meta = {p.key: p.value for p in onnx.load(str(image_model), load_external_data=False).metadata_props}
    info = read_metadata(image_model, meta)
    network, saved = load_checkpoint(checkpoint)
    export_stored(network, saved["model"], info.contract, info.card, output, info.stats_pool)
    differences = stored_parity(network, output, data, info.contract, info.stats_pool)
    worst = {k: v for k, v in differences.items() if v > (SCORE_LIMIT if k == "score" else STATS_LIMITS.get(k, 1e-4))}
    if worst:
        raise ExportError(f"{output}: ONNX Runtime differs from torch: {worst}")
    return differences


def main(argv: list[str] | None = None) -> int:
    """python -m tfkt_edge.export.in_graph [--checkpoint PT] [--image-model ONNX] [--output ONNX] [--data DIR]"""
    import argparse

    from tfkt_edge.model.model_file import ASSETS, DEFAULT_MODEL, STORED_MODEL

    parser = argparse.ArgumentParser(description="Write the stored-input twin of an image-input model.")
    parser.add_argument("--checkpoint", type=Path, default=ASSETS / "tfkt_edge_s.pt")
    parser.add_argument("--image-model", type=Path, default=DEFAULT_MODEL, help="its card travels with the twin")
    parser.add_argument("--output", type=Path, default=STORED_MODEL)
    parser.add_argument("--data", type=Path, action="append", default=None,
                        help="real CT to check parity on (default: the bundled examples)")
    args = parser.parse_args(argv)
    from tfkt_edge.examples import EXAMPLES

    differences = write_twin(args.checkpoint, args.image_model, args.output, args.data or [EXAMPLES])
    print(json.dumps({"output": str(args.output), "max_difference": differences}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
