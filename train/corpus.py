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


def default_sources(n_phantoms: int = 24, real_degradations: int = 60, phantom_degradations: int = 24, held_out_real: str = "abdomen-pancreas") -> list[Source]:
    sources = [
        Source(name, "heldout" if name == held_out_real else "train", "real", 1000 + i, real_degradations, str(path))
        for i, (name, path) in enumerate(real_ct_slices().items())
    ]
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
        import pydicom  # pixel spacing is not part of SliceRef: read it here

        spacing = pydicom.dcmread(source.path, stop_before_pixels=True).get("PixelSpacing", [0.7, 0.7])
        return load_hu(ref), float(spacing[0]), False
    return phantoms.PHANTOMS[source.kind](rng), phantoms.PIXEL_MM, True


def build_source(source: Source) -> dict:
    rng = np.random.default_rng(source.seed)
    hu, pixel_mm, is_phantom = _source_image(source, rng)
    sim = SliceSimulator(hu, pixel_mm)
    base = hu
    if is_phantom:  # give the noise-free phantom the texture of a routine-dose scan first
        base = hu + sim.delta_hu(Degradation(1.0), rng, increment=False)
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


def load_split(corpus_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images float16 N x S x S, labels N, source index N) for one split."""
    index = json.loads((corpus_dir / "index.json").read_text())
    images, labels, groups = [], [], []
    for i, source in enumerate(s for s in index if s["split"] == split):
        with np.load(corpus_dir / f"{source['name']}.npz") as data:
            images.append(data["images"])
            labels.append(data["labels"])
            groups.append(np.full(len(data["labels"]), i))
    return np.concatenate(images), np.concatenate(labels), np.concatenate(groups)
