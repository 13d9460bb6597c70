"""The built-in CT corpus: real multi-vendor clinical slices degraded at graded severities.

Sources are the clinical slices of the shared `realct` folder (GE, Siemens,
Toshiba, Philips; soft to sharp kernels; 0.5-5 mm) and the slices shipped by
pydicom and pydicom-data, split whole by patient group (`realct.HELDOUT_GROUPS`).
Each training slice is also reconstructed with a sharper and a smoother kernel
(`ctnoise.kernel_variants`): all three are routine-dose images, labelled 4.
Dose-reduction noise is inserted with each image's own noise texture and at the
level physics gives relative to its own noise; sparse-view streaks come from
the sinogram simulator (`ctsim`). Held-out slices get a fixed dose ladder.
Images are stored preprocessed (the runtime's own `preprocess`) as float16.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfkt_edge.dicom import load_hu, scan
from tfkt_edge.model.preprocess import LDCTIQAC, pad_square, preprocess, reading_view
from tfkt_edge.train.ctnoise import (
    SHARP_WINDOW,
    SOFT_WINDOW,
    KernelVariant,
    TexturedSimulator,
    kernel_variants,
    label_image,
    native_noise,
    noise_kept,
    reading_window,
    smoothing_penalty,
)
from tfkt_edge.train.ctsim import FULL_VIEWS, Degradation
from tfkt_edge.train.realct import training_slices
from tfkt_edge.verdict.domain import kernel_class
from tfkt_edge.verdict.noise import region_of

SPARSE_VIEWS = (240, 180, 120, 90, 60, 45)
LADDER = (1.0, 0.5, 0.25, 0.1, 0.05, 0.02)
HELDOUT_SPARSE = (180, 90)
NOISE_DRAWS = 3
DEFAULT_PIXEL_MM = 0.7


@dataclass(frozen=True)
class Source:
    name: str
    split: str
    kind: str  # "real"
    seed: int
    n_degradations: int
    path: str = ""
    group: str = ""
    kernel: str = ""
    manufacturer: str = ""
    body_part: str = ""


def default_sources(n_degradations: int = 14) -> list[Source]:
    """One source per real clinical slice, named by its patient group and file."""
    sources = []
    for i, s in enumerate(training_slices()):
        name = s.group if s.group.endswith(".dcm") or s.group.startswith("pydicom/") else f"{s.group}/{s.path.parent.name}/{s.path.stem}"
        if s.group == "totalsegmentator":
            name = f"totalsegmentator/{s.path.stem[-12:]}"
        sources.append(Source(name.replace("/", "__"), s.split, "real", 1000 + i, n_degradations, str(s.path),
                              group=s.group, kernel=s.kernel, manufacturer=s.manufacturer, body_part=s.body_part))
    return sources


def sample_degradation(rng: np.random.Generator) -> Degradation:
    dose = 1.0 if rng.random() < 0.2 else float(np.exp(rng.uniform(np.log(0.02), 0.0)))
    views = FULL_VIEWS if rng.random() < 0.6 else int(rng.choice(SPARSE_VIEWS))
    return Degradation(dose, views)


def _source_image(source: Source) -> tuple[np.ndarray, float]:
    """(HU image padded square with air, pixel size mm)."""
    ref = scan([Path(source.path)]).series[0].slices[0]
    return pad_square(load_hu(ref), -1000.0), ref.pixel_spacing or DEFAULT_PIXEL_MM


def _plan(source: Source, rng: np.random.Generator) -> list[Degradation]:
    if source.split == "heldout":
        return [Degradation(d) for d in LADDER] + [Degradation(1.0, v) for v in HELDOUT_SPARSE]
    return [Degradation(1.0)] + [sample_degradation(rng) for _ in range(source.n_degradations)]


def build_source(source: Source) -> dict:
    """Every kernel variant of one slice at every planned degradation, with labels and parameters."""
    rng = np.random.default_rng(source.seed)
    hu, pixel_mm = _source_image(source)
    variants = kernel_variants(rng) if source.split == "train" else (KernelVariant("native"),)
    plan = _plan(source, rng)
    out: dict[str, list] = {k: [] for k in ("images", "labels", "dose", "views", "variant", "native_sigma", "added_rms")}
    simulators: dict[float, TexturedSimulator] = {}
    native_class = kernel_class(source.kernel)
    native_sigma = native_noise(hu).sigma
    head = region_of(source.body_part) == "head"
    for v, variant in enumerate(variants):
        at_fov = variant.at_fov(hu)
        denoise = variant.name == "denoise"  # applied to each degraded copy, as a denoiser would be
        image = at_fov if denoise else variant.reconstruct(at_fov)
        window = reading_window(native_class, head)
        if variant.zoom not in simulators:  # streaks follow the anatomy: one sinogram per field of view
            simulators[variant.zoom] = TexturedSimulator(at_fov, pixel_mm / variant.zoom, rng, NOISE_DRAWS)
        sim = simulators[variant.zoom]
        prepared = sim.prepare(image)
        if variant.name == "sharp":  # read at a window widened by its noise gain: as noisy to the eye as the original
            gain = prepared[0].sigma / max(native_sigma, 1e-6)
            window *= float(np.clip(gain, 1.0, SHARP_WINDOW / SOFT_WINDOW))
        for k, degradation in enumerate(plan):
            degraded, noise, streaks, rms = sim.degrade_parts(image, prepared, degradation.dose, degradation.views, k)
            if denoise:
                kept = noise_kept(variant, prepared[1][k % len(prepared[1])])
                degraded = variant.reconstruct(degraded)
                label = label_image(kept * noise, kept * streaks, window, smoothing_penalty(1.0, kept))
            else:
                label = label_image(noise, streaks, window)
            # The reader's view of a sharp-kernel slice, as the runtime hands it to the model.
            out["images"].append(reading_view(preprocess(degraded, LDCTIQAC), native_class, head).astype(np.float16))
            out["labels"].append(label)
            out["dose"].append(degradation.dose)
            out["views"].append(degradation.views)
            out["variant"].append(v)
            out["native_sigma"].append(prepared[0].sigma)
            out["added_rms"].append(rms)
    return dict(images=np.stack(out["images"]), labels=np.array(out["labels"], np.float32),
                dose=np.array(out["dose"], np.float32), views=np.array(out["views"], np.int32),
                variant=np.array(out["variant"], np.int8), native_sigma=np.array(out["native_sigma"], np.float32),
                added_rms=np.array(out["added_rms"], np.float32),
                variant_names=np.array([f"{x.name}:{x.strength:g}:zoom{x.zoom:.2f}" for x in variants]))


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
