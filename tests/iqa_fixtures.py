"""Tiny dataset folders in the exact layouts the public datasets are distributed in.

Images are real: crops of scikit-image's bundled photographs, and real CT slices
from pydicom-data windowed into LDCTIQAC TIFFs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def photo(name: str = "astronaut.png", size: tuple[int, int] = (96, 72)) -> Image.Image:
    from tfkt_edge.train.natural_corpus import photo_path

    with Image.open(photo_path(name)) as image:
        return image.convert("RGB").resize(size)


def kadid10k(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    rows = ["dist_img,ref_img,dmos,var"]
    for kind, level, dmos in ((1, 1, 4.5), (1, 5, 1.9), (7, 3, 3.8), (11, 2, 3.1)):
        name = f"I01_{kind:02d}_{level:02d}.png"
        photo().save(root / "images" / name)
        rows.append(f"{name},I01.png,{dmos},0.5")
    photo().save(root / "images" / "I01.png")
    (root / "dmos.csv").write_text("\n".join(rows) + "\n")
    return root


def koniq10k(root: Path) -> Path:
    (root / "1024x768").mkdir(parents=True)
    rows = ["image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore"]
    for i, mos in enumerate((3.9, 2.2, 1.4)):
        name = f"{1000 + i}.jpg"
        photo("coffee.png").save(root / "1024x768" / name)
        rows.append(f"{name},0,1,2,1,0,4,{mos},0.6,{mos * 20:.1f}")
    (root / "koniq10k_scores_and_distributions.csv").write_text("\n".join(rows) + "\n")
    return root


def tid2013(root: Path) -> Path:
    (root / "distorted_images").mkdir(parents=True)
    (root / "reference_images").mkdir(parents=True)
    lines = []
    for name, mos, stored in (("i01_01_1.bmp", 6.3, "I01_01_1.BMP"), ("i01_18_5.bmp", 2.7, "i01_18_5.bmp"),
                              ("i01_24_3.bmp", 4.5, "i01_24_3.bmp")):
        photo("chelsea.png").save(root / "distorted_images" / stored, format="BMP")
        lines.append(f"{mos} {name}")
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    return root


def livec(root: Path) -> Path:
    from scipy.io import savemat

    (root / "Data").mkdir(parents=True)
    (root / "Images").mkdir(parents=True)
    names = [f"t{i}.bmp" for i in range(7)] + ["10.JPG", "100.bmp"]
    for name in names:
        photo("rocket.jpg").save(root / "Images" / name, format="JPEG" if name.endswith("JPG") else "BMP")
    cells = np.empty((len(names), 1), dtype=object)
    cells[:, 0] = names
    savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": cells})
    savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.array([[50.0] * 7 + [63.0, 21.5]])})
    savemat(root / "Data" / "AllStdDev_release.mat", {"AllStdDev_release": np.ones((1, len(names)))})
    return root


def spaq(root: Path) -> Path:
    from openpyxl import Workbook

    (root / "Annotations").mkdir(parents=True)
    (root / "TestImage").mkdir(parents=True)
    book = Workbook()
    sheet = book.active
    sheet.append(["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"])
    for name, mos in (("00001.jpg", 42.3), ("00002.jpg", 80.0)):
        photo("coffee.png").save(root / "TestImage" / name)
        sheet.append([name, mos, 40, 50, 60, 30, 45])
    book.save(root / "Annotations" / "MOS and Image attribute scores.xlsx")
    return root


def ldctiqac(root: Path, slices: list[np.ndarray], labels: list[float], test_layout: bool = False) -> Path:
    """Write windowed CT slices as float32 TIFFs with the challenge's JSON of scores."""
    folder, labels_name, suffix = ("images", "test.json", ".tiff") if test_layout else ("image", "train.json", ".tif")
    (root / folder).mkdir(parents=True)
    scores = {}
    for i, (image, label) in enumerate(zip(slices, labels)):
        name = f"test{i:03d}{suffix}" if test_layout else f"{i:04d}{suffix}"
        Image.fromarray(image.astype(np.float32)).save(root / folder / name)
        scores[name] = label
    (root / labels_name).write_text(json.dumps(scores))
    return root


def noisy_ct_slices(hu: np.ndarray, sigmas: tuple[float, ...], seed: int = 0) -> list[np.ndarray]:
    """A real slice with added white noise of each sigma (HU), windowed to the LDCTIQAC [0, 1] range."""
    from tfkt_edge.model.preprocess import LDCTIQAC, preprocess

    rng = np.random.default_rng(seed)
    return [preprocess(hu + rng.normal(0, s, hu.shape), LDCTIQAC) for s in sigmas]
