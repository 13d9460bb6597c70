"""Real CT slices for the checks that follow an export (parity, FP16 ranges)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfkt_edge.errors import TfktEdgeError
from tfkt_edge.model.preprocess import PreprocessContract, preprocess


def real_ct_slices(contract: PreprocessContract, paths: list[Path] | None = None, limit: int = 64) -> np.ndarray:
    """Preprocessed slices (N x S x S) from DICOM ``paths``; default: the bundled clinical and degraded examples.

    Raises:
        TfktEdgeError: no CT slice could be read under ``paths``.
    """
    from tfkt_edge.dicom import load_hu, scan
    from tfkt_edge.examples import EXAMPLES

    found = scan(paths or [EXAMPLES])
    refs = [s for series in found.series for s in series.slices]
    if len(refs) > limit:  # spread the sample over the whole set
        refs = [refs[i] for i in np.linspace(0, len(refs) - 1, limit).round().astype(int)]
    if not refs:
        raise TfktEdgeError(f"no CT slices in {', '.join(map(str, paths or [EXAMPLES]))}")
    return np.stack([preprocess(load_hu(ref), contract) for ref in refs])
