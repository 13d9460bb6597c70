"""What each training stage trains on: dataset name and folder -> (train, validation) ImageSets.

Pre-training (natural images): a public dataset from `iqa_datasets.py`, or the
offline scikit-image corpus ("skimage"); task-focused selection applies; the
validation split holds out whole reference images.

Fine-tuning (CT): LDCTIQAC 2023 as distributed (validation: a seeded random
10% of the labelled images, the TFKT V2 protocol), or the built-in CT
simulator corpus ("ctsim"), split by source slice into train and held-out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tfkt_edge.errors import InputError
from tfkt_edge.evaluation.ldctiqac import find_labelled_folder, model_input
from tfkt_edge.train.imagesets import ImageSet
from tfkt_edge.train.iqa_datasets import NATURAL_LOADERS
from tfkt_edge.train.trainer import TrainConfig

PRETRAIN_DATASETS = ("skimage", *NATURAL_LOADERS)
FINETUNE_DATASETS = ("ldctiqac", "ctsim")
DEFAULT_DIRS = {"skimage": Path("data/natural"), "ctsim": Path("data/ctsim")}

Progress = Callable[[str], None]


def _folder(config: TrainConfig) -> Path:
    if config.data:
        return Path(config.data)
    if config.dataset in DEFAULT_DIRS:
        return DEFAULT_DIRS[config.dataset]
    raise InputError(f"--data is required for dataset {config.dataset!r}: the folder holding it")


def pretrain_sets(config: TrainConfig, progress: Progress | None = None) -> tuple[ImageSet, ImageSet]:
    if config.dataset not in PRETRAIN_DATASETS:
        raise InputError(f"unknown pre-training dataset {config.dataset!r}; choose from {', '.join(PRETRAIN_DATASETS)}")
    folder = _folder(config)
    if config.dataset == "skimage":
        from tfkt_edge.train.natural_corpus import build_natural_corpus, load_natural_corpus

        if not (folder / "index.json").exists():
            build_natural_corpus(folder, seed=config.seed, progress=progress)
        images = load_natural_corpus(folder)
    else:
        images = NATURAL_LOADERS[config.dataset](folder)
    images = images.select(config.selection)
    return images.split_by_group(config.val_fraction, config.seed)


def finetune_sets(config: TrainConfig, progress: Progress | None = None) -> tuple[ImageSet, ImageSet]:
    if config.dataset not in FINETUNE_DATASETS:
        raise InputError(f"unknown fine-tuning dataset {config.dataset!r}; choose from {', '.join(FINETUNE_DATASETS)}")
    folder = _folder(config)
    if config.dataset == "ldctiqac":
        labelled = find_labelled_folder(folder)
        paths = labelled.paths
        images = ImageSet.from_files(paths, list(labelled.labels.values()), [p.name for p in paths],
                                     [None] * len(paths), model_input)
        return images.split_by_group(config.val_fraction, config.seed)
    return ctsim_split(folder, "train", progress), ctsim_split(folder, "heldout", progress)


def ctsim_split(folder: Path, split: str, progress: Progress | None = None) -> ImageSet:
    from tfkt_edge.train.corpus import build_corpus, default_sources

    if not (folder / "index.json").exists():
        build_corpus(folder, default_sources(), progress=(lambda s: progress(s.name)) if progress else None)
    members = [s for s in json.loads((folder / "index.json").read_text()) if s["split"] == split]
    arrays, labels, groups = [], [], []
    for source in members:
        with np.load(folder / f"{source['name']}.npz") as data:
            arrays.append(data["images"])
            labels.append(data["labels"])
            groups += [source["name"]] * len(data["labels"])
    images = np.concatenate(arrays)
    names = [f"{g}#{i}" for i, g in enumerate(groups)]
    return ImageSet.from_array(images, np.concatenate(labels), groups, [None] * len(groups), names)
