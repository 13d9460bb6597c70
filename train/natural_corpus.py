"""The offline natural-image quality corpus: scikit-image's bundled photographs,
degraded with KADID-10k-style distortion types at five levels.

Label: a full-reference measure against the pristine photograph, computed on
exactly what the model sees (the grey 512x512 image after the shared resize
rule): ``4 * clip(SSIM, 0, 1)`` with SSIM of Wang et al. 2004 (Gaussian window,
sigma 1.5, data range 1; scikit-image's ``structural_similarity``). That puts
the corpus on the same 0-4 range as the rescaled MOS of the real datasets
(`iqa_datasets.py`) and the CT labels. These are not human opinion scores.

Only files that ship inside the scikit-image wheel are used; nothing is
downloaded.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from tfkt_edge.errors import InputError
from tfkt_edge.model.preprocess import LDCTIQAC, fit_to_size
from tfkt_edge.train.distortions import DISTORTIONS, DistortionType
from tfkt_edge.train.imagesets import ImageSet

PHOTOS = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "coffee.png", "coins.png",
          "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png",
          "page.png", "retina.jpg", "rocket.jpg")
LEVELS = (1, 2, 3, 4, 5)
LABEL_RULE = "4 * clip(SSIM(distorted, pristine), 0, 1) on the grey 512x512 model input (Gaussian SSIM, sigma 1.5)"


def photo_path(name: str) -> Path:
    from skimage import data

    return Path(data.__file__).parent / name


def load_rgb(path: Path) -> np.ndarray:
    """Any photograph as RGB float in [0, 1]; grey ones are repeated on three channels.

    Raises:
        InputError: the file is not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None


def load_photo(name: str) -> np.ndarray:
    """One of the bundled scikit-image photographs, RGB float in [0, 1]."""
    return load_rgb(photo_path(name))


def to_model_input(rgb: np.ndarray) -> np.ndarray:
    """RGB [0, 1] -> grey, clipped, through the contract's resize rule to 512x512 float32."""
    grey = np.clip(rgb, 0.0, 1.0) @ np.array([0.299, 0.587, 0.114])
    return fit_to_size(grey, LDCTIQAC)


def ssim_label(distorted: np.ndarray, pristine: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    ssim = structural_similarity(distorted, pristine, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)
    return float(4.0 * np.clip(ssim, 0.0, 1.0))


def distort(photo: np.ndarray, kind: DistortionType, level: int, seed: int, index: int) -> np.ndarray:
    rng = np.random.default_rng([seed, index, kind.kadid_id, level])
    return kind.apply(photo, level, rng)


def _build_photo(args: tuple[int, str, int, tuple[DistortionType, ...]]) -> dict:
    index, name, seed, kinds = args
    photo = load_photo(name)
    pristine = to_model_input(photo)
    images, labels, families, names = [pristine.astype(np.float16)], [4.0], [""], [f"{Path(name).stem}"]
    for kind in kinds:
        for level in LEVELS:
            image = to_model_input(distort(photo, kind, level, seed, index))
            images.append(image.astype(np.float16))
            labels.append(ssim_label(image, pristine))
            families.append(kind.family)
            names.append(f"{Path(name).stem}_{kind.kadid_id:02d}_{level:02d}")
    return {"images": np.stack(images), "labels": np.array(labels, np.float32), "families": families, "names": names}


def build_natural_corpus(out_dir: Path, seed: int = 0, photos: tuple[str, ...] = PHOTOS,
                         kinds: tuple[DistortionType, ...] = DISTORTIONS, workers: int = 2, progress=None) -> None:
    """Write images.npy (float16, N x 512 x 512) and index.json (labels, families, reference, names)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for name, part in zip(photos, pool.map(_build_photo, [(i, p, seed, kinds) for i, p in enumerate(photos)])):
            parts.append(part)
            if progress is not None:
                progress(name)
    np.save(out_dir / "images.npy", np.concatenate([p["images"] for p in parts]))
    index = {"seed": seed, "label_rule": LABEL_RULE, "photos": list(photos), "labels": [], "families": [],
             "groups": [], "names": []}
    for group, part in enumerate(parts):
        index["labels"] += [round(float(v), 5) for v in part["labels"]]
        index["families"] += part["families"]
        index["groups"] += [group] * len(part["labels"])
        index["names"] += part["names"]
    (out_dir / "index.json").write_text(json.dumps(index))


def load_natural_corpus(corpus_dir: Path) -> ImageSet:
    index = json.loads((corpus_dir / "index.json").read_text())
    images = np.load(corpus_dir / "images.npy", mmap_mode="r")
    return ImageSet.from_array(images, index["labels"], [index["photos"][g] for g in index["groups"]],
                               [f or None for f in index["families"]], index["names"])
