"""The one preprocessing function shared by training and the runtime.

A slice in Hounsfield units becomes a float32 image in [0, 1] of the model's
size, following the LDCTIQAC 2023 convention (a linear window of -1000..+400 HU),
so a model fine-tuned on the challenge's TIFFs runs unchanged on DICOM.

Rule for images that are not size x size: pad to a square with air (centred),
then resample with a separable triangle (bilinear, antialiased when shrinking)
filter. Padding first keeps the aspect ratio; resampling keeps the anatomy
filling the field of view as the model saw it in training.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

METADATA_KEY = "tfkt_edge.preprocess"  # the key in ONNX metadata_props and engine sidecars: fixed, whatever the module is called
RESIZE_RULE = "pad-to-square-with-air-then-bilinear"
SHARP_VIEW = round(350.0 / 1500.0, 4)
SHARP_VIEW_HEAD = round(350.0 / 2000.0, 4)


@dataclass(frozen=True)
class PreprocessContract:
    """How HU slices become model input; travels inside every model file."""

    hu_min: float = -1000.0
    hu_max: float = 400.0
    size: int = 512
    resize: str = RESIZE_RULE
    # The reading view of a sharp kernel (`reading_view`): its fine-scale residual (the image less a Gaussian
    # of `sharp_sigma` pixels) is scaled by the soft-tissue reading window over the sharp one: 350 / 1500 (a
    # lung or bone window), 350 / 2000 for a head (a bone window). 1.0: no view (model files up to 0.3.x).
    sharp_view: float = SHARP_VIEW
    sharp_view_head: float = SHARP_VIEW_HEAD
    sharp_sigma: float = 1.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PreprocessContract:
        fields = json.loads(text)
        if "sharp_view" not in fields:  # written before the reading view: the model was trained without it
            fields = {**fields, "sharp_view": 1.0, "sharp_view_head": 1.0}
        contract = cls(**fields)
        if contract.resize != RESIZE_RULE:
            raise ValueError(f"unknown resize rule {contract.resize!r}")
        views = (contract.sharp_view, contract.sharp_view_head)
        if not contract.hu_max > contract.hu_min or contract.size < 8 or not all(0.0 < v <= 1.0 for v in views) \
                or not 0.0 < contract.sharp_sigma <= 8.0:
            raise ValueError(f"invalid preprocessing contract {fields}")
        return contract


LDCTIQAC = PreprocessContract()


@lru_cache(maxsize=16)
def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Rows of triangle-filter weights mapping n_in samples to n_out (half-pixel centres)."""
    scale = n_in / n_out
    support = max(scale, 1.0)  # widen the kernel when shrinking: antialiasing
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    taps = np.arange(n_in)
    weights = np.clip(1.0 - np.abs(taps[None, :] - centres[:, None]) / support, 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights.astype(np.float32)


@lru_cache(maxsize=16)
def _resample_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """`_resample_matrix` as its non-zero band: for each output sample the input samples it weighs (n_out x
    width indices, the band's last index repeated past its end) and their weights (zero past the end)."""
    matrix = _resample_matrix(n_in, n_out)
    weighed = matrix > 0
    first = weighed.argmax(axis=1)
    last = n_in - 1 - weighed[:, ::-1].argmax(axis=1)
    taps = first[:, None] + np.arange(int((last - first).max()) + 1)
    index = np.minimum(taps, last[:, None])
    weights = np.where(taps <= last[:, None], np.take_along_axis(matrix, index, axis=1), np.float32(0.0))
    return index, weights.astype(np.float32)


def _resample(image: np.ndarray, size: int) -> np.ndarray:
    """A square image resampled to size x size by the triangle filter, rows then columns: the matrix product
    ``matrix @ image @ matrix.T`` over the band alone (a 616-pixel slice to 512: 0.7 ms against 5.5 for the full
    product on one core of the 2-core CPU; the same values to float32 rounding)."""
    index, weights = _resample_taps(image.shape[0], size)
    rows = weights[:, 0, None] * image[index[:, 0]]
    for k in range(1, index.shape[1]):
        rows += weights[:, k, None] * image[index[:, k]]
    out = rows[:, index[:, 0]] * weights[:, 0]
    for k in range(1, index.shape[1]):
        out += rows[:, index[:, k]] * weights[:, k]
    return out


def pad_square(image: np.ndarray, fill: float) -> np.ndarray:
    rows, cols = image.shape
    side = max(rows, cols)
    if rows == cols:
        return image
    out = np.full((side, side), fill, dtype=image.dtype)
    top, left = (side - rows) // 2, (side - cols) // 2
    out[top : top + rows, left : left + cols] = image
    return out


def preprocess(hu: np.ndarray, contract: PreprocessContract = LDCTIQAC, slope: float = 1.0, intercept: float = 0.0) -> np.ndarray:
    """Window a 2-D HU slice to [0, 1] and bring it to contract.size squared.

    Args:
        hu: 2-D array of Hounsfield units (any numeric dtype), or a slice's stored values when
            ``slope`` and ``intercept`` (its modality LUT) are given: the LUT and the window are then
            one multiply-add, with no HU image in between.
        contract: the model's preprocessing contract.

    Returns:
        float32 array of shape (contract.size, contract.size), values in [0, 1].

    Raises:
        ValueError: if the input is not a 2-D image.
    """
    if hu.ndim != 2 or min(hu.shape) < 2:
        raise ValueError(f"expected a 2-D slice, got shape {hu.shape}")
    width = contract.hu_max - contract.hu_min
    scaled = np.multiply(hu, np.float32(slope / width), dtype=np.float32)
    scaled += np.float32((intercept - contract.hu_min) / width)
    np.clip(scaled, 0.0, 1.0, out=scaled)
    return fit_to_size(scaled, contract)


def whole_hu(image: np.ndarray, contract: PreprocessContract = LDCTIQAC) -> np.ndarray:
    """A model input in [0, 1] as whole HU of the window (int16): what a model that windows stored pixels itself
    (export/in_graph.py) takes, with slope 1 and intercept 0, for a slice already preprocessed (steps of 1 HU:
    1/1400 of the LDCTIQAC window)."""
    hu = np.rint(np.asarray(image, dtype=np.float32) * np.float32(contract.hu_max - contract.hu_min) + np.float32(contract.hu_min))
    return hu.astype(np.int16)


def whole_hu_batch(batch: np.ndarray, contract: PreprocessContract = LDCTIQAC) -> tuple[np.ndarray, np.ndarray]:
    """A batch of model inputs (N x 1 x S x S, in [0, 1]) as a stored-input model takes it: the pixels as
    `whole_hu`, and each slice's slope and intercept, 1 and 0 (N x 2)."""
    return whole_hu(batch, contract), np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (len(batch), 1))


