"""Labelled CT folders in the LDCTIQAC 2023 layout, for evaluation and fine-tuning.

As distributed:

    LDCTIQAG2023_train/image/0000.tif ... and LDCTIQAG2023_train/train.json  {"0000.tif": 2.8, ...}
    LDCTIQAC_test/images/test000.tiff ...  and LDCTIQAC_test/test.json

Each TIFF is one 512x512 float32 slice in [0, 1] on the -1000..+400 HU window.
Any folder with one JSON of {file name: score} beside one image folder is read
the same way. Images go through the shared preprocessing function (mapped back
to HU first), so a model with a different contract still sees what it expects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfkt_edge.errors import InputError
from tfkt_edge.model.preprocess import LDCTIQAC, PreprocessContract, preprocess

LAYOUT = ("image/*.tif with train.json, or images/*.tiff with test.json "
          "(a JSON object mapping each file name to its 0-4 score)")
KNOWN = (("image", "train.json"), ("images", "test.json"), ("image", "val.json"), ("images", "val.json"))


@dataclass(frozen=True)
class LabelledFolder:
    root: Path
    image_dir: Path
    labels_file: Path
    labels: dict[str, float]

    @property
    def paths(self) -> list[Path]:
        return [self.image_dir / name for name in self.labels]


def find_labelled_folder(root: Path) -> LabelledFolder:
    """Locate the image folder and score JSON under ``root``; raise InputError naming what is missing."""
    if not root.is_dir():
        raise InputError(f"{root}: not a folder; expected {LAYOUT}")
    for image_dir, labels_name in KNOWN:
        if (root / labels_name).is_file() and (root / image_dir).is_dir():
            return _read(root, root / image_dir, root / labels_name)
    present = sorted(p.name for p in root.iterdir())[:10]
    raise InputError(f"{root}: no labelled LDCTIQAC layout found (has {', '.join(present) or 'nothing'}); expected {LAYOUT}")


def _read(root: Path, image_dir: Path, labels_file: Path) -> LabelledFolder:
    try:
        raw = json.loads(labels_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{labels_file}: not readable JSON ({exc})") from None
    if not isinstance(raw, dict) or not raw:
        raise InputError(f"{labels_file}: expected a non-empty JSON object {{file name: score}}")
    labels = {}
    for name, score in raw.items():
        if not isinstance(score, (int, float)) or not 0.0 <= float(score) <= 4.0:
            raise InputError(f"{labels_file}: score for {name!r} is {score!r}, not a number in 0..4")
        if not (image_dir / name).is_file():
            raise InputError(f"{labels_file} lists {name!r} but {image_dir / name} does not exist")
        labels[str(name)] = float(score)
    return LabelledFolder(root, image_dir, labels_file, labels)


def read_slice(path: Path) -> np.ndarray:
    """One challenge TIFF as a float32 2-D array in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            array = np.asarray(image, dtype=np.float32)
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"{path}: not a readable TIFF ({exc})") from None
    if array.ndim != 2:
        raise InputError(f"{path}: expected a single-channel slice, got shape {array.shape}")
    return array


def model_input(path: Path, contract: PreprocessContract = LDCTIQAC) -> np.ndarray:
    """Challenge TIFF -> the model's input, through the one preprocessing function."""
    hu = read_slice(path) * (LDCTIQAC.hu_max - LDCTIQAC.hu_min) + LDCTIQAC.hu_min
    return preprocess(hu, contract)
