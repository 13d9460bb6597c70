"""The built-in CT corpus: real slices and phantoms degraded at graded severities.

Each source is split whole into train or held-out, so no anatomy is shared
between training and evaluation. Images are stored preprocessed (the runtime's
own `preprocess`) as float16, with their labels and degradation parameters.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.preprocess import LDCTIQAC, preprocess

from . import phantoms
from .ctsim import FULL_VIEWS, Degradation, SliceSimulator, label_from_noise
from .sources import real_ct_slices

SPARSE_VIEWS = (240, 180, 120, 90, 60, 45)


@dataclass(frozen=True)
class Source:
    name: str
    split: str
    kind: str  # "real" or a phantom family
    seed: int
    n_degradations: int
    path: str = ""
    zoom: float = 1.0  # real slices: field-of-view variants, resampled before simulation


REAL_ZOOMS = (1.0, 0.8, 1.25)


def default_sources(n_phantoms: int = 48, real_degradations: int = 40, phantom_degradations: int = 30, held_out_real: str = "skull-base") -> list[Source]:
    """Real slices (each at three fields of view) and phantoms, split whole by source."""
    sources = []
    for i, (name, path) in enumerate(real_ct_slices().items()):
        held_out = name == held_out_real
        for j, zoom in enumerate((1.0,) if held_out else REAL_ZOOMS):
            label = name if zoom == 1.0 else f"{name}-zoom{zoom:g}"
            sources.append(Source(label, "heldout" if held_out else "train", "real", 1000 + 10 * i + j,
                                  2 * real_degradations if held_out else real_degradations, str(path), zoom))
    for i in range(n_phantoms):
        family = "abdomen" if i % 3 else "head"
        split = "heldout" if i % 4 == 3 else "train"
        sources.append(Source(f"phantom-{family}-{i:02d}", split, family, 2000 + i, phantom_degradations))
    return sources


def sample_degradation(rng: np.random.Generator) -> Degradation:
    dose = 1.0 if rng.random() < 0.25 else float(np.exp(rng.uniform(np.log(0.02), 0.0)))
    views = FULL_VIEWS if rng.random() < 0.55 else int(rng.choice(SPARSE_VIEWS))
    return Degradation(dose, views)


def _source_image(source: Source, rng: np.random.Generator) -> tuple[np.ndarray, float, bool]:
    """(HU image, pixel size mm, is_phantom)."""
    if source.kind == "real":
        ref = scan([Path(source.path)]).series[0].slices[0]
        hu, spacing = load_hu(ref), ref.pixel_spacing or phantoms.PIXEL_MM
        if source.zoom != 1.0:
            hu, spacing = _zoom(hu, source.zoom), spacing / source.zoom
        return hu, spacing, False
    return phantoms.PHANTOMS[source.kind](rng), phantoms.PIXEL_MM, True


def _zoom(hu: np.ndarray, zoom: float) -> np.ndarray:
    """Magnify (zoom > 1, centre crop) or shrink (zoom < 1, padded with air), same matrix size."""
    from scipy.ndimage import zoom as resample

    n = hu.shape[0]
    scaled = resample(hu, zoom, order=1)
    m = scaled.shape[0]
    if m >= n:
        start = (m - n) // 2
        return scaled[start : start + n, start : start + n].astype(np.float32)
    out = np.full_like(hu, -1000.0)
    start = (n - m) // 2
    out[start : start + m, start : start + m] = scaled
    return out


def build_source(source: Source) -> dict:
    rng = np.random.default_rng(source.seed)
    hu, pixel_mm, is_phantom = _source_image(source, rng)
    sim = SliceSimulator(hu, pixel_mm)
    base = hu
    if is_phantom:
        # Give the noise-free phantom the texture of a routine-dose scan first; routine
        # protocols differ, so its tube current varies between half and twice the reference.
        native = Degradation(float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))))
        base = hu + sim.delta_hu(native, rng, increment=False)
    images, labels, doses, views, sigmas = [], [], [], [], []
    for _ in range(source.n_degradations):
        degradation = sample_degradation(rng)
        image, sigma = sim.degrade(degradation, rng, base=base)
        images.append(preprocess(image, LDCTIQAC).astype(np.float16))
        labels.append(label_from_noise(sigma))
        doses.append(degradation.dose)
        views.append(degradation.views)
        sigmas.append(sigma)
    return dict(images=np.stack(images), labels=np.array(labels, np.float32), dose=np.array(doses, np.float32),
                views=np.array(views, np.int32), sigma=np.array(sigmas, np.float32))


def build_corpus(out_dir: Path, sources: list[Source], workers: int = 2, progress=None) -> None:
    """Write one .npz per source plus an index.json describing every source."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for source, arrays in zip(sources, pool.map(build_source, sources)):
            np.savez(out_dir / f"{source.name}.npz", **arrays)
            if progress is not None:
                progress(source)
    index = [dict(source.__dict__) for source in sources]
    (out_dir / "index.json").write_text(json.dumps(index, indent=1))