def fit_to_size(image: np.ndarray, contract: PreprocessContract = LDCTIQAC) -> np.ndarray:
    """Apply the contract's resize rule to an image already in [0, 1] (the windowed slice, or a
    grey natural photograph during pre-training) and return it as contiguous float32."""
    image = np.asarray(image, dtype=np.float32)
    if image.shape != (contract.size, contract.size):
        image = _resample(pad_square(image, 0.0), contract.size)
    return np.ascontiguousarray(image, dtype=np.float32)


def reading_view(image: np.ndarray, kernel_class: str, head: bool = False,
                 contract: PreprocessContract = LDCTIQAC) -> np.ndarray:
    """A preprocessed slice as its reader sees it, for the model: a sharp-kernel slice is read at a lung or
    bone window, where its fine-grained noise looks ``1 / contract.sharp_view`` times smaller than at the
    soft-tissue window the labels are defined at (``sharp_view_head`` for a head: a bone window), so its
    fine-scale residual is scaled by that factor. Soft and unnamed kernels (and contracts without a view)
    pass unchanged. The kernel class comes from the header (`domain.kernel_class`), the region from
    BodyPartExamined (`noise.region_of`); the physics statistics are taken before this view."""
    view = contract.sharp_view_head if head else contract.sharp_view
    if kernel_class != "sharp" or view >= 1.0:
        return image
    low = _gaussian(image, contract.sharp_sigma)
    out = low + (image - low) * np.float32(view)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


def _gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """A separable Gaussian blur (edges repeated), numpy only: the runtime needs no scipy."""
    radius = max(1, int(np.ceil(3.0 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    taps /= taps.sum()
    out = np.asarray(image, dtype=np.float32)
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        n = out.shape[axis]
        out = sum(w * (padded[k : k + n] if axis == 0 else padded[:, k : k + n]) for k, w in enumerate(taps))
    return out
